"""README.md cards of module folders and composed folders.

One renderer for both, so that a module's interfaces, length controller and provenance read the
same in its own card and in the card of every composed model it is a part of.
"""
from __future__ import annotations

from typing import Any, Optional

from legonn.data.vocab import SPECIALS, Vocabulary

EXAMPLES = 6  # symbols of a vocabulary shown as examples
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


def examples_text(vocab: Optional[Vocabulary], n: int = EXAMPLES) -> str:
    """``e.g. `apple` `bird` …``: the first ordinary symbols of a vocabulary (after the special ones)."""
    if vocab is None or len(vocab) <= len(SPECIALS):
        return ""
    symbols = vocab.tokens[len(SPECIALS):]
    return "e.g. " + " ".join(f"`{t}`" for t in symbols[:n]) + (" …" if len(symbols) > n else "")


def input_source(meta: dict[str, Any]) -> str:
    """Where a module's input comes from: the data file it was trained to read (a first module) or
    the stream the module before it learnt; empty when export recorded neither (older folders)."""
    extra = meta.get("extra") or {}
    if (extra.get("input") or {}).get("file"):
        return f"the data file `{extra['input']['file']}`"
    if extra.get("input_stream"):
        return f"stream `{extra['input_stream']}`, the output of the module before it"
    return ""


def output_source(meta: dict[str, Any]) -> str:
    """The stream a module's output learnt and the data file it was read from (the reference to score it with)."""
    extra = meta.get("extra") or {}
    if not extra.get("target"):
        return ""
    return f"stream `{extra['target']}`" + (f", learnt from the data file `{extra['target_file']}`" if extra.get("target_file") else "")


def streams_text(meta: dict[str, Any], input_vocab: Optional[Vocabulary], output_vocab: Optional[Vocabulary]) -> str:
    """What a module reads and writes, on one line: ``tokens from the data file `text.de` (e.g. …) ->
    marginals of stream `en`, learnt from the data file `text.en` (e.g. …); output/input length ratio 2.000``."""

    def side(kind: str, link: str, where: str, vocab: Optional[Vocabulary]) -> str:
        e = examples_text(vocab)
        return kind + (f" {link} {where}" if where else "") + (f" ({e})" if e else "")

    ratio = meta.get("length_ratio")
    return (side(meta["input"]["kind"], "from", input_source(meta), input_vocab) + " -> "
            + side(meta["output"]["kind"], "of", output_source(meta), output_vocab)
            + (f"; output/input length ratio {ratio:.3f}" if ratio is not None else ""))


def olc_text(olc: Optional[dict[str, Any]]) -> str:
    return f"output length controller: factor {olc['factor']}, at most {olc['max_len']} positions" if olc else "no output length controller"


def module_card(meta: dict[str, Any], input_vocab: Optional[Vocabulary] = None,
                output_vocab: Optional[Vocabulary] = None) -> str:
    """The card of a module folder, from its module.json (and vocabularies, for example symbols)."""

    def side(name: str, where: str, vocab: Optional[Vocabulary]) -> list[str]:
        details = "; ".join(filter(None, [where, examples_text(vocab)]))
        return [f"- {name}: {interface_text(meta[name])}"] + ([f"  - {details}"] if details else [])

    source = input_source(meta)
    lines = [
        f"# {meta['name']}",
        "",
        f"A `{meta['type']}` LegoNN module exported by legonn {meta['legonn_version']}.",
        "",
        "## Interface",
        *side("input", f"reads {source}" if source else "", input_vocab),
        *side("output", output_source(meta), output_vocab),
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


def composed_card(meta: dict[str, Any], parts: list, links: list, names: list[str]) -> str:
    """The card of a composed folder: composed.json ``meta``, the parts (``LoadedModule``: module.json
    and vocabularies), the interface checks (``LinkCheck``) and the parts' names in the chain."""
    lines = [
        f"# {meta['name']}",
        "",
        f"A composed LegoNN model: {len(parts)} module(s) chained by `legonn compose` (legonn {meta['legonn_version']}).",
        "Each part is a copy of a module folder, under `parts/`; `composed.json` records where each came from,",
        "the sha256 of its weights and the interface checks.",
        "",
        "## Parts",
        "",
    ]
    for i, (part, loaded) in enumerate(zip(meta["parts"], parts)):
        m = loaded.meta
        lines += [
            f"{i + 1}. **{part['name']}** (`{part['type']}`) in `{part['folder']}`, copied from `{part['source']}`"
            + (f" (originally `{part['origin']}`)" if part.get("origin") not in (None, part["source"]) else ""),
            f"   - input: {interface_text(m['input'])}; output: {interface_text(m['output'])}; {olc_text(m.get('olc'))}",
            f"   - {streams_text(m, loaded.input_vocab, loaded.output_vocab)}",
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
