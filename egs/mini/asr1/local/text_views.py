#!/usr/bin/env python3
"""Other views of a data dir's transcripts (stage 4 of local/data.sh): DIR/text.lc (lowercase,
no punctuation) and, when LOCAL_DIR/de.<name of DIR> exists, DIR/text.de (the German side of
each utterance's De-En pair; utterance ids are "<speaker>-<sentence id>")."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PUNCT = re.compile(r"[^\w\s']|_", re.UNICODE)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="local/text_views.py", description=__doc__.split("\n\n")[0])
    p.add_argument("data_dir", type=Path, help="a data dir with a 'text' file")
    p.add_argument("--local_dir", type=Path, default=Path("data/local"),
                   help="where local/select_sentences.py wrote de.<set>")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    d = args.data_dir
    utt2sid = {}
    with open(d / "text", encoding="utf-8") as f, open(d / "text.lc", "w", encoding="utf-8") as lc:
        for line in f:
            utt, _, text = line.rstrip("\n").partition(" ")
            utt2sid[utt] = utt.split("-", 1)[1]  # "<spk>-<sent_id>"; speaker ids have no '-'
            lc.write(f"{utt} {' '.join(PUNCT.sub(' ', text.lower()).split())}\n")
    de_file = args.local_dir / f"de.{d.name}"
    if de_file.is_file():
        de = dict(line.rstrip("\n").split(" ", 1) for line in open(de_file, encoding="utf-8") if line.strip())
        with open(d / "text.de", "w", encoding="utf-8") as f:
            f.writelines(f"{utt} {de[sid]}\n" for utt, sid in utt2sid.items())
    return 0


if __name__ == "__main__":
    sys.exit(main())
