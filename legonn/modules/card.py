"""README.md cards of module folders and composed folders.

One renderer for both, so that a module's interfaces, length controller and provenance read the
same in its own card and in the card of every composed model it is a part of.
"""
from __future__ import annotations

from typing import Any, Optional

USE_MODULE = "Load it with `legonn.modules.artifact.load_module` or chain it with `legonn compose`."


def _nice(x: float) -> str:
    return f"{x:.3g}"


def stats_text(s: dict[str, Any]) -> str:
    """Recorded lengths: ``mean 12.3 (p5 4, p95 20)``."""
    return f"mean {s['mean']:.1f} (p5 {_nice(s['p5'])}, p95 {_nice(s['p95'])})"


def interface_text(iface: dict[str, Any]) -> str:
    """An interface of module.json: its kind and vocabulary (file, size, checksum) or width."""
    v = iface.get("vocab")
    if v is None:
        return iface["kind"] + (f" ({iface['dim']}-dim)" if iface.get("dim") else "")
    return f"{iface['kind']} over {v['size']} symbols (`{v['sentencepiece'] or v['tokens']}`, sha256 `{v['sha256'][:16]}…`)"


def olc_text(olc: Optional[dict[str, Any]]) -> str:
    return f"output length controller: factor {olc['factor']}, at most {olc['max_len']} positions" if olc else "no output length controller"


def module_card(meta: dict[str, Any]) -> str:
    """The card of a module folder, from its module.json."""
    lines = [
        f"# {meta['name']}",
        "",
        f"A `{meta['type']}` LegoNN module exported by legonn {meta['legonn_version']}.",
        "",
        "## Interface",
        f"- input: {interface_text(meta['input'])}",
        f"- output: {interface_text(meta['output'])}",
        f"- {olc_text(meta.get('olc'))}",
    ]
    if meta.get("length_ratio") is not None:
        lines.append(f"- expected output/input length ratio: {meta['length_ratio']:.3f}")
    lines += ["", "## Training", meta.get("trained_on") or "(not recorded)", "", USE_MODULE, ""]
    return "\n".join(lines)


def _link_lines(link) -> list[str]:
    if link.vocab_sha256:
        what = f"{link.kind} over {link.vocab_size} symbols; vocabulary checksums match (`{link.vocab_sha256[:12]}`)"
    elif link.dim is not None:
        what = f"{link.kind}, {link.dim}-dim on both sides"
    else:
        what = link.kind
    lines = [f"- {link.producer} -> {link.consumer}: {what}"]
    if link.produced and link.expected:
        gap = f"{link.gap:+.0%}" if link.gap is not None else "n/a"
        lines.append(
            f"  - lengths: '{link.producer}' outputs {stats_text(link.produced)} positions; "
            f"'{link.consumer}' was trained on {stats_text(link.expected)}; gap of the means {gap}"
            + (" — **WARNING**, see below" if link.warning else " (within the limit)")
        )
        if link.warning:
            lines.append(f"  - {link.warning}")
    return lines + [f"  - {note}" for note in link.notes]


def composed_card(meta: dict[str, Any], parts_meta: list[dict[str, Any]], links: list, names: list[str]) -> str:
    """The card of a composed folder: composed.json ``meta``, each part's module.json, the interface
    checks (``LinkCheck``) and the parts' names in the chain."""
    lines = [
        f"# {meta['name']}",
        "",
        f"A composed LegoNN model: {len(parts_meta)} module(s) chained by `legonn compose` (legonn {meta['legonn_version']}).",
        "Each part is a copy of a module folder, under `parts/`; `composed.json` records where each came from,",
        "the sha256 of its weights and the interface checks.",
        "",
        "## Parts",
        "",
    ]
    for i, (part, m) in enumerate(zip(meta["parts"], parts_meta)):
        lines += [
            f"{i + 1}. **{part['name']}** (`{part['type']}`) in `{part['folder']}`, copied from `{part['source']}`"
            + (f" (originally `{part['origin']}`)" if part.get("origin") not in (None, part["source"]) else ""),
            f"   - input: {interface_text(m['input'])}; output: {interface_text(m['output'])}; {olc_text(m.get('olc'))}",
            f"   - target: {part.get('target') or '(none)'}; weights sha256 `{part['weights_sha256'][:16]}`",
            f"   - training: {m.get('trained_on') or '(not recorded)'}",
        ]
    lines += ["", "## Interface checks", ""]
    if not links:
        lines.append("(a single module: no interface between parts)")
    for link in links:
        lines += _link_lines(link)
    lines += [
        "",
        "## Use",
        "",
        "```sh",
        "legonn decode --modules THIS_FOLDER --data_dir DATA --out_dir OUT",
        "legonn inspect --modules THIS_FOLDER --data_dir DATA --first 3 --out_dir PLOTS  # the interpretable interfaces",
        "legonn train --config THIS_FOLDER/finetune.yaml --exp_dir EXP  # fill in its data section first",
        "```",
        "",
        "Fine-tuning: `finetune.yaml` rebuilds the chain (`model`) and starts every module from its part:",
        "",
        "```yaml",
        "trainer:",
        "  init_modules: {" + ", ".join(f"{n}: THIS_FOLDER/{p['folder']}" for n, p in zip(names, meta["parts"])) + "}",
        f"  freeze: [{names[0]}]  # optional: the modules to keep as they are",
        "```",
        "",
    ]
    return "\n".join(lines)
