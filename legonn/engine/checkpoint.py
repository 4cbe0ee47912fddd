"""Training checkpoints: atomic saves, keep-best-N bookkeeping, loading without pickled code,
and checkpoint averaging (``legonn average``)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

from legonn.errors import LegonnError
from legonn.fileio import atomic_path, write_atomic

INDEX = "checkpoints.json"
LAST = "checkpoint_last.pt"


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save through :func:`~legonn.fileio.atomic_path`: an interrupted save leaves the old file."""
    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a full disk as a RuntimeError
            raise OSError(str(exc).splitlines()[0]) from None


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Tensors and plain containers only (``weights_only``): a checkpoint cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise LegonnError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise LegonnError(f"{path}: cannot read checkpoint ({str(exc).splitlines()[0]})") from None


def higher_is_better(metric: str) -> bool:
    """The one place that knows a metric's direction (keep-best ranking, averaging, early stopping)."""
    return "acc" in metric or "bleu" in metric


def is_better(metric: str, value: float, than: float) -> bool:
    return value > than if higher_is_better(metric) else value < than


class CheckpointKeeper:
    """Saves ``checkpoint_step<N>.pt`` per validation; keeps the best ``keep_best`` and the latest
    ``keep_last`` of them (``legonn average --mode best|last``), plus ``checkpoint_last.pt``."""

    def __init__(self, directory: Path, keep_best: int, metric: str, keep_last: int = 0):
        self.directory, self.keep_best, self.metric, self.keep_last = directory, keep_best, metric, keep_last
        directory.mkdir(parents=True, exist_ok=True)
        index = directory / INDEX
        self.entries: list[dict[str, Any]] = json.loads(index.read_text()) if index.is_file() else []

    def ranked(self) -> list[dict[str, Any]]:
        scored = [e for e in self.entries if self.metric in e["metrics"]]
        return sorted(scored, key=lambda e: e["metrics"][self.metric], reverse=higher_is_better(self.metric))

    def save(self, state: dict[str, Any], step: int, metrics: dict[str, float]) -> Path:
        name = f"checkpoint_step{step}.pt"
        save_atomic(state, self.directory / name)
        self.entries = [e for e in self.entries if e["file"] != name] + [{"file": name, "step": step, "metrics": metrics}]
        save_atomic(state, self.directory / LAST)
        keep = {e["file"] for e in self.ranked()[: self.keep_best]}
        if self.keep_last:
            keep |= {e["file"] for e in sorted(self.entries, key=lambda e: e["step"])[-self.keep_last:]}
        for entry in list(self.entries):
            if entry["file"] not in keep:
                (self.directory / entry["file"]).unlink(missing_ok=True)
                self.entries.remove(entry)
        write_atomic(self.directory / INDEX, json.dumps(self.entries, indent=1) + "\n")
        return self.directory / name

    def best(self) -> Optional[dict[str, Any]]:
        ranked = self.ranked()
        return ranked[0] if ranked else None


def select(directory: Path, num: int, mode: str, metric: Optional[str] = None) -> list[Path]:
    """The checkpoints to average: the ``num`` best by ``metric`` or the ``num`` latest."""
    index = directory / INDEX
    if not index.is_file():
        raise LegonnError(f"{directory}: no {INDEX} (has this experiment saved a checkpoint?)")
    entries = json.loads(index.read_text())
    if mode == "last":
        chosen = sorted(entries, key=lambda e: e["step"], reverse=True)[:num]
    elif mode == "best":
        if metric is None:
            raise LegonnError("averaging the best checkpoints needs a metric")
        scored = [e for e in entries if metric in e["metrics"]]
        if not scored:
            known = sorted({k for e in entries for k in e["metrics"]})
            raise LegonnError(f"{index}: no checkpoint has metric '{metric}' (known: {', '.join(known)})")
        chosen = sorted(scored, key=lambda e: e["metrics"][metric], reverse=higher_is_better(metric))[:num]
    else:
        raise LegonnError(f"averaging mode must be 'best' or 'last', got '{mode}'")
    if len(chosen) < num:
        raise LegonnError(f"{directory}: asked to average {num} checkpoints, only {len(chosen)} are kept")
    return [directory / e["file"] for e in chosen]


def average(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the model weights (integer buffers are taken from the newest)."""
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        state = load(path)["model"]
        for key, tensor in state.items():
            if not tensor.is_floating_point():
                total.setdefault(key, tensor)
            elif key in total:
                total[key] += tensor.double()
            else:
                total[key] = tensor.double().clone()
    return {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in total.items()}
