"""Length-bucketed batches of a dataset's utterances, sharded across ranks, and their padding."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import torch

from legonn.data.vocab import PAD

@dataclass
class Batch:
    utt_ids: list[str]
    inputs: torch.Tensor  # (B, T) ids or (B, T, F) features
    input_lengths: torch.Tensor
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def to(self, device: torch.device) -> "Batch":
        return Batch(
            self.utt_ids,
            self.inputs.to(device),
            self.input_lengths.to(device),
            {k: (t.to(device), n.to(device)) for k, (t, n) in self.targets.items()},
        )


def pad(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
    out = np.full((len(arrays), int(lengths.max()), *arrays[0].shape[1:]), PAD, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return torch.from_numpy(out), lengths


def make_batches(
    input_lengths: np.ndarray,
    target_lengths: np.ndarray,
    max_tokens: int,
    max_sentences: Optional[int] = None,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
) -> list[list[int]]:
    """Bucket by length so batches carry little padding; cap padded positions at ``max_tokens``.

    Ties are broken randomly and batch order is shuffled, both from (seed, epoch), so an
    epoch's batches can be rebuilt exactly when training resumes mid-epoch.
    """
    n = len(input_lengths)
    rng = np.random.default_rng([seed, epoch])
    tie = rng.permutation(n) if shuffle else np.arange(n)
    order = np.lexsort((tie, target_lengths, input_lengths))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for idx in order:
        size = int(max(input_lengths[idx], target_lengths[idx]))
        grow = max(longest, size)
        full = max_sentences is not None and len(current) >= max_sentences
        if current and (grow * (len(current) + 1) > max_tokens or full):
            batches.append(current)
            current, grow = [], size
        current.append(int(idx))
        longest = grow
    if current:
        batches.append(current)
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def shard(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """Every rank gets the same number of batches (the list wraps around to fill the last round)."""
    if world == 1:
        return batches
    per_rank = math.ceil(len(batches) / world)
    padded = batches + batches[: per_rank * world - len(batches)]
    return padded[rank::world]


def iterate(dataset, batches: list[list[int]], start: int = 0) -> Iterator[Batch]:
    """The batches of a dataset (anything with collate(indices)), from batch ``start`` on."""
    for indices in batches[start:]:
        yield dataset.collate(indices)
