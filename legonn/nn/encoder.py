"""LegoNN encoder module (paper §III-C): input layer, transformer blocks, optional OLC, CTC head.

The input layer is chosen by name: ``conv2d`` (speech features), ``embedding`` (text tokens), or
an ingestor (``wemb``/``beamconv``) when the module reads the marginals of a previous module,
as the pronunciation model of a three-module ASR system does.
"""
from __future__ import annotations

import difflib
from typing import Any, Optional

import torch
from torch import nn

import legonn.nn.frontend  # noqa: F401  (registers the input layers)
import legonn.nn.ingestor  # noqa: F401
from legonn.errors import LegonnError
from legonn.nn.ctc import CTCInterface
from legonn.nn.interface import HIDDEN, MARGINALS, ModuleOutput
from legonn.nn.mask import padding_mask
from legonn.nn.olc import OutputLengthController
from legonn.nn.transformer import Route, TransformerEncoder
from legonn.registry import FRONTENDS, INGESTORS, MODULES


def build_input_layer(spec: dict[str, Any], d_model: int, heads: int, d_ff: int, dropout: float, attention_dropout: float = 0.0) -> nn.Module:
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind is None:
        raise ValueError("module input needs a 'type' (conv2d, embedding, wemb or beamconv)")
    if kind in FRONTENDS.names():
        spec.setdefault("dropout", dropout)
        return FRONTENDS.build(kind, spec, d_model=d_model)
    if kind not in INGESTORS.names():  # suggest from both tables, not from the ingestors alone
        known = FRONTENDS.names() + INGESTORS.names()
        close = difflib.get_close_matches(str(kind), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise LegonnError(f"unknown module input type '{kind}' (known: {', '.join(known)}){hint}")
    for key, value in (("heads", heads), ("d_ff", d_ff), ("dropout", dropout), ("attention_dropout", attention_dropout)):
        spec.setdefault(key, value)
    return INGESTORS.build(kind, spec, d_model=d_model)


@MODULES.register("lego_encoder")
class LegoEncoder(nn.Module):
    def __init__(
        self,
        input: dict[str, Any],
        d_model: int = 256,
        heads: int = 4,
        d_ff: int = 1024,
        layers: int = 6,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        olc: Optional[dict[str, Any]] = None,
        ctc_vocab_size: Optional[int] = None,
    ):
        super().__init__()
        self.input_layer = build_input_layer(input, d_model, heads, d_ff, dropout, attention_dropout)
        self.input_kind = getattr(self.input_layer, "input_kind")
        self.input_vocab_size = input.get("vocab_size")
        self.d_model = d_model
        self.encoder = TransformerEncoder(d_model, heads, d_ff, layers, dropout, attention_dropout)
        self.olc = None
        if olc is not None:
            olc = dict(olc)
            for key, value in (("heads", heads), ("d_ff", d_ff), ("dropout", dropout), ("attention_dropout", attention_dropout)):
                olc.setdefault(key, value)
            self.olc = OutputLengthController(d_model, **olc)
        self.ctc = CTCInterface(d_model, ctc_vocab_size) if ctc_vocab_size else None
        self.output_kind = MARGINALS if self.ctc is not None else HIDDEN
        self.output_vocab_size = ctc_vocab_size

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        if hasattr(self.input_layer, "output_lengths"):
            lengths = self.input_layer.output_lengths(lengths)
        return self.olc.output_lengths(lengths) if self.olc is not None else lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, route: Optional[Route] = None) -> ModuleOutput:
        """``route``: how the transformer blocks run (not the OLC's), see legonn.nn.transformer.Route."""
        h, lengths = self.input_layer(x, lengths)
        h = self.encoder(h, padding_mask(lengths, h.size(1)), route)
        if self.olc is not None:
            h, lengths = self.olc(h, lengths)
        log_probs = self.ctc(h) if self.ctc is not None else None
        return ModuleOutput(hidden=h, lengths=lengths, log_probs=log_probs)
