"""Convert a Kaldi text file to ARPAbet phonemes offline (CMU dictionary + g2p_en's neural G2P).

Input lines are ``utt_id words...``; output lines ``utt_id AH0 B ...`` in the same order, ready
for ``legonn vocab --kind tokens``. Words missing from the CMU dictionary are predicted by the
neural model shipped in the g2p_en wheel; no NLTK data is used and nothing is downloaded.
Homographs take the dictionary's first pronunciation (there is no POS tagger).
"""
from __future__ import annotations

import argparse
import sys

from legonn.cli import HelpFormatter


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn phonemize", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--in", dest="inp", required=True, help="Kaldi text file (utt_id words...)")
    p.add_argument("--out", required=True, help="Kaldi phoneme text to write (utt_id phones...)")
    p.add_argument("--stress", action="store_true", help="keep the stress digits (AH0, OW1); default: strip them")
    p.add_argument("--word_boundary", default=None, help="symbol put between words, e.g. '|' (default: none)")
    p.add_argument("--oov_lexicon", default=None,
                   help="also write the words predicted by the neural model with their phones (word phones...)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    from legonn.speech.phonemes import phonemize_file

    done = phonemize_file(args.inp, args.out, args.stress, args.word_boundary, args.oov_lexicon, progress=not args.quiet)
    rate = 100 * done.oov_tokens / max(done.words, 1)
    print(f"{args.out}: {done.utterances} utterances, {done.words} words; {done.oov_tokens} OOV ({rate:.2f}%, "
          f"{done.oov_words} distinct) predicted by the neural G2P")
    if done.empty:
        print(f"warning: {len(done.empty)} utterance(s) have no phonemes (e.g. '{done.empty[0]}'); written with an empty value",
              file=sys.stderr)
    return 0
