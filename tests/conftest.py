"""Shared fixtures."""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest

# The fuzz suite runs a fixed seed and a fresh one; LSTM_REF_FUZZ_SEED=N replays a run.
FRESH_FUZZ_SEED = int(os.environ.get("LSTM_REF_FUZZ_SEED") or secrets.randbits(32))
FUZZ_SEEDS = [20261201, FRESH_FUZZ_SEED]


def pytest_report_header() -> str:
    return f"fuzz seed: {FRESH_FUZZ_SEED} (fixed seed {FUZZ_SEEDS[0]} too)"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)
