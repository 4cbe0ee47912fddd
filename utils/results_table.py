#!/usr/bin/env python3
"""Collect a recipe's score.json files into RESULTS.md (run from the recipe directory).

For every "<exp>@<set>" decode: the final output's WER, BLEU (detokenised and tokenised) and
chrF, then the CTC best path of each module (the paper's per-module interface scores).

With --relative "<exp>@<set>=<reference exp> ...", a modularity table (paper §III-E, Fig. 4):
each swapped or plugged model's score as a percentage of its unswapped reference on the same
test set (rows whose decodes are not among --decodes are left out). BLEU is compared directly; WER as word accuracy (100 - WER, floored at 0), so that
100 % means "as good as the reference" and 0 % "nothing right" for both. MT rows add chrF's
percentage, steadier than BLEU's when the models are weak (a few BLEU points). --relative_plot
draws the percentages as bars.
"""
import argparse
import json
import sys
from datetime import date
from pathlib import Path

from legonn.fileio import save_figure


def read_score(name: str, test_set: str) -> dict:
    path = Path("exp") / name / f"decode_{test_set}" / "score.json"
    if not path.is_file():
        raise SystemExit(f"results_table: {path} is missing (run the score stage)")
    return json.loads(path.read_text())


def quality(score: dict) -> tuple[str, float]:
    """The headline metric of a score.json and a higher-is-better value of it."""
    if "bleu" in score:
        return "BLEU", score["bleu"]["score"]
    return "WER", max(0.0, 100.0 - score["wer"]["score"])


def parse_relative(item: str) -> tuple[str, str, str]:
    """'<exp>@<set>=<reference exp>' -> (exp, set, reference)."""
    decode, eq, reference = item.partition("=")
    name, at, test_set = decode.partition("@")
    if not (eq and at and name and test_set and reference):
        raise SystemExit(f"results_table: --relative entry '{item}' is not <exp>@<set>=<reference exp>")
    return name, test_set, reference


def share(value: float, reference: float) -> float:
    """value as a percentage of reference (NaN when the reference scored nothing)."""
    return 100.0 * value / reference if reference > 0 else float("nan")


def relative_rows(entries: list[tuple[str, str, str]]) -> list[dict]:
    """One row per (exp, set, reference exp)."""
    rows = []
    for name, test_set, reference in entries:
        score, ref = read_score(name, test_set), read_score(reference, test_set)
        metric, value = quality(score)
        _, ref_value = quality(ref)
        raw = score[metric.lower()]["score"]
        ref_raw = ref[metric.lower()]["score"]
        percent = share(value, ref_value)
        chrf = share(score["chrf"]["score"], ref["chrf"]["score"]) if "chrf" in score and "chrf" in ref else None
        rows.append({"name": name, "set": test_set, "reference": reference, "metric": metric,
                     "score": raw, "ref_score": ref_raw, "percent": percent, "chrf_percent": chrf})
    return rows


def relative_table(rows: list[dict]) -> list[str]:
    lines = [
        "## Modularity: swapped and plugged models relative to the unswapped reference",
        "",
        "100 % = the reference model's own score on the same test set (WER compared as word accuracy).",
        "",
        "| model | test set | reference | metric | score | reference score | relative % | chrF relative % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        chrf = "-" if r["chrf_percent"] is None else f"{r['chrf_percent']:.1f}"
        lines.append(f"| {r['name']} | {r['set']} | {r['reference']} | {r['metric']} | {r['score']:.2f} | "
                     f"{r['ref_score']:.2f} | {r['percent']:.1f} | {chrf} |")
    return lines


def plot_relative(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def finite(v: float) -> float:
        return 0.0 if v != v else v

    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2), 4))
    labels = [f"{r['name']}\n({r['set']})" for r in rows]
    from matplotlib.patches import Patch

    # One bar per metric and row: the headline metric, then chrF (lighter) where the rows have it.
    series = [("headline metric (BLEU, or word accuracy)", [finite(r["percent"]) for r in rows])]
    if any(r["chrf_percent"] is not None for r in rows):
        series.append(("chrF", [0.0 if r["chrf_percent"] is None else finite(r["chrf_percent"]) for r in rows]))
    width = 0.8 / len(series)
    handles = []
    for n, (label, values) in enumerate(series):
        alpha = 1.0 if n == 0 else 0.55
        shift = (n - (len(series) - 1) / 2) * width
        bars = ax.bar([i + shift for i in range(len(rows))], values, width, alpha=alpha, edgecolor="black",
                      linewidth=0.3, color=["tab:blue" if v >= 50 else "tab:red" for v in values])
        for bar, v in zip(bars, values):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 1, f"{v:.0f}", ha="center", fontsize=7)
        handles.append(Patch(facecolor="tab:blue", alpha=alpha, label=label))
    handles.append(Patch(facecolor="tab:red", label="below 50 %"))
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    top = max(max(values) for _, values in series)
    ax.set_ylim(0, max(120.0, top * 1.25))  # room for the labels and the legend
    ax.axhline(100, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("% of the unswapped model")
    ax.set_title("Modularity: swapped / plugged models")
    fig.tight_layout()
    save_figure(fig, out)


def row(name: str, test_set: str, output: str, score: dict) -> str:
    def metric(key: str) -> str:
        return f"{score[key]['score']:.2f}" if key in score else "-"

    return f"| {name} | {test_set} | {output} | {metric('wer')} | {metric('bleu')} | {metric('bleu_tok')} | {metric('chrf')} | {score.get('n_utts', '-')} |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--decodes", required=True, help='"exp@set ..." as in run.sh')
    p.add_argument("--title", default="Results")
    p.add_argument("--curves", help="a validation-curve PNG to show under the table, if it exists")
    p.add_argument("--notes", help="a hand-written Markdown file appended as is, if it exists")
    p.add_argument("--relative", default="", help='"<exp>@<set>=<reference exp> ..." rows of the modularity table')
    p.add_argument("--relative_plot", help="write the modularity table as a bar plot (PNG) here")
    args = p.parse_args()
    lines = [
        f"# {args.title}",
        "",
        f"Generated by `utils/results_table.py` on {date.today()} from `exp/*/decode_*/score.json`.",
        "`output` is the final decoder's beam search (`text`) or a module's CTC best path (`ctc_<module>`).",
        "",
        "| experiment | test set | output | WER % | BLEU | tok BLEU | chrF | utts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    signatures = set()
    for spec in args.decodes.split():
        name, _, test_set = spec.partition("@")
        decode_dir = Path("exp") / name / f"decode_{test_set}"
        score = read_score(name, test_set)
        lines.append(row(name, test_set, "text", score))
        signatures.update(score[k]["signature"] for k in ("bleu", "chrf") if k in score)
        for ctc in sorted(decode_dir.glob("ctc_*/score.json")):
            lines.append(row(name, test_set, ctc.parent.name, json.loads(ctc.read_text())))
    if signatures:
        lines += ["", "sacrebleu signatures: " + "; ".join(f"`{s}`" for s in sorted(signatures))]
    # Rows whose decodes are not in --decodes (a run restricted to some experiments) are left out.
    listed = set(args.decodes.split())
    relative = []
    for item in args.relative.split():
        name, test_set, reference = parse_relative(item)  # a malformed entry is an error even when left out
        if f"{name}@{test_set}" in listed and f"{reference}@{test_set}" in listed:
            relative.append((name, test_set, reference))
        else:
            print(f"results_table: modularity row '{item}' left out (its decodes are not in --decodes)", file=sys.stderr)
    if relative:
        rows = relative_rows(relative)
        lines += ["", *relative_table(rows)]
        if args.relative_plot:
            plot_relative(rows, Path(args.relative_plot))
            lines += ["", f"![modularity]({args.relative_plot})"]
    if args.curves and Path(args.curves).is_file():
        lines += ["", f"![validation curves]({args.curves})"]
    if args.notes and Path(args.notes).is_file():
        lines += ["", Path(args.notes).read_text(encoding="utf-8").rstrip()]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
