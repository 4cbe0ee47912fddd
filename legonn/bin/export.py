"""Export each module of a trained experiment as a folder another team can reuse; or, with
--weightless TYPE --vocab FILE, write the folder of an interface module that has no weights
(ctc_compress: a recogniser's frame marginals shortened to one position per token)."""
from __future__ import annotations

import argparse
import json

from legonn.cli import HelpFormatter
from legonn.engine.experiment import export_experiment
from legonn.modules.export import export_weightless


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn export", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--exp_dir", help="a trained experiment")
    p.add_argument("--checkpoint", help="checkpoint or averaged file (default: the best kept checkpoint)")
    p.add_argument("--out_dir", help="where the module folders go (default: EXP_DIR/modules)")
    p.add_argument("--modules", nargs="+", help="export only these modules (default: all)")
    p.add_argument("--trained_on", default="", help="a line for the module cards (data, steps, who)")
    p.add_argument("--weightless", metavar="TYPE", help="instead of --exp_dir: a module type without weights, e.g. ctc_compress")
    p.add_argument("--vocab", help="with --weightless: the vocabulary (sentencepiece .model or token list) of its marginals")
    p.add_argument("--conf", default="{}", help="with --weightless: the module's settings as JSON, e.g. '{\"drop_blank\": false}'")
    args = p.parse_args(argv)
    if args.weightless:
        if not args.vocab or not args.out_dir or args.exp_dir:
            p.error("--weightless takes --vocab and --out_dir, and no --exp_dir")
        try:
            conf = json.loads(args.conf)
        except json.JSONDecodeError as exc:
            p.error(f"--conf is not JSON: {exc}")
        print(f"exported {export_weightless(args.weightless, args.vocab, args.out_dir, conf)}")
        return 0
    if not args.exp_dir:
        p.error("--exp_dir is required (or --weightless TYPE --vocab FILE --out_dir DIR)")
    for folder in export_experiment(args.exp_dir, args.checkpoint, args.out_dir, args.modules, args.trained_on):
        print(f"exported {folder}")
    return 0
