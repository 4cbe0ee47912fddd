"""Positional embeddings: sinusoidal (any length) and learnable (up to a fixed length)."""
from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalPE(nn.Module):
    """Fixed sin/cos table of Vaswani et al.; grows on demand, so no maximum length."""

    def __init__(self, d_model: int, init_len: int = 1024):
        super().__init__()
        self.d_model = d_model
        self.register_buffer("table", self._make(init_len), persistent=False)

    def _make(self, length: int) -> torch.Tensor:
        position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
        half = self.d_model // 2
        freq = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / max(half - 1, 1)))
        angles = position * freq.unsqueeze(0)
        table = torch.zeros(length, self.d_model)
        table[:, :half] = torch.sin(angles)
        table[:, half : 2 * half] = torch.cos(angles)
        return table

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        """(length, d_model) embeddings of positions offset .. offset+length-1."""
        end = offset + length
        if end > self.table.size(0):
            self.table = self._make(max(end, 2 * self.table.size(0))).to(self.table.device)
        return self.table[offset:end]


class LearnablePE(nn.Module):
    """Trained position vectors for positions 0 .. max_len-1."""

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * d_model**-0.5)

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        if offset + length > self.max_len:
            raise ValueError(f"learnable positions go up to {self.max_len}, asked for {offset + length}")
        return self.weight[offset : offset + length]
