#!/usr/bin/env python3
"""Choose the De-En pairs the mini speech-translation sets speak (stage 1 of local/data.sh).

From the MT recipe's data dirs (MT_DATA/deen_{train,valid,test}/text.{de,en}): train from
deen_train, valid from deen_valid, test from deen_test, each shuffled with --seed and cut to the
pairs whose German a TTS voice reads as written, of --min_words..--max_words words. Writes
OUT_DIR/sents.<set> ("sent_id German") and OUT_DIR/en.<set> ("sent_id English"); the sentence
ids are the MT recipe's, so the ST test set is a subset of the MT test set, scored alike.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import sys
from pathlib import Path

PROG = "local/select_pairs.py"
# What a German TTS voice reads as written: letters (umlauts and ß included) and light
# punctuation; no digits, symbols or URLs, whose spoken form could differ from the transcript.
SPEAKABLE = re.compile(r"^[A-Za-zÄÖÜäöüß][A-Za-zÄÖÜäöüß ,.;:!?'\"()\-‘’‚“”„–—…]*$")
SETS = {"train": "deen_train", "valid": "deen_valid", "test": "deen_test"}


def read_text(path: Path) -> dict[str, str]:
    if not path.is_file():
        sys.exit(f"{PROG}: {path} is missing: run the MT recipe's data stage first "
                 "(cd ../mt1 && ./run.sh --stop_stage 3)")
    rows = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            sid, _, text = line.rstrip("\n").partition(" ")
            if not sid:
                sys.exit(f"{PROG}: {path}:{n}: expected 'utt_id text'")
            rows[sid] = text.strip()
    return rows


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{k} {v}\n" for k, v in rows), encoding="utf-8")
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--mt_data", type=Path, required=True, help="the MT recipe's data/ (../mt1/data)")
    p.add_argument("--counts", required=True, help="pairs per set, e.g. train:6000,valid:300,test:300")
    p.add_argument("--min_words", type=int, default=4)
    p.add_argument("--max_words", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out_dir", type=Path, default=Path("data/local"))
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for spec in args.counts.split(","):
        name, _, count = spec.partition(":")
        if name not in SETS or not count.isdigit():
            sys.exit(f"{PROG}: --counts: '{spec}' is not <{'|'.join(SETS)}>:<number>")
        src = args.mt_data / SETS[name]
        de, en = read_text(src / "text.de"), read_text(src / "text.en")
        if de.keys() != en.keys():
            sys.exit(f"{PROG}: {src}: text.de and text.en have different utterance ids")
        seen, usable = set(), []
        for sid in sorted(de):
            words = de[sid].split()
            if args.min_words <= len(words) <= args.max_words and SPEAKABLE.match(de[sid]) and de[sid] not in seen:
                seen.add(de[sid])
                usable.append(sid)
        random.Random(f"{args.seed}/{name}").shuffle(usable)
        chosen = sorted(usable[:int(count)])
        if len(chosen) < int(count):
            print(f"{PROG}: WARNING: {src}: only {len(chosen)} usable pairs for {name} (asked for {count})",
                  file=sys.stderr)
        write(args.out_dir / f"sents.{name}", [(sid, de[sid]) for sid in chosen])
        write(args.out_dir / f"en.{name}", [(sid, en[sid]) for sid in chosen])
        print(f"{name}: {len(chosen)} pairs of {src} ({len(usable)} usable: German of "
              f"{args.min_words}-{args.max_words} words a voice reads as written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
