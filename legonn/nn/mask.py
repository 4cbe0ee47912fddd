"""Length <-> padding-mask helpers shared by every module (True marks padding)."""
from __future__ import annotations

import torch


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, True where a position is padding."""
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) >= lengths.unsqueeze(1)


def zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padded time steps of (B, T, ...) ``x`` so they cannot leak through convolutions."""
    shape = mask.shape + (1,) * (x.dim() - 2)
    return x.masked_fill(mask.view(shape), 0.0)
