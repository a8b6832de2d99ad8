"""Masked batches split over Python threads, each on one BLAS thread.

``predict(..., threads=n)`` deals the sequences, sorted by length, round-robin to ``n``
threads, so that every share holds alike lengths, and each thread runs the fast path over
its share while BLAS is limited to one thread (threadpoolctl, the ``threads`` extra). A
product releases the GIL for its whole length, so one thread's products run beside the
other's element-wise calls. On this project's 2-core machine (a VM) the gain is small and
unsteady: in seven benchmark runs of one day it was faster than two BLAS threads in four
(median ratio 0.99) and than one thread in five (median 0.96), and 1.4–1.5× slower in one
busy run (the benchmarks' group "C 370 sequences, 2 cores"). The GIL passes between the
threads at every NumPy call, and how fast it does depends on the machine: measure yours.

Under masked semantics each sequence is computed on its own: the results are one thread's
but for rounding, since the rows share their products with other rows than on one thread
(float64 within 1e-12, tested).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

Array = np.ndarray
T = TypeVar("T")
EXTRA_HINT = "threads > 1 needs threadpoolctl: pip install 'lstm_ref[threads]'"


def shares(lengths: Array, threads: int) -> list[Array]:
    """Each thread's rows: the rows sorted by length (longest first), dealt round-robin;
    at most one share per row."""
    order = np.argsort(-lengths, kind="stable")
    return [order[k::threads] for k in range(min(threads, len(order)))]


def on_threads(work: Callable[[Array], T], rows: list[Array]) -> list[T]:
    """``work(r)`` for each share ``r`` of ``rows``, each on a thread of its own, with BLAS
    limited to one thread meanwhile (for the whole process)."""
    with _controller().limit(limits=1, user_api="blas"):
        return list(_pool(len(rows)).map(work, rows))


@functools.cache
def _controller() -> Any:
    """threadpoolctl's controller, made once (finding the BLAS libraries takes ~0.3 ms)."""
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
    except ModuleNotFoundError:
        raise ModuleNotFoundError(EXTRA_HINT) from None
    return ThreadpoolController()


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """A pool of ``threads`` threads, kept for the next call."""
    return ThreadPoolExecutor(threads, thread_name_prefix="lstm_ref")
