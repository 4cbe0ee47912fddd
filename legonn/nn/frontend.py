"""Input layers of an encoder module: speech convolution front-end or text token embedding.

Each maps (x, lengths) -> (B, T', d_model) states with sinusoidal positions, and new lengths.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from legonn.nn.dropout import Dropout
from legonn.nn.interface import FEATURES, TOKENS
from legonn.nn.mask import padding_mask, zero_padding
from legonn.nn.positional import SinusoidalPE
from legonn.registry import FRONTENDS


@FRONTENDS.register("conv2d")
class Conv2dFrontend(nn.Module):
    """Two Conv2d(3x3) + ReLU + 2x2 max-pool blocks (64 then 128 maps): time and frequency / 4.

    Padded frames are zeroed after every block so a padded utterance sees exactly the zero
    border an unpadded one sees: outputs do not depend on what else is in the batch.
    """

    input_kind = FEATURES

    def __init__(self, input_dim: int, d_model: int, channels: tuple[int, int] = (64, 128), dropout: float = 0.1):
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.proj = nn.Linear(c2 * (input_dim // 4), d_model)
        self.pe = SinusoidalPE(d_model)
        self.dropout = Dropout(dropout)
        self.input_dim = input_dim
        # Channels-last weights too (20-25 % faster front-end than converting them per step);
        # state dicts get the plain layout, which safetensors requires.
        self.to(memory_format=torch.channels_last)
        self.register_state_dict_post_hook(_plain_layout)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(torch.div(lengths, 2, rounding_mode="floor"), 2, rounding_mode="floor")

    def _masked(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T, F); time is dim 2.
        mask = padding_mask(lengths, x.size(2))
        return x.masked_fill(mask[:, None, :, None], 0.0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.size(-1) != self.input_dim:
            raise ValueError(f"conv2d front-end expects {self.input_dim}-dim features, got {x.size(-1)}")
        # Channels-last is the layout the CPU convolution kernels want (no reorders around them);
        # ReLU after the pool (they commute) touches a quarter of the elements.
        h = self._masked(x.unsqueeze(1), lengths).contiguous(memory_format=torch.channels_last)
        for conv in (self.conv1, self.conv2):
            h = torch.relu(self.pool(conv(h)))
            lengths = torch.div(lengths, 2, rounding_mode="floor")
            h = self._masked(h, lengths)
        b, c, t, f = h.shape
        h = self.proj(h.transpose(1, 2).reshape(b, t, c * f))
        h = self.dropout(h + self.pe(t))
        return zero_padding(h, padding_mask(lengths, t)), lengths


def _plain_layout(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for name, tensor in state_dict.items():
        if name.startswith(prefix):
            state_dict[name] = tensor.contiguous()


@FRONTENDS.register("embedding")
class TokenEmbedding(nn.Module):
    """Token ids -> scaled embeddings + sinusoidal positions (fairseq's sqrt(d) scaling)."""

    input_kind = TOKENS

    def __init__(self, vocab_size: int, d_model: int, dropout: float = 0.1, padding_idx: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.embed.weight[padding_idx].zero_()
        self.scale = math.sqrt(d_model)
        self.pe = SinusoidalPE(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed(tokens) * self.scale + self.pe(tokens.size(1))
        return self.dropout(h), lengths
