"""Decode a data directory with a trained experiment or with composed module folders."""
from __future__ import annotations

import argparse
from pathlib import Path

from legonn.cli import HelpFormatter

from legonn.engine.decode import decode_data_dir, from_experiment, from_modules
from legonn.engine.distributed import DistInfo, device_for


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn decode", description=__doc__, formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--exp_dir", help="a trained experiment (config.yaml + checkpoints)")
    src.add_argument("--modules", nargs="+", help="module folders in chain order, or a composed folder")
    p.add_argument("--checkpoint", help="with --exp_dir: checkpoint or averaged file (default: best kept)")
    p.add_argument("--data_dir", required=True, help="Kaldi-style data directory to decode")
    p.add_argument("--input_file", help="input stream file in the data dir (default: the one the experiment or first module was trained on)")
    p.add_argument("--out_dir", required=True, help="where text, nbest and ctc_<module>.text go")
    p.add_argument("--beam", type=int, default=5, help="beam size; the paper uses 5 for MT, 20 for ASR")
    p.add_argument("--nbest", type=int, default=1, help="hypotheses per utterance written to nbest")
    p.add_argument("--length_penalty", type=float, default=1.0, help="fairseq-style; the paper uses 0.6 for MT, 1.0 for ASR")
    p.add_argument("--max_len_a", type=float, default=1.0, help="max output length = a * input positions + b")
    p.add_argument("--max_len_b", type=int, default=10, help="see --max_len_a")
    p.add_argument("--max_tokens", type=int, default=4000, help="batch size in padded input positions")
    p.add_argument("--ctc_modules", nargs="*", default=None,
                   help="modules whose CTC best path is written too (default: every module with a CTC head)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = p.parse_args(argv)
    device = device_for(args.device, DistInfo())
    if args.exp_dir:
        source = from_experiment(args.exp_dir, args.checkpoint, args.input_file)
    else:
        source = from_modules(args.modules, args.input_file)
    n, files = decode_data_dir(
        source, args.data_dir, args.out_dir, args.ctc_modules, beam=args.beam, nbest=args.nbest,
        length_penalty=args.length_penalty, max_len_a=args.max_len_a, max_len_b=args.max_len_b,
        max_tokens=args.max_tokens, device=device,
    )
    print(f"decoded {n} utterances -> {', '.join(str(Path(f)) for f in files)}")
    return 0
