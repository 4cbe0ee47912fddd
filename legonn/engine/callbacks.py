"""Training-loop hooks, chosen from YAML as ``trainer.callbacks: [{type: name, conf: {...}}]``.

A callback changes or watches training without a change to the loop: ``on_step_start`` runs
before the forward pass of each update, so it may set model or criterion state for it (a
dropout or replacement-probability schedule, a loss weight). Whatever it keeps across steps
belongs in ``state_dict()``: the trainer saves it in every checkpoint (one per rank) and restores
it on resume, so an interrupted run continues exactly as an uninterrupted one.
"""
from __future__ import annotations

from typing import Any

from legonn.engine.criteria import LossReport
from legonn.errors import LegonnError
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


def build_callbacks(entries: Any) -> list[Callback]:
    """``trainer.callbacks`` -> callback objects, in order."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "type" in e for e in entries):
        raise LegonnError("trainer.callbacks: expected a list of {type: name, conf: {...}}")
    for entry in entries:
        unknown = set(entry) - {"type", "conf"}
        if unknown:
            raise LegonnError(f"trainer.callbacks: unknown key(s) {', '.join(sorted(unknown))} (allowed: type, conf)")
    return [CALLBACKS.build(e["type"], e.get("conf")) for e in entries]
