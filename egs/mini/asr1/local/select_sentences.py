#!/usr/bin/env python3
"""Choose the sentences of the mini ASR sets from the offline corpus (stage 1 of local/data.sh).

Writes OUT_DIR/sents.{train,valid,test} ("sent_id sentence"), OUT_DIR/de.{train,valid} (the
German side of each De-En pair) and, with --with_pron, OUT_DIR/pron_candidates (second-domain
sentences from CORPUS/en_domain2.txt in a seeded order):

* test: sentences of CORPUS/en_heldout.txt that occur in no MT training/valid English (any that
  do are dropped, with a warning), shuffled, the first --eval_utts;
* valid, train: English sides of De-En training pairs, deduplicated and not in en_heldout.txt,
  shuffled: the first --eval_utts are valid, the next --train_utts train;
* pron candidates: en_domain2.txt sentences in no MT training/valid English nor en_heldout.txt.

Every set keeps only sentences a TTS voice reads as written, of --min_words..--max_words words.
"""
from __future__ import annotations

import argparse
import lzma
import random
import re
import sys
from pathlib import Path

PROG = "local/select_sentences.py"
PUNCT = re.compile(r"[^\w\s']|_", re.UNICODE)
# What a TTS voice reads exactly as written: ASCII letters and light punctuation (typographic
# quotes, dashes and ellipses too: the MT side keeps them, so the transcripts do). No digits,
# symbols, URLs or accented words whose spoken form could differ from the transcript.
SPEAKABLE = re.compile(r"^[A-Za-z][A-Za-z ,.;:!?'\"()\-‘’“”–—…]*$")


def norm(text: str) -> str:
    """Comparison key: lowercase words, punctuation ignored."""
    return " ".join(PUNCT.sub(" ", text.lower()).split())


def read_tsv(path: Path):
    with lzma.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3:
                sys.exit(f"{PROG}: {path}:{n}: expected id<TAB>source<TAB>english[<TAB>origin]")
            yield fields


def warn(msg: str) -> None:
    print(f"{PROG}: WARNING: {msg}", file=sys.stderr)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, required=True, help="the mini corpus (../corpus)")
    p.add_argument("--train_utts", type=int, required=True)
    p.add_argument("--eval_utts", type=int, required=True, help="valid and test sentences each")
    p.add_argument("--min_words", type=int, required=True)
    p.add_argument("--max_words", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--with_pron", action="store_true", help="also write the second-domain candidates")
    p.add_argument("--out_dir", type=Path, default=Path("data/local"))
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    corpus, out = args.corpus, args.out_dir
    train_utts, eval_utts, min_words, max_words = args.train_utts, args.eval_utts, args.min_words, args.max_words

    def usable(text):
        return SPEAKABLE.match(text) is not None and min_words <= len(text.split()) <= max_words

    # Every English text the MT or ASR models could train on (both pairs, train and valid).
    seen_en = set()
    for pair in ("deen", "roen"):
        for split in ("train", "valid"):
            path = corpus / pair / f"{split}.tsv.xz"
            if path.is_file():
                seen_en.update(norm(f[2]) for f in read_tsv(path))

    heldout = [" ".join(line.split()) for line in open(corpus / "en_heldout.txt", encoding="utf-8") if line.strip()]
    leaked = [s for s in heldout if norm(s) in seen_en]
    if leaked:
        warn(f"{len(leaked)} en_heldout.txt sentence(s) occur in MT training text (e.g. {leaked[0]!r}); dropped")
    held_norm = {norm(s) for s in heldout}
    test, test_seen = [], set()
    for s in heldout:
        if norm(s) in seen_en or norm(s) in test_seen or not usable(s):
            continue
        test_seen.add(norm(s))
        test.append(s)
    rng = random.Random(args.seed)
    rng.shuffle(test)
    if len(test) < eval_utts:
        warn(f"only {len(test)} usable held-out sentences (wanted {eval_utts})")
    test = test[:eval_utts]

    # ASR train/valid: English sides of De-En training pairs, deduplicated.
    candidates, taken = [], set()
    for fields in read_tsv(corpus / "deen" / "train.tsv.xz"):
        sid, de, en = fields[0], " ".join(fields[1].split()), " ".join(fields[2].split())
        key = norm(en)
        if not usable(en) or key in taken or key in held_norm:
            continue
        taken.add(key)
        sid = re.sub(r"[^A-Za-z0-9_.-]", "_", sid)
        candidates.append((sid if sid.startswith("deen") else f"deen-{sid}", de, en))
    candidates.sort()
    rng.shuffle(candidates)
    need = train_utts + eval_utts
    if len(candidates) < need:
        warn(f"{len(candidates)} usable De-En training sentences; wanted {need} "
             f"(train {train_utts} + valid {eval_utts}); valid keeps {eval_utts}, train the rest")
    valid = candidates[:eval_utts]
    train = candidates[eval_utts:need]
    if not train or not valid or not test:
        sys.exit(f"{PROG}: no sentences for one of the sets (see the warnings above)")

    for name, rows in (("train", train), ("valid", valid)):
        with open(out / f"sents.{name}", "w", encoding="utf-8") as f:
            f.writelines(f"{sid} {en}\n" for sid, _, en in rows)
        with open(out / f"de.{name}", "w", encoding="utf-8") as f:
            f.writelines(f"{sid} {de}\n" for sid, de, _ in rows)
    with open(out / "sents.test", "w", encoding="utf-8") as f:
        f.writelines(f"heldout{i:05d} {s}\n" for i, s in enumerate(test))
    print(f"sentences: train {len(train)}, valid {len(valid)} (De-En train English, {min_words}-{max_words} words, "
          f"{len(candidates)} usable), test {len(test)} (en_heldout.txt; {len(leaked)} leaked and dropped)")

    if args.with_pron:
        # The second domain shares no sentence with the English the MT/ASR models train on or the ASR test.
        path = corpus / "en_domain2.txt"
        pron, pron_seen, pron_leaked = [], set(), 0
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            s = " ".join(line.split())
            key = norm(s)
            if key in seen_en or key in held_norm:
                pron_leaked += 1
            elif usable(s) and key not in pron_seen:
                pron_seen.add(key)
                pron.append((f"d2_{n:05d}", s))
        if pron_leaked:
            warn(f"{pron_leaked} {path} sentence(s) occur in MT training or ASR test text; dropped")
        random.Random(f"{args.seed}/pron").shuffle(pron)
        with open(out / "pron_candidates", "w", encoding="utf-8") as f:
            f.writelines(f"{sid} {s}\n" for sid, s in pron)
        print(f"second-domain candidates: {len(pron)} ({path}, {min_words}-{max_words} words; "
              f"{pron_leaked} leaked and dropped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
