"""``score_shards``: score a folder of shards on a Dask cluster, one scores file per shard.

The client checks everything it can before any work is sent (the network loads and is a
classifier, the shards exist, the output folder is not one of theirs and holds no scores of
another network), then submits one task per shard that has no scores file yet. Each task
carries the paths, the network's name and digest and the padding — not the network, which
every worker process loads once (:mod:`lstm_ref.scale.worker`) — and writes its scores
file itself, atomically. The paths must therefore be the same on every worker (one machine,
or a shared file system).

Faults: a worker that dies (killed, out of memory, its machine lost) takes only its running
tasks with it; the scheduler reruns them on the other workers (up to Dask's
``distributed.scheduler.allowed-failures``, 3 by default, deaths per task), and since a
scores file is written whole or not at all, no sequence is lost or written twice (the
hidden temporary file a killed write leaves is deleted at the end of the run). A bad shard
is reported by name and does not stop the others.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, counted
from ..formats.writes import temporaries, write_text_atomically
from ..interop import load_model
from ..padding import MASKED, Padding, check_padding
from ..sequences import Layout
from .files import Shards, find_shards, scores_path
from .worker import ShardResult, run_shard

if TYPE_CHECKING:
    from distributed import Client

MANIFEST = "lstm_ref_scores.json"  # in the output folder: what its scores were made with
EXTRA_HINT = "scoring on Dask needs the dask extra: pip install 'lstm_ref[dask]'"


@dataclass(frozen=True)
class ScoreReport:
    """What a :func:`score_shards` run did.

    Attributes
    ----------
    scored : tuple of ShardResult
        The shards scored in this run, in the shards' order.
    skipped : tuple of str
        Shards whose scores file already existed (done by an earlier run).
    bad : tuple of (str, str)
        Shards that could not be scored, with the reason.
    seconds : float
        Wall time of the run, from submitting the first task to the last result.
    network_loads : int
        How often a worker process loaded the network (once per process that ran a task).
    """

    scored: tuple[ShardResult, ...]
    skipped: tuple[str, ...]
    bad: tuple[tuple[str, str], ...]
    seconds: float
    network_loads: int

    @property
    def sequences(self) -> int:
        """Sequences scored in this run."""
        return sum(r.sequences for r in self.scored)

    def summary(self) -> str:
        """The closing summary: totals, each worker's share and rate, the bad shards."""
        rate = self.sequences / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"scored {counted(len(self.scored), 'shard')}, "
            f"{counted(self.sequences, 'sequence')} in {self.seconds:.2f} s: {rate:.0f} sequences/s"
            + (
                f"; {counted(len(self.skipped), 'shard')} already done, skipped"
                if self.skipped
                else ""
            )
        ]
        workers: dict[str, list[ShardResult]] = {}
        for r in self.scored:
            workers.setdefault(r.worker, []).append(r)
        for worker, results in sorted(workers.items()):
            n, busy = sum(r.sequences for r in results), sum(r.seconds for r in results)
            lines.append(
                f"  worker {worker}: {counted(len(results), 'shard')}, {counted(n, 'sequence')}, "
                f"{busy:.2f} s busy, "
                f"{n / busy if busy > 0 else 0.0:.0f} sequences/s"
            )
        if self.network_loads:
            lines.append(
                f"  network loaded {counted(self.network_loads, 'time')} (once per worker process)"
            )
        if self.bad:
            lines.append(f"{len(self.bad)} bad shard(s), not scored:")
            lines.extend(
                f"  {reason}" if shard in reason else f"  {shard}: {reason}"
                for shard, reason in self.bad
            )
        return "\n".join(lines)


def score_shards(
    shards: Shards,
    network: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    padding: Padding = MASKED,
    layout: Layout = "TC",
    retries: int = 1,
    progress: bool = False,
    model_options: Mapping[str, Any] | None = None,
) -> ScoreReport:
    """Score every shard on a Dask cluster, writing one scores file per shard to ``out_dir``.

    Parameters
    ----------
    shards : path, glob pattern or sequence of paths
        See :func:`lstm_ref.scale.files.find_shards`.
    network : str or path
        A bundled network's name or a model file :func:`lstm_ref.interop.load_model`
        reads (loaded once per worker).
    out_dir : path
        The folder for the scores files (created if needed); a shard whose scores file
        exists there is skipped, so a rerun after an interruption does only what is left.
    scheduler : str, optional
        The address of a running Dask scheduler (``tcp://host:8786``). Without it, a
        ``LocalCluster`` of ``workers`` processes with one thread each is started and
        closed at the end.
    workers : int
        The local cluster's worker processes (ignored with ``scheduler``).
    padding : Padding
        As :meth:`lstm_ref.Network.classify`; the default, masked, makes each score
        independent of the shard it is in.
    layout : {"TC", "CT"}
        The shards' layout.
    retries : int
        How often a task that raised an unexpected exception (a bug, not a bad shard) is
        rerun. A killed worker's tasks are rerun by the scheduler regardless.
    progress : bool
        Show Dask's progress bar (on standard output) while the tasks run.
    model_options : mapping, optional
        Keywords of :func:`lstm_ref.interop.load_model` for the network: ``class_names``
        for a model file that has none, PyTorch's ``prefix`` and ``head``.

    Returns
    -------
    ScoreReport

    Raises
    ------
    ModuleNotFoundError
        Dask is not installed (the ``dask`` extra).
    FileNotFoundError, InputError
        No such network or shards; a model file that names no classes; an output folder
        that holds shards or the scores of another network or padding.
    """
    try:
        import distributed
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(EXTRA_HINT, name=e.name) from None
    padding = check_padding(padding)
    if layout not in ("TC", "CT"):
        raise InputError(f"layout must be 'TC' or 'CT'; got {layout!r}")
    if scheduler is None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise InputError(f"workers must be an integer; got {workers!r}")
    if scheduler is None and workers < 1:
        raise InputError(f"workers must be at least 1; got {workers}")
    reference = os.path.abspath(network) if os.path.isfile(network) else os.fspath(network)
    options = dict(model_options or {})
    net = load_model(reference, **options)
    if not net.class_names:
        raise InputError(
            f"{network}: the model file names no classes; give them with --classes a,b,c "
            f"(model_options={{'class_names': [...]}} in Python; {net.output_size} names, in "
            "output order)"
        )
    digest = net.digest()
    paths = find_shards(shards)
    out = Path(out_dir).resolve()
    if any(p.parent == out for p in paths):
        raise InputError(f"{out_dir} holds shards; write the scores to another folder")
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, reference, digest, padding, layout)
    done = {p for p in paths if scores_path(p, out).exists()}
    todo = [p for p in paths if p not in done]
    skipped = tuple(str(p) for p in paths if p in done)
    if not todo:
        return ScoreReport((), skipped, (), 0.0, 0)
    with _client(distributed, scheduler, workers) as client:
        start, run = time.perf_counter(), uuid.uuid4().hex[:12]
        futures = client.map(
            run_shard,
            [str(p) for p in todo],
            [str(scores_path(p, out)) for p in todo],
            network=reference,
            digest=digest,
            padding=padding,
            layout=layout,
            model_options=options,
            key=[f"score-{p.name}-{run}" for p in todo],
            retries=retries,
            pure=False,
        )
        if progress:
            distributed.progress(futures)
        distributed.wait(futures)
        seconds = time.perf_counter() - start
        _remove_stale_temporaries(todo, out)
        scored, bad, loads = _collect(todo, futures)
    return ScoreReport(scored, skipped, bad, seconds, loads)


def _collect(
    shards: list[Path], futures: list[Any]
) -> tuple[tuple[ShardResult, ...], tuple[tuple[str, str], ...], int]:
    """The finished tasks' results, the bad shards with their reasons, the network loads."""
    scored, bad, loads = [], [], 0
    for path, future in zip(shards, futures, strict=True):
        if future.status == "finished":
            result = future.result()
            loads += result.loaded_network
            if result.error is None:
                scored.append(result)
            else:
                bad.append((str(path), result.error))
        elif future.status == "error":  # raised after its retries, or killed workers
            error = future.exception()
            bad.append((str(path), f"{type(error).__name__}: {error}"))
        else:  # cancelled: the scheduler lost it (or was lost)
            bad.append((str(path), f"not scored: its task was {future.status}"))
    return tuple(scored), tuple(bad), loads


@contextmanager
def _client(distributed: Any, scheduler: str | None, workers: int) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a new local cluster of
    ``workers`` one-thread processes (closed at the end)."""
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            yield client
        return
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _remove_stale_temporaries(shards: list[Path], out: Path) -> None:
    """Delete the temporary files that workers killed while writing left behind (every
    task of this run is over, so no live write of these shards can be under way)."""
    for temp in temporaries(out, {scores_path(shard, out).name for shard in shards}):
        temp.unlink(missing_ok=True)


def _check_manifest(out: Path, network: str, digest: str, padding: Padding, layout: str) -> None:
    """Record what the scores in ``out`` are made with, or refuse if it was something else."""
    wanted = {
        "format": "lstm_ref scores",
        "network_digest": digest,
        "padding": dataclasses.asdict(padding),
        "layout": layout,
    }
    path = out / MANIFEST
    if path.exists():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{path}: damaged ({e}); delete it to start afresh") from None
        recorded = {k: found.get(k) for k in wanted} if isinstance(found, dict) else None
        if recorded != wanted:
            raise InputError(
                f"{out} holds scores made with another network, padding or layout "
                f"({path}); write to another folder or empty this one"
            )
        return
    write_text_atomically(path, json.dumps({**wanted, "network": network}, indent=2) + "\n")
