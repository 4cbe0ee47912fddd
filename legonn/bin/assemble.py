"""Build a compressed module from a Modular Transformers phase: teacher + modular layers -> module folder.

The phase is an experiment whose config has a `modular` section (module name -> granularities of
its modular layers) and starts its modules from the teacher's folders (trainer.init_modules);
legonn/nn/modular.py describes the method. The assembled folder has the teacher's type, interface
vocabularies and checksums, recorded lengths and files, with fewer stack layers, so
`legonn compose` accepts it wherever the teacher went; its card and module.json ("assembled")
say what it was built from.

  legonn assemble --exp_dir exp/deen_modular --module decoder --ratio 2 --out exp/deen_modular/assembled/decoder_2x
  legonn assemble --exp_dir exp/deen_modular --module encoder --depth 4 --strategy speed-first --out DIR

With --teacher instead of --exp_dir, the baseline without modular layers: the teacher's module
with fewer of its own stack layers, spread over the stack (first and last kept), untrained since
(dropping layers) or the start of a shrink-and-fine-tune run (trainer.init_modules).

  legonn assemble --teacher exp/deen_lego_teacher/modules/decoder --ratio 2 --out DIR
"""
from __future__ import annotations

import argparse

from legonn.cli import HelpFormatter
from legonn.engine.assembly import STRATEGIES, assemble_experiment, shrink_module


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn assemble", description=__doc__, formatter_class=HelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--exp_dir", help="the modular phase's experiment")
    source.add_argument("--teacher", help="a module folder to shrink (no modular layers)")
    p.add_argument("--module", help="with --exp_dir: the module to assemble (a key of the config's modular section)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--ratio", type=float, help="compression of the module's stack: teacher layers / assembled layers")
    size.add_argument("--depth", type=int, help="number of stack layers of the assembled module")
    p.add_argument("--strategy", choices=STRATEGIES, default="size-first",
                   help="among assemblies of that depth: fewest parameters or lowest measured latency, "
                        "then lowest validation loss")
    p.add_argument("--checkpoint", help="checkpoint or averaged file (default: the best kept checkpoint)")
    p.add_argument("--out", required=True, help="the module folder to write")
    args = p.parse_args(argv)
    if args.teacher:
        folder, kept = shrink_module(args.teacher, args.out, args.ratio, args.depth)
        print(f"shrunk {args.teacher}: teacher layers {kept} kept into {folder}")
        return 0
    if not args.module:
        p.error("--module is required with --exp_dir")
    result = assemble_experiment(args.exp_dir, args.module, args.out, args.ratio, args.depth, args.strategy, args.checkpoint)
    for candidate in result.candidates:
        mark = "*" if candidate is result.chosen else " "
        print(f"{mark} {candidate.describe()}")
    depth = len(result.chosen.plan)
    print(f"assembled {args.module}: {depth} of {result.teacher_depth} layers ({result.teacher_depth / depth:.2g}x) "
          f"into {result.directory}")
    return 0
