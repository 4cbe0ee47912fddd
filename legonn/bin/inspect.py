"""Show a chain's interpretable interfaces: greedy CTC output per module and marginal heatmaps.

For each chosen utterance: the input, every CTC module's best path (detokenised with its output
vocabulary), the final decoder's beam-search hypothesis and, with --ref_file, the reference.
With --out_dir, one PNG heatmap per module and utterance (<utt>_<module>.png: positions on x,
blank (as ∅) and the --top - 1 most probable other symbols on y) and report.txt.
"""
from __future__ import annotations

import argparse

from legonn.cli import HelpFormatter


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="legonn inspect", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--modules", nargs="+", required=True, metavar="DIR",
                   help="module folders in chain order, or a composed folder")
    p.add_argument("--data_dir", required=True, help="Kaldi-style data directory")
    p.add_argument("--input_file", help="input stream file in the data dir (default: the file the first module was trained on, recorded at export; "
                        "text or feats.scp for a module exported without it)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--utt", nargs="+", metavar="ID", help="utterance id(s) to show")
    which.add_argument("--first", type=int, help="show the first N utterances (default: 3)")
    p.add_argument("--top", type=int, default=10, help="rows per heatmap: blank and the N-1 symbols most probable anywhere in the utterance")
    p.add_argument("--out_dir", help="write <utt>_<module>.png heatmaps and report.txt here")
    p.add_argument("--ref_file", help="reference file in the data dir to show next to the outputs (e.g. text.en)")
    p.add_argument("--beam", type=int, default=5, help="beam size of the decoder's hypothesis; 0: do not decode")
    p.add_argument("--length_penalty", type=float, default=1.0, help="fairseq-style, as in legonn decode")
    p.add_argument("--max_len_a", type=float, default=1.0, help="max output length = a * input positions + b")
    p.add_argument("--max_len_b", type=int, default=10, help="see --max_len_a")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from legonn.modules.inspector import run

    _, report = run(args.modules, args.data_dir, args.input_file, args.utt, args.first, args.top, args.out_dir,
                    args.beam, args.ref_file, length_penalty=args.length_penalty,
                    max_len_a=args.max_len_a, max_len_b=args.max_len_b)
    print(report.rstrip("\n"))
    if args.out_dir:
        print(f"\nwrote {args.out_dir}/report.txt and the heatmaps")
    return 0
