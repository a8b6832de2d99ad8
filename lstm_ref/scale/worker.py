"""What runs on a worker: the network, loaded once per process, and one shard's scoring.

A task carries only the network's name or path and its digest (a few dozen bytes), never
the network: the first task a worker process runs loads the network, checks that its digest
is the client's (every worker must see the same weights) and keeps it for the process's
life, keyed by name or path and digest. The same first task limits BLAS to one thread in
that process, whatever the worker's environment.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, LstmRefError
from ..formats import read_sequence_file
from ..interop import load_model
from ..network import Network
from ..padding import Padding
from ..sequences import Layout
from .files import write_scores

_networks: dict[str, tuple[str, Network]] = {}  # name or path -> (digest, network)
_lock = threading.Lock()


def worker_network(
    network: str, digest: str, model_options: Mapping[str, Any] | None = None
) -> tuple[Network, bool]:
    """This process's copy of ``network`` (a bundled name or a model file any importer
    reads, with :func:`~lstm_ref.interop.load_model`'s ``model_options``), and whether
    this call loaded it.

    Raises
    ------
    InputError
        The network this process loads is not the one of digest ``digest``.
    """
    with _lock:
        cached = _networks.get(network)
        if cached is not None and cached[0] == digest:
            return cached[1], False
        _limit_blas_threads()
        net = load_model(network, **(model_options or {}))
        found = net.digest()
        if found != digest:
            raise InputError(
                f"the network {network!r} this worker loads (digest {found[:12]}) is not the "
                f"client's (digest {digest[:12]}): every worker must see the same weight file"
            )
        _networks[network] = (digest, net)
        return net, True


def _limit_blas_threads() -> None:
    """One BLAS thread in this process: a worker is one core's worth of work."""
    import threadpoolctl  # type: ignore[import-untyped]

    threadpoolctl.threadpool_limits(limits=1, user_api="blas")


def score_file(
    shard: str | os.PathLike,
    output: str | os.PathLike,
    net: Network,
    *,
    padding: Padding,
    layout: Layout = "TC",
) -> int:
    """Score one shard in this process and write its scores file; the number of sequences.

    Parameters
    ----------
    shard : path
        A sequence file (see :mod:`lstm_ref.scale.files`).
    output : path
        Its scores file, written atomically.
    net : Network
        A classifier.
    padding : Padding
        As :meth:`lstm_ref.Network.classify` takes it; MATLAB's mini-batches are formed
        within the shard.
    layout : {"TC", "CT"}
        The shard's layout.
    """
    file = read_sequence_file(shard)
    labels, scores = net.classify(file.sequences, layout=layout, padding=padding)
    labels, scores = np.atleast_1d(labels), np.atleast_2d(scores)  # one sequence: one row
    write_scores(output, Path(shard).name, file.names, labels, scores, net.class_names)
    return len(file.names)


@dataclass(frozen=True)
class ShardResult:
    """What one task reports back: never the scores, which are in the scores file.

    Attributes
    ----------
    shard : str
        The shard's path.
    sequences : int
        Sequences scored (0 if the shard was bad).
    seconds : float
        Time the worker spent on the shard (loading the network included, if it did).
    worker : str
        The Dask worker's address.
    loaded_network : bool
        Whether this task loaded the network (the first task of a worker process).
    error : str or None
        Why the shard could not be scored (a bad shard), or None.
    """

    shard: str
    sequences: int
    seconds: float
    worker: str
    loaded_network: bool
    error: str | None = None


def run_shard(
    shard: str,
    output: str,
    network: str,
    digest: str,
    padding: Padding,
    layout: Layout,
    model_options: Mapping[str, Any] | None = None,
) -> ShardResult:
    """The Dask task: score ``shard`` into ``output`` with this worker's network.

    A bad shard (an :class:`~lstm_ref.errors.LstmRefError` or an OSError: a damaged,
    missing or unreadable file) is reported in the result, not raised, so it is not
    retried; any other exception is raised and retried by Dask.
    """
    from distributed import get_worker

    start = time.perf_counter()
    worker = get_worker().address
    loaded = False
    try:
        net, loaded = worker_network(network, digest, model_options)
        count = score_file(shard, output, net, padding=padding, layout=layout)
    except (LstmRefError, OSError) as e:
        return ShardResult(shard, 0, time.perf_counter() - start, worker, loaded, str(e))
    return ShardResult(shard, count, time.perf_counter() - start, worker, loaded)
