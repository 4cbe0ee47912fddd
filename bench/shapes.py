"""The bench shapes: sizes, optimiser settings and random data shared by bench/bench.py (legonn)
and bench/peer/espnet_bench.py (ESPnet2), so that both time the same work on the same tensors,
and the parts of the report both write the same way (timing summaries, the host).

torch only, no legonn import: the peer's environment (bench/peer/.venv) has no legonn.
"""
from __future__ import annotations

import datetime
import os
import platform
import statistics

import torch
from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

SEED = 1234
V = 1000  # every vocabulary: MT source, MT target, LegoNN interface BPE, ASR output
PAD = 0  # legonn.data.vocab.PAD (= blank); tests/test_peer_bench.py checks it
FIRST_ID = 3  # 0 pad/blank, 1 unk, 2 sos/eos: random ids are >= 3
SIZE = {"d_model": 256, "heads": 4, "d_ff": 1024, "dropout": 0.1}
ENC_LAYERS, DEC_LAYERS = 6, 3
FEAT_DIM = 80
LABEL_SMOOTHING = 0.1
ASR_CTC_WEIGHT = 0.3
BEAM = 5
OPTIM = {"lr": 5e-4, "betas": (0.9, 0.98), "eps": 1e-9, "weight_decay": 0.01}
MT_LENGTHS = (10, 30)  # MT source and target lengths, uniform
ASR_TEXT_LENGTHS = (20, 30)

FULL = dict(matmul_n=2048, matmul_reps=10, warmup=3, steps=10, mt_batch=64, asr_batch=16, asr_frames=400,
            dec_sentences=32, dec_batch_sizes=(8, 16, 32), dec_len=30, dec_reps=3)
QUICK = dict(matmul_n=256, matmul_reps=2, warmup=1, steps=1, mt_batch=2, asr_batch=1, asr_frames=100,
             dec_sentences=2, dec_batch_sizes=(2,), dec_len=3, dec_reps=1)

# PyTorch's flop counter has no formula for the CPU flash-attention kernels that
# scaled_dot_product_attention runs on CPU; count them as it counts the CUDA ones (dense, masks ignored).
ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *a, **kw: sdpa_flop_count(q, k, v),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda g, q, k, v, *a, **kw: sdpa_backward_flop_count(g, q, k, v),
}


def random_tokens(g: torch.Generator, n: int, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences of ids in [3, V), lengths uniform in [lo, hi], padded with 0."""
    lengths = torch.randint(lo, hi + 1, (n,), generator=g)
    ids = torch.randint(FIRST_ID, V, (n, int(lengths.max())), generator=g)
    ids[torch.arange(ids.size(1)) >= lengths[:, None]] = PAD
    return ids, lengths


def mt_train_data(cfg: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The MT training batch: source ids, source lengths, target ids, target lengths."""
    g = torch.Generator().manual_seed(SEED)
    return (*random_tokens(g, cfg["mt_batch"], *MT_LENGTHS), *random_tokens(g, cfg["mt_batch"], *MT_LENGTHS))


def asr_train_data(cfg: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ASR training batch: features (B, T, 80), frame counts, target ids, target lengths."""
    g = torch.Generator().manual_seed(SEED)
    b, t = cfg["asr_batch"], cfg["asr_frames"]
    feats = torch.randn(b, t, FEAT_DIM, generator=g)
    return (feats, torch.full((b,), t, dtype=torch.long), *random_tokens(g, b, *ASR_TEXT_LENGTHS))


def mt_decode_data(cfg: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sentences to decode: source ids, lengths, and the order to batch them in (longest first,
    so a batch holds similar lengths, as toolkits do)."""
    g = torch.Generator().manual_seed(SEED + 1)
    src, src_len = random_tokens(g, cfg["dec_sentences"], *MT_LENGTHS)
    return src, src_len, torch.argsort(src_len, descending=True)


def summary(seconds: list[float]) -> dict:
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)}


def host_info() -> dict:
    """When and where a report was measured: date, versions, threads, CPU and its load."""
    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
