"""torch.distributed set-up from the variables ``torchrun`` exports (RANK, WORLD_SIZE, LOCAL_RANK)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from legonn.errors import LegonnError


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend)
    return info


def device_for(device: str, info: DistInfo) -> torch.device:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LegonnError("--device cuda: no CUDA device is available (use --device cpu)")
        return torch.device("cuda", info.local_rank) if info.world > 1 else torch.device(device)
    return torch.device(device)


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def gather(obj, info: DistInfo) -> list:
    if info.world == 1:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def cleanup(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
