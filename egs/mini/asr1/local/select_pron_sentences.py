#!/usr/bin/env python3
"""Choose the second-domain sentences of the pronunciation model (stage 4b of local/data.sh).

A candidate (LOCAL_DIR/pron_candidates, phonemes in LOCAL_DIR/pron_candidates.phn) is usable when
all its phonemes are in the inventory of --inventory (data/train/text.phn: what the phoneme
recogniser can emit).  Usable candidates, in their order, go to LOCAL_DIR/sents.pron_valid (the
first --pron_eval_utts) and LOCAL_DIR/sents.pron_train (the next --pron_utts); the phonemes that
made others unusable are counted in the summary line.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

PROG = "local/select_pron_sentences.py"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--pron_utts", type=int, required=True, help="training sentences")
    p.add_argument("--pron_eval_utts", type=int, required=True, help="valid sentences")
    p.add_argument("--local_dir", type=Path, default=Path("data/local"))
    p.add_argument("--inventory", type=Path, default=Path("data/train/text.phn"),
                   help="phoneme transcripts whose symbols are the inventory")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    pron_utts, pron_eval_utts, local = args.pron_utts, args.pron_eval_utts, args.local_dir
    inventory = {p for line in open(args.inventory, encoding="utf-8") for p in line.split()[1:]}
    sents = dict(line.rstrip("\n").split(" ", 1) for line in open(local / "pron_candidates", encoding="utf-8"))
    kept, unseen = [], collections.Counter()
    for line in open(local / "pron_candidates.phn", encoding="utf-8"):
        sid, *phones = line.split()
        other = set(phones) - inventory
        unseen.update(other)
        if phones and not other:
            kept.append(sid)
    need = pron_utts + pron_eval_utts
    if len(kept) < need:
        print(f"{PROG}: WARNING: {len(kept)} usable second-domain sentences; wanted {need} (train {pron_utts} + "
              f"valid {pron_eval_utts}); valid keeps {min(pron_eval_utts, len(kept))}, train the rest", file=sys.stderr)
    for name, ids in (("pron_valid", kept[:pron_eval_utts]), ("pron_train", kept[pron_eval_utts:need])):
        if not ids:
            sys.exit(f"{PROG}: no second-domain sentences for data/{name} (see the warnings above)")
        with open(local / f"sents.{name}", "w", encoding="utf-8") as f:
            f.writelines(f"{sid} {sents[sid]}\n" for sid in ids)
    dropped = len(sents) - len(kept)
    detail = ", ".join(f"{p} in {n}" for p, n in unseen.most_common()) or "none"
    print(f"second-domain sentences: train {len(kept[pron_eval_utts:need])}, valid {len(kept[:pron_eval_utts])}; "
          f"{dropped} of {len(sents)} candidates unusable (phonemes outside data/train's {len(inventory)}: {detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
