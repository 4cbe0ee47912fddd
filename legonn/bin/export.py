"""Export each module of a trained experiment as a folder another team can reuse."""
from __future__ import annotations

import argparse
from pathlib import Path

from legonn.engine.experiment import load_trained
from legonn.modules.export import export_modules


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn export", description=__doc__)
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--checkpoint", help="checkpoint or averaged file (default: the best kept checkpoint)")
    p.add_argument("--out_dir", help="where the module folders go (default: EXP_DIR/modules)")
    p.add_argument("--modules", nargs="+", help="export only these modules (default: all)")
    p.add_argument("--trained_on", default="", help="a line for the module cards (data, steps, who)")
    args = p.parse_args(argv)
    exp = load_trained(args.exp_dir, args.checkpoint)
    from legonn.engine.experiment import open_dataset

    train_set = open_dataset(exp.config, "train")
    provenance = args.trained_on or (
        f"Trained in `{args.exp_dir}` on `{exp.config['data']['train']}` ({len(train_set)} utterances); "
        f"weights from `{exp.checkpoint.name}`."
    )
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.exp_dir) / "modules"
    for folder in export_modules(exp.model, train_set, exp.config, out_dir, args.modules, provenance):
        print(f"exported {folder}")
    return 0
