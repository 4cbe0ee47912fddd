"""``trainer.precision``: fp32, or autocast of the forward pass to bf16 / fp16.

Losses are computed outside autocast (the criterion runs after the model's forward pass), and
the model's own log-softmaxes (CTC heads) and label-smoothed CE cast to fp32 first, so the
reductions that lose precision in 16 bits stay in fp32. fp16 needs CUDA and a GradScaler
(its scale is saved in the checkpoint); bf16 has fp32's range and needs none.

bf16 on a CPU without native bf16 instructions (avx512_bf16 or AMX) is emulated, and a training
step there runs about 30x slower than in fp32 (measured: the mini De-En teacher, 30 s against
1 s per update on 2 AVX2 cores). A config that asks for bf16 asks for speed, so on such a CPU the
trainer warns and trains in fp32 instead; the same config keeps its bf16 on a CPU that has it.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Optional

import torch

from legonn.errors import LegonnError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

log = logging.getLogger("legonn.train")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively (avx512_bf16 or AMX tiles)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


class Precision:
    def __init__(self, name: str, device: torch.device):
        if name not in DTYPES:
            raise LegonnError(f"trainer.precision: '{name}' is not one of {', '.join(DTYPES)}")
        if name == "fp16" and device.type != "cuda":
            raise LegonnError(f"trainer.precision fp16 needs a CUDA device (on {device.type}, use bf16 or fp32)")
        if name == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
            log.warning("trainer.precision bf16: this CPU has no native bf16 (avx512_bf16 or AMX), where bf16 "
                        "autocast runs ~30x slower than fp32; training in fp32")
            name = "fp32"
        self.name, self.device_type, self.dtype = name, device.type, DTYPES[name]
        self.scaler: Optional[torch.amp.GradScaler] = torch.amp.GradScaler(device.type) if name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Before gradient clipping: the clip norm is in true gradient units."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimiser update (fp16: skipped when the gradients overflowed, and the scale adapts)."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
