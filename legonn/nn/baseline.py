"""The plain transformer encoder-decoder the paper compares against (no interface vocabulary).

Its encoder has no OLC and at most an auxiliary CTC head (hybrid CTC/attention training);
its decoder cross-attends to the encoder's hidden states, so swapping either half between
independently trained models breaks it (the modularity stress tests of §III-E).
"""
from __future__ import annotations

from typing import Any, Optional

from legonn.nn.decoder import LegoDecoder
from legonn.nn.encoder import LegoEncoder
from legonn.nn.interface import HIDDEN
from legonn.registry import MODULES


@MODULES.register("transformer_encoder")
class TransformerEncoderModule(LegoEncoder):
    def __init__(
        self,
        input: dict[str, Any],
        d_model: int = 256,
        heads: int = 4,
        d_ff: int = 1024,
        layers: int = 6,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        ctc_vocab_size: Optional[int] = None,
    ):
        super().__init__(input, d_model, heads, d_ff, layers, dropout, attention_dropout, None, ctc_vocab_size)
        # The CTC head, when present, only adds its auxiliary loss: the decoder reads hidden states.
        self.output_kind = HIDDEN


@MODULES.register("transformer_decoder")
class TransformerDecoderModule(LegoDecoder):
    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        heads: int = 4,
        d_ff: int = 1024,
        layers: int = 6,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        tie_output: bool = True,
        input_dim: Optional[int] = None,
    ):
        ingestor = {"type": "hidden", "input_dim": input_dim}
        super().__init__(vocab_size, ingestor, d_model, heads, d_ff, layers, dropout, attention_dropout, tie_output)
