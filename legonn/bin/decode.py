"""Decode a data directory with a trained experiment or with composed module folders."""
from __future__ import annotations

import argparse
from pathlib import Path

from legonn.data.dataset import ChainDataset, StreamSpec
from legonn.engine.decode import decode_dataset
from legonn.engine.distributed import DistInfo, device_for
from legonn.errors import LegonnError
from legonn.fileio import write_atomic


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn decode", description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--exp_dir", help="a trained experiment (config.yaml + checkpoints)")
    src.add_argument("--modules", nargs="+", help="module folders, chained in order")
    p.add_argument("--checkpoint", help="with --exp_dir: checkpoint or averaged file (default: best kept)")
    p.add_argument("--data_dir", required=True, help="Kaldi-style data directory to decode")
    p.add_argument("--input_file", help="input stream file in the data dir (default: the one the experiment or first module was trained on)")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--beam", type=int, default=5, help="beam size (paper: MT 5, ASR 20)")
    p.add_argument("--nbest", type=int, default=1)
    p.add_argument("--length_penalty", type=float, default=1.0, help="fairseq-style (paper: MT 0.6, ASR 1.0)")
    p.add_argument("--max_len_a", type=float, default=1.0, help="max output length = a * input positions + b")
    p.add_argument("--max_len_b", type=int, default=10)
    p.add_argument("--max_tokens", type=int, default=4000, help="batch size in padded input positions")
    p.add_argument("--ctc_modules", nargs="*", default=None,
                   help="modules whose CTC best path is written too (default: every module with a CTC head)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    device = device_for(args.device, DistInfo())

    if args.exp_dir:
        from legonn.engine.experiment import load_trained

        exp = load_trained(args.exp_dir, args.checkpoint)
        model, config = exp.model, exp.config
        data = config["data"]
        input_spec = StreamSpec(args.input_file or data["input"]["file"], data["input"].get("vocab"), data["input"].get("cmvn"))
        vocabs = {name: exp.valid_set.targets[spec.target].vocab for spec in model.specs
                  for name in [spec.name] if spec.target in exp.valid_set.targets}
        target_files = {spec.name: data["targets"][spec.target]["file"] for spec in model.specs
                        if spec.target in (data.get("targets") or {})}
    else:
        from legonn.modules.artifact import assemble
        from legonn.modules.artifact import input_spec as module_input_spec

        model, loaded = assemble(args.modules)
        input_spec = module_input_spec(loaded, args.input_file)
        vocabs = {spec.name: m.output_vocab for spec, m in zip(model.specs, loaded) if m.output_vocab is not None}
        target_files = {spec.name: m.meta["extra"]["target_file"] for spec, m in zip(model.specs, loaded)
                        if (m.meta.get("extra") or {}).get("target_file")}

    last = model.specs[-1].name
    output_vocab = vocabs.get(last)
    wanted = args.ctc_modules if args.ctc_modules is not None else [n for n in model.encoder_names]
    ctc_vocabs = {}
    for name in wanted:
        if name not in model.blocks:
            raise LegonnError(f"--ctc_modules: no module '{name}' (modules: {', '.join(model.names)})")
        if name in vocabs and getattr(model.blocks[name], "ctc", None) is not None:
            ctc_vocabs[name] = vocabs[name]
    dataset = ChainDataset(args.data_dir, input_spec, {}, require_targets=False)
    files = decode_dataset(model, dataset, args.out_dir, output_vocab, ctc_vocabs, args.beam, args.nbest,
                           args.length_penalty, args.max_len_a, args.max_len_b, args.max_tokens, device)
    # Which data-dir file each CTC best path is to be scored against (a phoneme module's is
    # text.phn, not the words of the decoder's reference).
    for name in ctc_vocabs:
        if name in target_files:
            ref = Path(args.out_dir) / f"ctc_{name}.ref"
            write_atomic(ref, target_files[name] + "\n")
            files.append(ref)
    print(f"decoded {len(dataset)} utterances -> {', '.join(str(Path(f)) for f in files)}")
    return 0
