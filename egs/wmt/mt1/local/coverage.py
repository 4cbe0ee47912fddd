#!/usr/bin/env python3
"""How well a BPE trained in another recipe covers this recipe's text (word OOV, <unk> rate).

The ASR-transfer De-En models write egs/europarl/asr1's English BPE; the paper reports the
word OOV rate of the WMT De-En English against the Europarl training text (0.096%). A much
higher rate here means the two recipes normalise English differently.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from legonn.data.vocab import Vocabulary, coverage, read_texts
from legonn.errors import LegonnError
from legonn.fileio import write_atomic


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="the sentencepiece model")
    p.add_argument("--report", required=True, help="its legonn vocab report.json (lists the training texts)")
    p.add_argument("--recipe", required=True, help="the directory the report's paths are relative to")
    p.add_argument("--eval", required=True, help="Kaldi text file to measure")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    try:
        report = json.loads(Path(args.report).read_text(encoding="utf-8"))
        train = [os.path.normpath(os.path.join(args.recipe, f)) for f in report["train_texts"]]
        result = coverage(Vocabulary.load(args.model), read_texts(train), read_texts([args.eval]))
    except (OSError, KeyError, ValueError, LegonnError) as exc:
        print(f"local/coverage.py: {args.report}: cannot measure coverage ({exc})", file=sys.stderr)
        return 1
    result.update(model=args.model, train_texts=train, eval_text=args.eval)
    write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"{args.eval}: word OOV {100 * result['word_oov_rate']:.3f}% against {', '.join(train)}; "
          f"<unk> {100 * result['unk_token_rate']:.3f}% of {args.model}'s tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
