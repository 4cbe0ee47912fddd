"""Shared pytest set-up for the legonn tests."""

try:
    import torch
except ImportError:  # tests that need torch import it themselves and fail/skip there
    torch = None

if torch is not None:
    # Keep the suite's CPU use predictable on small (2-core) machines.
    torch.set_num_threads(1)
