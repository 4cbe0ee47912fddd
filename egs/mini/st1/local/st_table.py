#!/usr/bin/env python3
"""The side-by-side table of RESULTS.md: zero-shot composition, cascade, end-to-end ST.

Run from egs/mini/st1 after stage 8 has scored the decodes of run.sh. Writes the table between
the st-table markers of RESULTS.notes.md (stage 8 copies the notes into RESULTS.md: rerun stage
8 afterwards). Each row: BLEU and chrF of the English output on data/test, the number of (German
speech, English text) pairs the system saw in training, and where its errors come from: the
German recogniser's word error rate (its BPE CTC best path against the German transcript,
lowercased, punctuation removed) and BLEU of the MT encoder's English CTC best path. The first
rows bound the task: the German source copied as the "translation", the text MT model reading the
gold German transcript, and each zero-shot MT encoder reading it (behind its text_marginals).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from legonn.engine import score as S
from legonn.errors import LegonnError
from legonn.fileio import write_atomic

NOTES = Path("RESULTS.notes.md")
BEGIN, END = "<!-- st-table:begin -->", "<!-- st-table:end -->"
# (row label, experiment, test set, pairs set or "" (none), recogniser CTC output, MT encoder CTC output)
ROWS = [
    ("copy the German source", None, "test", "", None, None),
    ("text MT on the gold German transcript", "st_text_mt", "test", "", None, "ctc_encoder"),
    ("zero-shot MT encoder (CTC-shaped text, WEmb) on the gold German", "st_text_mt_ctc", "test", "", None,
     "ctc_encoder"),
    ("zero-shot MT encoder (one position per token, WEmb) on the gold German", "st_text_mt_onehot", "test", "", None,
     "ctc_encoder"),
    ("zero-shot MT encoder (one position per token, BeamConv) on the gold German", "st_text_mt_beamconv", "test", "",
     None, "ctc_encoder"),
    ("(a) cascade: recogniser 1-best -> text MT", "st_text_mt", "test_cascade", "", "st_asr:ctc_pron", "ctc_encoder"),
    ("(b) zero-shot: MT encoder trained on CTC-shaped text, reading the recogniser's frames", "st_zeroshot", "test",
     "", "ctc_pron", "ctc_encoder_2"),
    ("(b') zero-shot: MT encoder trained on one position per token, reading the recogniser's frames",
     "st_zeroshot_onehot", "test", "", "ctc_pron", "ctc_encoder_2"),
    ("(b'') zero-shot: that MT encoder behind ctc_compress (one position per recognised token)",
     "st_zeroshot_compress", "test", "", "ctc_pron", "ctc_encoder_3"),
    ("(b) behind ctc_compress too (the MT encoder trained on CTC-shaped text)", "st_zeroshot_ctc_compress", "test",
     "", "ctc_pron", "ctc_encoder_3"),
    ("(b''') as (b''), the MT encoder reading the marginals through BeamConv (trained with distractors)",
     "st_zeroshot_beamconv", "test", "", "ctc_pron", "ctc_encoder_3"),
    ("(c) (b'') fine-tuned end to end on 10 % of the pairs", "st_zeroshot_ft", "test", "train_10pct", "ctc_pron",
     "ctc_encoder_3"),
    ("(c') (b'') fine-tuned on the same 10 %, recogniser acoustics and decoder frozen, LR / 3",
     "st_zeroshot_ft_frozen", "test", "train_10pct", "ctc_pron", "ctc_encoder_3"),
    ("(d) end-to-end ST from scratch, 10 % of the pairs", "st_e2e_10pct", "test", "train_10pct", "ctc_pron",
     "ctc_mt_encoder"),
    ("(e) end-to-end ST from scratch, all pairs", "st_e2e", "test", "train", "ctc_pron", "ctc_mt_encoder"),
]


def german_wer(path: Path, test: str = "test") -> str:
    if not path.is_file():
        return "-"
    result = S.score_files(f"data/{test}/text.de", path, ["wer"], lowercase=True, remove_punct=True)
    return f"{result['wer']['score']:.1f}"


def english_bleu(path: Path) -> str:
    if not path.is_file():
        return "-"
    return f"{S.score_files('data/test/text.en', path, ['bleu'])['bleu']['score']:.1f}"


def table() -> tuple[list[str], list[str]]:
    lines = ["| system | ST pairs in training | BLEU | chrF | German recogniser WER % | MT encoder's English CTC BLEU |",
             "|---|---|---|---|---|---|"]
    signatures: set[str] = set()
    for label, exp, test, pairs, asr_ctc, mt_ctc in ROWS:
        if exp is None:
            result = S.score_files("data/test/text.en", "data/test/text.de", ["bleu", "chrf"])
        else:
            path = Path("exp") / exp / f"decode_{test}" / "score.json"
            if not path.is_file():
                continue
            result = json.loads(path.read_text())
        signatures.update(result[m]["signature"] for m in ("bleu", "chrf"))
        n_pairs = len(Path(f"data/{pairs}/text").read_text().splitlines()) if pairs else 0
        asr = "-"
        if asr_ctc:
            who, _, output = asr_ctc.rpartition(":")
            asr = german_wer(Path("exp") / (who or exp) / f"decode_{'test' if who else test}" / f"{output}.text")
        mt = english_bleu(Path("exp") / exp / f"decode_{test}" / f"{mt_ctc}.text") if exp and mt_ctc else "-"
        lines.append(f"| {label} | {n_pairs} | {result['bleu']['score']:.1f} | {result['chrf']['score']:.1f} | {asr} | {mt} |")
    return lines, sorted(signatures)


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="local/st_table.py", description=__doc__.split("\n\n")[0]).parse_args(argv)
    try:
        lines, signatures = table()
    except (LegonnError, OSError) as exc:
        print(f"local/st_table.py: {exc}", file=sys.stderr)
        return 1
    block = "\n".join([BEGIN, *lines, "", "sacreBLEU signatures: " + "; ".join(f"`{s}`" for s in signatures), END])
    notes = NOTES.read_text(encoding="utf-8") if NOTES.is_file() else ""
    if BEGIN in notes and END in notes:
        notes = notes[:notes.index(BEGIN)] + block + notes[notes.index(END) + len(END):]
    else:
        notes = f"{notes.rstrip()}\n\n{block}\n" if notes else f"{block}\n"
    write_atomic(NOTES, notes)
    print("\n".join(lines))
    print(f"local/st_table.py: the table is in {NOTES}; rerun stage 8 to copy it into RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
