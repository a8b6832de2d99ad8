"""Throughput of ``score_shards``: one process against Dask with 1 and 2 workers, and the
scheduling overhead per task.

    python benchmarks/scale_report.py [--shards 8] [--shard-size 370] [--repeat 3]

Every peer does the same work per shard — read the shard file, ``net.classify`` (the fast
path), write its scores file atomically — on the shipped JapaneseVowelsNet and shards cut
from the Japanese Vowels test set (370 sequences, 5,687 steps; shard *k* of size *s* holds
test sequences ``k·s … k·s+s-1``, cycling). BLAS runs one thread everywhere: threadpoolctl
in this process, and in each worker (``lstm_ref.scale`` limits it itself).

- **one process**: ``score_file`` on each shard in turn, in this process.
- **Dask, N workers**: ``score_shards(..., scheduler=...)`` on a ``LocalCluster`` of N
  one-thread worker processes, started (and warmed: every worker has loaded the network)
  before the clock starts; the cluster's start-up time is reported on its own.
- **per-task overhead**: shards of one sequence, 40 and then 160 of them, in one process
  and on Dask with one worker. The slope of each line is the cost per shard; the difference
  of the slopes is what Dask adds per task, the Dask line's intercept what it costs per run
  (connecting the client, listing the shards). Beside it, the round trip of an empty task
  (``client.map`` of a no-op over 500 keys, one worker), and the scheduler's own CPU time
  per task — empty, and scoring one-sequence shards — on a ``dask scheduler`` process with
  one ``dask worker`` (CPU time, unlike wall time, hardly grows when other processes share
  the cores: it bounds the tasks per second one scheduler can hand out).

Each figure is the median of ``--repeat`` runs, with the range. The machine may be shared:
the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import threadpoolctl

from lstm_ref import load_network
from lstm_ref.datasets import load_japanese_vowels
from lstm_ref.padding import MASKED
from lstm_ref.scale import find_shards, score_file, score_shards, scores_path

NETWORK = "JapaneseVowelsNet"
EMPTY_TASKS = 500
TINY_TASKS = (40, 160)  # shards of one sequence: two points of a line


def make_shards(folder: Path, count: int, size: int) -> int:
    """``count`` .npz shards of ``size`` test sequences each; the number of sequences."""
    test_set = load_japanese_vowels("test")[0]
    folder.mkdir(parents=True)
    for k in range(count):
        rows = [(k * size + i) % len(test_set) for i in range(size)]
        np.savez(
            folder / f"shard-{k:04d}.npz",
            **{f"jv{r:03d}-{i}": test_set[r] for i, r in enumerate(rows)},
        )
    return count * size


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    """Wall times of ``repeat`` calls of ``run``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def one_process(shards: Path, out: Path) -> None:
    net = load_network(NETWORK)
    fresh(out).mkdir()
    for shard in find_shards(shards):
        score_file(shard, scores_path(shard, out), net, padding=MASKED)


def on_dask(address: str, shards: Path, out: Path, busy: list[float] | None = None) -> None:
    """Score ``shards`` on the cluster at ``address``; append the workers' busy seconds."""
    report = score_shards(shards, NETWORK, fresh(out), scheduler=address)
    if report.bad or not report.scored:
        raise RuntimeError(report.summary())
    if busy is not None:
        busy.append(sum(r.seconds for r in report.scored))


def noop(k: int) -> int:
    return k


def median(times: list[float]) -> float:
    return statistics.median(times)


def row(label: str, times: list[float], tasks: int, sequences: int, base: float) -> str:
    """One line of the throughput table."""
    return (
        f"| {label} | {tasks} | {sequences} | {median(times):.3f} ({min(times):.3f}–"
        f"{max(times):.3f}) | {sequences / median(times):.0f} | {base / median(times):.2f} |"
    )


def slope(points: dict[int, list[float]]) -> tuple[float, float]:
    """(seconds per task, fixed seconds) of the line through two (tasks, median) points."""
    (n1, t1), (n2, t2) = sorted((n, median(t)) for n, t in points.items())
    per_task = (t2 - t1) / (n2 - n1)
    return per_task, t1 - n1 * per_task


def scheduler_cpu(tiny: Path, out: Path, tasks: int, repeat: int) -> tuple[float, float]:
    """The scheduler's own CPU seconds per empty task and per one-sequence scoring task,
    measured on a ``dask scheduler`` process with one ``dask worker`` (the deployment of a
    real cluster, on one machine). CPU time, unlike wall time, does not grow when other
    processes share the cores: it is the scheduler's capacity, 1 / seconds tasks per second."""
    import distributed
    import psutil

    folder = Path(tempfile.mkdtemp(prefix="lstm_ref_scheduler_"))
    file = folder / "scheduler.json"
    dask_scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    dask_worker = [sys.executable, "-m", "distributed.cli.dask_worker"]
    scheduler = subprocess.Popen(
        [
            *dask_scheduler,
            "--port",
            "0",
            "--dashboard-address",
            ":0",
            "--scheduler-file",
            str(file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [*dask_worker, "--scheduler-file", str(file), "--nworkers", "1", "--nthreads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not file.exists():
            time.sleep(0.1)
        with distributed.Client(scheduler_file=str(file)) as client:
            client.wait_for_workers(1)
            address = client.scheduler.address
            on_dask(address, tiny, out)  # warm: the worker loads the network
            process = psutil.Process(scheduler.pid)

            def cpu_per_task(run: Callable[[], object]) -> float:
                values = []
                for _ in range(repeat):
                    before = sum(process.cpu_times()[:2])
                    run()
                    values.append((sum(process.cpu_times()[:2]) - before) / tasks)
                return median(values)

            empty = cpu_per_task(lambda: client.gather(client.map(noop, range(tasks), pure=False)))
            scoring = cpu_per_task(lambda: on_dask(address, tiny, out))
    finally:
        for process_ in (worker, scheduler):
            process_.terminate()
            process_.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    return empty, scoring


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shards", type=int, default=8, help="shards of the main workload")
    parser.add_argument("--shard-size", type=int, default=370, help="sequences per shard")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import distributed

    threadpoolctl.threadpool_limits(limits=1, user_api="blas")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average before: {load}; {os.cpu_count()} CPUs")
    root = Path(tempfile.mkdtemp(prefix="lstm_ref_scale_"))
    try:
        main_shards, out = root / "main", root / "out"
        n_main = make_shards(main_shards, args.shards, args.shard_size)
        tiny = {n: root / f"tiny{n}" for n in TINY_TASKS}
        for n, folder in tiny.items():
            make_shards(folder, n, 1)

        single = timed(lambda: one_process(main_shards, out), args.repeat)
        single_tiny = {
            n: timed(lambda f=f: one_process(f, out), args.repeat) for n, f in tiny.items()
        }
        base = median(single)
        utilisation: dict[int, float] = {}
        rows = [row("one process (fast path)", single, args.shards, n_main, base)]
        for workers in (1, 2):
            start = time.perf_counter()
            with (
                distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
                ) as cluster,
                distributed.Client(cluster) as client,
            ):
                started = time.perf_counter() - start
                address = cluster.scheduler_address
                on_dask(address, tiny[TINY_TASKS[0]], out)  # warm: every worker loads the net
                busy: list[float] = []
                times = timed(
                    lambda a=address, b=busy: on_dask(a, main_shards, out, b), args.repeat
                )
                rows.append(row(f"Dask, {workers} worker(s)", times, args.shards, n_main, base))
                utilisation[workers] = median(busy) / (workers * median(times))
                if workers == 1:
                    dask_tiny = {
                        n: timed(lambda a=address, f=f: on_dask(a, f, out), args.repeat)
                        for n, f in tiny.items()
                    }
                    empty = timed(
                        lambda c=client: c.gather(c.map(noop, range(EMPTY_TASKS), pure=False)),
                        args.repeat,
                    )
            print(f"LocalCluster of {workers} worker(s) started in {started:.2f} s")
        cpu_empty, cpu_scoring = scheduler_cpu(
            tiny[TINY_TASKS[-1]], out, TINY_TASKS[-1], args.repeat
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        f"{args.shards} shards × {args.shard_size} sequences; BLAS 1 thread; median of "
        f"{args.repeat} runs (range)"
    )
    print()
    print("| peer | tasks | sequences | wall s | sequences/s | ×one process |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print(
        "Workers busy (sum of the tasks' own time) per worker and wall second: "
        + ", ".join(f"{n} worker(s) {u:.0%}" for n, u in utilisation.items())
    )
    shard_cost, _ = slope(single_tiny)
    dask_cost, fixed = slope(dask_tiny)
    print()
    print(f"Shards of 1 sequence, {' and '.join(map(str, TINY_TASKS))} tasks, Dask 1 worker:")
    print(f"- one process: {shard_cost * 1e3:.2f} ms per shard (read, classify, write, fsync)")
    print(
        f"- Dask: {dask_cost * 1e3:.2f} ms per task, so {(dask_cost - shard_cost) * 1e3:.2f} ms "
        f"of scheduling overhead per task; {fixed:.2f} s fixed per run (client, listing)"
    )
    print(
        f"- an empty task's round trip ({EMPTY_TASKS} tasks): "
        f"{median(empty) / EMPTY_TASKS * 1e3:.2f} ms"
    )
    print(
        f"- the scheduler's own CPU time per task (a `dask scheduler` process): "
        f"{cpu_empty * 1e3:.2f} ms per empty task, {cpu_scoring * 1e3:.2f} ms per scoring task"
    )
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
