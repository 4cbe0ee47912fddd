"""Convert a Kaldi text file to ARPAbet phonemes offline (CMU dictionary + g2p_en's neural G2P).

Input lines are ``utt_id words...``; output lines ``utt_id AH0 B ...`` in the same order, ready
for ``legonn vocab --kind tokens``. Words missing from the CMU dictionary are predicted by the
neural model shipped in the g2p_en wheel; no NLTK data is used and nothing is downloaded.
Homographs take the dictionary's first pronunciation (there is no POS tagger).
"""
from __future__ import annotations

import argparse
import sys

from legonn.errors import LegonnError
from legonn.fileio import read_table, write_atomic


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn phonemize", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in", dest="inp", required=True, help="Kaldi text file (utt_id words...)")
    p.add_argument("--out", required=True, help="Kaldi phoneme text to write (utt_id phones...)")
    p.add_argument("--stress", action="store_true", help="keep the stress digits (AH0, OW1); default: strip them")
    p.add_argument("--word_boundary", default=None, help="symbol put between words, e.g. '|' (default: none)")
    p.add_argument("--oov_lexicon", default=None,
                   help="also write the words predicted by the neural model with their phones (word phones...)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.inp == args.out:
        raise LegonnError("--in and --out must be different files")

    from tqdm import tqdm

    from legonn.speech.phonemes import Phonemizer

    rows = list(read_table(args.inp, what="text file").items())
    phonemize = Phonemizer(stress=args.stress, word_boundary=args.word_boundary)
    lines, empty = [], []
    for utt, text in tqdm(rows, total=len(rows), desc="phonemize", unit="utt",
                          disable=args.quiet or None, file=sys.stderr):
        phones = phonemize(text)
        if not phones:
            empty.append(utt)
        lines.append(f"{utt} {' '.join(phones)}".rstrip())
    write_atomic(args.out, "\n".join(lines) + "\n")
    if args.oov_lexicon:
        oov = phonemize.oov_cache
        write_atomic(args.oov_lexicon, "".join(f"{w} {' '.join(ph)}\n" for w, ph in sorted(oov.items())))
    tokens = phonemize.word_tokens
    rate = 100 * phonemize.oov_tokens / max(tokens, 1)
    print(f"{args.out}: {len(lines)} utterances, {tokens} words; {phonemize.oov_tokens} OOV ({rate:.2f}%, "
          f"{phonemize.oov_words} distinct) predicted by the neural G2P")
    if empty:
        print(f"warning: {len(empty)} utterance(s) have no phonemes (e.g. '{empty[0]}'); written with an empty value",
              file=sys.stderr)
    return 0
