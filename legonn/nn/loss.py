"""Label-smoothed cross-entropy at the final decoder (fairseq's formulation)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100


@dataclass
class CELoss:
    total: torch.Tensor  # summed smoothed loss over real target tokens
    nll: torch.Tensor  # summed negative log-likelihood (for perplexity)
    tokens: int
    correct: int


def label_smoothed_ce(logits: torch.Tensor, gold: torch.Tensor, smoothing: float) -> CELoss:
    """logits (B, U, V), gold (B, U) with IGNORE at padding.

    loss = (1 - eps) * nll + eps * mean_v(-log p_v): eps of the mass spread uniformly.
    """
    lprobs = F.log_softmax(logits.float(), dim=-1)
    real = gold != IGNORE
    safe_gold = gold.masked_fill(~real, 0)
    nll = -lprobs.gather(-1, safe_gold.unsqueeze(-1)).squeeze(-1)
    smooth = -lprobs.mean(-1)
    per_token = (1.0 - smoothing) * nll + smoothing * smooth
    correct = int(((lprobs.argmax(-1) == gold) & real).sum())
    return CELoss(per_token[real].sum(), nll[real].sum(), int(real.sum()), correct)
