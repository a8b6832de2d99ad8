"""The fuzz suite's seeds: a fixed one and a fresh one per run (``LSTM_REF_FUZZ_SEED=N``
replays a run). A module of its own, not ``conftest``: ``benchmarks/`` has a conftest too,
and ``from conftest import`` would reach whichever comes first on the path."""

from __future__ import annotations

import os
import secrets

FUZZ_SEEDS = [20261201, int(os.environ.get("LSTM_REF_FUZZ_SEED") or secrets.randbits(32))]
