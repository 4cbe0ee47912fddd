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
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import torch
from torch import nn

from legonn.errors import LegonnError


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


def modular_layers(teacher_layers: nn.ModuleList, granularities: Iterable[int]) -> nn.ModuleDict:
    """One new layer per aligned block, each a copy of its block's first teacher layer, trainable."""
    out = nn.ModuleDict()
    for block in blocks(len(teacher_layers), granularities):
        layer = copy.deepcopy(teacher_layers[block.start])
        layer.requires_grad_(True)
        out[block.name] = layer
    return out


def assemble(plan: Plan, teacher_layers: nn.ModuleList, modular: nn.ModuleDict) -> list[nn.Module]:
    """The layers of an assembly, in order: kept teacher layers and modular layers."""
    expected = 0
    for block in plan:
        if block.start != expected:
            raise LegonnError(f"assembly {[b.name for b in plan]} does not tile layers 0..{len(teacher_layers) - 1}")
        expected += block.size
    if expected != len(teacher_layers):
        raise LegonnError(f"assembly {[b.name for b in plan]} covers {expected} of {len(teacher_layers)} layers")
    missing = [b.name for b in plan if b.size > 1 and b.name not in modular]
    if missing:
        raise LegonnError(f"assembly needs modular layers {', '.join(missing)}, which were not trained")
    return [teacher_layers[b.start] if b.size == 1 else modular[b.name] for b in plan]
