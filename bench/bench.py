#!/usr/bin/env python
"""legonn benchmarks: fixed workloads whose figures can be set beside other toolkits'.

    .venv/bin/python bench/bench.py [--device cpu|cuda] [--threads N] [--only a,b] [--out FILE] [--quick]

Workloads (see bench/README.md): matmul_peak, mt_train_baseline, mt_train_legonn,
mt_decode_baseline, mt_decode_legonn, asr_train. Prints the JSON report on stdout (and writes it
atomically to --out), a short summary on stderr. Weights are random: the work is fixed.

mt_decode_modules times the decode shape on a chain of trained module folders instead
(--modules DIR [DIR ...], e.g. a compressed decoder composed with its encoder; inputs are random
ids as for the others, so only the model differs).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from legonn.nn.beam_search import beam_search  # noqa: E402
from legonn.data.batching import Batch  # noqa: E402
from legonn.engine.criteria import JointLoss  # noqa: E402
from legonn.engine.precision import DTYPES, Precision  # noqa: E402
from legonn.engine.trainer import build_optimizer  # noqa: E402
from legonn.errors import LegonnError  # noqa: E402
from legonn.nn.chain import Chain  # noqa: E402
from legonn.fileio import write_atomic  # noqa: E402
from legonn.modules.artifact import assemble  # noqa: E402
from shapes import (ATTENTION_FLOPS, BEAM, DEC_LAYERS, ENC_LAYERS, FEAT_DIM, FULL, OPTIM, QUICK, SEED, SIZE, V,  # noqa: E402
                    asr_train_data, host_info, mt_decode_data, mt_train_data, summary)

WORKLOADS = ("matmul_peak", "mt_train_baseline", "mt_train_legonn", "mt_decode_baseline", "mt_decode_legonn",
             "mt_decode_modules", "asr_train")

# ----------------------------------------------------------------------------------- models

def mt_specs(kind: str) -> list[dict]:
    embed = {"type": "embedding", "vocab_size": V}
    if kind == "baseline":
        return [
            {"name": "enc", "type": "transformer_encoder", "conf": {"input": embed, **SIZE, "layers": ENC_LAYERS}},
            {"name": "dec", "type": "transformer_decoder", "target": "tgt", "conf": {"vocab_size": V, **SIZE, "layers": DEC_LAYERS}},
        ]
    return [  # LegoNN WEmb: CTC over a 1000-symbol target-BPE interface, weight 1
        {"name": "enc", "type": "lego_encoder", "target": "tgt", "loss_weight": 1.0,
         "conf": {"input": embed, **SIZE, "layers": ENC_LAYERS, "olc": {"factor": 2, "max_len": 128, "layers": 1}, "ctc_vocab_size": V}},
        {"name": "dec", "type": "lego_decoder", "target": "tgt",
         "conf": {"vocab_size": V, "ingestor": {"type": "wemb", "vocab_size": V, "layers": 1}, **SIZE, "layers": DEC_LAYERS}},
    ]


LEGONN_NOTE = ("layer counts as the baseline (6 encoder + 3 decoder transformer layers) plus the LegoNN parts: "
               "1 OLC block (self-attn + cross-attn + FFN, factor 2, max_len 128) and a 1-layer WEmb ingestor (RF 1)")


def asr_specs() -> list[dict]:
    return [  # hybrid CTC/attention: CTC weight 0.3 on the encoder, 0.7 on the decoder
        {"name": "enc", "type": "transformer_encoder", "target": "text", "loss_weight": 0.3,
         "conf": {"input": {"type": "conv2d", "input_dim": FEAT_DIM}, **SIZE, "layers": ENC_LAYERS, "ctc_vocab_size": V}},
        {"name": "dec", "type": "transformer_decoder", "target": "text", "loss_weight": 0.7,
         "conf": {"vocab_size": V, **SIZE, "layers": DEC_LAYERS}},
    ]


def build(specs: list[dict]) -> Chain:
    torch.manual_seed(SEED)
    return Chain.from_specs(specs)


def chain_of_modules(folders: list[str]) -> Chain:
    """Trained module folders for mt_decode_modules; their first module must read V-symbol ids."""
    chain, loaded = assemble(folders)
    if (loaded[0].meta["input"].get("vocab") or {}).get("size", 0) < V:
        raise LegonnError(f"{folders[0]}: mt_decode_modules feeds ids below {V}: the first module must read tokens "
                          f"of a vocabulary of at least {V} symbols")
    if chain.decoder is None:
        raise LegonnError(f"{folders[-1]}: mt_decode_modules needs a decoder last")
    return chain


# ---------------------------------------------------------------------------------- timing

class Timer:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn):
        """Seconds fn() takes (CUDA work included), and its result."""
        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0, out


def matmul_peak(cfg: dict, device: torch.device, timer: Timer) -> dict:
    """The matmul peak in the precision the training workloads use (bf16/fp16 under autocast)."""
    n = cfg["matmul_n"]
    g = torch.Generator().manual_seed(SEED)
    dtype = DTYPES[cfg["precision"]] or torch.float32
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
    timer(lambda: a @ b)  # warm-up
    best = min(timer(lambda: a @ b)[0] for _ in range(cfg["matmul_reps"]))
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "reps": cfg["matmul_reps"], "best_seconds": best, "gflops": 2 * n**3 / best / 1e9}


def train(specs: list[dict], x, lengths, targets, cfg, device, timer, peak_gflops: float) -> dict:
    chain = build(specs)
    chain.to(device).train()
    x, lengths = x.to(device), lengths.to(device)
    targets = {k: (ids.to(device), n.to(device)) for k, (ids, n) in targets.items()}
    opt = build_optimizer(list(chain.parameters()), OPTIM)  # as the trainer makes it
    criterion = JointLoss(chain)  # paper Eq. 9, label smoothing 0.1
    batch = Batch([], x, lengths, targets)
    precision = Precision(cfg["precision"], device)

    def step():  # as Trainer.train_step: autocast around the model, the criterion outside it
        opt.zero_grad(set_to_none=True)
        with precision.autocast():
            out = chain(x, lengths, targets)
        loss = criterion(batch, out)
        precision.backward(loss.total)
        precision.step(opt)
        return loss

    with FlopCounterMode(display=False, custom_mapping=ATTENTION_FLOPS) as counter:
        step()  # also the first warm-up step
    flops = counter.get_total_flops()
    real = real_flops(chain, criterion, precision, x, lengths, targets)
    for _ in range(cfg["warmup"] - 1):
        step()
    runs = [timer(step) for _ in range(cfg["steps"])]
    seconds = [s for s, _ in runs]
    loss = runs[-1][1]
    med = statistics.median(seconds)
    result = {
        "model": specs,
        "parameters": sum(p.numel() for p in chain.parameters()),
        "optimizer": "AdamW(lr=5e-4, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.01, fused=True)",
        "label_smoothing": criterion.label_smoothing,
        "precision": cfg["precision"],
        "warmup_steps": cfg["warmup"],
        "steps": cfg["steps"],
        "step_seconds": summary(seconds),
        "flops_per_step": flops,
        "achieved_gflops": flops / med / 1e9,
        "mfu": flops / med / (peak_gflops * 1e9),
        "real_flops_per_step": real,
        "real_token_utilisation": real / med / (peak_gflops * 1e9),
        "loss": loss.total.item(),
        "ctc_skipped_utterances": sum(t.skipped for t in loss.terms.values()),
    }
    return result


def real_flops(chain: Chain, criterion: JointLoss, precision: Precision, x, lengths, targets) -> int:
    """FLOPs of the step's work on real tokens: every example's forward and backward pass on its
    own, without padding, summed (the padded batch's count less what padding costs)."""
    total = 0
    for i in range(x.size(0)):
        xi, li = x[i : i + 1, : int(lengths[i])], lengths[i : i + 1]
        ti = {k: (ids[i : i + 1, : int(n[i])], n[i : i + 1]) for k, (ids, n) in targets.items()}
        with FlopCounterMode(display=False, custom_mapping=ATTENTION_FLOPS) as counter:
            with precision.autocast():
                out = chain(xi, li, ti)
            criterion(Batch([], xi, li, ti), out).total.backward()
        total += counter.get_total_flops()
    chain.zero_grad(set_to_none=True)
    return total


def mt_train(kind: str, cfg, device, timer, peak_gflops) -> dict:
    src, src_len, tgt, tgt_len = mt_train_data(cfg)
    r = train(mt_specs(kind), src, src_len, {"tgt": (tgt, tgt_len)}, cfg, device, timer, peak_gflops)
    tokens = int(tgt_len.sum())
    r.update(batch={"sentences": cfg["mt_batch"], "source_tokens": int(src_len.sum()), "target_tokens": tokens,
                    "lengths": "source and target uniform in [10, 30]"},
             target_tokens_per_second=tokens / r["step_seconds"]["median"])
    if kind == "legonn":
        r["layers_note"] = LEGONN_NOTE
    return r


def asr_train(cfg, device, timer, peak_gflops) -> dict:
    b, t = cfg["asr_batch"], cfg["asr_frames"]
    feats, lengths, text, text_len = asr_train_data(cfg)
    r = train(asr_specs(), feats, lengths, {"text": (text, text_len)}, cfg, device, timer, peak_gflops)
    r.update(batch={"utterances": b, "frames": b * t, "feature_dim": FEAT_DIM, "target_tokens": int(text_len.sum()),
                    "subsampling": 4},
             frames_per_second=b * t / r["step_seconds"]["median"])
    return r


def mt_decode(chain: Chain, model: object, cfg, device, timer) -> dict:
    """The decode shape on ``chain`` (described in the report as ``model``)."""
    chain.to(device).eval()
    src, src_len, order = mt_decode_data(cfg)
    out_len = cfg["dec_len"]

    def decode_all(batch_size: int, sentences: int):
        for i in range(0, sentences, batch_size):
            idx = order[i : i + batch_size]
            n = src_len[idx]
            x = src[idx, : int(n.max())].to(device)
            memory, padding = chain.decoder.ingest(chain.encode(x, n.to(device))[-1])
            hyps = beam_search(chain.decoder, memory, padding, beam=BEAM, max_len_a=0, max_len_b=out_len, suppress_eos=True)
            assert all(len(h[0].tokens) == out_len for h in hyps), "every output must have exactly max_len_b tokens"

    per_size = {}
    with torch.inference_mode():
        decode_all(2, 2)  # warm-up
        for bs in (1, *cfg["dec_batch_sizes"]):
            seconds = [timer(lambda: decode_all(bs, cfg["dec_sentences"]))[0] for _ in range(cfg["dec_reps"])]
            per_size[str(bs)] = {"seconds": summary(seconds), "sentences_per_second": cfg["dec_sentences"] / statistics.median(seconds)}
    best = max(cfg["dec_batch_sizes"], key=lambda bs: per_size[str(bs)]["sentences_per_second"])
    return {
        "model": model,
        "sentences": cfg["dec_sentences"],
        "source_lengths": "uniform in [10, 30], batched in order of length",
        "beam": BEAM,
        "output_tokens": out_len,
        "search": f"beam_search(beam={BEAM}, max_len_a=0, max_len_b={out_len}, suppress_eos=True); encoder included",
        "reps": cfg["dec_reps"],
        "batch_sizes": per_size,
        "batch_1_sentences_per_second": per_size["1"]["sentences_per_second"],
        "best_batch_size": best,
        "best_sentences_per_second": per_size[str(best)]["sentences_per_second"],
    }


# ----------------------------------------------------------------------------------- report

def git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def system_info(device: torch.device) -> dict:
    status = git("status", "--porcelain")
    return {
        **host_info(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }


def describe(name: str, r: dict) -> str:
    if name == "matmul_peak":
        return f"{r['gflops']:.1f} GFLOP/s ({r['dtype']} {r['n']}^3)"
    if "step_seconds" in r:
        s = r["step_seconds"]
        rate = (f"{r['target_tokens_per_second']:.0f} tgt tok/s" if "target_tokens_per_second" in r
                else f"{r['frames_per_second']:.0f} frames/s")
        return (f"{s['median']:.3f} s/step [{s['min']:.3f}-{s['max']:.3f}], {rate}, MFU {100 * r['mfu']:.1f}%, "
                f"real-token utilisation {100 * r['real_token_utilisation']:.1f}%")
    return (f"{r['batch_1_sentences_per_second']:.2f} sent/s at batch 1, "
            f"{r['best_sentences_per_second']:.2f} sent/s at batch {r['best_batch_size']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's choice)")
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    ap.add_argument("--out", type=Path, help="also write the JSON report here (atomically)")
    ap.add_argument("--precision", default="fp32", choices=tuple(DTYPES),
                    help="training workloads under autocast (as trainer.precision); matmul_peak in that dtype")
    ap.add_argument("--modules", nargs="+", metavar="DIR", help="module folders in chain order, for mt_decode_modules")
    ap.add_argument("--quick", action="store_true", help="tiny batches, few steps: a smoke test, not a measurement")
    args = ap.parse_args(argv)

    names = [n for n in WORKLOADS if n != "mt_decode_modules"]
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(WORKLOADS))
        if unknown:
            ap.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    if ("mt_decode_modules" in names) != bool(args.modules):
        ap.error("--modules and the mt_decode_modules workload go together (--only mt_decode_modules --modules DIR ...)")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if any("_train" in n for n in names) and "matmul_peak" not in names:
        names.insert(0, "matmul_peak")  # MFU needs the peak

    cfg, device = dict(QUICK if args.quick else FULL, precision=args.precision), torch.device(args.device)
    try:
        Precision(args.precision, device)  # fp16 on CPU: refused before any work
    except LegonnError as exc:
        ap.error(str(exc))
    timer = Timer(device)
    report = {"system": system_info(device), "quick": args.quick, "precision": args.precision, "workloads": {}}
    results = report["workloads"]
    for name in (n for n in WORKLOADS if n in names):
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        peak = results.get("matmul_peak", {}).get("gflops", math.nan)
        if name == "matmul_peak":
            r = matmul_peak(cfg, device, timer)
        elif name.startswith("mt_train_"):
            r = mt_train(name.removeprefix("mt_train_"), cfg, device, timer, peak)
        elif name == "mt_decode_modules":
            r = mt_decode(chain_of_modules(args.modules), args.modules, cfg, device, timer)
        elif name.startswith("mt_decode_"):
            specs = mt_specs(name.removeprefix("mt_decode_"))
            r = mt_decode(build(specs), specs, cfg, device, timer)
        else:
            r = asr_train(cfg, device, timer, peak)
        results[name] = r
        print(f"[bench] {name}: {describe(name, r)}", file=sys.stderr, flush=True)

    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        write_atomic(args.out, text)
    sys.stdout.write(text)
    sys.stderr.write(f"[bench] torch {torch.__version__}, {torch.get_num_threads()} thread(s), {report['system']['cpu']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
