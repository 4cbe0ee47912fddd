"""Ingestors (paper §III-D): how a module reads the previous module's output.

* ``wemb``: expected embedding of the marginals, a Conv1d over the probabilities with receptive
  field RF >= 1 (RF = 1 is P @ W_emb), + sinusoidal positions + transformer layers. Differentiable.
* ``beamconv``: embeddings of the top-k token indices at each position, a Conv1d over (k x time),
  + positions + transformer layers. Indices carry no gradient: modules stay gradient-isolated.
* ``hidden``: the baseline's decoder reading encoder states directly (no interface at all).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from legonn.nn.dropout import Dropout
from legonn.nn.interface import HIDDEN, MARGINALS
from legonn.nn.mask import padding_mask, zero_padding
from legonn.nn.positional import SinusoidalPE
from legonn.nn.transformer import TransformerEncoder
from legonn.registry import INGESTORS


class _ContextIngestor(nn.Module):
    """Shared tail: add positions, then re-encode context with self-attention layers."""

    input_kind = MARGINALS

    def __init__(self, d_model: int, heads: int, d_ff: int, layers: int, dropout: float, rf: int, attention_dropout: float):
        super().__init__()
        if rf < 1 or rf % 2 == 0:
            raise ValueError(f"ingestor receptive field must be odd and >= 1, got {rf}")
        self.rf = rf
        self.scale = math.sqrt(d_model)
        self.pe = SinusoidalPE(d_model)
        self.dropout = Dropout(dropout)
        self.encoder = TransformerEncoder(d_model, heads, d_ff, layers, dropout, attention_dropout) if layers else None

    def _contextualise(self, h: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.dropout(h * self.scale + self.pe(h.size(1)))
        if self.encoder is not None:
            h = self.encoder(h, padding_mask(lengths, h.size(1)))
        return h, lengths


@INGESTORS.register("wemb")
class WEmbIngestor(_ContextIngestor):
    def __init__(
        self, vocab_size: int, d_model: int, heads: int = 4, d_ff: int = 1024, layers: int = 3, rf: int = 1,
        dropout: float = 0.1, attention_dropout: float = 0.0,
    ):
        super().__init__(d_model, heads, d_ff, layers, dropout, rf, attention_dropout)
        self.vocab_size = vocab_size
        self.conv = nn.Conv1d(vocab_size, d_model, rf, padding=rf // 2, bias=False)
        nn.init.normal_(self.conv.weight, std=d_model**-0.5)

    def forward(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = log_probs.exp()
        if self.rf == 1:  # P @ W_emb: one matrix product, no transposes; padded rows are never read
            h = F.linear(probs.to(self.conv.weight.dtype), self.conv.weight.squeeze(-1))
        else:  # zeros at padding, so the convolution sees the border an unpadded sequence sees
            probs = zero_padding(probs, padding_mask(lengths, log_probs.size(1)))
            h = self.conv(probs.to(self.conv.weight.dtype).transpose(1, 2)).transpose(1, 2)
        return self._contextualise(h, lengths)


@INGESTORS.register("beamconv")
class BeamConvIngestor(_ContextIngestor):
    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        beam: int = 10,
        embed_dim: int = 100,
        heads: int = 4,
        d_ff: int = 1024,
        layers: int = 3,
        rf: int = 1,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
    ):
        super().__init__(d_model, heads, d_ff, layers, dropout, rf, attention_dropout)
        if beam > vocab_size:
            raise ValueError(f"beamconv beam {beam} exceeds the vocabulary size {vocab_size}")
        self.vocab_size, self.beam = vocab_size, beam
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.conv = nn.Conv1d(beam * embed_dim, d_model, rf, padding=rf // 2)
        nn.init.normal_(self.conv.weight, std=(beam * embed_dim) ** -0.5 * d_model**-0.5)

    def forward(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top = log_probs.detach().topk(self.beam, dim=-1).indices  # (B, K, beam), ranked
        r = self.embed(top).flatten(2)  # (B, K, beam * embed_dim)
        r = zero_padding(r, padding_mask(lengths, r.size(1)))
        h = self.conv(r.transpose(1, 2)).transpose(1, 2)
        return self._contextualise(zero_padding(h, padding_mask(lengths, h.size(1))), lengths)


@INGESTORS.register("hidden")
class HiddenIngestor(nn.Module):
    """Baseline decoders attend to the encoder's hidden states; a projection when widths differ."""

    input_kind = HIDDEN

    def __init__(self, d_model: int, input_dim: Optional[int] = None):
        super().__init__()
        self.input_dim = input_dim or d_model  # the width of the states it reads
        self.proj = nn.Linear(input_dim, d_model) if input_dim and input_dim != d_model else nn.Identity()

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.proj(hidden), lengths
