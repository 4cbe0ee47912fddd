"""Modular Transformers (Zhou, Le Bras, Choi, 2023): modular layers that each do the work of
several consecutive layers of a trained stack, and their assembly into stacks of any depth.

What the paper fixes: a modular layer has the function of g >= 2 consecutive teacher layers;
modular layers of several granularities are trained in one phase (module replacing + knowledge
distillation) and assembled afterwards to meet a budget. legonn's design decisions, beyond that:

* **Alignment.** The j-th modular layer of granularity g replaces teacher layers
  [g*j, g*(j+1)); it exists only where that block fits inside the stack (N layers).
* **Assemblies** are tilings of [0, N) by such blocks and by single teacher layers (a block of
  size 1 is the teacher's own layer, kept). Depth = number of blocks; compression ratio of a
  stack = N / depth.
* **Multi-grained replacing.** Each training step draws one assembly per stack
  (``sample_plan``): walking up the stack, at each layer a block starts with probability p (the
  curriculum's current value), its granularity uniform among those aligned there; otherwise the
  teacher's layer is kept. p = 0 is the teacher, p = 1 uses no teacher layer where a block fits.
* **Architecture and initialisation.** A modular layer has the teacher layer's shape (so every
  assembly of the same depth has the same size) and starts as a copy of the first teacher layer
  of its block (as BERT-of-Theseus's successors start from the predecessor's first layers).
* **Which stack.** A module's modular layers replace its main stack: a decoder's layers, an
  encoder's transformer blocks. An encoder's OLC blocks (1-2 layers), input layer, CTC head and
  final LayerNorms stay the teacher's, so a compressed module keeps its interface by construction.
* **Training pass** (:class:`ModularStudent`). The teacher chain is frozen and runs once per
  batch without dropout and gradients, giving the distillation targets (its outputs and the
  states at the student's block boundaries); then the student, the chain with this step's
  assemblies, runs as usual. Only modular layers are trained. Validation runs, every time, the
  assembly that replaces every stack by its finest modular layers (the ~2x model), so validation
  losses are comparable across the phase.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Optional

import torch
from torch import nn

from legonn.errors import LegonnError
from legonn.nn.chain import Chain, ChainOutput
from legonn.nn.decoder import LegoDecoder
from legonn.nn.encoder import LegoEncoder
from legonn.nn.transformer import Route


@dataclass(frozen=True, order=True)
class Block:
    """Teacher layers [start, start + size); size 1 keeps the teacher's layer."""

    start: int
    size: int

    @property
    def name(self) -> str:
        """The modular layer's key (``g2_1``: granularity 2, second block); teacher layers: ``t3``."""
        return f"t{self.start}" if self.size == 1 else f"g{self.size}_{self.start // self.size}"


Plan = tuple[Block, ...]


def check_granularities(n_layers: int, granularities: Iterable[int]) -> tuple[int, ...]:
    grans = tuple(sorted(set(int(g) for g in granularities)))
    bad = [g for g in grans if g < 2 or g > n_layers]
    if not grans or bad:
        raise LegonnError(f"modular granularities must be between 2 and the stack's {n_layers} layers, got {list(grans)}")
    return grans


def _fits(start: int, size: int, n_layers: int) -> bool:
    """A block of ``size`` layers may start at ``start``: aligned to its size, inside the stack."""
    return start % size == 0 and start + size <= n_layers


def blocks(n_layers: int, granularities: Iterable[int]) -> list[Block]:
    """Every modular layer a stack of ``n_layers`` can have: aligned blocks that fit."""
    return [Block(g * j, g) for g in check_granularities(n_layers, granularities) for j in range(n_layers // g)]


def plans(n_layers: int, granularities: Iterable[int]) -> list[Plan]:
    """Every assembly: tilings of the stack by aligned modular blocks and kept teacher layers."""
    return list(_tilings(n_layers, check_granularities(n_layers, granularities), 0))


@lru_cache(maxsize=None)
def _tilings(n_layers: int, grans: tuple[int, ...], start: int) -> tuple[Plan, ...]:
    if start == n_layers:
        return ((),)
    out = []
    for size in (1, *grans):
        if _fits(start, size, n_layers):
            out.extend((Block(start, size),) + rest for rest in _tilings(n_layers, grans, start + size))
    return tuple(out)


def depths(n_layers: int, granularities: Iterable[int]) -> list[int]:
    """The stack depths some assembly reaches, shallowest first."""
    return sorted({len(p) for p in plans(n_layers, granularities)})


def depth_for_ratio(n_layers: int, granularities: Iterable[int], ratio: float) -> int:
    """The depth an assembly compressed ``ratio`` times has: the reachable depth nearest
    N / ratio, refused when none is within half a layer of it or ``ratio`` exceeds the largest
    compression the granularities allow."""
    if ratio < 1:
        raise LegonnError(f"a compression ratio is at least 1, got {ratio}")
    reachable, wanted = depths(n_layers, granularities), n_layers / ratio
    best = min(reachable, key=lambda d: (abs(d - wanted), -d))
    if abs(best - wanted) > 0.5 or ratio > n_layers / reachable[0] + 1e-9:
        shown = ", ".join(f"{n_layers / d:.2g}x ({d} layers)" for d in reachable)
        raise LegonnError(f"compression {ratio}x is not reachable for {n_layers} layers with granularities "
                          f"{list(check_granularities(n_layers, granularities))}: possible {shown}")
    return best


def sample_plan(n_layers: int, granularities: Iterable[int], p: float, generator: torch.Generator) -> Plan:
    """One training step's assembly, drawn from ``generator`` (its state is what a resumed run
    restores)."""
    grans, plan, start = check_granularities(n_layers, granularities), [], 0
    while start < n_layers:
        fitting = [g for g in grans if _fits(start, g, n_layers)]
        size = 1
        if fitting and float(torch.rand((), generator=generator)) < p:
            size = fitting[int(torch.randint(len(fitting), (), generator=generator))]
        plan.append(Block(start, size))
        start += size
    return tuple(plan)


def replacement_probability(step: int, start: float, slope: float) -> float:
    """The curriculum p_t = min(1, start + slope * t) (BERT-of-Theseus's linear schedule)."""
    return min(1.0, max(0.0, start + slope * step))


INITS = ("copy", "random")


def modular_layers(teacher_layers: nn.ModuleList, granularities: Iterable[int], init: str = "copy") -> nn.ModuleDict:
    """One new layer per aligned block, trainable: a copy of its block's first teacher layer
    (``copy``) or a layer of that shape with PyTorch's default initialisation (``random``: a
    student trained from scratch, the baseline the copies are measured against)."""
    if init not in INITS:
        raise LegonnError(f"modular layers' init must be one of {', '.join(INITS)}, got '{init}'")
    out = nn.ModuleDict()
    for block in blocks(len(teacher_layers), granularities):
        layer = copy.deepcopy(teacher_layers[block.start])
        if init == "random":
            for module in layer.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        layer.requires_grad_(True)
        out[block.name] = layer
    return out


def assemble(plan: Plan, teacher_layers: nn.ModuleList, modular: nn.ModuleDict) -> list[nn.Module]:
    """The layers of an assembly, in order: kept teacher layers and modular layers."""
    expected = 0
    for block in plan:
        if block.start != expected:
            raise LegonnError(f"assembly {plan_names(plan)} does not tile layers 0..{len(teacher_layers) - 1}")
        expected += block.size
    if expected != len(teacher_layers):
        raise LegonnError(f"assembly {plan_names(plan)} covers {expected} of {len(teacher_layers)} layers")
    missing = [b.name for b in plan if b.size > 1 and b.name not in modular]
    if missing:
        raise LegonnError(f"assembly needs modular layers {', '.join(missing)}, which were not trained")
    return [teacher_layers[b.start] if b.size == 1 else modular[b.name] for b in plan]


def teacher_plan(n_layers: int) -> Plan:
    """The assembly that keeps every teacher layer."""
    return tuple(Block(i, 1) for i in range(n_layers))


def finest_plan(n_layers: int, granularities: Iterable[int]) -> Plan:
    """Every layer replaced by the finest modular layers where they fit (teacher layers after)."""
    g = check_granularities(n_layers, granularities)[0]
    full = n_layers - n_layers % g
    return tuple(Block(s, g) for s in range(0, full, g)) + tuple(Block(i, 1) for i in range(full, n_layers))


def plan_names(plan: Plan) -> list[str]:
    return [b.name for b in plan]


def stack_of(module: nn.Module, name: str = "") -> nn.Module:
    """The stack a module's modular layers replace: a decoder's layers, an encoder's transformer
    blocks (not its OLC)."""
    if isinstance(module, LegoDecoder):
        return module.decoder
    if isinstance(module, LegoEncoder):
        return module.encoder
    raise LegonnError(f"modular: module '{name}' ({type(module).__name__}) has no transformer stack to compress")


@dataclass
class ModularOutput(ChainOutput):
    """The student's ChainOutput, with what distillation compares it with."""

    teacher: Optional[ChainOutput] = None
    # (student, teacher) states at the student's block boundaries from its first modular layer on,
    # real positions only, (N, D) each; the teacher's are detached.
    hidden_pairs: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


def parse_section(section: Any) -> dict[str, tuple[list[int], str]]:
    """The config's ``modular`` section -> module name -> (granularities, init). Per module either
    a list of granularities or ``{granularities: [...], init: copy|random}``."""
    if not isinstance(section, dict) or not section:
        raise LegonnError("modular: expected a mapping {module name: [granularities]}, e.g. {decoder: [2, 3, 6]}")
    out = {}
    for name, value in section.items():
        entry = value if isinstance(value, dict) else {"granularities": value}
        unknown = set(entry) - {"granularities", "init"}
        grans = entry.get("granularities")
        if unknown or not isinstance(grans, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in grans):
            raise LegonnError(f"modular.{name}: expected a list of granularities (integers) or "
                              f"{{granularities: [...], init: copy|random}}, got {value!r}")
        out[name] = (grans, entry.get("init", "copy"))
    return out


class ModularStudent(nn.Module):
    """A frozen teacher chain and the modular layers of some of its modules (``section``: the
    config's ``modular`` section, :func:`parse_section`). ``plans`` (module name -> Plan) is the
    assembly the next training pass runs; a trainer callback sets it per step (legonn.engine.callbacks)."""

    def __init__(self, teacher: Chain, section: dict[str, Any]):
        super().__init__()
        modules = parse_section(section)
        unknown = [n for n in modules if n not in teacher.blocks]
        if unknown:
            raise LegonnError(f"modular: no module named {', '.join(map(repr, unknown))} (modules: {', '.join(teacher.names)})")
        self.teacher = teacher.requires_grad_(False)
        self.granularities: dict[str, tuple[int, ...]] = {}
        self.modular = nn.ModuleDict()
        for name, (grans, init) in modules.items():
            layers = self.stack(name).layers
            self.granularities[name] = check_granularities(len(layers), grans)
            self.modular[name] = modular_layers(layers, grans, init)
        self.plans: dict[str, Plan] = {name: teacher_plan(self.depth(name)) for name in self.granularities}

    @property
    def specs(self):
        return self.teacher.specs

    @property
    def names(self) -> list[str]:
        return self.teacher.names

    def stack(self, name: str) -> nn.Module:
        return stack_of(self.teacher.blocks[name], name)

    def depth(self, name: str) -> int:
        """The teacher stack's number of layers."""
        return len(self.stack(name).layers)

    def validation_plans(self) -> dict[str, Plan]:
        return {name: finest_plan(self.depth(name), g) for name, g in self.granularities.items()}

    def assembled(self, name: str, plan: Plan) -> list[nn.Module]:
        return assemble(plan, self.stack(name).layers, self.modular[name])

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, targets: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> ModularOutput:
        plans = self.plans if self.training else self.validation_plans()
        teacher_routes = {name: Route(states=[]) for name in plans}
        was_training = self.teacher.training
        self.teacher.eval()
        with torch.no_grad():
            teacher = self.teacher(x, lengths, targets, teacher_routes)
        self.teacher.train(was_training)
        routes = {name: Route(self.assembled(name, plan), states=[]) for name, plan in plans.items()}
        student = self.teacher(x, lengths, targets, routes)
        pairs = []
        for name, plan in plans.items():
            replaced = [i for i, b in enumerate(plan) if b.size > 1]
            if not replaced:
                continue
            for i in range(replaced[0], len(plan)):
                end = plan[i].start + plan[i].size
                pairs.append((routes[name].states[i], teacher_routes[name].states[end - 1]))
        return ModularOutput(student.outputs, student.logits, student.gold, teacher=teacher, hidden_pairs=pairs)
