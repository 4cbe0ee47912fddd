"""A LegoNN system: M modules in a row, encoder modules then (usually) one decoder.

Each module names the target stream its loss learns (``target``), e.g. phonemes for a phoneme
recogniser, English BPE for a translation encoder, and its weight in the loss (``loss_weight``).
The chain computes no loss: its forward pass returns what a training criterion needs
(legonn/engine/criteria.py; the default is the joint loss of paper Eq. 9), so another criterion,
e.g. distillation, needs no change here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

import legonn.nn.baseline  # noqa: F401  (registers the baseline module types)
import legonn.nn.ctc_compress  # noqa: F401
import legonn.nn.decoder  # noqa: F401
import legonn.nn.encoder  # noqa: F401
import legonn.nn.text_marginals  # noqa: F401
from legonn.data.vocab import EOS, PAD, SOS
from legonn.errors import LegonnError
from legonn.nn.interface import MARGINALS, TOKENS, ModuleOutput
from legonn.nn.loss import IGNORE
from legonn.nn.transformer import Route
from legonn.registry import MODULES

SPEC_KEYS = {"name", "type", "conf", "target", "loss_weight"}


@dataclass
class ModuleSpec:
    name: str
    type: str
    conf: dict[str, Any]
    target: Optional[str] = None  # target stream of its loss; None: no loss of its own
    loss_weight: float = 1.0

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str = "model") -> "ModuleSpec":
        if not isinstance(raw, dict):
            raise LegonnError(f"{where}: each module is a mapping with name, type, conf, target, loss_weight")
        unknown = set(raw) - SPEC_KEYS
        if unknown:
            raise LegonnError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(SPEC_KEYS))})")
        for key in ("name", "type"):
            if key not in raw:
                raise LegonnError(f"{where}: module needs a '{key}'")
        return cls(raw["name"], raw["type"], dict(raw.get("conf") or {}), raw.get("target"), float(raw.get("loss_weight", 1.0)))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "conf": self.conf, "target": self.target, "loss_weight": self.loss_weight}


def build_module(type_name: str, conf: dict[str, Any]) -> nn.Module:
    try:
        module = MODULES.build(type_name, conf)
    except (TypeError, ValueError) as exc:
        raise LegonnError(f"module '{type_name}': {exc}") from None
    module.spec_type, module.spec_conf = type_name, dict(conf)
    return module


@dataclass
class ChainOutput:
    """One teacher-forced forward pass: every module's output, for a criterion to score."""

    outputs: list[ModuleOutput]  # one per module in chain order; the decoder's: its final states, no log_probs
    logits: Optional[torch.Tensor] = None  # decoder (B, U+1, V) over <sos> y
    gold: Optional[torch.Tensor] = None  # decoder (B, U+1): y <eos>, IGNORE at padding


def decoder_io(targets: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, U) padded targets -> decoder input <sos> y and gold y <eos> (IGNORE at padding)."""
    b, u = targets.shape
    prev = torch.full((b, u + 1), PAD, dtype=targets.dtype, device=targets.device)
    prev[:, 0] = SOS
    prev[:, 1:] = targets
    gold = torch.full((b, u + 1), IGNORE, dtype=targets.dtype, device=targets.device)
    real = torch.arange(u, device=targets.device).unsqueeze(0) < lengths.unsqueeze(1)
    gold[:, :u] = torch.where(real, targets, torch.full_like(targets, IGNORE))
    gold[torch.arange(b, device=targets.device), lengths] = EOS
    # <sos> followed by padding is never read by a real position (causal attention), so PAD is fine.
    return prev, gold


class Chain(nn.Module):
    """Encoder modules then one decoder; or encoder modules only (a CTC-only system)."""

    def __init__(self, specs: list[ModuleSpec], modules: list[nn.Module]):
        super().__init__()
        if not specs:
            raise LegonnError("model: a chain needs at least one module")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise LegonnError(f"model: module names must be unique, got {names}")
        self.specs = specs
        self.blocks = nn.ModuleDict(zip(names, modules))
        check_links([(s.name, m) for s, m in zip(specs, modules)])

    @classmethod
    def from_specs(cls, raw_specs: list[dict[str, Any]]) -> "Chain":
        if not isinstance(raw_specs, list):
            raise LegonnError("model: expected a list of modules")
        specs = [ModuleSpec.parse(r, f"model[{i}]") for i, r in enumerate(raw_specs)]
        return cls(specs, [build_module(s.type, s.conf) for s in specs])

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def decoder(self) -> Optional[nn.Module]:
        last = self.blocks[self.specs[-1].name]
        return last if getattr(last, "output_kind", None) == TOKENS else None

    @property
    def encoder_names(self) -> list[str]:
        return self.names[:-1] if self.decoder is not None else self.names

    def encode(self, x: torch.Tensor, lengths: torch.Tensor, routes: Optional[dict[str, Route]] = None) -> list[ModuleOutput]:
        """Run every encoder module; outputs in order (the last one feeds the decoder). ``routes``:
        module name -> how its stack runs (legonn.nn.transformer.Route), for modules given one."""
        outputs = []
        routes = routes or {}
        for name in self.encoder_names:
            route = routes.get(name)  # only modules with a stack take one
            out = self.blocks[name](x, lengths) if route is None else self.blocks[name](x, lengths, route)
            outputs.append(out)
            x, lengths = out.interface(self._next_kind(name)), out.lengths
        return outputs

    def _next_kind(self, name: str) -> str:
        idx = self.names.index(name)
        if idx + 1 < len(self.names):
            return self.blocks[self.names[idx + 1]].input_kind
        return self.blocks[name].output_kind

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, targets: dict[str, tuple[torch.Tensor, torch.Tensor]],
        routes: Optional[dict[str, Route]] = None,
    ) -> ChainOutput:
        """Encode ``x``; the decoder, if any, reads its target stream teacher-forced."""
        outputs = self.encode(x, lengths, routes)
        decoder = self.decoder
        if decoder is None:
            return ChainOutput(outputs)
        tgt, tgt_len = target_of(targets, self.specs[-1])
        prev, gold = decoder_io(tgt, tgt_len)
        hidden = decoder.states(outputs[-1], prev, (routes or {}).get(self.specs[-1].name))
        return ChainOutput(outputs + [ModuleOutput(hidden, tgt_len + 1)], decoder.out_proj(hidden), gold)


def target_of(targets: dict[str, tuple[torch.Tensor, torch.Tensor]], spec: ModuleSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The (padded ids, lengths) of the stream ``spec`` learns; a missing stream is a config error."""
    if spec.target not in targets:
        raise LegonnError(f"module '{spec.name}' learns target '{spec.target}' but the data has only {sorted(targets)}")
    return targets[spec.target]


def check_links(named: list[tuple[str, nn.Module]]) -> None:
    """Adjacent modules must speak the same kind of interface, of the same size; a decoder ends a chain."""
    for (name_a, a), (name_b, b) in zip(named, named[1:]):
        out_kind, in_kind = getattr(a, "output_kind", None), getattr(b, "input_kind", None)
        if out_kind == TOKENS:
            raise LegonnError(f"cannot chain '{name_a}' -> '{name_b}': '{name_a}' is a decoder (it generates tokens): "
                              "only the last module of a chain can be one")
        if out_kind != in_kind:
            raise LegonnError(f"cannot chain '{name_a}' -> '{name_b}': '{name_a}' outputs {out_kind}, '{name_b}' reads {in_kind}")
        if in_kind == MARGINALS and a.output_vocab_size != b.input_vocab_size:
            raise LegonnError(
                f"cannot chain '{name_a}' -> '{name_b}': {a.output_vocab_size} output symbols vs {b.input_vocab_size} input symbols"
            )
