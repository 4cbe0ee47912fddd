"""Chain module folders into one self-contained composed model, checking every interface.

Refuses (one line, nothing written): interfaces that differ (kind, vocabulary checksum, hidden
width), a decoder anywhere but last (nothing reads the tokens it generates) and a chain whose
first module does not read a data file (e.g. a decoder alone). Warns when a producer's recorded
output lengths differ from the input lengths its consumer was trained on by more than
--max_length_gap, and suggests an output length controller (OLC) factor.

The composed folder (--out) holds:
  composed.json      the parts in order: where each was copied from, the sha256 of its weights,
                     its interfaces; and the check of every interface between two parts
  parts/<i>_<name>/  a copy of each module folder
  README.md          a card: the parts, what each reads and writes, the interface checks
  finetune.yaml      a `legonn train` config rebuilding the chain, every module starting from its part

Use it wherever module folders are accepted:
  legonn decode --modules COMPOSED --data_dir DATA --out_dir OUT
  legonn inspect --modules COMPOSED --data_dir DATA --first 3
Fine-tune it: fill in finetune.yaml's data section (train and valid data dirs, the input and
target file names) or give it on the command line, and choose the parts to keep as they are:
  legonn train --config COMPOSED/finetune.yaml --exp_dir EXP --data.train TRAIN --data.valid VALID \\
      --trainer.freeze '[encoder]'
finetune.yaml holds absolute paths: after moving COMPOSED, rewrite it with
  legonn compose --finetune_config COMPOSED
"""
from __future__ import annotations

import argparse
import sys

from legonn.cli import HelpFormatter
from legonn.modules.compose import DEFAULT_MAX_LENGTH_GAP


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="legonn compose", description=__doc__,
                                formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--modules", nargs="+", metavar="DIR",
                     help="module folders (or composed folders), in chain order")
    src.add_argument("--finetune_config", metavar="COMPOSED",
                     help="only (re)write COMPOSED/finetune.yaml (or --out FILE) for the folder's current place")
    p.add_argument("--out", help="the composed folder to write (with --finetune_config: the YAML file)")
    p.add_argument("--name", help="name of the composed model (default: the --out folder's name)")
    p.add_argument("--max_length_gap", type=float, default=DEFAULT_MAX_LENGTH_GAP,
                   help="warn when a producer's mean output length differs from its consumer's mean training "
                        "input length by more than this fraction")
    return p


def main(argv: list[str]) -> int:
    p = parser()
    args = p.parse_args(argv)
    from legonn.modules.compose import compose, write_finetune_config

    if args.finetune_config:
        path = write_finetune_config(args.finetune_config, args.out)
        print(f"wrote {path}")
        return 0
    if not args.out:
        p.error("--out is required (the composed folder to write)")
    result = compose(args.modules, args.out, args.name, args.max_length_gap)
    for warning in result.warnings:
        print(warning, file=sys.stderr, flush=True)
    for link in result.links:
        for note in link.notes:
            print(f"note: {link.producer} -> {link.consumer}: {note}", file=sys.stderr)
    parts = " -> ".join(f"{p['name']} ({p['type']})" for p in result.meta["parts"])
    checked = len(result.links)
    print(f"composed {parts} into {result.directory} ({checked} interface(s) checked, "
          f"{len(result.warnings)} warning(s))")
    return 0
