"""Module artifacts: a trained module as a folder another team can pick up.

    module.json        type + constructor conf, interfaces (kind, vocabulary manifest + sha256),
                       OLC factor and cap, expected output/input length ratio, provenance
    model.safetensors  weights (no pickle: loading never runs code)
    input.*, output.*  vocabularies (token list, and the sentencepiece model when there is one)
    README.md          a short card

``assemble`` builds a Chain from such folders and refuses a pair whose interface differs, a decoder
before the last part (nothing reads generated tokens) and a first module that reads no data file.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from legonn.data.dataset import StreamSpec
from legonn.data.vocab import Vocabulary
from legonn.errors import LegonnError
from legonn.fileio import atomic_dir, inside, read_descriptor
from legonn.modules.card import module_card
from legonn.modules.composed import expand, file_sha256
from legonn.nn.chain import Chain, ModuleSpec, build_module
from legonn.nn.interface import DATA_KINDS, HIDDEN, MARGINALS, TOKENS
from legonn.version import __version__

FORMAT = "legonn-module"
FORMAT_VERSION = 1


def _interface(module: nn.Module, side: str, vocab: Optional[Vocabulary], directory: Path) -> dict[str, Any]:
    kind = getattr(module, f"{side}_kind")
    size = getattr(module, f"{side}_vocab_size", None)
    entry: dict[str, Any] = {"kind": kind, "vocab": None}
    if kind in (HIDDEN,):
        # A baseline decoder reads states of its ingestor's input width (input_dim), not its own d_model.
        ingestor = getattr(module, "ingestor", None) if side == "input" else None
        entry["dim"] = getattr(ingestor, "input_dim", module.d_model)
    if size is not None:
        if vocab is None:
            raise LegonnError(f"module has a {size}-symbol {side} vocabulary: pass it to save it with the module")
        if len(vocab) != size:
            raise LegonnError(f"{side} vocabulary has {len(vocab)} symbols but the module was built for {size}")
        entry["vocab"] = vocab.save(directory, side)
    return entry


def save_module(
    module: nn.Module,
    directory: str | os.PathLike,
    name: str,
    input_vocab: Optional[Vocabulary] = None,
    output_vocab: Optional[Vocabulary] = None,
    trained_on: str = "",
    length_ratio: Optional[float] = None,
    extra: Optional[dict[str, Any]] = None,
    files: Optional[dict[str, Path]] = None,
) -> Path:
    """Write the artifact folder (replacing one already there) as a whole: never a half-written module.

    ``files`` (name in the folder -> source path) travel with the module, e.g. the CMVN statistics
    its input features must be normalised with."""
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        olc = getattr(module, "olc", None)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "legonn_version": __version__,
            "name": name,
            "type": module.spec_type,
            "conf": module.spec_conf,
            "input": _interface(module, "input", input_vocab, tmp),
            "output": _interface(module, "output", output_vocab, tmp),
            "olc": {"factor": olc.factor_spec, "max_len": olc.max_len} if olc is not None else None,
            "length_ratio": length_ratio,
            "trained_on": trained_on,
            "extra": extra or {},
        }
        save_model(module, str(tmp / "model.safetensors"))
        meta["weights_sha256"] = file_sha256(tmp / "model.safetensors")
        for name_in_folder, source in (files or {}).items():
            if not Path(source).is_file():
                raise LegonnError(f"{source}: missing (needed in module folder {directory} as {name_in_folder})")
            shutil.copyfile(source, tmp / name_in_folder)
        (tmp / "module.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(module_card(meta, input_vocab, output_vocab), encoding="utf-8")
    return directory


class LoadedModule:
    """A module read back from its folder, with its vocabularies and metadata."""

    def __init__(self, directory: Path, module: nn.Module, meta: dict[str, Any], input_vocab, output_vocab,
                 weights_sha256: str):
        self.directory, self.module, self.meta = directory, module, meta
        self.weights_sha256 = weights_sha256  # of the model.safetensors these weights were read from
        self.input_vocab: Optional[Vocabulary] = input_vocab
        self.output_vocab: Optional[Vocabulary] = output_vocab

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def extra(self) -> dict[str, Any]:
        """What export recorded of the training: target stream, data-dir files, lengths."""
        return self.meta.get("extra") or {}

    @property
    def target(self) -> Optional[str]:
        """The target stream the module's output was trained on."""
        return self.extra.get("target")

    @property
    def target_file(self) -> Optional[str]:
        """The data-dir file holding that target: the reference to score the module's output with."""
        return self.extra.get("target_file")


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    directory = Path(directory)
    meta_file = directory / "module.json"
    if not meta_file.is_file():
        raise LegonnError(f"{directory}: not a legonn module folder (no module.json)")
    meta = read_descriptor(meta_file, FORMAT, FORMAT_VERSION, "legonn module description")
    for key in ("name", "type", "conf", "input", "output"):
        if key not in meta:
            raise LegonnError(f"{meta_file}: missing '{key}'")
    return meta


def _stored_tensors(weights: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) from a safetensors header, without reading the tensors."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for a corrupt, truncated or foreign file
        raise LegonnError(f"{weights}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None


def _check_architecture(meta: dict[str, Any], weights: Path) -> None:
    """The architecture module.json describes, built on the meta device (no memory), must have the
    very tensors the weights file stores: so a forged size (a d_model of 10^9) is refused before
    anything is allocated, and a file of other shapes or dtypes before it is read."""
    stored = _stored_tensors(weights)
    try:
        with torch.device("meta"):
            state = build_module(meta["type"], meta["conf"]).state_dict(keep_vars=True)
    except LegonnError as exc:
        raise LegonnError(f"{weights.parent}/module.json: {exc}") from None
    except (RuntimeError, OverflowError) as exc:  # sizes past what any tensor can hold
        raise LegonnError(f"{weights.parent}/module.json: its '{meta['type']}' architecture cannot exist "
                          f"({str(exc).splitlines()[0]})") from None
    # Tied tensors (a decoder's output layer and embedding) are stored once, under either name.
    groups: dict[int, list[str]] = {}
    for name, tensor in state.items():
        groups.setdefault(id(tensor), []).append(name)
    expected = {}
    for names in groups.values():
        found = [n for n in names if n in stored]
        expected[found[0] if found else names[0]] = state[names[0]]
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise LegonnError(f"{weights}: weights do not fit the '{meta['type']}' architecture in module.json ({what})")
    for name, tensor in expected.items():
        shape, dtype = stored[name]
        if shape != tuple(tensor.shape) or dtype != _SAFETENSORS_DTYPES.get(tensor.dtype):
            raise LegonnError(f"{weights}: tensor {name} is {dtype} {list(shape)}, module.json's architecture needs "
                              f"{_SAFETENSORS_DTYPES.get(tensor.dtype)} {list(tensor.shape)}")


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
                       torch.int32: "I32", torch.bool: "BOOL", torch.uint8: "U8", torch.float64: "F64"}


def load_module(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedModule:
    """A module folder, read as data: its files must lie inside it, its weights must match the
    sha256 module.json records (folders written before legonn recorded it are not checked) and
    the architecture it describes; nothing is unpickled and nothing allocated before that."""
    directory = Path(directory)
    meta = read_meta(directory)
    where = str(directory / "module.json")
    vocabs = [
        Vocabulary.from_manifest(directory, meta[side]["vocab"], where) if meta[side].get("vocab") else None
        for side in ("input", "output")
    ]
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise LegonnError(f"{directory}: model.safetensors is missing")
    inside(directory, "model.safetensors", where)  # not a symbolic link to a file elsewhere
    recorded, actual = meta.get("weights_sha256"), file_sha256(weights)
    if recorded is not None and actual != recorded:
        raise LegonnError(f"{weights}: sha256 {actual[:12]} does not match {str(recorded)[:12]} recorded in "
                          f"{where} (weights replaced or damaged)")
    _check_architecture(meta, weights)
    module = build_module(meta["type"], meta["conf"])
    try:
        load_model(module, str(weights), strict=True, device=str(map_location))
    except Exception as exc:  # the header was checked; this is a damaged tensor body
        raise LegonnError(f"{weights}: cannot load weights ({str(exc).splitlines()[0]})") from None
    module.eval()
    return LoadedModule(directory, module, meta, *vocabs, actual)


def input_spec(loaded: list[LoadedModule], input_file: Optional[str] = None):
    """How the first module of a chain reads a data dir: the file it was trained on (recorded at
    export), its token vocabulary or the CMVN statistics shipped in its folder."""
    first = loaded[0]
    recorded = first.extra.get("input") or {}
    vocab = first.input_vocab
    if vocab is not None:
        vocab_file = vocab.spm_model or str(first.directory / first.meta["input"]["vocab"]["tokens"])
        return StreamSpec(input_file or recorded.get("file") or "text", vocab_file)
    cmvn = recorded.get("cmvn")
    return StreamSpec(input_file or recorded.get("file") or "feats.scp", None,
                      str(inside(first.directory, cmvn, str(first.directory / "module.json"))) if cmvn else None)


def _symbols(iface: dict[str, Any], note: str = "") -> str:
    """``tokens over 15 symbols (sha256 0123456789ab)``: an interface, for an error line."""
    v = iface.get("vocab")
    if v:
        return f"{iface['kind']} over {v['size']} symbols (sha256 {v['sha256'][:12]}{note})"
    return iface["kind"] + (f" ({iface['dim']}-dim)" if iface.get("dim") else "")


def check_interface(producer: LoadedModule, consumer: LoadedModule) -> None:
    """Refuse, in one line, to feed ``consumer`` from a module that speaks another interface."""
    out, inp = producer.meta["output"], consumer.meta["input"]
    pair = f"cannot chain {producer.directory} -> {consumer.directory}"
    if out["kind"] == TOKENS:  # no legonn module reads generated tokens: a decoder ends the chain
        a, b = out.get("vocab"), inp.get("vocab")
        note = "" if not (a and b) else ", the same vocabulary" if a["sha256"] == b["sha256"] else ", another vocabulary"
        source = " from a data file" if inp["kind"] in DATA_KINDS else ""
        raise LegonnError(
            f"{pair}: {producer.directory} is a decoder: it generates {_symbols(out)}, and a decoder can only be "
            f"the last part of a chain; {consumer.directory} reads {_symbols(inp, note)}{source}"
        )
    if out["kind"] != inp["kind"]:
        raise LegonnError(f"{pair}: the first outputs {out['kind']}, the second reads {inp['kind']}")
    if out["kind"] == MARGINALS:
        a, b = out["vocab"], inp["vocab"]
        if a["sha256"] != b["sha256"]:
            raise LegonnError(
                f"{pair}: output vocabulary (sha256 {a['sha256'][:12]}, {a['size']} symbols) differs from "
                f"input vocabulary (sha256 {b['sha256'][:12]}, {b['size']} symbols)"
            )
    elif out["kind"] == HIDDEN and out.get("dim") != inp.get("dim"):
        raise LegonnError(f"{pair}: hidden width {out.get('dim')} vs {inp.get('dim')}")


def check_start(first: LoadedModule) -> None:
    """Refuse, in one line, a chain whose first module reads another module's output, not a data dir."""
    inp = first.meta["input"]
    if inp["kind"] not in DATA_KINDS:
        role = "a decoder" if first.meta["output"]["kind"] == TOKENS else f"a '{first.meta['type']}' module"
        raise LegonnError(
            f"{first.directory}: cannot start a chain: it is {role} and reads {_symbols(inp)}, the output of "
            "another module, not a data file, so the chain has nothing to decode; put the module(s) that read "
            "the data (tokens or features) before it"
        )


def check_parts(loaded: list[LoadedModule]) -> None:
    """Every interface of a chain of loaded modules, in order, then its first module."""
    for producer, consumer in zip(loaded, loaded[1:]):
        check_interface(producer, consumer)
    if loaded:
        check_start(loaded[0])


def assemble(directories: list[str | os.PathLike]) -> tuple[Chain, list[LoadedModule]]:
    """Load module folders and chain them in order, checking every interface.

    A composed folder (``legonn compose``) stands for its parts, in order."""
    loaded = [load_module(d) for d in expand(directories)]
    check_parts(loaded)
    specs = [ModuleSpec(m.name, m.meta["type"], m.meta["conf"], m.target) for m in loaded]
    names = [s.name for s in specs]
    for i, s in enumerate(specs):  # the same module may appear twice (or two teams picked one name)
        if names.count(s.name) > 1:
            s.name = f"{s.name}_{i}"
    return Chain(specs, [m.module for m in loaded]), loaded
