#!/usr/bin/env python3
"""Plot the validation curves of a recipe's experiments (from each exp/<name>/train.log) into one
PNG: the final module's loss and accuracy against training steps."""
import argparse
import re
import sys
from pathlib import Path

from legonn.fileio import save_figure

LINE = re.compile(r"validation at step (\d+): ([^;]*)")  # the metrics; CTC skip counts may follow a ';'


def read_curve(log: Path) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        m = LINE.search(line)
        if not m:
            continue
        step = int(m.group(1))
        for item in m.group(2).split():
            key, _, value = item.partition("=")
            curves.setdefault(key, []).append((step, float(value)))
    return curves


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--experiments", required=True, help='"name:conf ..." as in run.sh')
    p.add_argument("--out", default="exp/valid_curves.png")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    plotted = 0
    for spec in args.experiments.split():
        name = spec.split(":", 1)[0]
        log = Path("exp") / name / "train.log"
        if not log.is_file():
            continue
        curves = read_curve(log)
        for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
            if key in curves:
                steps, values = zip(*sorted(dict(curves[key]).items()))
                ax.plot(steps, values, marker="o", markersize=3, label=name)
        plotted += 1
    if not plotted:  # e.g. a run of compositions only: nothing trained to plot, and no stale plot kept
        print("plot_curves: no exp/<name>/train.log with validation lines: no curves", file=sys.stderr)
        Path(args.out).unlink(missing_ok=True)
        return 0
    ax_loss.set(title="validation loss (weighted sum over modules)", xlabel="update step")
    ax_acc.set(title="validation accuracy of the final module", xlabel="update step")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = save_figure(fig, args.out)
    print(f"plot_curves: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
