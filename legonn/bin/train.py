"""Train a LegoNN chain (or a baseline) from a YAML config; resumes an interrupted run."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from legonn.cli import HelpFormatter
from legonn.config import dump, experiment_changes, resolve

# --check_config's exit status when the config changes more than the EXTENDABLE budgets.
CHANGED = 3


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="legonn train",
        description=__doc__,
        epilog="Any config value can be overridden as --section.key value, e.g. --optim.lr 5e-4 --trainer.max_steps 1000.\n"
        "Multi-process: torchrun --nproc_per_node N -m legonn train ...",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--config", nargs="+", default=[],
                   help="YAML config(s) (model, data, batching, optim, criterion, scheduler, trainer); a later file overrides "
                   "an earlier one, e.g. a composed model's finetune.yaml then a recipe's fine-tuning settings")
    p.add_argument("--exp_dir", help="experiment directory; rerunning with the same dir resumes")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--print_config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--check_config", action="store_true",
                   help="print what the config changes in --exp_dir's config.yaml ('key: old -> new' lines) and exit: "
                   "0 if nothing or only budgets (trainer.max_steps, max_epochs, patience: training continues), "
                   f"{CHANGED} if training would be refused")
    return p


def check_config(config: dict, exp_dir: Path) -> int:
    changes = experiment_changes(exp_dir, config)
    for change in changes:
        print(change)
    return CHANGED if any(not c.extendable for c in changes) else 0


def main(argv: list[str]) -> int:
    args, overrides = parser().parse_known_args(argv)
    config = resolve(args.config, overrides)
    if args.print_config:
        sys.stdout.write(dump(config))
        return 0
    if not args.exp_dir:
        parser().error("--exp_dir is required (name the experiment explicitly)")
    if args.check_config:
        return check_config(config, Path(args.exp_dir))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    from legonn.engine.trainer import train

    train(config, args.exp_dir, args.device)
    return 0
