"""CTC interface: projection to the module vocabulary, log-softmax marginals, CTC loss.

The blank symbol is index 0 of every module vocabulary (see ``legonn.data.vocab``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from legonn.data.vocab import BLANK


@dataclass
class CTCLoss:
    total: torch.Tensor  # summed negative log-likelihood over the utterances that fit
    tokens: int  # target tokens of those utterances (the normaliser)
    skipped: int  # utterances whose target cannot be aligned to the output length


def min_ctc_length(targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Shortest output a CTC alignment needs: one frame a token plus a blank between repeats."""
    mask = torch.arange(targets.size(1), device=targets.device).unsqueeze(0) < target_lengths.unsqueeze(1)
    repeats = (targets[:, 1:] == targets[:, :-1]) & mask[:, 1:]
    return target_lengths + repeats.sum(1)


class CTCInterface(nn.Module):
    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.proj = nn.Linear(d_model, vocab_size)
        self.vocab_size = vocab_size

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.proj(hidden).float(), dim=-1)

    @staticmethod
    def loss(
        log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor
    ) -> CTCLoss:
        """Sum of CTC losses; utterances too long for their output are left out and counted
        (``skipped``: the trainer reports the count once per validation)."""
        fits = min_ctc_length(targets, target_lengths) <= lengths
        skipped = int((~fits).sum())
        if skipped == len(fits):
            return CTCLoss(log_probs.sum() * 0.0, 0, skipped)
        # All rows go in (selecting the fitting ones would copy the (B, T, V) tensor): a row that
        # cannot be aligned has an infinite loss, which zero_infinity turns into 0 and no gradient.
        per_utt = F.ctc_loss(
            log_probs.transpose(0, 1),
            targets,
            lengths,
            target_lengths,
            blank=BLANK,
            reduction="none",
            zero_infinity=True,
        )
        return CTCLoss(per_utt.masked_fill(~fits, 0.0).sum(), int(target_lengths[fits].sum()), skipped)


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path: argmax per position, merge repeats, drop blanks."""
    best = log_probs.argmax(-1).cpu()
    out = []
    for seq, n in zip(best, lengths.cpu().tolist()):
        seq = torch.unique_consecutive(seq[:n])
        out.append([int(t) for t in seq if t != BLANK])
    return out
