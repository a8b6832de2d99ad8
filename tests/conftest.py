"""Shared fixtures."""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_seeds import FUZZ_SEEDS


def pytest_report_header() -> str:
    return f"fuzz seed: {FUZZ_SEEDS[1]} (fixed seed {FUZZ_SEEDS[0]} too)"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)
