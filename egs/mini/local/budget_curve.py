#!/usr/bin/env python3
"""Quality against training minutes: the validation accuracy of each experiment's final module
against wall-clock minutes since its first log line (from exp/<name>/train.log), one PNG.

    python local/budget_curve.py --out budget_curve.png LABEL=mt1/exp/NAME/train.log ...

Used to choose the demo's step budgets (README.md); the minutes are this machine's.
"""
import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

from legonn.fileio import save_figure

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ ")
VALID = re.compile(r"validation at step (\d+): acc=(-?[\d.]+)")


def read(log: Path) -> list[tuple[float, int, float]]:
    start, points = None, []
    for line in log.read_text(encoding="utf-8").splitlines():
        m = STAMP.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
        start = start or t
        v = VALID.search(line)
        if v:
            points.append(((t - start).total_seconds() / 60, int(v.group(1)), float(v.group(2))))
    return points


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--budget", type=float, default=None, help="draw a vertical line at this many minutes")
    p.add_argument("curves", nargs="+", help="LABEL=path/to/train.log")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for spec in args.curves:
        label, _, path = spec.partition("=")
        if not Path(path).is_file():
            print(f"budget_curve: {path}: no such train.log", file=sys.stderr)
            return 1
        points = read(Path(path))
        if not points:
            print(f"budget_curve: {path}: no validation lines", file=sys.stderr)
            return 1
        minutes, _, acc = zip(*points)
        ax.plot(minutes, acc, marker="o", markersize=3, label=label)
    if args.budget:
        ax.axvline(args.budget, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="training minutes (2 trainings sharing 2 CPU cores)", ylabel="validation accuracy (final module)",
           title="Quality against training time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out)
    for spec in args.curves:
        label, _, path = spec.partition("=")
        last = read(Path(path))[-1]
        print(f"{label}: {last[2]:.3f} after {last[0]:.1f} min ({last[1]} updates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
