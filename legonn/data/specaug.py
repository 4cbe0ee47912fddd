"""SpecAugment (Park et al., 2019) frequency and time masking for (frames, dims) feature matrices.

The defaults are the paper's SS policy without time warping: 2 frequency masks of width
f ~ U{0..F}, F=27, and 2 time masks of width t ~ U{0..T}, T=70, with t also capped at
p=20% of the utterance's frames; each mask starts uniformly where it fits. Masked values are 0,
which is the mean once features are CMVN-normalised (apply this after CMVN).

Random numbers come from a ``torch.Generator`` if one is given, otherwise from torch's global
RNG. In training, each batch's generator is seeded from (batching.seed, epoch, rank, batch
index) (legonn.data.batching.batch_generator), so the masks do not depend on which data-loading
process collates the batch, and a resumed run draws the same masks as an uninterrupted one.

In a training config::

    data:
      specaug: {freq_masks: 2, freq_width: 27, time_masks: 2, time_width: 70, time_ratio: 0.2, prob: 1.0}

(missing keys take these defaults; ``specaug: true`` means all defaults; ``null``/``false`` is off).
Only the training set is augmented; validation and decoding never are.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional, TypeVar

import numpy as np
import torch

from legonn.errors import LegonnError

DEFAULTS: dict[str, Any] = {
    "freq_masks": 2,
    "freq_width": 27,
    "time_masks": 2,
    "time_width": 70,
    "time_ratio": 0.2,
    "prob": 1.0,
}

Feats = TypeVar("Feats", np.ndarray, torch.Tensor)


def _randint(high: int, generator: Optional[torch.Generator]) -> int:
    """Uniform integer in [0, high] (inclusive)."""
    return int(torch.randint(0, high + 1, (1,), generator=generator).item())


@dataclass(frozen=True)
class SpecAugment:
    freq_masks: int = 2
    freq_width: int = 27
    time_masks: int = 2
    time_width: int = 70
    time_ratio: float = 0.2
    prob: float = 1.0

    def __post_init__(self):
        for key in ("freq_masks", "freq_width", "time_masks", "time_width"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LegonnError(f"specaug.{key}: expected a non-negative integer, got {value!r}")
        for key, low_open in (("time_ratio", True), ("prob", False)):
            value = getattr(self, key)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
            if not ok or (low_open and value == 0):
                bounds = "in (0, 1]" if low_open else "in [0, 1]"
                raise LegonnError(f"specaug.{key}: expected a number {bounds}, got {value!r}")

    @classmethod
    def from_config(cls, raw: Any, where: str = "data.specaug") -> Optional["SpecAugment"]:
        """The config value -> a SpecAugment, or None when disabled (None / false)."""
        if raw is None or raw is False:
            return None
        if raw is True:
            raw = {}
        if not isinstance(raw, dict):
            raise LegonnError(f"{where}: expected a mapping like {DEFAULTS} (or null to disable), got {raw!r}")
        unknown = sorted(set(raw) - set(DEFAULTS))
        if unknown:
            raise LegonnError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} (allowed: {', '.join(DEFAULTS)})")
        try:
            return cls(**{**DEFAULTS, **raw})
        except LegonnError as exc:
            raise LegonnError(f"{where}: {str(exc).removeprefix('specaug.')}") from None

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    def draw(self, frames: int, dims: int, generator: Optional[torch.Generator] = None
             ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Random (start, width) frequency masks and time masks for a (frames, dims) matrix.

        Both lists are empty when the utterance is skipped (probability ``1 - prob``).
        """
        if self.prob <= 0 or (self.prob < 1 and float(torch.rand((), generator=generator)) >= self.prob):
            return [], []
        freq, time = [], []
        max_f = min(self.freq_width, dims)
        for _ in range(self.freq_masks):
            f = _randint(max_f, generator)
            freq.append((_randint(dims - f, generator), f))
        max_t = min(self.time_width, int(self.time_ratio * frames))
        for _ in range(self.time_masks):
            t = _randint(max_t, generator)
            time.append((_randint(frames - t, generator), t))
        return freq, time

    def __call__(self, feats: Feats, generator: Optional[torch.Generator] = None) -> Feats:
        """A masked copy of ``feats`` ((frames, dims) numpy array or tensor, same type back)."""
        if feats.ndim != 2:
            raise ValueError(f"SpecAugment expects a (frames, dims) matrix, got shape {tuple(feats.shape)}")
        freq, time = self.draw(int(feats.shape[0]), int(feats.shape[1]), generator)
        if not freq and not time:
            return feats
        out = feats.clone() if isinstance(feats, torch.Tensor) else feats.copy()
        for start, width in freq:
            out[:, start : start + width] = 0
        for start, width in time:
            out[start : start + width, :] = 0
        return out
