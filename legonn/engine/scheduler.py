"""Learning-rate schedules of the paper's recipes (Appendix Tables XII-XIII), per update step."""
from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR

from legonn.errors import LegonnError


def inverse_sqrt(peak: float, warmup_steps: int, warmup_init_lr: float):
    """Linear warm-up from warmup_init_lr to peak, then peak * sqrt(warmup / step) (fairseq)."""
    warmup_steps = max(warmup_steps, 1)

    def lr(step: int) -> float:
        if step < warmup_steps:
            return warmup_init_lr + (peak - warmup_init_lr) * step / warmup_steps
        return peak * math.sqrt(warmup_steps / step)

    return lr


def tristage(peak: float, warmup_steps: int, hold_steps: int, decay_steps: int, init_scale: float, final_scale: float):
    """Linear warm-up from init_scale*peak, hold at peak, exponential decay to final_scale*peak, then flat."""

    def lr(step: int) -> float:
        if step < warmup_steps:
            return peak * (init_scale + (1 - init_scale) * step / warmup_steps)
        step -= warmup_steps
        if step < hold_steps:
            return peak
        step -= hold_steps
        if step < decay_steps:
            return peak * math.exp(math.log(final_scale) * step / decay_steps)
        return peak * final_scale

    return lr


def build_scheduler(optimizer, conf: dict, peak: float) -> LambdaLR:
    kind = conf["type"]
    if kind == "inverse_sqrt":
        fn = inverse_sqrt(peak, conf["warmup_steps"], conf["warmup_init_lr"])
    elif kind == "tristage":
        fn = tristage(peak, conf["warmup_steps"], conf["hold_steps"], conf["decay_steps"], conf["init_lr_scale"], conf["final_lr_scale"])
    elif kind == "constant":
        fn = lambda step: peak  # noqa: E731
    else:
        raise LegonnError(f"scheduler.type '{kind}' is not one of inverse_sqrt, tristage, constant")
    for group in optimizer.param_groups:
        group["lr"] = peak
        group["initial_lr"] = peak
    return LambdaLR(optimizer, lambda step: fn(step) / peak)
