"""Dropout with cheap masks on CPU.

``torch.nn.Dropout`` draws one Bernoulli variate per element; on CPU that generator call cost
more than all the transformer's matrix products together at bench shapes (bench/README.md). Here
one 64-bit draw of the same generator gives four 16-bit uniforms, each compared with
round(p * 65536): the drop probability is p rounded to a multiple of 2^-16, the draws still follow
``torch.manual_seed``. On other devices ``F.dropout`` is already a fused kernel and is used as is.
The multiplier mask (in the input's dtype) is what autograd keeps for the backward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_INT16_MIN = -(2**15)


def keep_scale(shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """(shape) multipliers: 0 with probability round(p * 2^16) / 2^16, else 1 / (1 - p)."""
    n = shape.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    keep = words.view(torch.int16)[:n] >= _INT16_MIN + round(p * 2**16)
    return keep.view(shape).to(dtype).mul_(1.0 / (1.0 - p))


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    return x * keep_scale(x.shape, p, x.dtype)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same ``p``, same place in ``isinstance`` checks) with the cheap CPU masks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
