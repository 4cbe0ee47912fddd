"""Score hypotheses against references (Kaldi text files): WER/CER, BLEU, tokenized BLEU, chrF.

Prints one summary line, then the sacrebleu signature lines, and writes
``score.json`` (and, for WER, sclite-style ``result.txt`` alignments) to
``--out_dir``.
"""

from __future__ import annotations

import argparse

from legonn.cli import HelpFormatter
import os

from legonn.engine import score as S

_METRICS = {"wer": ("wer",), "bleu": ("bleu",), "all": ("wer", "bleu", "chrf")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="legonn score", description=(__doc__ or "").strip().splitlines()[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--ref", required=True, help="reference text file (utt_id text per line)")
    p.add_argument("--hyp", required=True, help="hypothesis text file (utt_id text per line)")
    p.add_argument("--metric", choices=sorted(_METRICS), default="all",
                   help="wer, bleu (detokenized + tokenized), or all = wer+bleu+chrf (default)")
    p.add_argument("--out_dir", help="where score.json / result.txt go (default: directory of --hyp)")
    p.add_argument("--lowercase", action="store_true", help="lowercase both sides (all metrics)")
    p.add_argument("--remove_punct", action="store_true", help="drop Unicode punctuation (WER/CER only)")
    p.add_argument("--cer", action="store_true", help="also compute the character error rate")
    p.add_argument("--compound_split", action="store_true",
                   help="split a-b into 'a ##AT##-##AT## b' for tokenized BLEU (WMT En-De convention)")
    p.add_argument("--allow_missing", action="store_true",
                   help="score reference utterances absent from --hyp as empty hypotheses")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    result = S.score_files(
        args.ref,
        args.hyp,
        _METRICS[args.metric],
        cer=args.cer,
        lowercase=args.lowercase,
        remove_punct=args.remove_punct,
        compound_split=args.compound_split,
        allow_missing=args.allow_missing,
    )
    S.write_results(result, args.out_dir or os.path.dirname(os.path.abspath(args.hyp)))
    print(S.summary_line(result))
    for line in S.signature_lines(result):
        print(line)
    return 0
