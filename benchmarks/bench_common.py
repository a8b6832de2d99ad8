"""Constants shared by the benchmarks' conftest and tests (a module of its own, not
``conftest``: the tests/ suite imports its helpers as ``conftest``, and two modules of that
name would collide when both folders are collected in one run)."""

from __future__ import annotations

import torch

DTYPES = ("float32", "float64")
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# A benchmark's result must match lstm_ref's float64 reference within this, or it fails.
ATOL = {"float32": 1e-4, "float64": 1e-10}


def lstm_flops(steps: int, C: int = 12, H: int = 100) -> int:
    """The useful floating-point operations of ``steps`` LSTM steps: the fused product
    [x, h, 1] · M, 2 (C + H + 1) 4H each (the gate arithmetic is not counted)."""
    return 2 * (C + H + 1) * 4 * H * steps
