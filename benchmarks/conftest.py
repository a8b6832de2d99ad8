"""Benchmark session setup: the environment in the header, one thread, shared fixtures.

Every peer runs on one thread: ``torch.set_num_threads(1)`` and NumPy's BLAS limited to one
thread with threadpoolctl for the session (restored at the end). ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` are only reported, never changed: they pick OpenBLAS's kernel.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import numpy as np
import pytest
import threadpoolctl
import torch
from bench_common import DTYPES, TORCH_DTYPES

import lstm_ref
from lstm_ref import LSTMState, Network, lstm_forward
from lstm_ref.datasets import load_japanese_vowels

THREADS = 1
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

_BLAS_DEFAULTS = threadpoolctl.threadpool_info()  # before any limit: what a user gets
_limiter: threadpoolctl.threadpool_limits | None = None


class CpuMeter:
    """How much CPU other processes took while the benchmarks ran (Linux /proc/stat).

    The machine is shared: busy time of all CPUs minus this process's own CPU time,
    divided by the wall time, is the number of cores the rest of the machine kept busy.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy = (sum(fields[:8]) - idle) / tick  # user … steal, not guest (counted in user)
        steal = (fields[7] if len(fields) > 7 else 0) / tick
        own = os.times()
        return time.monotonic(), busy, steal, own.user + own.system

    def others(self) -> dict[str, float] | None:
        """Cores busy with other processes, and stolen by the hypervisor, on average."""
        end = self._sample()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        wall, busy, steal, own = (b - a for a, b in zip(self.start, end, strict=True))
        return {
            "wall_s": round(wall, 2),
            "own_cpu_s": round(own, 2),
            "other_cores_busy": round(max(busy - own, 0.0) / wall, 2),
            "steal_cores": round(steal / wall, 3),
            "cpus": os.cpu_count() or 0,
        }


_meter: CpuMeter | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--robin",
        type=int,
        default=1,
        help="run every benchmark N times, round-robin: every entry once, then every entry "
        "again, … (report.py takes the median over the repetitions)",
    )


@pytest.fixture(autouse=True)
def robin(request: pytest.FixtureRequest) -> int:
    """Which round-robin repetition this is (see --robin)."""
    return getattr(request, "param", 0)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    n = metafunc.config.getoption("robin")
    if n > 1 and "robin" in metafunc.fixturenames:
        metafunc.parametrize("robin", range(n), ids=[f"r{k}" for k in range(n)], indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Round-robin: repetition 0 of every benchmark, then repetition 1, … (a stable sort,
    so the entries of one workload stay side by side within a repetition)."""

    def repetition(item: pytest.Item) -> int:
        callspec = getattr(item, "callspec", None)
        return callspec.params.get("robin", 0) if callspec is not None else 0

    items.sort(key=repetition)


def pytest_configure(config: pytest.Config) -> None:
    global _limiter, _meter
    torch.set_num_threads(THREADS)
    _limiter = threadpoolctl.threadpool_limits(limits=THREADS, user_api="blas")
    _meter = CpuMeter()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _limiter
    if _limiter is not None:
        _limiter.restore_original_limits()
        _limiter = None


def _pools() -> list[dict]:
    """threadpoolctl's libraries in a stable order (BLAS first)."""
    return sorted(
        threadpoolctl.threadpool_info(),
        key=lambda i: (i.get("user_api") != "blas", i.get("filepath", "")),
    )


def _library_line(info: dict, default_threads: int | None) -> str:
    kernel = info.get("architecture") or info.get("threading_layer") or "-"
    threads = f"{info.get('num_threads')}"
    if default_threads is not None and default_threads != info.get("num_threads"):
        threads = f"{threads} (default {default_threads})"
    return (
        f"  {info.get('internal_api')} {info.get('version') or '?'} ({info.get('user_api')}), "
        f"kernel/arch: {kernel}, threads: {threads}, {os.path.basename(info.get('filepath', ''))}"
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    defaults = {info.get("filepath"): info.get("num_threads") for info in _BLAS_DEFAULTS}
    lines = ["lstm_ref benchmarks: thread pools (threadpoolctl)"]
    for info in _pools():
        lines.append(_library_line(info, defaults.get(info.get("filepath"))))
    env = ", ".join(f"{name}={os.environ.get(name, '<unset>')}" for name in OPENBLAS_VARIABLES)
    lines.append(f"  {env} (reported, never changed)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    lines.append(
        f"  numpy {np.__version__}, torch {torch.__version__} "
        f"(threads {torch.get_num_threads()}, interop {torch.get_num_interop_threads()}, "
        f"oneDNN {'on' if torch.backends.mkldnn.enabled else 'off'}), "
        f"lstm_ref {lstm_ref.__version__}"
    )
    lines.append(
        f"  one thread for every peer: torch.set_num_threads({THREADS}) and BLAS limited to "
        f"{THREADS} thread; {os.cpu_count()} CPUs, load average {load}"
    )
    return lines


def _load_text(load: dict[str, float] | None) -> str:
    if load is None:
        return "load of other processes: unknown (no /proc/stat)"
    return (
        f"other processes kept {load['other_cores_busy']:.2f} of {load['cpus']} CPUs busy on "
        f"average during this run (steal {load['steal_cores']:.3f}) over {load['wall_s']} s; "
        "more than ~0.2 makes the timings noisy"
    )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _meter is not None:
        terminalreporter.write_line(f"lstm_ref benchmarks: {_load_text(_meter.others())}")


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Into the JSON: BLAS libraries and kernels, OpenBLAS variables, threads, load."""
    machine_info["lstm_ref"] = {
        "thread_pools": [
            {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for info in _pools()
        ],
        "openblas_env": {name: os.environ.get(name) for name in OPENBLAS_VARIABLES},
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_onednn_default": bool(torch.backends.mkldnn.enabled),
        "load": None if _meter is None else _meter.others(),
    }


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def nets() -> dict[str, Network]:
    """The shipped JapaneseVowelsNet, by dtype name: float64 as shipped, and float32."""
    net = lstm_ref.load_network("JapaneseVowelsNet")
    return {"float64": net, "float32": net.astype(np.float32)}


@pytest.fixture(scope="session")
def test_data() -> tuple[list[np.ndarray], np.ndarray]:
    """The 370 Japanese Vowels test sequences (T_i, 12), float64, and their labels."""
    x_test, y_test = load_japanese_vowels("test")
    return list(x_test), np.asarray(y_test)


@pytest.fixture(scope="session")
def test_sequences(test_data) -> dict[str, list[np.ndarray]]:
    """The test sequences in each dtype (converted once, outside any timing)."""
    x_test, _ = test_data
    return {d: [np.ascontiguousarray(x, dtype=d) for x in x_test] for d in DTYPES}


class TorchModel(NamedTuple):
    """The same network in torch: input normalisation, nn.LSTM, nn.Linear, and nn.LSTMCell."""

    mean: torch.Tensor  # (12,)
    std: torch.Tensor  # (12,)
    lstm: torch.nn.LSTM  # batch_first
    cell: torch.nn.LSTMCell  # the same weights, for one step at a time
    linear: torch.nn.Linear


def torch_model(net: Network) -> TorchModel:
    """weight_ih = W, weight_hh = R, bias_ih = b, bias_hh = 0 (one bias, as lstm_ref)."""
    dtype = TORCH_DTYPES[str(net.dtype)]
    inp, lstm, fc = net.layer("sequenceinput"), net.layer("lstm"), net.layer("fc")
    W, R, b = (torch.tensor(a) for a in lstm.params)  # copies: the weights are read-only
    H, C = lstm.hidden_size, lstm.input_size
    t_lstm = torch.nn.LSTM(C, H, batch_first=True, dtype=dtype)
    cell = torch.nn.LSTMCell(C, H, dtype=dtype)
    linear = torch.nn.Linear(H, fc.output_size, dtype=dtype)
    with torch.no_grad():
        for w_ih, w_hh, b_ih, b_hh in [
            (t_lstm.weight_ih_l0, t_lstm.weight_hh_l0, t_lstm.bias_ih_l0, t_lstm.bias_hh_l0),
            (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
        ]:
            w_ih.copy_(W)
            w_hh.copy_(R)
            b_ih.copy_(b)
            b_hh.zero_()
        linear.weight.copy_(torch.from_numpy(fc.weights))
        linear.bias.copy_(torch.from_numpy(fc.bias))
    for module in (t_lstm, cell, linear):
        module.eval().requires_grad_(False)
    return TorchModel(
        mean=torch.tensor(inp.mean, dtype=dtype),
        std=torch.tensor(inp.std, dtype=dtype),
        lstm=t_lstm,
        cell=cell,
        linear=linear,
    )


@pytest.fixture(scope="session")
def torch_models(nets) -> dict[str, TorchModel]:
    """The torch twin of each network, by dtype name."""
    return {d: torch_model(net) for d, net in nets.items()}


class StepStream(NamedTuple):
    """Workload A's input: every test sequence, end to end, as one stream of steps."""

    raw: dict[str, np.ndarray]  # (N, 1, 12) per dtype: what the public API is given
    normalized: dict[str, np.ndarray]  # (N, 1, 12) per dtype: what a bare LSTM step is given
    h_ref: np.ndarray  # (N, H) float64: h after each step, from zero state


@pytest.fixture(scope="session")
def step_stream(nets, test_data) -> StepStream:
    x_test, _ = test_data
    stream = np.concatenate(x_test)[:, None, :]  # (N, 1, 12): one (1, 12) input per step
    raw = {d: np.ascontiguousarray(stream, dtype=d) for d in DTYPES}
    normalized = {
        d: np.ascontiguousarray(nets[d].layer("sequenceinput").forward(raw[d])[0]) for d in DTYPES
    }
    lstm = nets["float64"].layer("lstm")
    zero = LSTMState(*(np.zeros((1, lstm.hidden_size)) for _ in range(2)))
    Y, _, _ = lstm_forward(lstm.params, normalized["float64"].transpose(1, 0, 2), zero)
    return StepStream(raw, normalized, Y[0])


@pytest.fixture(scope="session")
def reference_scores(nets, test_data) -> np.ndarray:
    """Class probabilities of all 370 test sequences (masked padding), float64 reference."""
    x_test, _ = test_data
    _, scores = nets["float64"].classify(x_test)
    return scores
