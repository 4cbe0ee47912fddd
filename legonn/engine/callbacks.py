"""Training-loop hooks, chosen from YAML as ``trainer.callbacks: [{type: name, conf: {...}}]``.

A callback changes or watches training without a change to the loop: ``on_step_start`` runs
before the forward pass of each update, so it may set model or criterion state for it (a
dropout or replacement-probability schedule, a loss weight). Whatever it keeps across steps
belongs in ``state_dict()``: the trainer saves it in every checkpoint (one per rank) and restores
it on resume, so an interrupted run continues exactly as an uninterrupted one.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from legonn.engine.criteria import LossReport
from legonn.errors import LegonnError
from legonn.nn.modular import ModularStudent, replacement_probability, sample_plan
from legonn.registry import CALLBACKS


class Callback:
    """No-op hooks. ``trainer`` is the legonn.engine.trainer.Trainer (``model``, ``criterion``,
    ``optimizer``, ``progress``, ``writer``, ...); ``trainer.step`` is the number of updates done."""

    def on_train_start(self, trainer: Any) -> None:
        """Each time training starts or resumes, after the checkpoint (and this state) is loaded."""

    def on_step_start(self, trainer: Any) -> None:
        """Before the forward pass of the first batch of an update."""

    def on_step_end(self, trainer: Any, loss: LossReport) -> None:
        """After the update (``loss``: of its last batch); ``trainer.should_stop = True`` ends training."""

    def on_validation_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        """After a validation, before its checkpoint is saved."""

    def on_train_end(self, trainer: Any) -> None:
        """When training finishes (not when it is interrupted)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@CALLBACKS.register("module_replacing")
class ModuleReplacing(Callback):
    """Multi-grained module replacing (Modular Transformers, legonn/nn/modular.py): before each
    update, every compressed stack's assembly is drawn with replacement probability
    p_t = min(1, start + slope * t), slope = (1 - start) / full_at_step (BERT-of-Theseus's linear
    curriculum; no ``full_at_step``: p stays ``start``). The generator's state is checkpointed,
    so a resumed phase draws what an uninterrupted one would."""

    def __init__(self, start: float = 0.5, full_at_step: Optional[int] = None, seed: int = 1):
        if not 0 <= start <= 1:
            raise LegonnError(f"callback module_replacing: start must be a probability, got {start}")
        if full_at_step is not None and full_at_step <= 0:
            raise LegonnError(f"callback module_replacing: full_at_step must be positive, got {full_at_step}")
        self.start = start
        self.slope = (1 - start) / full_at_step if full_at_step else 0.0
        self.generator = torch.Generator().manual_seed(seed)

    def on_train_start(self, trainer: Any) -> None:
        if not isinstance(trainer.model, ModularStudent):
            raise LegonnError("callback module_replacing needs a 'modular' config section (module name -> granularities)")

    def on_step_start(self, trainer: Any) -> None:
        model, p = trainer.model, replacement_probability(trainer.step, self.start, self.slope)
        model.plans = {name: sample_plan(model.depth(name), grans, p, self.generator)
                       for name, grans in model.granularities.items()}

    def on_step_end(self, trainer: Any, loss: LossReport) -> None:
        if trainer.writer is not None and trainer.step % trainer.tconf["log_every_steps"] == 0:
            trainer.writer.add_scalar("train/replacement_p", replacement_probability(trainer.step, self.start, self.slope),
                                      trainer.step)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def build_callbacks(entries: Any) -> list[Callback]:
    """``trainer.callbacks`` -> callback objects, in order."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "type" in e for e in entries):
        raise LegonnError("trainer.callbacks: expected a list of {type: name, conf: {...}}")
    for entry in entries:
        unknown = set(entry) - {"type", "conf"}
        if unknown:
            raise LegonnError(f"trainer.callbacks: unknown key(s) {', '.join(sorted(unknown))} (allowed: type, conf)")
    return [CALLBACKS.build(e["type"], e.get("conf")) for e in entries]
