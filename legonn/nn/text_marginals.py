"""Text as marginals: the module that stands, in training, where a recogniser will stand.

A module that reads marginals over a vocabulary (a WEmb or BeamConv ingestor) can be trained on
text alone when something turns the text into marginals; composed afterwards behind a speech
recogniser whose CTC softmax is over the same vocabulary, it translates speech without ever
having seen any (zero-shot speech translation by composition). ``text_marginals`` is that
something: tokens in, log-marginals over the same vocabulary out, no weights.

How close its marginals come to a recogniser's is a design decision, with two knobs (both off:
each token a one-hot position):

* ``smoothing`` ε: each position puts 1 - ε on its token and ε spread over the vocabulary, as a
  recogniser that is not quite sure; the same in training and at evaluation.
* ``ctc_frames``: in training only, CTC-shaped sequences: each token spread over 1..``max_repeat``
  frames and each gap between tokens given blank frames with probability ``blank_rate``
  (geometric, at most ``max_repeat``), as a CTC recogniser's frame-level output is (peaky
  tokens in runs of blanks). At evaluation the sequence is the tokens, one position each.

Its output is over its input's vocabulary; a chain names that stream as the module's target
(with loss weight 0: it learns nothing), so that export records the interface.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from legonn.data.batching import pad
from legonn.data.vocab import BLANK
from legonn.nn.interface import MARGINALS, TOKENS, ModuleOutput
from legonn.registry import MODULES


@MODULES.register("text_marginals")
class TextMarginals(nn.Module):
    input_kind = TOKENS
    output_kind = MARGINALS

    def __init__(self, vocab_size: int, smoothing: float = 0.0, ctc_frames: bool = False, blank_rate: float = 0.5,
                 max_repeat: int = 3, distractors: int = 0):
        super().__init__()
        if not 0 <= smoothing < 1:
            raise ValueError(f"text_marginals smoothing must be in [0, 1), got {smoothing}")
        if not 0 <= blank_rate < 1 or max_repeat < 1:
            raise ValueError(f"text_marginals needs 0 <= blank_rate < 1 and max_repeat >= 1, got {blank_rate}, {max_repeat}")
        if distractors and not (smoothing > 0 and 0 < distractors < vocab_size):
            raise ValueError(f"text_marginals distractors need smoothing > 0 and 0 < distractors < vocab_size "
                             f"({vocab_size}), got {distractors} with smoothing {smoothing}")
        self.input_vocab_size = self.output_vocab_size = vocab_size
        self.smoothing, self.ctc_frames, self.blank_rate, self.max_repeat = smoothing, ctc_frames, blank_rate, max_repeat
        self.distractors = distractors

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Positions at evaluation: one per token (training's CTC-shaped lengths are random)."""
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> ModuleOutput:
        tokens, lengths = (self._ctc_shaped(x, lengths) if self.training and self.ctc_frames else (x, lengths))
        log_probs = self._with_distractors(tokens) if self.distractors else self._smoothed(tokens)
        return ModuleOutput(hidden=log_probs, lengths=lengths, log_probs=log_probs)

    def _smoothed(self, tokens: torch.Tensor) -> torch.Tensor:
        v = self.output_vocab_size
        low = self.smoothing / v
        log_probs = torch.full((*tokens.shape, v), math.log(low) if low > 0 else -1e4, device=tokens.device)
        return log_probs.scatter_(-1, tokens.unsqueeze(-1), math.log(1 - self.smoothing + low))

    def _with_distractors(self, tokens: torch.Tensor) -> torch.Tensor:
        """Drawn on the CPU, from torch's generator in training (a resumed run restores it) and
        from a fixed seed at evaluation."""
        generator = None if self.training else torch.Generator().manual_seed(0)
        shape = (*tokens.shape, self.distractors)
        others = torch.randint(self.output_vocab_size, shape, generator=generator).to(tokens.device)
        shares = torch.empty(shape).exponential_(generator=generator).to(tokens.device)  # Dirichlet(1) once normalised
        probs = torch.zeros(*tokens.shape, self.output_vocab_size, device=tokens.device)
        probs.scatter_add_(-1, others, self.smoothing * shares / shares.sum(-1, keepdim=True))
        probs.scatter_add_(-1, tokens.unsqueeze(-1), torch.full_like(tokens, 1 - self.smoothing, dtype=probs.dtype).unsqueeze(-1))
        return probs.clamp_min(1e-30).log()  # finite where probs are 0, as in the one-hot case

    def _ctc_shaped(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames drawn from torch's CPU generator, which a resumed training restores."""
        rows = []
        for row, n in zip(x.cpu(), lengths.cpu().tolist()):
            frames: list[int] = []
            for token in row[:n].tolist():
                gap = 1 if frames and frames[-1] == token else 0  # CTC needs a blank between repeated tokens
                while gap < self.max_repeat and float(torch.rand(())) < self.blank_rate:
                    gap += 1
                frames += [BLANK] * gap + [token] * int(torch.randint(1, self.max_repeat + 1, ()))
            rows.append(frames or [BLANK])
        frames, frame_lengths = pad([np.array(r, dtype=np.int64) for r in rows])
        return frames.to(x.device, x.dtype), frame_lengths.to(lengths.device)

    def extra_repr(self) -> str:
        return (f"vocab_size={self.output_vocab_size}, smoothing={self.smoothing}, ctc_frames={self.ctc_frames}, "
                f"blank_rate={self.blank_rate}, max_repeat={self.max_repeat}, distractors={self.distractors}")

