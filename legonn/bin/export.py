"""Export each module of a trained experiment as a folder another team can reuse."""
from __future__ import annotations

import argparse

from legonn.cli import HelpFormatter

from legonn.engine.experiment import export_experiment


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn export", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--exp_dir", required=True, help="a trained experiment")
    p.add_argument("--checkpoint", help="checkpoint or averaged file (default: the best kept checkpoint)")
    p.add_argument("--out_dir", help="where the module folders go (default: EXP_DIR/modules)")
    p.add_argument("--modules", nargs="+", help="export only these modules (default: all)")
    p.add_argument("--trained_on", default="", help="a line for the module cards (data, steps, who)")
    args = p.parse_args(argv)
    for folder in export_experiment(args.exp_dir, args.checkpoint, args.out_dir, args.modules, args.trained_on):
        print(f"exported {folder}")
    return 0
