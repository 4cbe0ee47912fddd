"""Build a module vocabulary (sentencepiece BPE/unigram or a token list) and report coverage."""
from __future__ import annotations

import argparse

from legonn.cli import HelpFormatter

from legonn.data.vocab import build_vocabulary


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn vocab", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--kind", choices=("bpe", "unigram", "tokens"), required=True,
                   help="sentencepiece bpe/unigram, or 'tokens': the whitespace-separated symbols (e.g. phonemes)")
    p.add_argument("--size", type=int, default=0, help="number of sentencepiece pieces")
    p.add_argument("--texts", required=True, help="comma-separated Kaldi text files to learn from")
    p.add_argument("--eval_texts", default="", help="comma-separated Kaldi text files to report coverage on")
    p.add_argument("--out", required=True, help="output prefix: writes PREFIX.model (sentencepiece), PREFIX.tokens.txt, PREFIX.report.json")
    args = p.parse_args(argv)
    report = build_vocabulary(args.kind, [f for f in args.texts.split(",") if f], args.out, args.size,
                              [f for f in args.eval_texts.split(",") if f])
    line = f"{args.out}: {report['size']} symbols ({args.kind}) from {report['train_sentences']} sentences"
    if "coverage" in report:
        c = report["coverage"]
        line += (f"; eval word OOV {100 * c['word_oov_rate']:.2f}% (types {100 * c['word_type_oov_rate']:.2f}%), "
                 f"<unk> {100 * c['unk_token_rate']:.3f}%, {c['tokens_per_word']:.2f} tokens/word")
    print(line)
    return 0
