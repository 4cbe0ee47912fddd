"""Compute 80-dim Kaldi-style log-mel fbank features (+ global CMVN stats) for a data dir.

Reads DIR/wav.scp (+ segments), resamples to 16 kHz, and writes DIR/data/feats.JOB.ark,
DIR/feats.scp, DIR/utt2num_frames, DIR/feat_dim and DIR/cmvn.ark (Kaldi global CMVN
stats, for the 'cmvn' key of a feature stream).  Speed-perturbed data dirs (legonn
datadir speed_perturb) need nothing special: their wav.scp entries carry the factor.
"""
from __future__ import annotations

import argparse
import logging
import sys

from legonn.cli import HelpFormatter
from legonn.errors import LegonnError
from legonn.speech.fbank import FbankConfig, compute_features


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="legonn features", description=(__doc__ or "").strip().splitlines()[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--data_dir", required=True, help="Kaldi data dir with wav.scp (and segments)")
    p.add_argument("--nj", type=int, default=1, help="parallel worker processes")
    p.add_argument("--out_dir", help="where the feats.JOB.ark files go (default: DATA_DIR/data)")
    p.add_argument("--num_mel_bins", type=int, default=80, help="feature dimension")
    p.add_argument("--sample_rate", type=int, default=16000, help="audio is resampled to this rate")
    p.add_argument("--frame_length", type=float, default=25.0, help="ms")
    p.add_argument("--frame_shift", type=float, default=10.0, help="ms")
    p.add_argument("--dither", type=float, default=0.0, help="Kaldi dither (0: reproducible features)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="speed factor applied to every utterance on top of wav.scp; "
                        "prefer 'legonn datadir speed_perturb', which gives the copies their own ids")
    p.add_argument("--cmvn", type=_bool, default=True, help="write DATA_DIR/cmvn.ark (true|false)")
    p.add_argument("--progress", type=_bool, default=None, help="tqdm bar (default: when stderr is a terminal)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.num_mel_bins < 1:
        raise LegonnError(f"--num_mel_bins must be positive, got {args.num_mel_bins}")
    cfg = FbankConfig(
        num_mel_bins=args.num_mel_bins,
        sample_rate=args.sample_rate,
        frame_length_ms=args.frame_length,
        frame_shift_ms=args.frame_shift,
        dither=args.dither,
    )
    s = compute_features(
        args.data_dir, nj=args.nj, out_dir=args.out_dir, cfg=cfg, speed=args.speed, cmvn=args.cmvn, progress=args.progress
    )
    hours = s.frames * cfg.frame_shift_ms / 1000 / 3600
    line = f"{args.data_dir}: {s.utterances} utterance(s), {s.frames} frames ({hours:.2f} h), {s.dim}-dim fbank -> {s.feats_scp}"
    if s.cmvn is not None:
        line += f"; cmvn: {s.cmvn}"
    if s.skipped:
        line += f"; {len(s.skipped)} too short, skipped"
    print(line)
    return 0
