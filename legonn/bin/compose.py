"""Chain module folders into one self-contained composed model, checking every interface.

Refuses (one line, nothing written) modules whose interfaces differ: kind, vocabulary checksum or
hidden width. Warns when a producer's recorded output lengths differ from the input lengths its
consumer was trained on by more than --max_length_gap, and suggests an OLC factor.

The composed folder holds composed.json, parts/<i>_<name>/ (a copy of each module folder),
README.md and finetune.yaml; pass it to `legonn decode --modules`, `legonn inspect --modules`,
or, with its data section filled in, to `legonn train --config` (see legonn/modules/compose.py).
"""
from __future__ import annotations

import argparse
import sys

from legonn.modules.compose import DEFAULT_MAX_LENGTH_GAP


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="legonn compose", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--modules", nargs="+", metavar="DIR",
                     help="module folders (or composed folders), in chain order")
    src.add_argument("--finetune_config", metavar="COMPOSED",
                     help="only (re)write COMPOSED/finetune.yaml (or --out FILE) for the folder's current place")
    p.add_argument("--out", help="the composed folder to write (with --finetune_config: the YAML file)")
    p.add_argument("--name", help="name of the composed model (default: the --out folder's name)")
    p.add_argument("--max_length_gap", type=float, default=DEFAULT_MAX_LENGTH_GAP,
                   help="warn when a producer's mean output length differs from its consumer's mean training "
                        "input length by more than this fraction (default: %(default)s)")
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
