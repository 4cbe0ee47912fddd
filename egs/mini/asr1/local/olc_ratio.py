#!/usr/bin/env python3
"""Measure the OLC factor an ASR encoder needs to emit MT-encoder-like output lengths.

The De-En LegoNN MT encoder (../mt1/conf/train_deen_lego_wemb.yaml) up-samples its German BPE
input x2 (OLC factor 2), so the MT decoder was trained on English-BPE marginals of length
2 x |German BPE|.  An ASR encoder whose marginals are to feed that decoder should produce about
the same length from speech: its conv2d front-end leaves T' = floor(floor(T/2)/2) positions for T
fbank frames (25 ms / 10 ms), and its OLC turns those into ceil(factor x T').  So

    factor = sum_utts 2 |German BPE| / sum_utts T'      (ratio of totals over the training set)

for the ASR training sentences, which are English sides of De-En training pairs (German known).
Without the German BPE model (mt1 not prepared) the MT interface length is estimated as
2 x |English BPE| x --de_en_ratio.

Also reported: the smallest ceil(factor T') / |English BPE| over the utterances (CTC needs >= 1,
and more for repeated tokens), and a simple fraction near the factor, for the config.
Frames come from utt2dur (no features needed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from fractions import Fraction
from pathlib import Path


def read_table(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return {k: v for k, _, v in (line.rstrip("\n").partition(" ") for line in f if line.strip())}


def fbank_frames(seconds: float, rate: int = 16000) -> int:
    samples = int(round(seconds * rate))
    return 0 if samples < 400 else 1 + (samples - 400) // 160


def simple_fraction(x: float, max_den: int = 8) -> str:
    """0.5637 -> '1/1.75' (= 4/7), 0.5 -> '1/2', 2.0 -> '2': the factor the way configs write it
    (down-sampling as 1/N, like the paper's 1/1.5)."""
    f = Fraction(x).limit_denominator(max_den)
    if f.denominator == 1:
        return str(f.numerator)
    if f < 1:
        inv = f"{float(1 / f):.4f}".rstrip("0").rstrip(".")
        if Fraction(inv) == 1 / f:  # exact decimal
            return f"1/{inv}"
    return f"{f.numerator}/{f.denominator}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="ASR data dir with utt2dur, text.en and (optionally) text.de")
    p.add_argument("--en_model", required=True, help="the shared English BPE (sentencepiece .model)")
    p.add_argument("--de_model", default=None, help="the MT recipe's German BPE (../mt1/data/lang/de.model)")
    p.add_argument("--mt_factor", type=float, default=2.0,
                   help="the MT LegoNN encoder's OLC factor (default 2; --mt_config reads it instead)")
    p.add_argument("--mt_config", default=None,
                   help="the MT LegoNN config (../mt1/conf/train_deen_lego_wemb.yaml): take its encoder's OLC factor")
    p.add_argument("--de_en_ratio", type=float, default=1.15,
                   help="German/English BPE length ratio used when --de_model is missing (default 1.15)")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)

    import sentencepiece as spm

    if args.mt_config and os.path.isfile(args.mt_config):
        import yaml

        model = yaml.safe_load(Path(args.mt_config).read_text(encoding="utf-8"))["model"]
        spec = str(model[0]["conf"]["olc"]["factor"])
        num, _, den = spec.partition("/")
        args.mt_factor = float(Fraction(num) / Fraction(den or "1"))
    d = Path(args.data_dir)
    dur = {k: float(v) for k, v in read_table(d / "utt2dur").items()}
    en = read_table(d / "text.en")
    sp_en = spm.SentencePieceProcessor(model_file=args.en_model)
    have_de = bool(args.de_model) and os.path.isfile(args.de_model) and (d / "text.de").is_file()
    de = read_table(d / "text.de") if have_de else {}
    sp_de = spm.SentencePieceProcessor(model_file=args.de_model) if have_de else None

    rows = []
    for utt, seconds in dur.items():
        if utt not in en or (have_de and utt not in de):
            continue
        frames = fbank_frames(seconds)
        sub = (frames // 2) // 2
        n_en = len(sp_en.encode(en[utt]))
        mt_len = args.mt_factor * (len(sp_de.encode(de[utt])) if have_de else n_en * args.de_en_ratio)
        rows.append((sub, n_en, mt_len))
    if not rows:
        print(f"olc_ratio.py: no utterances with utt2dur and text.en in {d}", file=sys.stderr)
        return 1
    factor = sum(r[2] for r in rows) / sum(r[0] for r in rows)
    chosen = simple_fraction(factor)
    num, _, den = chosen.partition("/")
    fc = Fraction(num) / Fraction(den or "1")
    out_len = [math.ceil(r[0] * fc) for r in rows]
    result = {
        "data_dir": str(d),
        "utterances": len(rows),
        "mt_interface": (f"{args.mt_factor:g} x German BPE ({args.de_model})" if have_de
                         else f"{args.mt_factor:g} x {args.de_en_ratio:g} x English BPE (no German BPE model)"),
        "mean_fbank_frames": statistics.fmean(r[0] * 4 for r in rows),
        "mean_subsampled_frames": statistics.fmean(r[0] for r in rows),
        "mean_en_bpe": statistics.fmean(r[1] for r in rows),
        "mean_mt_interface_length": statistics.fmean(r[2] for r in rows),
        "factor": factor,
        "median_utt_factor": statistics.median(r[2] / max(r[0], 1) for r in rows),
        "suggested_factor": chosen,
        "min_output_over_en_bpe": min(o / max(r[1], 1) for o, r in zip(out_len, rows)),
        "mean_output_over_en_bpe": statistics.fmean(o / max(r[1], 1) for o, r in zip(out_len, rows)),
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"OLC: {len(rows)} utts, mean {result['mean_subsampled_frames']:.1f} frames after /4 subsampling, "
          f"mean MT interface length {result['mean_mt_interface_length']:.1f} ({result['mt_interface']}): "
          f"factor {factor:.4f} (median per utt {result['median_utt_factor']:.4f}) ~ {chosen}; "
          f"output/English-BPE length min {result['min_output_over_en_bpe']:.2f} mean {result['mean_output_over_en_bpe']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
