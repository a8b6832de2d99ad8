"""lstm_ref's reference implementation against torch, side by side, on workloads A, B and C.

A  one LSTM step per call, batch 1, state carried from call to call (the seed loop);
B  one sequence (test sequence 1, T = 19) to class probabilities;
C  all 370 test sequences, masked (each sequence's last valid h) to class probabilities.

Every benchmark checks its result against lstm_ref's float64 reference (1e-10 in float64,
1e-4 in float32) before timing (the step loops of A step by step over 60 steps) and on the
result of the call after the timed rounds, so none can time a wrong computation. Run::

    .venv/bin/python -m pytest benchmarks/ --benchmark-enable --benchmark-json bench.json
    .venv/bin/python benchmarks/report.py bench.json

Without ``--benchmark-enable`` (the project's default) each function runs once, checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from bench_common import ATOL, DTYPES, TORCH_DTYPES, lstm_flops
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from lstm_ref import LSTMState, lstm_step


def grouped(group: str) -> list[Any]:
    """One parameter per dtype, each in its own benchmark group ``"<group>, <dtype>"``."""
    return [
        pytest.param(d, id=d, marks=pytest.mark.benchmark(group=f"{group}, {d}")) for d in DTYPES
    ]


def label(benchmark, text: str, impl: str, reference: bool = False, steps: int = 0) -> None:
    """What the report prints: a readable label, the implementation, lstm_ref's entry, and
    the floating-point work of one call (``steps`` LSTM steps; see ``lstm_flops``)."""
    benchmark.extra_info.update(label=text, impl=impl, reference=reference)
    if steps:
        benchmark.extra_info["flops"] = lstm_flops(steps)


def as_numpy(a: Any) -> np.ndarray:
    return (a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)).astype(np.float64)


@pytest.fixture(autouse=True)
def _no_grad():
    """torch runs inference under no_grad (entered once, as an inference loop would)."""
    with torch.no_grad():
        yield


def checked(benchmark, fn: Callable[[Any], Any], arg: Any, want: np.ndarray, dtype: str) -> None:
    """Check ``fn(arg)`` against the float64 reference, time it, and check the result of the
    call after the timed rounds too."""
    np.testing.assert_allclose(as_numpy(fn(arg)), want, 0, ATOL[dtype])
    np.testing.assert_allclose(as_numpy(benchmark(fn, arg)), want, 0, ATOL[dtype])


# ------------------------------------------------------------------ A: step, batch 1
class StepLoop:
    """Feed a stream of inputs one step per call, carrying the state from call to call.

    ``step(x, state) -> (state, h)``; ``reset() -> state``. At the end of the stream it
    starts again from the reset state, so any number of calls follows the reference.
    """

    def __init__(self, xs: Any, reset: Callable[[], Any], step: Callable[[Any, Any], Any]):
        self.xs, self.reset, self.step = xs, reset, step
        self.n = len(xs)
        self.restart()

    def restart(self) -> None:
        self.k, self.state = -1, self.reset()

    def __call__(self) -> Any:
        k = self.k + 1
        if k == self.n:
            k, self.state = 0, self.reset()
        self.k = k
        self.state, h = self.step(self.xs[k], self.state)
        return h


def run_step_benchmark(benchmark, loop: StepLoop, h_ref: np.ndarray, dtype: str) -> None:
    loop.restart()
    for _ in range(60):  # checked step by step first (also warms up)
        np.testing.assert_allclose(as_numpy(loop()).ravel(), h_ref[loop.k], 0, ATOL[dtype])
    loop.restart()
    h = benchmark(loop)
    np.testing.assert_allclose(as_numpy(h).ravel(), h_ref[loop.k], 0, ATOL[dtype])


A = grouped("A step (batch 1)")


@pytest.mark.parametrize("dtype", A)
def test_a_lstm_ref_public_api(benchmark, dtype, nets, step_stream):
    """predict(x_t, outputs="lstm", return_state=True), then net.state = state."""
    label(benchmark, "lstm_ref predict + net.state (public API)", "lstm_ref", True, 1)
    net = nets[dtype].astype(dtype)  # a copy: its state is this benchmark's own

    def reset():
        net.reset_state()

    def step(x, _):
        y, state = net.predict(x, outputs="lstm", return_state=True)
        net.state = state
        return None, y

    run_step_benchmark(
        benchmark, StepLoop(step_stream.raw[dtype], reset, step), step_stream.h_ref, dtype
    )


@pytest.mark.parametrize("dtype", A)
def test_a_lstm_ref_bare_step(benchmark, dtype, nets, step_stream):
    """lstm_ref.lstm.lstm_step on the normalised input, LSTMState carried."""
    label(benchmark, "lstm_ref lstm_step (bare)", "lstm_ref")
    lstm = nets[dtype].layer("lstm")
    params, H = lstm.params, lstm.hidden_size

    def reset():
        return LSTMState(np.zeros((1, H), dtype), np.zeros((1, H), dtype))

    def step(x, state):
        gates = lstm_step(params, x, state)
        return LSTMState(gates.h, gates.c), gates.h

    loop = StepLoop(step_stream.normalized[dtype], reset, step)
    run_step_benchmark(benchmark, loop, step_stream.h_ref, dtype)


@pytest.mark.parametrize("dtype", A)
def test_a_torch_lstmcell(benchmark, dtype, torch_models, step_stream):
    """nn.LSTMCell, one step per call, (h, c) carried, under no_grad."""
    label(benchmark, "torch nn.LSTMCell", "torch")
    cell, H = torch_models[dtype].cell, torch_models[dtype].cell.hidden_size

    def reset():
        return tuple(torch.zeros(1, H, dtype=TORCH_DTYPES[dtype]) for _ in range(2))

    def step(x, state):
        h, c = cell(x, state)
        return (h, c), h

    xs = torch.from_numpy(step_stream.normalized[dtype])  # (N, 1, 12): xs[k] is (1, 12)
    run_step_benchmark(benchmark, StepLoop(xs, reset, step), step_stream.h_ref, dtype)


@pytest.mark.parametrize("onednn", [True, False], ids=["oneDNN-on", "oneDNN-off"])
@pytest.mark.parametrize("dtype", A)
def test_a_torch_lstm(benchmark, dtype, onednn, torch_models, step_stream):
    """nn.LSTM on a length-1 sequence, (h, c) carried, under no_grad; oneDNN on (torch's
    default) and off."""
    label(benchmark, f"torch nn.LSTM, T=1 (oneDNN {'on' if onednn else 'off'})", "torch")
    lstm, H = torch_models[dtype].lstm, torch_models[dtype].lstm.hidden_size

    def reset():
        return tuple(torch.zeros(1, 1, H, dtype=TORCH_DTYPES[dtype]) for _ in range(2))

    def step(x, state):
        y, state = lstm(x, state)
        return state, y

    xs = torch.from_numpy(step_stream.normalized[dtype])[:, None]  # xs[k] is (1, 1, 12)
    default = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = onednn  # (flags() would also touch TF32 and warn)
    try:
        run_step_benchmark(benchmark, StepLoop(xs, reset, step), step_stream.h_ref, dtype)
    finally:
        torch.backends.mkldnn.enabled = default


# ---------------------------------------------------------- B: one sequence → probabilities
B = grouped("B one sequence → probabilities")


@pytest.mark.parametrize("dtype", B)
def test_b_lstm_ref_predict(benchmark, dtype, nets, test_sequences, reference_scores):
    """net.predict(x) on test sequence 1 (T = 19)."""
    label(benchmark, "lstm_ref net.predict(x)", "lstm_ref", reference=True, steps=19)
    net, x = nets[dtype], test_sequences[dtype][0]
    checked(benchmark, net.predict, x, reference_scores[0], dtype)


@pytest.mark.parametrize("dtype", B)
def test_b_torch_lstm_linear_softmax(
    benchmark, dtype, torch_models, test_sequences, reference_scores
):
    """Normalise, nn.LSTM, nn.Linear on the last h, softmax (from the NumPy array)."""
    label(benchmark, "torch LSTM + Linear + softmax", "torch")
    m, x = torch_models[dtype], test_sequences[dtype][0]

    def predict(x: np.ndarray) -> torch.Tensor:
        inputs = (torch.from_numpy(x)[None] - m.mean) / m.std  # (1, T, 12)
        _, (h, _) = m.lstm(inputs)
        return torch.softmax(m.linear(h[-1, 0]), dim=-1)

    checked(benchmark, predict, x, reference_scores[0], dtype)


# ------------------------------------------------------------ C: 370 sequences, masked
C = grouped("C 370 sequences masked")


@pytest.mark.parametrize("dtype", C)
def test_c_lstm_ref_classify(benchmark, dtype, nets, test_sequences, reference_scores):
    """net.classify(sequences): masked padding, the default (mini-batches of 128)."""
    net, xs = nets[dtype], test_sequences[dtype]
    label(benchmark, "lstm_ref classify (masked)", "lstm_ref", True, sum(map(len, xs)))
    checked(benchmark, lambda xs: net.classify(xs)[1], xs, reference_scores, dtype)


def torch_batch(m, xs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad the list into (B, T_max, 12), normalised, and the lengths."""
    lengths = torch.tensor([len(x) for x in xs])
    padded = pad_sequence([torch.from_numpy(x) for x in xs], batch_first=True)
    return (padded - m.mean) / m.std, lengths


@pytest.mark.parametrize("dtype", C)
def test_c_torch_packed(benchmark, dtype, torch_models, test_sequences, reference_scores):
    """pack_padded_sequence(enforce_sorted=False), final h (h_n, back in input order),
    nn.Linear, softmax."""
    m, xs = torch_models[dtype], test_sequences[dtype]
    label(benchmark, "torch packed + final h + Linear + softmax", "torch", False, sum(map(len, xs)))

    def classify(xs: list[np.ndarray]) -> torch.Tensor:
        padded, lengths = torch_batch(m, xs)
        packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = m.lstm(packed)
        return torch.softmax(m.linear(h[-1]), dim=-1)

    checked(benchmark, classify, xs, reference_scores, dtype)


@pytest.mark.parametrize("dtype", C)
def test_c_torch_padded_gather(benchmark, dtype, torch_models, test_sequences, reference_scores):
    """The padded batch through nn.LSTM, gather h at each sequence's last valid step
    (right padding cannot reach back to it), nn.Linear, softmax."""
    label(benchmark, "torch padded + gather last h + Linear + softmax", "torch")
    m, xs = torch_models[dtype], test_sequences[dtype]

    def classify(xs: list[np.ndarray]) -> torch.Tensor:
        padded, lengths = torch_batch(m, xs)
        y, _ = m.lstm(padded)
        last = y[torch.arange(len(xs)), lengths - 1]
        return torch.softmax(m.linear(last), dim=-1)

    checked(benchmark, classify, xs, reference_scores, dtype)
