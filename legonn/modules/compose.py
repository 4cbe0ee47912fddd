"""Composed models: module folders chained into one self-contained artifact (``legonn compose``).

A composed folder holds a copy of every part and a description of how they were checked::

    composed.json          format "legonn-composed": the parts in order (name, type, target, the
                           folder they were copied from, sha256 of their model.safetensors, their
                           interfaces) and one entry per interface between two parts (kind,
                           vocabulary checksum and size, recorded lengths on both sides, the
                           relative gap and, when it is large, the OLC factor that would match)
    parts/<i>_<name>/      a copy of part i's module folder (module.json, weights, vocabularies, card)
                           ("source" in composed.json: the folder copied; "origin": the module folder
                           first composed, when the source was itself the part of a composed model)
    README.md              a card: the parts, where each came from, the interface checks
    finetune.yaml          a ``legonn train`` config that rebuilds the parts and starts from them

Use it anywhere a list of module folders is accepted: ``legonn decode --modules COMPOSED``,
``legonn inspect --modules COMPOSED``, ``legonn.modules.artifact.assemble([COMPOSED])`` or
``load_composed(COMPOSED)``; a composed folder expands to its parts, whose weights are checked
against composed.json first.

Fine-tuning a composed model: ``legonn train`` rebuilds the chain from the ``model`` section and
starts each module from a part, optionally freezing some::

    trainer:
      init_modules: {encoder: COMPOSED/parts/0_encoder, decoder: COMPOSED/parts/1_decoder}
      freeze: [encoder]

``finetune.yaml`` is exactly that config, written by ``legonn compose`` with absolute paths: fill in
``data`` (train/valid directories and the stream file names) and run
``legonn train --config COMPOSED/finetune.yaml --exp_dir EXP --trainer.freeze '[encoder]'``.
After moving the folder, ``legonn compose --finetune_config COMPOSED`` writes it again for the new place.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from legonn.errors import LegonnError
from legonn.fileio import atomic_dir, write_atomic
from legonn.modules.artifact import assemble, check_parts, input_spec, load_module
from legonn.modules.card import composed_card, stats_text
from legonn.modules.composed import (
    FORMAT,
    FORMAT_VERSION,
    INDEX,
    PARTS,
    file_sha256,
    is_composed,
    part_folders,
    read_composed,
)
from legonn.nn.chain import Chain, ModuleSpec
from legonn.nn.interface import HIDDEN, MARGINALS
from legonn.nn.olc import parse_factor
from legonn.version import __version__

FINETUNE = "finetune.yaml"
DEFAULT_MAX_LENGTH_GAP = 0.5


def load_composed(directory: str | os.PathLike):
    """(Chain, loaded modules) of a composed folder: the same as ``assemble`` of its parts."""
    if not is_composed(directory):
        raise LegonnError(f"{directory}: not a composed legonn model (no {INDEX})")
    return assemble([directory])


# --- checking ------------------------------------------------------------------------------


def _factor(spec: Any) -> Optional[float]:
    try:
        return float(parse_factor(spec))
    except (ValueError, TypeError):
        return None


@dataclass
class LinkCheck:
    """The check of one interface: producer part ``index`` -> part ``index + 1``."""

    index: int
    producer: str
    consumer: str
    kind: str
    vocab_sha256: Optional[str] = None
    vocab_size: Optional[int] = None
    dim: Optional[int] = None
    produced: Optional[dict[str, Any]] = None  # producer's recorded output lengths
    expected: Optional[dict[str, Any]] = None  # consumer's recorded input lengths
    gap: Optional[float] = None  # (produced - expected) / expected, of the means
    suggested_factor: Optional[float] = None
    producer_factor: Optional[str] = None
    warning: Optional[str] = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "producer": self.index, "consumer": self.index + 1, "kind": self.kind,
            "vocab_sha256": self.vocab_sha256, "vocab_size": self.vocab_size, "dim": self.dim,
            "producer_output_length": self.produced, "consumer_input_length": self.expected,
            "relative_gap": self.gap, "producer_olc_factor": self.producer_factor,
            "suggested_olc_factor": self.suggested_factor, "warning": self.warning,
        }


def check_lengths(link: LinkCheck, producer, consumer, max_gap: float) -> None:
    """Compare what the producer was seen to output with what the consumer was trained to read."""
    produced = producer.extra.get("output_length")
    expected = consumer.extra.get("input_length")
    if not produced or not expected:
        who = producer.name if not produced else consumer.name
        side = "output" if not produced else "input"
        link.notes.append(f"length check skipped: '{who}' has no recorded {side} lengths")
        return
    link.produced, link.expected = produced, expected
    if expected["mean"] <= 0:
        return
    link.gap = (produced["mean"] - expected["mean"]) / expected["mean"]
    olc = producer.meta.get("olc")
    if olc:
        link.producer_factor = str(olc["factor"])
        factor = _factor(olc["factor"])
        if factor is not None and produced["mean"] > 0:
            link.suggested_factor = factor * expected["mean"] / produced["mean"]
    if abs(link.gap) > max_gap:
        how = f"{abs(link.gap):.0%} {'longer' if link.gap > 0 else 'shorter'}"
        advice = (
            f"an OLC factor of {link.suggested_factor:.3g} instead of {link.producer_factor} would match the means "
            f"(retrain or fine-tune '{producer.name}' with it)"
            if link.suggested_factor is not None
            else f"'{producer.name}' has no output length controller: consider one (e.g. factor "
            f"{expected['mean'] / max(produced['mean'], 1e-9):.3g} of its current output length)"
        )
        link.warning = (
            f"WARNING: {producer.name} -> {consumer.name}: '{producer.name}' outputs {stats_text(produced)} positions "
            f"but '{consumer.name}' was trained on {stats_text(expected)}: {how} (more than --max_length_gap "
            f"{max_gap:.0%}); {advice}"
        )


def check_chain(loaded: list, max_gap: float = DEFAULT_MAX_LENGTH_GAP) -> list[LinkCheck]:
    """Check every interface in order: refuse (LegonnError, one line) a kind, vocabulary or width
    mismatch, a decoder before the last part and a first part that reads no data; compare recorded
    lengths and keep a warning when they differ by more than ``max_gap``."""
    check_parts(loaded)
    links = []
    for i, (producer, consumer) in enumerate(zip(loaded, loaded[1:])):
        out = producer.meta["output"]
        link = LinkCheck(i, producer.name, consumer.name, out["kind"])
        if out["kind"] == MARGINALS:
            link.vocab_sha256, link.vocab_size = out["vocab"]["sha256"], out["vocab"]["size"]
        elif out["kind"] == HIDDEN:
            link.dim = out.get("dim")
        check_lengths(link, producer, consumer, max_gap)
        links.append(link)
    return links


# --- writing -------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "module"


def _iface(meta: dict[str, Any]) -> dict[str, Any]:
    v = meta.get("vocab")
    out = {"kind": meta["kind"], "vocab_sha256": v["sha256"] if v else None, "vocab_size": v["size"] if v else None}
    if "dim" in meta:
        out["dim"] = meta["dim"]
    return out


def unique_names(loaded: list) -> list[str]:
    """Module names in the chain (as ``assemble`` makes them unique)."""
    names = [m.name for m in loaded]
    return [f"{n}_{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def finetune_config(directory: str | os.PathLike, loaded: list, folders: list[Path]) -> str:
    """A ``legonn train`` config rebuilding the chain from the parts ``folders`` (relative to
    ``directory``), every module starting from its part; written with absolute paths."""
    directory = Path(directory).resolve()
    names = unique_names(loaded)
    dirs = [directory / f for f in folders]
    model, init, targets, sums = [], {}, {}, {}
    for name, m, folder in zip(names, loaded, dirs):
        target = m.target
        vocab = m.meta["output"].get("vocab")
        if target and vocab:
            if target in sums and sums[target] != vocab["sha256"]:  # two teams' streams of one name
                target = f"{target}_{name}"
            if target not in targets:
                sums[target] = vocab["sha256"]
                targets[target] = {"file": f"text.{target}", "vocab": str(folder / (vocab["sentencepiece"] or vocab["tokens"]))}
        model.append({"name": name, "type": m.meta["type"], "target": target, "conf": m.meta["conf"]})
        init[name] = str(folder)
    spec = input_spec([loaded[0]])
    data_input = {"file": spec.file}
    if spec.vocab:
        data_input["vocab"] = str(dirs[0] / Path(spec.vocab).name)
    if spec.cmvn:
        data_input["cmvn"] = str(dirs[0] / Path(spec.cmvn).name)

    def block(obj: Any) -> list[str]:
        text = yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip()
        return ["    " + line for line in text.splitlines()]

    lines = [
        f"# Fine-tune the composed model in {directory}:",
        "#   legonn train --config finetune.yaml --exp_dir EXP [--trainer.freeze '[" + names[0] + "]']",
        "# 1. Fill in data.train and data.valid (Kaldi-style data directories) and the stream file names",
        "#    (data.input.file, data.targets.*.file). The vocabularies are the parts' own: keep them, a module",
        "#    only reads and writes the symbols it was trained on.",
        f"# 2. Choose the modules that stay as they are with trainer.freeze (modules: {', '.join(names)}).",
        "# Every module starts from its part (trainer.init_modules); the model section rebuilds each part",
        "# exactly (type and conf from its module.json). Paths are absolute: after moving the composed",
        "# folder, run `legonn compose --finetune_config FOLDER` to write this file again.",
        yaml.safe_dump({"model": model}, sort_keys=False, allow_unicode=True).rstrip(),
        "data:",
        "  train: null  # FILL IN: training data directory",
        "  valid: null  # FILL IN: validation data directory",
        "  input:  # file: the input stream's name in the data directories",
        *block(data_input),
    ]
    if targets:
        lines += ["  targets:  # one stream per module target; file: its name in the data directories",
                  *block(targets)]
    else:
        lines.append("  targets: {}")
    lines += [
        "optim:",
        "  lr: 0.0001  # fine-tuning: smaller than a from-scratch run",
        "scheduler:",
        "  warmup_steps: 500",
        "trainer:",
        "  freeze: []  # e.g. [" + names[0] + "] to keep that part as it is",
        "  init_modules:",
        *block(init),
        "",
    ]
    return "\n".join(lines)


def _sources(directories: list[str | os.PathLike]) -> tuple[list[Path], list[Optional[str]]]:
    """Module folders to copy and, for the parts of a composed folder, where those came from."""
    folders, origins = [], []
    for d in directories:
        d = Path(d)
        if not d.is_dir():
            raise LegonnError(f"{d}: module folder not found")
        if is_composed(d):
            folders += part_folders(d)
            origins += [p.get("origin") or p.get("source") for p in read_composed(d)["parts"]]
        else:
            folders.append(d)
            origins.append(None)
    return folders, origins


def _copy_part(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".*"))  # not the temporaries of a write under way


@dataclass
class Composed:
    directory: Path
    meta: dict[str, Any]
    links: list[LinkCheck]

    @property
    def warnings(self) -> list[str]:
        return [link.warning for link in self.links if link.warning]


def compose(
    directories: list[str | os.PathLike],
    out: str | os.PathLike,
    name: Optional[str] = None,
    max_length_gap: float = DEFAULT_MAX_LENGTH_GAP,
) -> Composed:
    """Check and copy module folders (or composed folders) into a new composed folder ``out``.

    Refuses, writing nothing, a chain whose interfaces differ; keeps length warnings in the result.
    The folder appears complete or not at all (written aside, then renamed).
    """
    if not directories:
        raise LegonnError("compose: give at least one module folder")
    if max_length_gap < 0:
        raise LegonnError(f"--max_length_gap must be >= 0, got {max_length_gap}")
    out = Path(out)
    if out.exists() and not (out.is_dir() and (is_composed(out) or not any(out.iterdir()))):
        raise LegonnError(f"{out}: exists and is not a composed model folder: choose a new --out")
    sources, origins = _sources(directories)
    for src in sources:  # never write into a folder being copied
        if src.resolve() == out.resolve() or src.resolve() in out.resolve().parents:
            raise LegonnError(f"{out}: is inside the module folder {src}: choose another --out")
    loaded = [load_module(d) for d in sources]
    links = check_chain(loaded, max_length_gap)
    names = unique_names(loaded)
    # the same check the chain makes when it is built (sizes of adjacent interfaces)
    Chain([ModuleSpec(n, m.meta["type"], m.meta["conf"]) for n, m in zip(names, loaded)], [m.module for m in loaded])

    name = name or out.name
    folders = [Path(PARTS) / f"{i}_{_slug(m.name)}" for i, m in enumerate(loaded)]
    parts = []
    for i, (m, src, origin, folder) in enumerate(zip(loaded, sources, origins, folders)):
        parts.append({
            "index": i,
            "name": m.name,
            "folder": folder.as_posix(),
            "source": str(src.resolve()),
            "origin": origin or str(src.resolve()),  # the module folder first composed (differs for a composed input)
            "type": m.meta["type"],
            "target": m.target,
            "weights_sha256": m.weights_sha256,
            "input": _iface(m.meta["input"]),
            "output": _iface(m.meta["output"]),
            "olc": m.meta.get("olc"),
            "trained_on": m.meta.get("trained_on", ""),
        })
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "legonn_version": __version__,
        "name": name,
        "max_length_gap": max_length_gap,
        "parts": parts,
        "interfaces": [link.as_dict() for link in links],
    }

    with atomic_dir(out) as tmp:  # also makes parts copied from private folders (older legonn) shareable
        for src, folder, part in zip(sources, folders, parts):
            _copy_part(src, tmp / folder)
            if file_sha256(tmp / folder / "model.safetensors") != part["weights_sha256"]:
                raise LegonnError(f"{src}: model.safetensors changed while it was being copied")
        (tmp / INDEX).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(composed_card(meta, loaded, links, names), encoding="utf-8")
        (tmp / FINETUNE).write_text(finetune_config(out, loaded, folders), encoding="utf-8")
    return Composed(out, meta, links)


def write_finetune_config(directory: str | os.PathLike, path: Optional[str | os.PathLike] = None) -> Path:
    """(Re)write the fine-tuning config of a composed folder for where it is now."""
    directory = Path(directory)
    folders = part_folders(directory)
    loaded = [load_module(f) for f in folders]
    text = finetune_config(directory, loaded, [f.relative_to(directory) for f in folders])
    target = Path(path) if path else directory / FINETUNE
    write_atomic(target, text)
    return target
