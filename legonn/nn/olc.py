"""Output length controller (paper §III-C1, Eq. 12-16).

K = min(max_len, ceil(factor * T)) positional queries (sinusoidal + learnable) attend to the
encoder states through self-attention + cross-attention + FFN blocks, so a module's output
length follows a fractional ratio of its input length: up-sampling MT sources (factor 2) or
down-sampling speech frames (factor 1/1.5) towards the lengths a decoder was trained on.

``prior_width`` (not in the paper; off by default) adds a monotonic alignment prior to the
cross-attention logits: output position k of K prefers input positions near its proportional
place (k + 1/2) T / K, with a Gaussian of width ``prior_width`` * max(1, T/K) input positions.
The paper's content-free queries start out attending uniformly, so every output position sees
the same average; over hundreds of speech frames a CTC loss on top can then sit on its
all-blank plateau for a long time (measured on the mini ASR task, egs/mini/asr1). The prior is
a fixed, soft bias: the attention can still move away from the diagonal.

``queries`` (not in the paper either): ``positional`` (the paper's, the default) or
``upsampled``, which adds to each positional query the encoder state at its proportional input
place, (k + 1/2) T / K, so output positions differ in content from the first update, as in the
up-sampling CTC translation models of Libovicky & Helcl (2018); cross-attention can still
reorder.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Optional, Union

import torch
from torch import nn

from legonn.nn.mask import padding_mask
from legonn.nn.positional import LearnablePE, SinusoidalPE
from legonn.nn.transformer import TransformerCrossStack

Factor = Union[float, int, str]
QUERY_KINDS = ("positional", "upsampled")


def parse_factor(factor: Factor) -> Fraction:
    """2, 0.5, "1/1.5" or "2/3" -> an exact fraction, so ceil(factor*T) has no float surprises."""
    try:
        if isinstance(factor, str) and "/" in factor:
            num, den = factor.split("/")
            value = Fraction(num.strip()) / Fraction(den.strip())
        else:
            value = Fraction(str(factor))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"OLC factor '{factor}' is not a number or a ratio like 1/1.5") from None
    if value <= 0:
        raise ValueError(f"OLC factor must be positive, got {factor}")
    return value.limit_denominator(1_000_000)


class OutputLengthController(nn.Module):
    def __init__(
        self,
        d_model: int,
        factor: Factor,
        max_len: int,
        heads: int = 4,
        d_ff: int = 1024,
        layers: int = 2,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        prior_width: Optional[float] = None,
        queries: str = "positional",
    ):
        super().__init__()
        if queries not in QUERY_KINDS:
            raise ValueError(f"OLC queries must be one of {', '.join(QUERY_KINDS)}, got '{queries}'")
        self.queries = queries
        if prior_width is not None and prior_width <= 0:
            raise ValueError(f"OLC prior_width must be positive, got {prior_width}")
        self.prior_width = prior_width
        self.factor = parse_factor(factor)
        self.factor_spec = str(factor)
        self.max_len = max_len
        self.sinusoidal = SinusoidalPE(d_model)
        self.learnable = LearnablePE(d_model, max_len)
        self.blocks = TransformerCrossStack(d_model, heads, d_ff, layers, dropout, attention_dropout)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        num, den = self.factor.numerator, self.factor.denominator
        k = torch.div(lengths * num + den - 1, den, rounding_mode="floor")  # exact ceil
        return k.clamp(min=1, max=self.max_len)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_lengths = self.output_lengths(lengths)
        k = int(out_lengths.max())
        queries = (self.sinusoidal(k) + self.learnable(k)).unsqueeze(0).expand(x.size(0), -1, -1)
        if self.queries == "upsampled":
            queries = queries + self.proportional_states(x, lengths, out_lengths, k)
        bias = self.alignment_prior(lengths, out_lengths, x.size(1), k) if self.prior_width else None
        h = self.blocks(queries, padding_mask(out_lengths, k), x, padding_mask(lengths, x.size(1)), memory_bias=bias)
        return h, out_lengths

    @staticmethod
    def proportional_states(x: torch.Tensor, lengths: torch.Tensor, out_lengths: torch.Tensor, k: int) -> torch.Tensor:
        """(B, K, D): for output position k, the input state at floor((k + 1/2) T / K)."""
        _, places = proportional_places(lengths, out_lengths, k)
        place = torch.minimum(places.long(), (lengths - 1).clamp(min=0)[:, None])
        return x.gather(1, place.unsqueeze(-1).expand(-1, -1, x.size(-1)))

    def alignment_prior(self, lengths: torch.Tensor, out_lengths: torch.Tensor, t: int, k: int) -> torch.Tensor:
        """(B, 1, K, T) log-Gaussian bias centred on each output position's proportional input place."""
        ratio, places = proportional_places(lengths, out_lengths, k)
        centre = places[:, :, None] - 0.5  # input frame t spans [t, t + 1): the frame centred on the place
        inputs = torch.arange(t, device=lengths.device).float()[None, None, :]
        width = self.prior_width * ratio[:, :, None].clamp(min=1.0)
        return (-0.5 * ((inputs - centre) / width) ** 2).unsqueeze(1)


def proportional_places(lengths: torch.Tensor, out_lengths: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ratio (B, 1) input positions per output, places (B, K) = (k + 1/2) T / K): where each output
    position sits on the input axis; the upsampled queries and the alignment prior both use it."""
    ratio = (lengths.float() / out_lengths.float())[:, None]
    return ratio, (torch.arange(k, device=lengths.device).float()[None, :] + 0.5) * ratio
