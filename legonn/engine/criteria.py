"""Training criteria: the loss of one forward pass, chosen from YAML as ``criterion: {type, conf}``.

A criterion sees the batch and every module's output (legonn.nn.chain.ChainOutput) and returns
the total loss and its logged parts. It is an ``nn.Module`` so that it can hold state (buffers
saved in the checkpoint, a teacher model) and move to the training device with the model; the
model itself computes no loss, so a new criterion (e.g. distillation) needs no change there.

The default, ``legonn_joint``, is the joint loss of paper Eq. 9:

    F = CE(decoder) + sum_{i < M} loss_weight_i * CTC(module i against its own target sequence)

each term normalised per target token before weighting (the decoder's term is weighted by its
``loss_weight`` too, 1 by default). ``modular_kd`` trains Modular Transformers' modular layers
(legonn/nn/modular.py): that task loss plus distillation from the frozen teacher.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from legonn.data.batching import Batch
from legonn.errors import LegonnError
from legonn.nn.chain import Chain, ChainOutput, target_of
from legonn.nn.ctc import CTCInterface
from legonn.nn.loss import IGNORE, label_smoothed_ce
from legonn.nn.mask import padding_mask
from legonn.nn.modular import ModularOutput, ModularStudent
from legonn.registry import CRITERIA


@dataclass
class TermReport:
    loss: torch.Tensor  # per-token loss of this term
    tokens: int
    correct: Optional[int] = None  # token-level scoring (the decoder) only
    skipped: int = 0  # CTC only: utterances whose target does not fit
    weight: float = 1.0  # its weight in the total (validation weights the per-term means alike)
    distillation: bool = False  # compares a student with its teacher: no accuracy, no CTC skips


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


def distribution_kl(teacher: torch.Tensor, student: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per row: KL(teacher || student) of the softmaxes at ``temperature``, times T^2 (so that its
    gradients keep their size as T changes). Inputs are logits or log-probabilities (B, V)."""
    t = torch.log_softmax(teacher.float() / temperature, dim=-1)
    s = torch.log_softmax(student.float() / temperature, dim=-1)
    return (t.exp() * (t - s)).sum(-1) * temperature**2


@CRITERIA.register("modular_kd")
class ModularDistillation(Criterion):
    """Module replacing + knowledge distillation (Modular Transformers), for a ``modular`` config:

        F = task_weight * Eq. 9 loss of the student
            + hidden_weight * mean over block boundaries of |s - t|^2 / |t|^2
            + output_weight * sum over modules of KL(teacher || student) at ``temperature``

    legonn's design decisions: hidden states are compared at the student's block boundaries (the
    teacher's state after the same teacher layer), as squared error relative to the teacher
    state's (the residual stream grows with depth; a relative error weighs every boundary alike);
    output distillation is distilBART's (KL at T = 2, times T^2), applied to the decoder's
    next-token distribution at every target position and to every encoder's CTC marginals (the
    LegoNN interface) at every output position, for each module from the first compressed one on.
    """

    optim_keys = ("label_smoothing",)

    def __init__(self, chain: Chain, label_smoothing: float = 0.1, task_weight: float = 1.0, hidden_weight: float = 1.0,
                 output_weight: float = 1.0, temperature: float = 2.0):
        if not isinstance(chain, ModularStudent):
            raise LegonnError("criterion modular_kd trains modular layers: the config needs a 'modular' section "
                              "(module name -> granularities) and the teacher's modules in trainer.init_modules")
        if temperature <= 0:
            raise LegonnError(f"criterion modular_kd: temperature must be positive, got {temperature}")
        super().__init__(chain)
        self.task = JointLoss(chain, label_smoothing)
        self.first_compressed = min(chain.names.index(name) for name in chain.granularities)
        self.task_weight, self.hidden_weight, self.output_weight = task_weight, hidden_weight, output_weight
        self.temperature = temperature

    def forward(self, batch: Batch, output: ModularOutput) -> LossReport:
        report = self.task(batch, output)
        for term in report.terms.values():
            term.weight *= self.task_weight
        total = self.task_weight * report.total
        if output.hidden_pairs:
            errors = [((s.float() - t.float()) ** 2).sum() / (t.float() ** 2).sum().clamp(min=1e-9) for s, t in output.hidden_pairs]
            hidden = torch.stack(errors).mean()
            rows = sum(s.size(0) for s, _ in output.hidden_pairs)
            report.terms["kd/hidden"] = TermReport(hidden, rows, weight=self.hidden_weight, distillation=True)
            total = total + self.hidden_weight * hidden
        teacher = output.teacher
        for i, (spec, out, t_out) in enumerate(zip(self.specs, output.outputs, teacher.outputs)):
            if i >= self.first_compressed and out.log_probs is not None:
                real = ~padding_mask(out.lengths, out.log_probs.size(1))
                total = total + self._distil(report, spec.name, t_out.log_probs[real], out.log_probs[real])
        if output.logits is not None:
            real = output.gold.ne(IGNORE)
            total = total + self._distil(report, self.specs[-1].name, teacher.logits[real], output.logits[real])
        report.total = total
        return report

    def _distil(self, report: LossReport, name: str, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """Module ``name``'s output-distillation term, recorded in ``report``; returns it weighted."""
        kl = distribution_kl(teacher, student, self.temperature)
        report.terms[f"kd/{name}"] = TermReport(kl.mean(), kl.numel(), weight=self.output_weight, distillation=True)
        return self.output_weight * kl.mean()


def build_criterion(config: dict[str, Any], chain: Chain) -> Criterion:
    """The config's ``criterion`` section for ``chain``; conf keys left out fall back to ``optim``."""
    section = config["criterion"]
    cls = CRITERIA.get(section["type"])
    conf = {key: config["optim"][key] for key in cls.optim_keys}
    conf.update(section.get("conf") or {})
    return CRITERIA.build(section["type"], conf, chain=chain)
