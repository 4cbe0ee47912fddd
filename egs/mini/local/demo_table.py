#!/usr/bin/env python3
"""The demo's paper-style table (Tables III-IV in miniature) from the mt1 and asr1 score files.

Run from egs/mini after ./demo.sh has scored both recipes; prints the table and writes it,
with links to each recipe's own results and plots, to --out (atomically).
"""
import argparse
import json
import sys
from pathlib import Path

from legonn.fileio import write_atomic

# (task, recipe, experiment, test set, output, description); tiny mode's experiments are
# the demo's with a "tiny_" prefix.
DEMO = [
    ("De-En MT", "mt1", "deen_lego_demo", "deen_test", "text", "LegoNN De-En (WEmb decoder)"),
    ("De-En MT", "mt1", "deen_lego_demo", "deen_test", "ctc_encoder", "its encoder's CTC output alone"),
    ("Ro-En MT", "mt1", "roen_enconly_demo", "roen_test", "text", "Ro-En encoder-only (CTC)"),
    ("Ro-En MT", "mt1", "roen_plug_demo", "roen_test", "text", "Ro-En encoder + De-En decoder, no fine-tuning"),
    ("English ASR", "asr1", "asr_enconly_demo", "test", "ctc_encoder",
     "its phoneme module's CTC output alone (phoneme error rate)"),
    ("English ASR", "asr1", "asr_enconly_demo", "test", "text", "ASR encoder-only (phonemes -> BPE CTC)"),
    ("English ASR", "asr1", "asr_plug_demo", "test", "text", "ASR encoder + De-En decoder, no fine-tuning"),
]
ROWS = {
    "demo": DEMO,
    "full": [
        ("De-En MT", "mt1", "deen_baseline", "deen_test", "text", "baseline encoder-decoder (BPE 1000)"),
        ("De-En MT", "mt1", "deen_lego_wemb", "deen_test", "text", "LegoNN, WEmb decoder (BPE 1000)"),
        ("De-En MT", "mt1", "deen_lego_beamconv", "deen_test", "text", "LegoNN, BeamConv decoder (BPE 1000)"),
        ("Ro-En MT", "mt1", "roen_baseline", "roen_test", "text", "baseline encoder-decoder (BPE 1000)"),
        ("Ro-En MT", "mt1", "roen_enconly", "roen_test", "text", "Ro-En encoder-only (CTC, BPE 1000)"),
        ("Ro-En MT", "mt1", "roen_plug", "roen_test", "text", "Ro-En encoder + De-En decoder, no fine-tuning"),
        ("Ro-En MT", "mt1", "roen_plug_ft", "roen_test", "text", "the same, fine-tuned"),
        *DEMO,
        ("De-En MT", "mt1", "deen_lego_wemb_bpe256", "deen_test", "text", "LegoNN, WEmb decoder (BPE 256)"),
        ("Ro-En MT", "mt1", "roen_plug_bpe256", "roen_test", "text", "Ro-En encoder + that decoder (BPE 256)"),
        ("English ASR", "asr1", "asr_baseline", "test", "text", "baseline encoder-decoder (BPE 256)"),
        ("English ASR", "asr1", "asr_lego_wemb", "test", "text", "LegoNN, WEmb decoder (BPE 256)"),
        ("English ASR", "asr1", "asr_enconly", "test", "text", "ASR encoder-only (CTC, BPE 256)"),
        ("English ASR", "asr1", "asr_plug", "test", "text", "ASR encoder + De-En decoder (BPE 256)"),
        ("English ASR", "asr1", "asr_plug_ft", "test", "text", "the same, fine-tuned"),
    ],
}
ROWS["tiny"] = ROWS["demo"]


def score_file(recipe: str, exp: str, test_set: str, output: str) -> Path:
    d = Path(recipe) / "exp" / exp / f"decode_{test_set}"
    return d / "score.json" if output == "text" else d / output / "score.json"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mode", choices=sorted(ROWS), required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    prefix = "tiny_" if args.mode == "tiny" else ""
    lines = [
        f"# LegoNN on the mini corpus ({args.mode} mode)",
        "",
        "Written by `local/demo_table.py` from the score files of `mt1` and `asr1`. MT: sacreBLEU",
        "(detokenised) and chrF; ASR: WER % on lowercased text without punctuation (phoneme outputs:",
        "phoneme error rate). \"no fine-tuning\":",
        "the modules were trained separately and only chained at test time.",
        "",
        "| task | test set | model | BLEU | chrF | WER % |",
        "|---|---|---|---|---|---|",
    ]
    missing = 0
    for task, recipe, exp, test_set, output, description in ROWS[args.mode]:
        path = score_file(recipe, prefix + exp, test_set, output)
        if not path.is_file():
            if args.mode != "full":
                print(f"demo_table: {path} is missing (did the demo's score stage run?)", file=sys.stderr)
                return 1
            missing += 1
            lines.append(f"| {task} | {test_set} | {description} | not run | | |")
            continue
        score = json.loads(path.read_text())
        bleu = f"{score['bleu']['score']:.1f}" if "bleu" in score and task != "English ASR" else ""
        chrf = f"{score['chrf']['score']:.1f}" if "chrf" in score and task != "English ASR" else ""
        wer = f"{score['wer']['score']:.1f}" if task == "English ASR" else ""
        lines.append(f"| {task} | {test_set} | {description} | {bleu} | {chrf} | {wer} |")
    table_end = len(lines)
    lines += ["", "Per-recipe tables, notes and validation curves:"]
    for recipe in ("mt1", "asr1"):
        name = f"RESULTS.{args.mode}.md" if args.mode != "full" else "RESULTS.md"
        lines.append(f"- [`{recipe}/{name}`]({recipe}/{name})")
    notes = Path(f"RESULTS.{args.mode}.notes.md")
    if notes.is_file():
        lines += ["", notes.read_text(encoding="utf-8").rstrip()]
    print("\n".join(lines[:table_end]))
    write_atomic(args.out, "\n".join(lines) + "\n")
    print(f"\nwritten: {args.out}" + (f" ({missing} rows not run yet)" if missing else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
