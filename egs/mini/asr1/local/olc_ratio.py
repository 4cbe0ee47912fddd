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

With --pron_data_dir (the second domain, data/pron_train) and --pron_config, the same for the
pronunciation model of the three-module chain: it reads the phoneme recogniser's marginals (T'
positions, times that module's OLC factor if it has one) and should hand the MT decoder what it
was trained on. The second domain has no German side, so the MT interface length is estimated as
2 x (German/English BPE tokens of the De-En pairs in --data_dir) x |English BPE|. Logged: the
measured factor, the OLC factor the config's pron module uses, and how far its output lengths
then are from the MT decoder's (a WARNING line when more than 15 % off, or when an output is
shorter than its English BPE).
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
from typing import Optional

from legonn.config import resolve
from legonn.errors import LegonnError
from legonn.fileio import read_table, write_atomic


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


def factor_value(spec) -> Fraction:
    num, _, den = str(spec).partition("/")
    return Fraction(num) / Fraction(den or "1")


def module_olc(model: list, name: str, config: str) -> tuple[Optional[str], Optional[str]]:
    """(OLC factor of module ``name``, OLC factor of the module before it) of a config's model list."""
    names = [m.get("name") for m in model]
    if name not in names or names.index(name) == 0:
        raise SystemExit(f"olc_ratio.py: {config}: no module '{name}' reading another module's output")
    i = names.index(name)
    return tuple((model[j].get("conf", {}).get("olc") or {}).get("factor") for j in (i, i - 1))


def pron_model(args, sp_en, de_per_en: float) -> dict:
    """The pronunciation model's OLC: phoneme-marginal positions -> what the MT decoder reads."""
    if not os.path.isfile(args.pron_config):
        raise SystemExit(f"olc_ratio.py: {args.pron_config}: config not found")
    model = resolve(args.pron_config)["model"]
    pron_olc, phn_olc = module_olc(model, args.pron_module, args.pron_config)
    d = Path(args.pron_data_dir)
    dur = {k: float(v) for k, v in read_table(d / "utt2dur").items()}
    en = read_table(d / "text.en")
    phn_factor = factor_value(phn_olc) if phn_olc else Fraction(1)
    rows = []  # (phoneme-marginal positions, English BPE tokens, estimated MT interface length)
    for utt, seconds in dur.items():
        if utt in en:
            positions = math.ceil((fbank_frames(seconds) // 2) // 2 * phn_factor)
            n_en = len(sp_en.encode(en[utt]))
            rows.append((positions, n_en, args.mt_factor * de_per_en * n_en))
    if not rows:
        raise SystemExit(f"olc_ratio.py: no utterances with utt2dur and text.en in {d}")
    factor = sum(r[2] for r in rows) / sum(r[0] for r in rows)
    used = factor_value(pron_olc) if pron_olc else Fraction(1)
    out_len = [math.ceil(r[0] * used) for r in rows]
    gap = sum(out_len) / sum(r[2] for r in rows) - 1
    return {
        "data_dir": str(d),
        "config": args.pron_config,
        "utterances": len(rows),
        "phoneme_module_olc": phn_olc,
        "mean_phoneme_positions": statistics.fmean(r[0] for r in rows),
        "mean_en_bpe": statistics.fmean(r[1] for r in rows),
        "en_bpe_per_position": sum(r[1] for r in rows) / sum(r[0] for r in rows),
        "de_per_en_bpe": de_per_en,
        "mean_mt_interface_length": statistics.fmean(r[2] for r in rows),
        "factor": factor,
        "suggested_factor": simple_fraction(factor),
        "config_factor": str(pron_olc) if pron_olc else None,
        "config_output_gap": gap,
        "min_output_over_en_bpe": min(o / max(r[1], 1) for o, r in zip(out_len, rows)),
    }


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
    p.add_argument("--pron_data_dir", default=None, help="second-domain data dir (utt2dur, text.en): the pronunciation model's")
    p.add_argument("--pron_config", default=None, help="the pronunciation model's config (conf/train_asr_pron.yaml)")
    p.add_argument("--pron_module", default="pron", help="its module that reads the phoneme marginals (default: pron)")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    if bool(args.pron_data_dir) != bool(args.pron_config):
        p.error("--pron_data_dir and --pron_config go together")

    import sentencepiece as spm

    if args.mt_config and os.path.isfile(args.mt_config):
        model = resolve(args.mt_config)["model"]  # with its base configs
        args.mt_factor = float(factor_value(model[0]["conf"]["olc"]["factor"]))
    d = Path(args.data_dir)
    dur = {k: float(v) for k, v in read_table(d / "utt2dur").items()}
    en = read_table(d / "text.en")
    sp_en = spm.SentencePieceProcessor(model_file=args.en_model)
    have_de = bool(args.de_model) and os.path.isfile(args.de_model) and (d / "text.de").is_file()
    de = read_table(d / "text.de") if have_de else {}
    sp_de = spm.SentencePieceProcessor(model_file=args.de_model) if have_de else None

    rows = []
    n_de = n_en_de = 0  # German and English BPE tokens of the De-En pairs
    for utt, seconds in dur.items():
        if utt not in en or (have_de and utt not in de):
            continue
        frames = fbank_frames(seconds)
        sub = (frames // 2) // 2
        n_en = len(sp_en.encode(en[utt]))
        if have_de:
            n_de_utt = len(sp_de.encode(de[utt]))
            n_de += n_de_utt
            n_en_de += n_en
        mt_len = args.mt_factor * (n_de_utt if have_de else n_en * args.de_en_ratio)
        rows.append((sub, n_en, mt_len))
    if not rows:
        print(f"olc_ratio.py: no utterances with utt2dur and text.en in {d}", file=sys.stderr)
        return 1
    factor = sum(r[2] for r in rows) / sum(r[0] for r in rows)
    chosen = simple_fraction(factor)
    chosen_value = factor_value(chosen)
    out_len = [math.ceil(r[0] * chosen_value) for r in rows]
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
    if args.pron_data_dir:
        result["pron_model"] = pron_model(args, sp_en, n_de / n_en_de if n_de else args.de_en_ratio)
    if args.out:
        write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"OLC: {len(rows)} utts, mean {result['mean_subsampled_frames']:.1f} frames after /4 subsampling, "
          f"mean MT interface length {result['mean_mt_interface_length']:.1f} ({result['mt_interface']}): "
          f"factor {factor:.4f} (median per utt {result['median_utt_factor']:.4f}) ~ {chosen}; "
          f"output/English-BPE length min {result['min_output_over_en_bpe']:.2f} mean {result['mean_output_over_en_bpe']:.2f}")
    if args.pron_data_dir:
        pm = result["pron_model"]
        used = f"OLC factor {pm['config_factor']}" if pm["config_factor"] else "no OLC (factor 1)"
        print(f"OLC of the pronunciation model ({pm['utterances']} utts of {pm['data_dir']}): it reads "
              f"{pm['mean_phoneme_positions']:.1f} phoneme-marginal positions on average and should hand the MT decoder "
              f"{pm['mean_mt_interface_length']:.1f} ({args.mt_factor:g} x {pm['de_per_en_bpe']:.3f} German per English "
              f"BPE token x {pm['mean_en_bpe']:.1f} English BPE tokens): factor {pm['factor']:.4f} ~ {pm['suggested_factor']}; "
              f"{pm['config']} ({args.pron_module}) uses {used}: output {pm['config_output_gap']:+.1%} vs the MT decoder's "
              f"lengths, output/English-BPE length min {pm['min_output_over_en_bpe']:.2f}")
        if abs(pm["config_output_gap"]) > 0.15 or pm["min_output_over_en_bpe"] < 1:
            print(f"WARNING: {pm['config']}: the '{args.pron_module}' module's {used} gives outputs "
                  f"{pm['config_output_gap']:+.1%} off the MT decoder's lengths (min output/English BPE "
                  f"{pm['min_output_over_en_bpe']:.2f}); the measured factor is {pm['suggested_factor']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LegonnError as exc:  # a missing or malformed table: one line naming the file
        sys.exit(f"olc_ratio.py: {exc}")
