"""Looking at the interpretable interfaces of a chain (``legonn inspect``; paper Appendix D).

Every LegoNN module with a CTC head hands the next module a sequence of distributions over a
vocabulary a person can read. For a few utterances this shows, per module, the greedy CTC
output (best path, repeats merged, blanks dropped, detokenised with the module's output
vocabulary) next to the input, the final decoder's hypothesis and the reference, in the manner
of the paper's Table IX, and draws the marginals as heatmaps: positions on x, blank (index 0,
shown as ``∅``) and the utterance's most probable symbols on y, colour = probability, a red dot
on each position's best non-blank symbol.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from legonn.data.dataset import ChainDataset, FeatureStream, TokenStream
from legonn.data.vocab import Vocabulary
from legonn.errors import LegonnError
from legonn.fileio import read_table, save_figure, write_atomic
from legonn.modules.artifact import assemble, input_spec
from legonn.modules.card import streams_text
from legonn.nn.beam_search import beam_search
from legonn.nn.ctc import BLANK, greedy_decode

BLANK_LABEL = "∅"
MAX_LABELLED_POSITIONS = 60  # above this, the top axis does not name each position's best symbol


@dataclass
class ModuleView:
    """One module's output for one utterance."""

    name: str
    kind: str  # marginals | hidden | tokens
    log_probs: Optional[np.ndarray] = None  # (T, V), valid positions only
    ids: list[int] = field(default_factory=list)  # greedy CTC ids, or the decoder's best hypothesis
    text: str = ""
    vocab: Optional[Vocabulary] = None
    plot: Optional[Path] = None

    @property
    def positions(self) -> int:
        return 0 if self.log_probs is None else int(self.log_probs.shape[0])

    def stats(self) -> str:
        best = self.log_probs.argmax(-1)
        top1 = np.exp(self.log_probs.max(-1))
        return (f"{self.positions} positions over {self.log_probs.shape[1]} symbols; blank best at "
                f"{(best == BLANK).mean():.0%} of them; mean best-symbol probability {top1.mean():.2f}")


@dataclass
class UtteranceView:
    utt: str
    input_text: str
    modules: list[ModuleView]
    reference: Optional[str] = None


def select(dataset: ChainDataset, utts: Optional[list[str]], first: Optional[int]) -> list[int]:
    if utts:
        index = {u: i for i, u in enumerate(dataset.utts)}
        missing = [u for u in utts if u not in index]
        if missing:
            raise LegonnError(f"--utt: {', '.join(missing[:3])} not in {dataset.dir} ({len(dataset)} utterances, e.g. {dataset.utts[0]})")
        return [index[u] for u in utts]
    n = 3 if first is None else first
    if n < 1:
        raise LegonnError(f"--first must be at least 1, got {n}")
    return list(range(min(n, len(dataset))))


def _describe_input(dataset: ChainDataset, utt: str, table: Optional[dict[str, str]]) -> str:
    if isinstance(dataset.input, TokenStream):
        return table[utt] if table is not None else ""
    if isinstance(dataset.input, FeatureStream):
        return f"({dataset.input.lengths[utt]} frames of features)"
    return ""


@torch.no_grad()
def inspect_utterances(
    model,
    loaded: list,
    dataset: ChainDataset,
    indices: list[int],
    beam: int = 5,
    length_penalty: float = 1.0,
    max_len_a: float = 1.0,
    max_len_b: int = 10,
    references: Optional[dict[str, str]] = None,
) -> list[UtteranceView]:
    """Run each selected utterance on its own through the chain; collect every module's output."""
    model.eval()
    input_table = read_table(dataset.input.path) if isinstance(dataset.input, TokenStream) else None
    views = []
    for i in indices:
        batch = dataset.collate([i])
        utt = batch.utt_ids[0]
        outputs = model.encode(batch.inputs, batch.input_lengths)
        modules = []
        for spec, m, out in zip(model.specs, loaded, outputs):
            kind = m.meta["output"]["kind"]
            if out.log_probs is None:
                modules.append(ModuleView(spec.name, kind))
                continue
            ids = greedy_decode(out.log_probs, out.lengths)[0]
            n = int(out.lengths[0])
            vocab = m.output_vocab
            text = vocab.decode(ids) if vocab is not None else " ".join(map(str, ids))
            modules.append(ModuleView(spec.name, kind, out.log_probs[0, :n].float().cpu().numpy(), ids, text, vocab))
        decoder = model.decoder
        if decoder is not None:
            view = ModuleView(model.specs[-1].name, "tokens", vocab=loaded[-1].output_vocab)
            if beam > 0:
                memory, padding = decoder.ingest(outputs[-1])
                best = beam_search(decoder, memory, padding, beam=beam, nbest=1, length_penalty=length_penalty,
                                   max_len_a=max_len_a, max_len_b=max_len_b)[0][0]
                view.ids = list(best.tokens)
                view.text = view.vocab.decode(view.ids) if view.vocab is not None else " ".join(map(str, view.ids))
            modules.append(view)
        ref = references.get(utt) if references is not None else None
        views.append(UtteranceView(utt, _describe_input(dataset, utt, input_table), modules, ref))
    return views


def _label(vocab: Optional[Vocabulary], index: int) -> str:
    if index == BLANK:
        return BLANK_LABEL
    return vocab.tokens[index] if vocab is not None and index < len(vocab) else str(index)


def top_symbols(probs: np.ndarray, top: int) -> list[int]:
    """``top`` rows: blank (always: it is the best symbol of most positions), then the ``top - 1``
    other symbols of highest probability anywhere in the utterance, in the order of the position
    where each peaks (an alignment then reads from top left to bottom right)."""
    peak = probs.max(0)
    peak[BLANK] = np.inf
    chosen = [int(s) for s in np.argsort(-peak, kind="stable")[: max(1, min(top, probs.shape[1]))]]
    return sorted(chosen, key=lambda s: (s != BLANK, int(probs[:, s].argmax()), s))


def plot_marginals(view: ModuleView, utt: str, path: Path, top: int = 10) -> Path:
    """A heatmap PNG of one module's marginals for one utterance (written aside, then renamed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise LegonnError("plotting needs matplotlib (pip install 'legonn[plot]'), or leave out --out_dir") from None

    probs = np.exp(view.log_probs.astype(np.float64))
    t = probs.shape[0]
    rows = top_symbols(probs, top)
    labels = [_label(view.vocab, s) for s in rows]
    grid = probs[:, rows].T  # (k, T)
    longest = max(len(label) for label in labels)
    width = min(max(6.0, 2.2 + 0.07 * longest + 0.14 * t), 28.0)
    height = max(2.6, 1.6 + 0.32 * len(rows))
    fig, ax = plt.subplots(figsize=(width, height), dpi=110, layout="constrained")
    try:
        image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0, vmax=1.0,
                          extent=(-0.5, t - 0.5, len(rows) - 0.5, -0.5))
        ax.set_yticks(range(len(rows)), labels, fontsize=9 if len(rows) <= 20 else 7)
        ax.set_ylabel(f"blank + top {len(rows) - 1} of {probs.shape[1] - 1} symbols")
        ax.set_xlabel("position")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=min(t, 25), integer=True))
        best = probs.argmax(1)
        row_of = {s: r for r, s in enumerate(rows)}
        xs = [p for p in range(t) if int(best[p]) in row_of and best[p] != BLANK]
        ax.scatter(xs, [row_of[int(best[p])] for p in xs], s=6 if t > 60 else 10, c="red", marker="o",
                   linewidths=0, label="best symbol (non-blank)")
        if t <= MAX_LABELLED_POSITIONS:  # name each position's best symbol along the top
            top_axis = ax.secondary_xaxis("top")
            top_axis.set_xticks(range(t), [_label(view.vocab, int(s)) for s in best], rotation=90,
                                fontsize=7 if t > 30 else 8)
            top_axis.tick_params(length=0)
            for label, s in zip(top_axis.get_xticklabels(), best):
                if s == BLANK:
                    label.set_color("0.6")
        text = view.text or "(empty)"
        if len(text) > 110:
            text = text[:107] + "..."
        ax.set_title(f"{utt} — {view.name}: marginals over {t} positions\nCTC greedy: {text}", fontsize=10, loc="left")
        bar = fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03 if width > 12 else 0.05)
        bar.set_label("probability")
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def plot_name(utt: str, module: str) -> str:
    safe = lambda s: re.sub(r"[^A-Za-z0-9_.-]+", "_", s)  # noqa: E731
    return f"{safe(utt)}_{safe(module)}.png"


def format_header(names: list[str], loaded: list, input_path: Path) -> str:
    """The chain at a glance: the data file read, then per module its type, what it reads and writes
    (stream, data file, example symbols) and its training output/input length ratio."""
    lines = [f"input: {input_path}"]
    lines += [f"module {name} ({m.meta['type']}): {streams_text(m.meta, m.input_vocab, m.output_vocab)}"
              for name, m in zip(names, loaded)]
    return "\n".join(lines) + "\n\n"


def format_report(views: list[UtteranceView], beam: int) -> str:
    """Table IX style: per utterance, the input, each module's greedy CTC output, the decoder's
    hypothesis and the reference, one line each."""
    lines = []
    for view in views:
        rows: list[tuple[str, str, str]] = [("input", "", view.input_text)]
        notes: dict[int, list[str]] = {}
        for m in view.modules:
            if m.log_probs is not None:
                rows.append((m.name, "CTC greedy", m.text or "(empty)"))
                extra = [m.stats()]
                if m.vocab is not None and m.vocab.kind == "sentencepiece":
                    extra.append("pieces: " + " ".join(m.vocab.tokens[i] for i in m.ids))
                if m.plot is not None:
                    extra.append(f"plot: {m.plot}")
                notes[len(rows) - 1] = extra
            elif m.kind == "tokens":
                rows.append((m.name, f"beam {beam}", (m.text or "(empty)") if beam > 0 else "(not decoded: --beam 0)"))
            else:
                rows.append((m.name, m.kind, "(no CTC head: its interface cannot be read)"))
        if view.reference is not None:
            rows.append(("reference", "", view.reference))
        w1 = max(len(r[0]) for r in rows)
        w2 = max(len(r[1]) for r in rows)
        lines.append(f"== {view.utt}")
        for i, (a, b, c) in enumerate(rows):
            lines.append(f"  {a:<{w1}}  {b:<{w2}}  {c}".rstrip())
            indent = " " * (w1 + w2 + 6)
            for note in notes.get(i, []):
                lines.append(indent + (note if note.startswith("plot: ") else f"({note})"))
        lines.append("")
    return "\n".join(lines)


def run(
    modules: list[str],
    data_dir: str,
    input_file: Optional[str] = None,
    utts: Optional[list[str]] = None,
    first: Optional[int] = None,
    top: int = 10,
    out_dir: Optional[str] = None,
    beam: int = 5,
    ref_file: Optional[str] = None,
    **search: Any,
) -> tuple[list[UtteranceView], str]:
    """Assemble ``modules`` (folders or a composed folder), inspect the chosen utterances; with
    ``out_dir``, write ``<utt>_<module>.png`` per module with a CTC head and ``report.txt``."""
    if top < 1:
        raise LegonnError(f"--top must be at least 1, got {top}")
    model, loaded = assemble(modules)
    spec = input_spec(loaded, input_file)
    dataset = ChainDataset(data_dir, spec, {}, require_targets=False)
    references = read_table(Path(data_dir) / ref_file) if ref_file else None
    views = inspect_utterances(model, loaded, dataset, select(dataset, utts, first), beam=beam,
                               references=references, **search)
    if out_dir is not None:
        out = Path(out_dir)
        for view in views:
            for m in view.modules:
                if m.log_probs is not None:
                    m.plot = plot_marginals(m, view.utt, out / plot_name(view.utt, m.name), top)
    report = format_header(model.names, loaded, Path(data_dir) / spec.file) + format_report(views, beam)
    if out_dir is not None:
        write_atomic(Path(out_dir) / "report.txt", report)
    return views, report
