"""LegoNN decoder module (paper §III-D): ingestor + causal transformer decoder + output layer.

The decoder cross-attends to what its ingestor made of the previous module's output; with the
``hidden`` ingestor it is the baseline decoder reading encoder states. Token ids follow
``legonn.data.vocab``: index 2 is both start and end of sentence, index 0 pads.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

import legonn.nn.ingestor  # noqa: F401  (registers the ingestors)
from legonn.data.vocab import PAD
from legonn.nn.dropout import Dropout
from legonn.nn.interface import MARGINALS, TOKENS, ModuleOutput
from legonn.nn.mask import padding_mask
from legonn.nn.positional import SinusoidalPE
from legonn.nn.transformer import Route, TransformerCrossStack, reorder_cache
from legonn.registry import INGESTORS, MODULES


@MODULES.register("lego_decoder")
class LegoDecoder(nn.Module):
    output_kind = TOKENS

    def __init__(
        self,
        vocab_size: int,
        ingestor: dict[str, Any],
        d_model: int = 256,
        heads: int = 4,
        d_ff: int = 1024,
        layers: int = 6,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        tie_output: bool = True,
    ):
        super().__init__()
        spec = dict(ingestor)
        kind = spec.pop("type", None)
        if kind is None:
            raise ValueError("decoder ingestor needs a 'type' (wemb, beamconv or hidden)")
        if INGESTORS.get(kind).input_kind == MARGINALS:
            for key, value in (("heads", heads), ("d_ff", d_ff), ("dropout", dropout), ("attention_dropout", attention_dropout)):
                spec.setdefault(key, value)
        self.ingestor = INGESTORS.build(kind, spec, d_model=d_model)
        self.input_kind = self.ingestor.input_kind
        self.input_vocab_size = spec.get("vocab_size")
        self.output_vocab_size = vocab_size
        self.d_model = d_model
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.scale = math.sqrt(d_model)
        self.pe = SinusoidalPE(d_model)
        self.dropout = Dropout(dropout)
        self.decoder = TransformerCrossStack(d_model, heads, d_ff, layers, dropout, attention_dropout, causal=True)
        self.out_proj = nn.Linear(d_model, vocab_size, bias=False)
        if tie_output:
            self.out_proj.weight = self.embed.weight

    def ingest(self, previous: ModuleOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """The memory the decoder attends to: (B, K, D) and its padding mask."""
        memory, lengths = self.ingestor(previous.interface(self.input_kind), previous.lengths)
        return memory, padding_mask(lengths, memory.size(1))

    def _embed(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        return self.dropout(self.embed(tokens) * self.scale + self.pe(tokens.size(1), offset))

    def forward(self, previous: ModuleOutput, prev_tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: prev_tokens (B, U) start with <sos>; returns logits (B, U, V)."""
        return self.out_proj(self.states(previous, prev_tokens))

    def states(self, previous: ModuleOutput, prev_tokens: torch.Tensor, route: Optional[Route] = None) -> torch.Tensor:
        """Teacher forcing, the final states (B, U, D) before the output layer; ``route``: how the
        stack runs (legonn.nn.transformer.Route)."""
        memory, memory_padding = self.ingest(previous)
        # Causal attention alone keeps real positions from seeing right padding; the mask lets the
        # stack skip padded positions' work.
        return self.decoder(self._embed(prev_tokens), prev_tokens.eq(PAD), memory, memory_padding, route=route)

    def decode(self, prev_tokens: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor) -> torch.Tensor:
        # Causal attention alone keeps real positions from seeing right padding.
        h = self.decoder(self._embed(prev_tokens), None, memory, memory_padding)
        return self.out_proj(h)

    def new_cache(self, max_len: int = 0) -> list[dict]:
        """An empty cache for ``step``, sized for ``max_len`` steps when given (it grows past it)."""
        return self.decoder.new_cache(max_len)

    def reorder_cache(self, cache: list[dict], rows: torch.Tensor, memory_rows: Optional[torch.Tensor] = None) -> None:
        """Keep the cache's rows ``rows`` in place; the memory's keys/values follow ``memory_rows``."""
        reorder_cache(cache, rows, memory_rows)

    def step(
        self, last_tokens: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor, cache: list[dict]
    ) -> torch.Tensor:
        """One incremental step: last_tokens (B,) -> next-token logits (B, V); ``cache`` is updated."""
        offset = cache[0]["self"].length
        h = self.decoder(self._embed(last_tokens.unsqueeze(1), offset), None, memory, memory_padding, cache=cache)
        return self.out_proj(h[:, -1])
