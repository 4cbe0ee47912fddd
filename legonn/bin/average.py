"""Average the weights of the best or the last N checkpoints of an experiment."""
from __future__ import annotations

import argparse

from legonn.cli import HelpFormatter

from legonn.engine.experiment import average_checkpoints


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn average", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--exp_dir", required=True, help="the experiment whose checkpoints to average")
    p.add_argument("--num", type=int, default=5, help="how many checkpoints")
    p.add_argument("--mode", choices=("best", "last"), default="best", help="the best by --metric, or the last saved")
    p.add_argument("--metric", help="validation metric for --mode best (default: the config's trainer.best_metric)")
    p.add_argument("--out", help="output file (default: EXP_DIR/averaged_<mode><num>.pt)")
    args = p.parse_args(argv)
    out, paths = average_checkpoints(args.exp_dir, args.num, args.mode, args.metric, args.out)
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) -> {out}")
    return 0
