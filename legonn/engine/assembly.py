"""Assembly of Modular Transformers' modular layers into an ordinary module folder (``legonn assemble``).

From a modular phase's experiment (config section ``modular``; legonn/nn/modular.py) and the
teacher's module folder it started from, build one module of a requested depth or compression
ratio: a module of the teacher's type with fewer stack layers, each a kept teacher layer or a
modular layer. Everything else (input layer, OLC, CTC head, embeddings, vocabularies, recorded
lengths, shipped files) is the teacher's, so the folder has the same interface vocabulary and
checksum and ``legonn compose`` takes it wherever the teacher went.

Without modular layers, ``shrink`` builds the baseline the method is compared with: a module of
the teacher's type keeping ``depth`` of its stack layers, spread over the stack and always the
first and the last (round(linspace(0, N - 1, depth)); 6 -> 3 keeps 0, 2, 5), as distilBART's
shrink-and-fine-tune copies alternating teacher layers; used as it is ("dropping layers") or as
the start of a fine-tuning.

Choosing among the assemblies of one depth (design decisions, also in egs/TEMPLATE/README.md):

* ``size-first``: fewest parameters; ``speed-first``: lowest measured latency (a decoder: 30
  greedy incremental steps at batch 1; an encoder: one utterance), every assembly within 10 % of
  the fastest counting as fastest, since repeated timings differ by that much.
* Ties go to the lowest task loss (Eq. 9) on the experiment's validation set. Modular layers have
  the teacher layer's shape, so every assembly of one depth has the same parameters and, within
  timing noise, the same latency: both strategies then choose by validation loss. They differ
  where sizes or costs differ (a depth reachable only with teacher layers kept is never cheaper).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from legonn.data.batching import load_batches, make_batches
from legonn.data.vocab import SOS, SPECIALS
from legonn.engine.criteria import JointLoss
from legonn.engine.experiment import load_trained, open_dataset
from legonn.errors import LegonnError
from legonn.modules.artifact import LoadedModule, load_module, save_module
from legonn.nn.chain import build_module
from legonn.nn.decoder import LegoDecoder
from legonn.nn.interface import FEATURES, TOKENS, ModuleOutput
from legonn.nn.modular import ModularStudent, Plan, depth_for_ratio, depths, plan_names, plans, stack_of
from legonn.nn.transformer import Route

STRATEGIES = ("size-first", "speed-first")
SPEED_TIE = 0.10  # latencies within this fraction of the fastest count as equal


@dataclass
class Candidate:
    plan: Plan
    parameters: int
    latency_ms: Optional[float] = None  # speed-first only
    valid_loss: Optional[float] = None

    def describe(self) -> str:
        parts = [" ".join(plan_names(self.plan)), f"{self.parameters / 1e6:.2f}M parameters"]
        if self.latency_ms is not None:
            parts.append(f"{self.latency_ms:.1f} ms")
        if self.valid_loss is not None:
            parts.append(f"validation loss {self.valid_loss:.4f}")
        return ", ".join(parts)


@dataclass
class Assembly:
    directory: Path
    chosen: Candidate
    candidates: list[Candidate]
    teacher_depth: int


def assembled_module(teacher: nn.Module, layers: list[nn.Module]) -> nn.Module:
    """A module of the teacher's type whose stack is ``layers``; every other weight is the teacher's."""
    stack = stack_of(teacher)
    prefix = next(name for name, m in teacher.named_modules() if m is stack) + ".layers."
    conf = {**teacher.spec_conf, "layers": len(layers)}
    module = build_module(teacher.spec_type, conf)
    state = {k: v for k, v in teacher.state_dict().items() if not k.startswith(prefix)}
    for i, layer in enumerate(layers):
        state.update({f"{prefix}{i}.{k}": v for k, v in layer.state_dict().items()})
    module.load_state_dict(state)
    return module.eval()


def save_like(teacher: LoadedModule, module: nn.Module, out: str | Path, provenance: str, how: str,
              record: dict[str, Any]) -> Path:
    """Write ``module`` (a compressed ``teacher``) as a folder with the teacher's name,
    vocabularies, recorded lengths and shipped files (its CMVN statistics); module.json's extra
    gets ``how`` ("assembled", "shrunk"): where it came from, its depth and ``record``."""
    n, depth = len(stack_of(teacher.module).layers), len(stack_of(module).layers)
    made = {"teacher": str(teacher.directory), "teacher_weights_sha256": teacher.weights_sha256, "teacher_depth": n,
            "depth": depth, "compression": n / depth, **record}
    shipped = {f: teacher.directory / f for f in [(teacher.extra.get("input") or {}).get("cmvn")] if f}
    return save_module(module, out, teacher.name, teacher.input_vocab, teacher.output_vocab, provenance,
                       teacher.meta.get("length_ratio"), {**teacher.extra, how: made}, shipped)


@torch.no_grad()
def latency_ms(module: nn.Module, loaded: LoadedModule, repeats: int = 5) -> float:
    """Median milliseconds of one decoding-shaped call: 30 greedy incremental decoder steps at
    batch 1 over a memory of the recorded mean input length, or an encoder over one utterance."""
    extra = loaded.extra
    length = max(int(round((extra.get("input_length") or {}).get("mean", 20))), 1)
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([length])
    if isinstance(module, LegoDecoder):
        width = getattr(module.ingestor, "input_dim", None) or module.d_model
        marginals = module.input_vocab_size or 1
        previous = ModuleOutput(torch.randn(1, length, width, generator=generator), lengths,
                                torch.log_softmax(torch.randn(1, length, marginals, generator=generator), -1))

        def call() -> None:
            memory, memory_padding = module.ingest(previous)
            cache, token = module.new_cache(30), torch.tensor([SOS])
            for _ in range(30):
                token = module.step(token, memory, memory_padding, cache).argmax(-1)
    else:
        if module.input_kind == FEATURES:
            x = torch.randn(1, length, module.input_layer.input_dim, generator=generator)
        elif module.input_kind == TOKENS:
            x = torch.randint(len(SPECIALS), module.input_vocab_size, (1, length), generator=generator)
        else:
            x = torch.log_softmax(torch.randn(1, length, module.input_vocab_size, generator=generator), -1)

        def call() -> None:
            module(x, lengths)
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@torch.no_grad()
def validation_losses(model: ModularStudent, name: str, candidates: list[Candidate], config: dict[str, Any]) -> None:
    """Each candidate's Eq. 9 loss (label smoothing 0) on the experiment's validation set, in place."""
    dataset = open_dataset(config, "valid")
    batches = make_batches(dataset.input_lengths, dataset.target_lengths, config["batching"]["max_tokens"], shuffle=False)
    criterion = JointLoss(model.teacher, label_smoothing=0.0)
    model.eval()
    sums = [0.0] * len(candidates)
    for batch in load_batches(dataset, batches):
        for i, candidate in enumerate(candidates):
            route = {name: Route(model.assembled(name, candidate.plan))}
            output = model.teacher(batch.inputs, batch.input_lengths, batch.targets, route)
            sums[i] += float(criterion(batch, output).total) * len(batch.input_lengths)
    for candidate, total in zip(candidates, sums):
        candidate.valid_loss = total / max(len(dataset), 1)


def assemble_experiment(
    exp_dir: str | Path,
    name: str,
    out: str | Path,
    ratio: Optional[float] = None,
    depth: Optional[int] = None,
    strategy: str = "size-first",
    checkpoint: Optional[str | Path] = None,
) -> Assembly:
    """``legonn assemble``: module ``name`` of the modular phase in ``exp_dir``, ``depth`` stack
    layers (or the depth of compression ``ratio``), written to ``out`` as a module folder."""
    if strategy not in STRATEGIES:
        raise LegonnError(f"assembly strategy must be one of {', '.join(STRATEGIES)}, got '{strategy}'")
    if (ratio is None) == (depth is None):
        raise LegonnError("give either a compression ratio or a depth")
    exp = load_trained(exp_dir, checkpoint)
    model = exp.model
    if not isinstance(model, ModularStudent):
        raise LegonnError(f"{exp_dir}: not a Modular Transformers phase (its config has no 'modular' section)")
    if name not in model.granularities:
        raise LegonnError(f"{exp_dir}: module '{name}' has no modular layers (modular modules: {', '.join(model.granularities)})")
    folder = (exp.config["trainer"].get("init_modules") or {}).get(name)
    if not folder:
        raise LegonnError(f"{exp_dir}: trainer.init_modules names no module folder for '{name}': the teacher's "
                          "folder supplies the assembled module's vocabularies and records")
    teacher = load_module(folder)
    original = model.teacher.blocks[name]
    if teacher.meta["type"] != original.spec_type or teacher.meta["conf"] != original.spec_conf:
        raise LegonnError(f"{folder}: no longer the teacher of {exp_dir} (another architecture than module '{name}')")
    n, grans = model.depth(name), model.granularities[name]
    if depth is None:
        depth = depth_for_ratio(n, grans, ratio)
    elif depth not in depths(n, grans):
        raise LegonnError(f"depth {depth} is not reachable for {n} layers with granularities {list(grans)}: "
                          f"possible {', '.join(map(str, depths(n, grans)))}")
    candidates = []
    for plan in (p for p in plans(n, grans) if len(p) == depth):
        module = assembled_module(original, model.assembled(name, plan))
        candidates.append(Candidate(plan, sum(p.numel() for p in module.parameters())))
        if strategy == "speed-first":
            candidates[-1].latency_ms = latency_ms(module, teacher)
    if strategy == "size-first":
        fewest = min(c.parameters for c in candidates)
        best = [c for c in candidates if c.parameters == fewest]
    else:
        fastest = min(c.latency_ms for c in candidates)
        best = [c for c in candidates if c.latency_ms <= fastest * (1 + SPEED_TIE)]
    if len(best) > 1:
        validation_losses(model, name, best, exp.config)
        best.sort(key=lambda c: c.valid_loss)
    chosen = best[0]
    module = assembled_module(original, model.assembled(name, chosen.plan))
    record = {
        "plan": plan_names(chosen.plan),
        "strategy": strategy,
        "experiment": str(exp_dir),
        "checkpoint": str(exp.checkpoint),
        "candidates": [c.describe() for c in candidates],
    }
    provenance = (
        f"Assembled by `legonn assemble` ({strategy}) from the teacher `{teacher.directory}` ({n} stack layers) and the "
        f"modular layers trained in `{exp_dir}` (`{Path(exp.checkpoint).name}`): {depth} layers "
        f"({n / depth:.2g}x), {' '.join(plan_names(chosen.plan))}. The teacher: {teacher.meta.get('trained_on') or '(not recorded)'}"
    )
    return Assembly(save_like(teacher, module, out, provenance, "assembled", record), chosen, candidates, n)


def spread_layers(n_layers: int, depth: int) -> list[int]:
    """The teacher layers a shrunk stack of ``depth`` keeps: evenly spread, first and last included."""
    if not 1 <= depth <= n_layers:
        raise LegonnError(f"a stack of {n_layers} layers can keep 1 to {n_layers} of them, not {depth}")
    if depth == 1:
        return [0]
    return [round(i * (n_layers - 1) / (depth - 1)) for i in range(depth)]


def shrink_module(folder: str | Path, out: str | Path, ratio: Optional[float] = None, depth: Optional[int] = None) -> tuple[Path, list[int]]:
    """The teacher module in ``folder`` with ``depth`` (or N / ``ratio``, rounded) stack layers
    kept (:func:`spread_layers`), written to ``out``; returns the folder and the kept layers."""
    if (ratio is None) == (depth is None):
        raise LegonnError("give either a compression ratio or a depth")
    teacher = load_module(folder)
    layers = stack_of(teacher.module, teacher.name).layers
    n = len(layers)
    if depth is None:
        if ratio < 1:
            raise LegonnError(f"a compression ratio is at least 1, got {ratio}")
        depth = max(1, round(n / ratio))
    kept = spread_layers(n, depth)
    module = assembled_module(teacher.module, [layers[i] for i in kept])
    record = {"kept_layers": kept}
    provenance = (f"Shrunk by `legonn assemble --teacher` from `{teacher.directory}`: teacher layers {kept} of {n} kept, "
                  f"no training since. The teacher: {teacher.meta.get('trained_on') or '(not recorded)'}")
    return save_like(teacher, module, out, provenance, "shrunk", record), kept
