"""What one module hands to the next.

A LegoNN module's interface is its sequence of marginals: log-probabilities over a designer
chosen vocabulary (``log_probs``, ``lengths``). Baseline encoders hand over hidden states
instead, which is what makes them impossible to swap (paper §V-B); both kinds travel here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

MARGINALS = "marginals"
HIDDEN = "hidden"


@dataclass
class ModuleOutput:
    hidden: torch.Tensor  # (B, K, D) states after the module's final LayerNorm
    lengths: torch.Tensor  # (B,) valid positions of hidden and log_probs
    log_probs: Optional[torch.Tensor] = None  # (B, K, V) log-marginals when the module has a CTC head

    def interface(self, kind: str) -> torch.Tensor:
        if kind == MARGINALS:
            if self.log_probs is None:
                raise ValueError("the previous module has no CTC output: it cannot feed a marginals ingestor")
            return self.log_probs
        if kind == HIDDEN:
            return self.hidden
        raise ValueError(f"unknown interface kind '{kind}'")
