"""CTC compression: a recogniser's frame-level marginals shortened to about one position per token.

A CTC module emits one distribution per frame: long runs of blank and the same symbol repeated
over the frames it is heard in. A module that learnt to read marginals of another length (an MT
encoder trained on text, one position per token) sees four times too many positions when
composed behind a speech recogniser. ``ctc_compress`` bridges that without weights: frames whose
best symbol is blank are dropped, each run of frames with the same best symbol becomes one
position whose distribution is the run's average (the "average" compression of Gaido et al.,
2021, CTC-based compression for direct speech translation), and the blank's share of it is
removed (``drop_blank``) so each position looks like a smoothed token. The segmentation follows
the best path and is not differentiated; the averaged distributions are, so a composition with
this module in it fine-tunes end to end.

It is an interface module: marginals over a vocabulary in, marginals over the same vocabulary
out, no weights; ``legonn export --weightless ctc_compress --vocab V`` writes it as a module
folder that composes between the recogniser and the reader.
"""
from __future__ import annotations

import torch
from torch import nn

from legonn.data.vocab import BLANK
from legonn.nn.interface import MARGINALS, ModuleOutput
from legonn.registry import MODULES


@MODULES.register("ctc_compress")
class CTCCompress(nn.Module):
    input_kind = MARGINALS
    output_kind = MARGINALS

    def __init__(self, vocab_size: int, drop_blank: bool = True):
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"ctc_compress needs a vocabulary with a blank and a symbol, got vocab_size {vocab_size}")
        self.input_vocab_size = self.output_vocab_size = vocab_size
        self.drop_blank = drop_blank

    def segments(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(segment index of each frame, -1 for dropped frames; segments per utterance, at least 1)."""
        best = log_probs.argmax(-1)
        valid = torch.arange(best.shape[1], device=best.device) < lengths.unsqueeze(1)
        kept = valid & (best != BLANK)
        previous = torch.nn.functional.pad(best[:, :-1], (1, 0), value=BLANK)
        previous_kept = torch.nn.functional.pad(kept[:, :-1], (1, 0), value=False)
        starts = kept & ~(previous_kept & (previous == best))  # a blank between two equal symbols: two tokens
        index = torch.cumsum(starts.long(), 1) - 1
        counts = starts.sum(1)
        # An utterance the recogniser heard nothing in keeps one position: its least blank frame.
        empty = counts == 0
        if empty.any():
            blank_share = log_probs[..., BLANK].masked_fill(~valid, float("inf"))
            quietest = blank_share.argmin(1)
            rows = torch.nonzero(empty).squeeze(1)
            kept[rows, quietest[rows]] = True
            index[rows, quietest[rows]] = 0
            counts = counts.clamp(min=1)
        return index.masked_fill(~kept, -1), counts

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Unknown before the marginals are seen: at most the input's."""
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> ModuleOutput:
        index, counts = self.segments(x, lengths)
        b, t, v = x.shape
        width = int(counts.max())
        probs = x.float().exp()
        keep = index >= 0
        slot = index.clamp(min=0)  # dropped frames are added to slot 0 with weight 0
        weight = keep.to(probs.dtype).unsqueeze(-1)
        summed = torch.zeros(b, width, v, dtype=probs.dtype, device=x.device)
        summed.scatter_add_(1, slot.unsqueeze(-1).expand(b, t, v), probs * weight)
        frames = torch.zeros(b, width, dtype=probs.dtype, device=x.device).scatter_add_(1, slot, keep.to(probs.dtype))
        averaged = summed / frames.clamp(min=1).unsqueeze(-1)
        if self.drop_blank:
            averaged = averaged.clone()
            averaged[..., BLANK] = 0
        averaged = averaged / averaged.sum(-1, keepdim=True).clamp(min=1e-12)
        pad = torch.arange(width, device=x.device) >= counts.unsqueeze(1)
        log_probs = averaged.clamp(min=1e-12).log().masked_fill(pad.unsqueeze(-1), 0.0).to(x.dtype)
        return ModuleOutput(hidden=log_probs, lengths=counts.to(lengths.dtype), log_probs=log_probs)

    def extra_repr(self) -> str:
        return f"vocab_size={self.output_vocab_size}, drop_blank={self.drop_blank}"
