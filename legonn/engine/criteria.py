"""Training criteria: the loss of one forward pass, chosen from YAML as ``criterion: {type, conf}``.

A criterion sees the batch and every module's output (legonn.nn.chain.ChainOutput) and returns
the total loss and its logged parts. It is an ``nn.Module`` so that it can hold state (buffers
saved in the checkpoint, a teacher model) and move to the training device with the model; the
model itself computes no loss, so a new criterion (e.g. distillation) needs no change there.

The default, ``legonn_joint``, is the joint loss of paper Eq. 9:

    F = CE(decoder) + sum_{i < M} loss_weight_i * CTC(module i against its own target sequence)

each term normalised per target token before weighting (the decoder's term is weighted by its
``loss_weight`` too, 1 by default).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from legonn.data.batching import Batch
from legonn.nn.chain import Chain, ChainOutput, target_of
from legonn.nn.ctc import CTCInterface
from legonn.nn.loss import label_smoothed_ce
from legonn.registry import CRITERIA


@dataclass
class TermReport:
    loss: torch.Tensor  # per-token loss of this term
    tokens: int
    correct: Optional[int] = None  # token-level scoring (the decoder) only
    skipped: int = 0  # CTC only: utterances whose target does not fit
    weight: float = 1.0  # its weight in the total (validation weights the per-term means alike)


@dataclass
class LossReport:
    total: torch.Tensor
    terms: dict[str, TermReport] = field(default_factory=dict)


class Criterion(nn.Module):
    """Base class: ``forward(batch, output) -> LossReport``.

    ``optim_keys``: keys of the config's ``optim`` section the criterion takes as defaults for
    its own conf (so ``optim.label_smoothing`` keeps working).
    """

    optim_keys: tuple[str, ...] = ()

    def __init__(self, chain: Chain):
        super().__init__()
        self.specs = chain.specs  # the chain's own list: a changed loss_weight is seen at once

    def forward(self, batch: Batch, output: ChainOutput) -> LossReport:
        raise NotImplementedError


@CRITERIA.register("legonn_joint")
class JointLoss(Criterion):
    """Paper Eq. 9: label-smoothed CE at the decoder plus weighted CTC of every module with a target."""

    optim_keys = ("label_smoothing",)

    def __init__(self, chain: Chain, label_smoothing: float = 0.1):
        super().__init__(chain)
        self.label_smoothing = label_smoothing

    def forward(self, batch: Batch, output: ChainOutput) -> LossReport:
        terms: dict[str, TermReport] = {}
        total = batch.inputs.new_zeros((), dtype=torch.float32)
        for spec, out in zip(self.specs, output.outputs):
            if spec.target is None or spec.loss_weight == 0 or out.log_probs is None:
                continue
            tgt, tgt_len = target_of(batch.targets, spec)
            ctc = CTCInterface.loss(out.log_probs, out.lengths, tgt, tgt_len)
            term = ctc.total / max(ctc.tokens, 1)
            terms[spec.name] = TermReport(term, ctc.tokens, skipped=ctc.skipped, weight=spec.loss_weight)
            total = total + spec.loss_weight * term
        if output.logits is not None:
            spec = self.specs[-1]
            ce = label_smoothed_ce(output.logits, output.gold, self.label_smoothing)
            term = ce.total / max(ce.tokens, 1)
            terms[spec.name] = TermReport(term, ce.tokens, correct=ce.correct, weight=spec.loss_weight)
            total = total + spec.loss_weight * term
        return LossReport(total, terms)


def build_criterion(config: dict[str, Any], chain: Chain) -> Criterion:
    """The config's ``criterion`` section for ``chain``; conf keys left out fall back to ``optim``."""
    section = config["criterion"]
    cls = CRITERIA.get(section["type"])
    conf = {key: config["optim"][key] for key in cls.optim_keys}
    conf.update(section.get("conf") or {})
    return CRITERIA.build(section["type"], conf, chain=chain)
