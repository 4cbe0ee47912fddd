#!/usr/bin/env python
"""ESPnet2 on legonn's bench shapes: the peer half of `make bench-peer`.

    bench/peer/.venv/bin/python bench/peer/espnet_bench.py [--threads N] [--precision fp32|bf16] [--out FILE] [--quick]

Runs in bench/peer/.venv (bench/peer/setup.sh), never imports legonn, and imports ESPnet only
inside functions, so that tests can import this file without ESPnet. The data and shapes come
from bench/shapes.py, as bench/bench.py's do. Prints the JSON report on stdout (and writes it
atomically to --out), a short summary on stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shapes import (ASR_CTC_WEIGHT, ATTENTION_FLOPS, BEAM, DEC_LAYERS, ENC_LAYERS, FEAT_DIM, FULL, LABEL_SMOOTHING,  # noqa: E402
                    OPTIM, QUICK, SEED, SIZE, V, asr_train_data, host_info, mt_decode_data, mt_train_data, summary)

WORKLOADS = ("mt_train_baseline", "asr_train", "mt_decode_baseline")  # named as their bench.py counterparts
LEGONN_EOS = 2  # legonn's <sos/eos> id; random ids never hold it
ESPNET_EOS = V - 1  # ESPnet2's <sos/eos> is the last symbol
IGNORE_ID = -1  # ESPnet2 pads token sequences with ignore_id
HARNESS = ("this script's own loop around ESPnet2's model classes and BatchBeamSearch (as bench/bench.py's around legonn), "
           "not ESPnet's trainer or inference scripts; bf16 = torch.autocast('cpu', bfloat16) around model(...), which in "
           "ESPnet2 includes the loss; AdamW as legonn's trainer makes it (fused)")
TOKEN_NOTE = (f"bench/shapes.py's data, relabelled for ESPnet2: id {ESPNET_EOS} (ESPnet's <sos/eos>) swapped with "
              f"{LEGONN_EOS} (legonn's, unused by the data), padding {IGNORE_ID}")


def espnet_tokens(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """legonn-layout ids (pad 0) in ESPnet2's layout: a one-to-one relabelling, the same sequences."""
    out = torch.where(ids == ESPNET_EOS, LEGONN_EOS, ids)
    out[torch.arange(ids.size(1)) >= lengths[:, None]] = IGNORE_ID
    return out


def token_list() -> list[str]:
    return ["<blank>", "<unk>", *(f"tok{i}" for i in range(2, V - 1)), "<sos/eos>"]


# ----------------------------------------------------------------------------------- models

def encoder(input_size: int, input_layer: str | None):
    from espnet2.asr.encoder.transformer_encoder import TransformerEncoder

    # use_flash_attn=False: the flash_attn package is CUDA-only; ESPnet would fall back after one failed try
    return TransformerEncoder(input_size, output_size=SIZE["d_model"], attention_heads=SIZE["heads"],
                              linear_units=SIZE["d_ff"], num_blocks=ENC_LAYERS, dropout_rate=SIZE["dropout"],
                              positional_dropout_rate=SIZE["dropout"], attention_dropout_rate=0.0,
                              input_layer=input_layer, normalize_before=True, use_flash_attn=False)


def decoder():
    from espnet2.asr.decoder.transformer_decoder import TransformerDecoder

    return TransformerDecoder(V, SIZE["d_model"], attention_heads=SIZE["heads"], linear_units=SIZE["d_ff"],
                              num_blocks=DEC_LAYERS, dropout_rate=SIZE["dropout"], positional_dropout_rate=SIZE["dropout"],
                              self_attention_dropout_rate=0.0, src_attention_dropout_rate=0.0, normalize_before=True,
                              use_flash_attn=False)


def mt_model():
    """ESPnetMTModel as MTTask builds it by default: the `embed` frontend (token embedding + positions), a
    transformer encoder without input layer, a transformer decoder with tied input/output embeddings."""
    from espnet2.mt.espnet_model import ESPnetMTModel
    from espnet2.mt.frontend.embedding import Embedding

    torch.manual_seed(SEED)
    frontend = Embedding(input_size=V, embed_dim=SIZE["d_model"], positional_dropout_rate=SIZE["dropout"])
    return ESPnetMTModel(V, token_list(), frontend=frontend, preencoder=None, encoder=encoder(SIZE["d_model"], None),
                         postencoder=None, decoder=decoder(), src_vocab_size=V, src_token_list=token_list(),
                         lsm_weight=LABEL_SMOOTHING, report_bleu=False, share_decoder_input_output_embed=True)


def asr_model():
    """ESPnetASRModel, hybrid CTC/attention: conv2d front-end (time / 4), CTC weight 0.3."""
    from espnet2.asr.ctc import CTC
    from espnet2.asr.espnet_model import ESPnetASRModel

    torch.manual_seed(SEED)
    return ESPnetASRModel(V, token_list(), frontend=None, specaug=None, normalize=None, preencoder=None,
                          encoder=encoder(FEAT_DIM, "conv2d"), postencoder=None, decoder=decoder(),
                          ctc=CTC(V, SIZE["d_model"]), joint_network=None, ctc_weight=ASR_CTC_WEIGHT,
                          lsm_weight=LABEL_SMOOTHING, report_cer=False, report_wer=False)


# ---------------------------------------------------------------------------------- timing

def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def train(model, batch: dict, cfg: dict) -> dict:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), **OPTIM, fused=True)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if cfg["precision"] == "bf16" else contextlib.nullcontext

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss, _, _ = model(**batch)
        loss.backward()
        opt.step()
        return loss

    with FlopCounterMode(display=False, custom_mapping=ATTENTION_FLOPS) as counter:
        step()  # also the first warm-up step
    flops = counter.get_total_flops()
    for _ in range(cfg["warmup"] - 1):
        step()
    runs = [timed(step) for _ in range(cfg["steps"])]
    seconds = [s for s, _ in runs]
    return {
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "optimizer": "torch.optim.AdamW(lr=5e-4, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.01, fused=True)",
        "label_smoothing": LABEL_SMOOTHING,
        "precision": cfg["precision"],
        "warmup_steps": cfg["warmup"],
        "steps": cfg["steps"],
        "step_seconds": summary(seconds),
        "flops_per_step": flops,
        "achieved_gflops": flops / statistics.median(seconds) / 1e9,
        "loss": runs[-1][1].item(),
        "loss_note": "ESPnet2's default: label-smoothed cross-entropy summed over tokens, divided by the batch size",
    }


def mt_train(cfg: dict) -> dict:
    src, src_len, tgt, tgt_len = mt_train_data(cfg)
    batch = {"src_text": espnet_tokens(src, src_len), "src_text_lengths": src_len,
             "text": espnet_tokens(tgt, tgt_len), "text_lengths": tgt_len}
    r = train(mt_model(), batch, cfg)
    tokens = int(tgt_len.sum())
    r.update(layers=f"Embedding frontend + TransformerEncoder {ENC_LAYERS} + TransformerDecoder {DEC_LAYERS}, "
                    "normalize_before, tied decoder embeddings; ESPnet prepends <sos> to each source",
             batch={"sentences": cfg["mt_batch"], "source_tokens": int(src_len.sum()), "target_tokens": tokens,
                    "lengths": "source and target uniform in [10, 30]", "tokens": TOKEN_NOTE},
             target_tokens_per_second=tokens / r["step_seconds"]["median"])
    return r


def asr_train(cfg: dict) -> dict:
    feats, lengths, text, text_len = asr_train_data(cfg)
    b, t = feats.shape[:2]
    batch = {"speech": feats, "speech_lengths": lengths, "text": espnet_tokens(text, text_len), "text_lengths": text_len}
    r = train(asr_model(), batch, cfg)
    r.update(layers=f"TransformerEncoder {ENC_LAYERS} (input_layer conv2d: two 3x3 stride-2 convs of {SIZE['d_model']} maps) "
                    f"+ CTC (weight {ASR_CTC_WEIGHT}) + TransformerDecoder {DEC_LAYERS}",
             batch={"utterances": b, "frames": b * t, "feature_dim": FEAT_DIM, "target_tokens": int(text_len.sum()),
                    "subsampling": 4, "tokens": TOKEN_NOTE},
             frames_per_second=b * t / r["step_seconds"]["median"])
    return r


def mt_decode(cfg: dict) -> dict:
    from espnet.nets.batch_beam_search import BatchBeamSearch

    model = mt_model().eval()
    # Every hypothesis must be exactly dec_len tokens long: <eos> can never win (its output bias is
    # -inf; the weights are random anyway), and maxlenratio=-dec_len makes ESPnet append <eos> after
    # dec_len tokens.
    with torch.no_grad():
        model.decoder.output_layer.bias[model.eos] = float("-inf")
    search = BatchBeamSearch(scorers={"decoder": model.decoder}, weights={"decoder": 1.0}, beam_size=BEAM, vocab_size=V,
                             sos=model.sos, eos=model.eos, token_list=token_list(), pre_beam_score_key="full")
    src, src_len, order = mt_decode_data(cfg)
    src = espnet_tokens(src, src_len)
    out_len = cfg["dec_len"]

    def decode_all(sentences: int):  # ESPnet2's beam search takes one sentence at a time
        for i in order[:sentences].tolist():
            n = src_len[i : i + 1]
            enc, _ = model.encode(src[i : i + 1, : int(n)], n)
            hyps = search(x=enc[0], maxlenratio=-out_len, minlenratio=0.0)
            assert len(hyps[0].yseq) == out_len + 2, "every output must have exactly dec_len tokens (+ <sos>, <eos>)"

    with torch.inference_mode():
        decode_all(2)  # warm-up
        seconds = [timed(lambda: decode_all(cfg["dec_sentences"]))[0] for _ in range(cfg["dec_reps"])]
    rate = cfg["dec_sentences"] / statistics.median(seconds)
    return {
        "model": "ESPnetMTModel (as mt_train_baseline)",
        "sentences": cfg["dec_sentences"],
        "source_lengths": "uniform in [10, 30], in order of length",
        "beam": BEAM,
        "output_tokens": out_len,
        "search": (f"espnet.nets.batch_beam_search.BatchBeamSearch (the class ESPnet2's inference uses when every scorer "
                   f"batches), decoder scorer only, beam {BEAM}, pre_beam_score_key='full', maxlenratio=-{out_len}, "
                   f"<eos> output bias -inf: {out_len} decoder steps, then <eos> appended; encoder included"),
        "reps": cfg["dec_reps"],
        "batch_sizes": {"1": {"seconds": summary(seconds), "sentences_per_second": rate}},
        "batch_1_sentences_per_second": rate,
        "note": "ESPnet2's beam search decodes one sentence at a time: no batched figure",
    }


# ----------------------------------------------------------------------------------- report

def system_info() -> dict:
    return {**host_info(), "espnet": version("espnet"), "device": "cpu"}


def describe(r: dict) -> str:
    if "step_seconds" in r:
        s = r["step_seconds"]
        rate = (f"{r['target_tokens_per_second']:.0f} tgt tok/s" if "target_tokens_per_second" in r
                else f"{r['frames_per_second']:.0f} frames/s")
        return f"{s['median']:.3f} s/step [{s['min']:.3f}-{s['max']:.3f}], {rate}, {r['achieved_gflops']:.1f} GFLOP/s"
    return f"{r['batch_1_sentences_per_second']:.2f} sent/s at batch 1"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's choice)")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="training steps under bf16 autocast")
    ap.add_argument("--out", type=Path, help="also write the JSON report here (atomically)")
    ap.add_argument("--quick", action="store_true", help="tiny batches, few steps: a smoke test, not a measurement")
    args = ap.parse_args(argv)
    try:
        version("espnet")
    except PackageNotFoundError:
        ap.error("espnet is not installed in this Python; run bench/peer/setup.sh and use bench/peer/.venv/bin/python")
    if args.threads:
        torch.set_num_threads(args.threads)
    # Every search here ends at the forced maximum length by design, which ESPnet warns about each time.
    logging.getLogger("espnet.nets.beam_search").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="espnet2")  # its torch.cuda.amp.autocast(False)

    cfg = dict(QUICK if args.quick else FULL, precision=args.precision)
    report = {"toolkit": "espnet2", "harness": HARNESS, "system": system_info(), "quick": args.quick,
              "precision": args.precision, "workloads": {}}
    with contextlib.redirect_stdout(sys.stderr):  # stdout is the report's; ESPnet prints at import
        for name, run in zip(WORKLOADS, (mt_train, asr_train, mt_decode)):
            print(f"[espnet] {name} ...", file=sys.stderr, flush=True)
            r = report["workloads"][name] = run(cfg)
            print(f"[espnet] {name}: {describe(r)}", file=sys.stderr, flush=True)

    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        write_atomic(args.out, text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
