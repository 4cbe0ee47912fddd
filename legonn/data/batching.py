"""Length-bucketed batches of a dataset's utterances, sharded across ranks, their padding, and
their loading by a torch DataLoader (worker processes read and pad whole batches)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from legonn.data.vocab import PAD


@dataclass
class Batch:
    utt_ids: list[str]
    inputs: torch.Tensor  # (B, T) ids or (B, T, F) features
    input_lengths: torch.Tensor
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Batch":
        return Batch(self.utt_ids, fn(self.inputs), fn(self.input_lengths), {k: (fn(t), fn(n)) for k, (t, n) in self.targets.items()})

    def to(self, device: torch.device) -> "Batch":
        return self._map(lambda t: t.to(device))

    def pin_memory(self) -> "Batch":
        """Page-locked copy (the DataLoader calls this with ``pin_memory=True``): faster host-to-GPU copies."""
        return self._map(torch.Tensor.pin_memory)


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


def batch_generator(*key: int) -> torch.Generator:
    """A generator seeded from ``key`` (seed, epoch, rank, batch index): the random numbers of a
    batch's collation (SpecAugment) then do not depend on which process collates it, nor on
    whether training was resumed."""
    seed = np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(seed) & (2**63 - 1))


class EpochBatches(Dataset):
    """Map-style view of one epoch's batches: item ``i`` is batch ``i`` collated by the dataset,
    with the random numbers of ``batch_generator(*key, i)``."""

    def __init__(self, dataset, batches: list[list[int]], key: tuple[int, ...]):
        self.dataset, self.batches, self.key = dataset, batches, key

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Batch:
        return self.dataset.collate(self.batches[i], batch_generator(*self.key, i))


def load_batches(
    dataset, batches: list[list[int]], start: int = 0, key: tuple[int, ...] = (), num_workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """The batches from ``start`` on, read and collated by ``num_workers`` processes (0: this one),
    two batches a worker ahead; ``key`` identifies the epoch (see batch_generator)."""
    return DataLoader(
        EpochBatches(dataset, batches, key),
        batch_size=None,  # each item is a whole batch
        sampler=range(start, len(batches)),
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator(),  # worker seeds are not drawn from the global RNG (dropout's)
    )
