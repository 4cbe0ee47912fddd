"""Average the weights of the best or the last N checkpoints of an experiment."""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from legonn.engine.checkpoint import average, save_atomic, select
from legonn.errors import LegonnError


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn average", description=__doc__)
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--num", type=int, default=5, help="how many checkpoints")
    p.add_argument("--mode", choices=("best", "last"), default="best")
    p.add_argument("--metric", help="validation metric for --mode best (default: the config's trainer.best_metric)")
    p.add_argument("--out", help="output file (default: EXP_DIR/averaged_<mode><num>.pt)")
    args = p.parse_args(argv)
    exp_dir = Path(args.exp_dir)
    config_file = exp_dir / "config.yaml"
    if not config_file.is_file():
        raise LegonnError(f"{exp_dir}: no config.yaml (not a legonn experiment directory)")
    metric = args.metric or yaml.safe_load(config_file.read_text())["trainer"]["best_metric"]
    paths = select(exp_dir / "checkpoints", args.num, args.mode, metric)
    out = Path(args.out) if args.out else exp_dir / f"averaged_{args.mode}{args.num}.pt"
    save_atomic({"model": average(paths), "averaged_from": [p.name for p in paths]}, out)
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) -> {out}")
    return 0
