"""Kaldi data directories: validate, fix, subset, combine, speed_perturb, split_scp.

  legonn datadir validate [--no_text] [--no_wav] [--no_file_check] DIR
  legonn datadir fix DIR
  legonn datadir subset SRC DST (--n N [--by_speaker] | --first N | --last N | --utt_list F | --spk_list F)
  legonn datadir combine DST SRC1 SRC2 ...
  legonn datadir speed_perturb [--factors 0.9,1.0,1.1] SRC DST
  legonn datadir split_scp [--utt2spk F] IN OUT.1 ... OUT.N | --n N IN OUT.JOB

``validate`` prints each problem on its own line and a summary line last; it exits 1 if
there is any problem.  The utils/*.sh scripts with Kaldi's names call these.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from legonn.cli import HelpFormatter
from legonn.errors import LegonnError
from legonn.speech import datadir as D

ACTIONS = ("validate", "fix", "subset", "combine", "speed_perturb", "split_scp")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="legonn datadir",
        description=(__doc__ or "").strip().splitlines()[0],
        formatter_class=HelpFormatter,
        epilog="\n".join((__doc__ or "").strip().splitlines()[2:]),
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    v = sub.add_parser("validate", formatter_class=HelpFormatter, help="list problems (file:line: message); exit 1 if any")
    v.add_argument("dir")
    v.add_argument("--no_text", action="store_true", help="a data dir without transcripts is fine")
    v.add_argument("--no_wav", action="store_true", help="a data dir without wav.scp/feats.scp is fine (text only)")
    v.add_argument("--no_file_check", action="store_true", help="do not check that audio files exist")

    f = sub.add_parser("fix", formatter_class=HelpFormatter, help="sort tables, keep complete utterances, rebuild spk2utt")
    f.add_argument("dir")

    s = sub.add_parser("subset", formatter_class=HelpFormatter, help="copy part of a data dir")
    s.add_argument("src")
    s.add_argument("dst")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--n", type=int, help="N evenly spaced utterances")
    g.add_argument("--first", type=int, help="the first N utterances (sorted order)")
    g.add_argument("--last", type=int, help="the last N utterances (sorted order)")
    g.add_argument("--utt_list", help="file of utterance ids (first field of each line)")
    g.add_argument("--spk_list", help="file of speaker ids (first field of each line)")
    s.add_argument("--by_speaker", action="store_true", help="with --n: whole speakers (random, seeded) until >= N utterances")
    s.add_argument("--seed", type=int, default=0, help="with --by_speaker: the random draw")

    c = sub.add_parser("combine", formatter_class=HelpFormatter, help="combine data dirs (ids must be unique across them)")
    c.add_argument("dst")
    c.add_argument("srcs", nargs="+")

    sp = sub.add_parser("speed_perturb", formatter_class=HelpFormatter, help="a copy per speed factor, ids prefixed spF- (F != 1.0)")
    sp.add_argument("src")
    sp.add_argument("dst")
    sp.add_argument("--factors", default="0.9,1.0,1.1", help="comma-separated speed factors")

    sc = sub.add_parser("split_scp", formatter_class=HelpFormatter, help="split a table into N parts (speakers kept together with --utt2spk)")
    sc.add_argument("input")
    sc.add_argument("outputs", nargs="+", help="output files, or one pattern with JOB when --n is given")
    sc.add_argument("--n", type=int, help="number of parts; the single output names a pattern (out.JOB.scp)")
    sc.add_argument("--utt2spk", help="keep each speaker's lines in one part")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.action == "validate":
        probs = D.check(args.dir, require_text=not args.no_text, require_audio=not args.no_wav, check_files=not args.no_file_check)
        for line in probs.lines():
            print(line)
        for line in probs.warnings:
            print(f"warning: {line}", file=sys.stderr)
        if probs.total:
            print(f"{args.dir}: {probs.total} problem(s); utils/fix_data_dir.sh {args.dir} fixes sorting and incomplete utterances")
            return 1
        print(f"{args.dir}: OK ({D.count_utterances(args.dir)} utterances)")
        return 0
    if args.action == "fix":
        report = D.fix(args.dir)
        print(f"{args.dir}: {report.summary()} (originals in {Path(args.dir) / '.backup'})")
        return 0
    if args.action == "subset":
        n = D.subset(
            args.src,
            args.dst,
            n=args.n,
            first=args.first,
            last=args.last,
            utts=D.read_ids(args.utt_list) if args.utt_list else None,
            speakers=D.read_ids(args.spk_list) if args.spk_list else None,
            by_speaker=args.by_speaker,
            seed=args.seed,
        )
        print(f"{args.dst}: {n} utterance(s) from {args.src}")
        return 0
    if args.action == "combine":
        report = D.combine(args.dst, args.srcs)
        print(f"{args.dst}: combined {len(args.srcs)} data dir(s); {report.summary()}")
        return 0
    if args.action == "speed_perturb":
        try:
            factors = [float(x) for x in args.factors.split(",") if x.strip()]
        except ValueError:
            raise LegonnError(f"--factors: expected comma-separated numbers, got '{args.factors}'") from None
        report = D.speed_perturb(args.src, args.dst, factors)
        print(f"{args.dst}: {report.kept} utterance(s), speeds {','.join(map(str, factors))}")
        return 0
    # split_scp
    if args.n is not None:
        if len(args.outputs) != 1:
            raise LegonnError("split_scp: with --n, give one output pattern (e.g. out.JOB.scp)")
        outs = D.job_paths(args.outputs[0], args.n)
    else:
        outs = args.outputs
    D.split_scp(args.input, outs, utt2spk=args.utt2spk)
    return 0
