"""The fast path (lstm_ref.fast) beside onnxruntime, torch and the reference, in one run.

A  the stepper (``net.stepper("lstm").step``), one step per call, batch 1, state carried;
   onnxruntime ``run`` and ``run_with_iobinding`` on an ONNX LSTM graph built here with
   ``onnx.helper`` (float32 only: onnxruntime has no float64 LSTM kernel);
B  one sequence to probabilities: onnxruntime (normalise, LSTM, Gemm, Softmax);
C  370 sequences, masked: onnxruntime with ``sequence_lens``;
D  one training epoch (270 sequences, mini-batches of 27): lstm_ref's ``loss_and_gradients``
   + Adam against a torch epoch (forward, backward, Adam) in the same dtype;
M  peak RSS (VmHWM) of a NumPy-only inference process, measured in a subprocess.

Beside them: the NumPy floors of A, B and C (the least work of ours: no checks, no output
copies), C on 2 cores (2 BLAS threads, a split over two Python threads, onnxruntime's own
threads) and the machine's GEMM peak.

Every result is checked against the float64 reference before it is timed, as in
``test_bench_lstm.py``. lstm_ref's ``predict``/``classify`` entries there run the fast path.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import pytest
import torch
from bench_common import ATOL
from bench_onnx import onnx_lstm_model, ort_numpy, session
from test_bench_lstm import StepLoop, checked, grouped, label, run_step_benchmark
from threadpoolctl import threadpool_limits

from lstm_ref.datasets import load_japanese_vowels
from lstm_ref.fast import Work, all_finite, fast_steps, run_lstm
from lstm_ref.fast.engine import batches
from lstm_ref.fast.step import within
from lstm_ref.padding import Padding, make_batches
from lstm_ref.train.fast import fast_loss_and_gradients
from lstm_ref.train.loop import MATLAB_RECIPE_PADDING, sort_by_length
from lstm_ref.train.loss import learnables, loss_and_gradients
from lstm_ref.train.optimizer import Adam

# ------------------------------------------------------------------ A: step, batch 1
A = grouped("A step (batch 1)")
A32 = [p for p in A if p.values[0] == "float32"]


@pytest.mark.parametrize("dtype", A)
def test_a_lstm_ref_stepper(benchmark, dtype, nets, step_stream):
    """net.stepper("lstm").step(x_t): the fast path's streaming form (raw input)."""
    label(benchmark, "lstm_ref stepper.step (fast path)", "lstm_ref", steps=1)
    stepper = nets[dtype].stepper("lstm")

    def reset():
        stepper.reset()

    def step(x, _):
        return None, stepper.step(x)

    xs = step_stream.raw[dtype][:, 0]  # (N, 12): one (12,) step per call
    run_step_benchmark(benchmark, StepLoop(xs, reset, step), step_stream.h_ref, dtype)


@pytest.mark.parametrize("iobinding", [False, True], ids=["run", "iobinding"])
@pytest.mark.parametrize("dtype", A32)
def test_a_onnxruntime(benchmark, dtype, iobinding, nets, step_stream):
    """onnxruntime's LSTM on a length-1 sequence, (h, c) carried; ``run`` with NumPy
    arrays, or ``run_with_iobinding`` with the state ping-ponging between two bound pairs
    of OrtValues (no copies)."""
    kind = "run_with_iobinding" if iobinding else "run"
    label(benchmark, f"onnxruntime {kind}", "onnxruntime", steps=1)
    sess = session(onnx_lstm_model(nets[dtype], head=False))
    H = nets[dtype].layer("lstm").hidden_size
    xs = step_stream.normalized[dtype][:, None]  # (N, 1, 1, 12): xs[k] is (T=1, B=1, 12)
    lens = np.ones(1, np.int32)
    if not iobinding:

        def reset():
            return tuple(np.zeros((1, 1, H), np.float32) for _ in range(2))

        def step(x, state):
            h, c = sess.run(
                ["Y_h", "Y_c"],
                {"X": x, "sequence_lens": lens, "initial_h": state[0], "initial_c": state[1]},
            )
            return (h, c), h

    else:
        x_val = ort.OrtValue.ortvalue_from_numpy(xs[0].copy())  # its own memory
        pairs = [
            [ort.OrtValue.ortvalue_from_numpy(np.zeros((1, 1, H), np.float32)) for _ in "hc"]
            for _ in range(2)
        ]
        bindings = []
        for p in range(2):  # binding p reads pair p and writes pair 1 - p
            io = sess.io_binding()
            io.bind_ortvalue_input("X", x_val)
            io.bind_cpu_input("sequence_lens", lens)
            io.bind_ortvalue_input("initial_h", pairs[p][0])
            io.bind_ortvalue_input("initial_c", pairs[p][1])
            io.bind_ortvalue_output("Y_h", pairs[1 - p][0])
            io.bind_ortvalue_output("Y_c", pairs[1 - p][1])
            bindings.append(io)

        def reset():
            for v in pairs[0]:
                v.update_inplace(np.zeros((1, 1, H), np.float32))
            return 0

        def step(x, p):
            x_val.update_inplace(x)
            sess.run_with_iobinding(bindings[p])
            return 1 - p, pairs[1 - p][0]

    loop = StepLoop(xs, reset, step)
    loop.restart()
    for _ in range(60):
        np.testing.assert_allclose(
            ort_numpy(loop()).ravel(), step_stream.h_ref[loop.k], 0, ATOL[dtype]
        )
    loop.restart()
    h = benchmark(loop)
    np.testing.assert_allclose(ort_numpy(h).ravel(), step_stream.h_ref[loop.k], 0, ATOL[dtype])


@pytest.mark.parametrize("dtype", A)
def test_a_floor_step(benchmark, dtype, nets, step_stream):
    """The floor of a step on the fast path: the input copied into the kept row, then
    ``fast_steps`` (one product, seven ufunc calls) — no checks, no output copy."""
    label(benchmark, "floor: fast_steps, one row (product + 7 ufuncs)", "lstm_ref", steps=1)
    engine = nets[dtype].fast_engine(1)
    f, half = engine.lstms[0], np.array(0.5, dtype)
    work = Work.make(f, 1, in_place=True)

    def reset():
        work.h0[:], work.buf.c[:] = f.h0, f.c0

    def step(x, _):
        work.Z[0, : f.C] = x
        fast_steps(f.M, work.steps, work.buf, half)
        return None, work.h0

    xs = step_stream.raw[dtype][:, 0]
    run_step_benchmark(benchmark, StepLoop(xs, reset, step), step_stream.h_ref, dtype)


@pytest.mark.parametrize("dtype", A)
def test_a_floor_weight_check(benchmark, dtype, nets):
    """What every public call adds to a step: FastNetwork.is_current, the check that the
    layers still hold what was compiled (attributes by identity, the read-only flags of the
    folded arrays)."""
    label(benchmark, "floor: the weight check of a public call (is_current)", "lstm_ref")
    net = nets[dtype]
    engine, layers = net.fast_engine(1), net.layers[:2]
    assert engine.is_current(layers)
    assert benchmark(engine.is_current, layers)


@pytest.mark.parametrize("dtype", A)
def test_a_floor_public_step(benchmark, dtype, nets, step_stream):
    """The least NumPy work of one public call, written inline without predict's dispatch:
    the weight check, the input's check, the state copied in, the step, the state copied
    out and checked, the output's own copy, and the assigned state's check and copy."""
    label(
        benchmark, "floor: the public call's NumPy work (checks, copies, step)", "lstm_ref", steps=1
    )
    net = nets[dtype]
    engine, layers = net.fast_engine(1), net.layers[:2]
    f, half, limit = engine.lstms[0], np.array(0.5, dtype), engine.limit
    work = Work.make(f, 1, in_place=True)  # [x, 1, h] then c: h and c are one block

    def reset():
        return np.concatenate([f.h0, f.c0])

    def step(x, block):
        assert engine.is_current(layers) and within(x, limit)
        work.Z[0, : f.C] = x
        work.end[:] = block  # the state in
        fast_steps(f.M, work.steps, work.buf, half)
        issued = work.end.copy()  # the state out, checked
        assert all_finite(issued)
        y = issued[: f.H].copy()  # the output, the caller's own
        assigned = issued.copy()  # net.state = state: checked and copied
        assert all_finite(assigned)
        return assigned, y

    xs = step_stream.raw[dtype][:, 0]
    run_step_benchmark(benchmark, StepLoop(xs, reset, step), step_stream.h_ref, dtype)


# ---------------------------------------------------------- B: one sequence → probabilities
B32 = [p for p in grouped("B one sequence → probabilities") if p.values[0] == "float32"]


@pytest.mark.parametrize("dtype", grouped("B one sequence → probabilities"))
def test_b_floor(benchmark, dtype, nets, test_sequences):
    """The floor of B: ``fast_steps`` over the sequence's 19 steps in kept buffers, then the
    head (FC + softmax) by hand — no checks, no state copies, no weight check."""
    label(benchmark, "floor: fast_steps, 19 steps + head (no checks)", "lstm_ref", steps=19)
    engine, x = nets[dtype].fast_engine(), test_sequences[dtype][0]
    f, half = engine.lstms[0], np.array(0.5, dtype)
    fc = nets[dtype].layer("fc")
    W_t, b = fc.weights.T.copy(), fc.bias
    work = Work.make(f, len(x))
    want = nets["float64"].predict(x.astype(np.float64))

    def run(x: np.ndarray) -> np.ndarray:
        work.x[:], work.h0[:], work.buf.c[:] = x, f.h0, f.c0
        fast_steps(f.M, work.steps, work.buf, half)
        z = work.end[: f.H] @ W_t + b
        e = np.exp(z - z.max())
        return e / e.sum()

    checked(benchmark, run, x, want, dtype)


@pytest.mark.parametrize("dtype", B32)
def test_b_onnxruntime(benchmark, dtype, nets, test_sequences, reference_scores):
    """session.run on test sequence 1 (normalise, LSTM, Gemm, Softmax in the graph)."""
    label(benchmark, "onnxruntime run (LSTM + Gemm + Softmax)", "onnxruntime")
    sess = session(onnx_lstm_model(nets[dtype], head=True))
    H, x = nets[dtype].layer("lstm").hidden_size, test_sequences[dtype][0]
    zero = np.zeros((1, 1, H), np.float32)

    def predict(x: np.ndarray) -> np.ndarray:
        feeds = {"X": x[:, None], "sequence_lens": np.array([len(x)], np.int32)}
        return sess.run(["probs"], {**feeds, "initial_h": zero, "initial_c": zero})[0][0]

    checked(benchmark, predict, x, reference_scores[0], dtype)


# ------------------------------------------------------------ C: 370 sequences, masked
C32 = [p for p in grouped("C 370 sequences masked") if p.values[0] == "float32"]


@pytest.mark.parametrize("dtype", C32)
def test_c_onnxruntime(benchmark, dtype, nets, test_sequences, reference_scores):
    """Pad (time-major), session.run with sequence_lens (Y_h at each sequence's end)."""
    sess = session(onnx_lstm_model(nets[dtype], head=True))
    H, xs = nets[dtype].layer("lstm").hidden_size, test_sequences[dtype]
    label(benchmark, "onnxruntime run with sequence_lens", "onnxruntime", False, sum(map(len, xs)))

    def classify(xs: list[np.ndarray]) -> np.ndarray:
        return onnx_classify(sess, H, xs)

    checked(benchmark, classify, xs, reference_scores, dtype)


@pytest.mark.parametrize("dtype", grouped("C 370 sequences masked"))
def test_c_floor(benchmark, dtype, nets, test_sequences):
    """The floor of C: ``run_lstm`` (the products and element-wise calls of every step,
    the sorted shrinking batches) over the time-major batches ``classify`` builds, built
    beforehand — with neither the batching, checks, state copies, the weight check nor
    the head (FC + softmax)."""
    xs = test_sequences[dtype]
    label(benchmark, "floor: run_lstm over the batches (no batching, checks, head)", "lstm_ref")
    f = nets[dtype].fast_engine().lstms[0]
    prepared = []
    for run in batches(xs, Padding.masked()):
        T, B = run.x.shape[:2]
        Z = np.empty((T + 1, B, f.C + 1 + f.H), f.M.dtype)
        Z[:-1, :, : f.C], Z[:, :, f.C], Z[0, :, f.C + 1 :] = run.x, 1, f.h0
        prepared.append((run, Z, np.tile(f.c0, (B, 1))))
    want = nets["float64"].predict([x.astype(np.float64) for x in xs], "lstm")

    def run_all(prepared: list) -> np.ndarray:
        h = np.empty((len(xs), f.H), f.M.dtype)
        for run, Z, c0 in prepared:
            run_lstm(f, Z, run.counts, c0)
            h[run.rows] = Z[run.stop, np.arange(len(run.rows)), f.C + 1 :]
        return h

    checked(benchmark, run_all, prepared, want, dtype)


def onnx_classify(sess, H: int, xs: list[np.ndarray]) -> np.ndarray:
    """Pad (time-major), session.run with sequence_lens (Y_h at each sequence's end)."""
    lens = np.array([len(x) for x in xs], np.int32)
    X = np.zeros((lens.max(), len(xs), xs[0].shape[1]), np.float32)
    for b, x in enumerate(xs):
        X[: len(x), b] = x
    zero = np.zeros((1, len(xs), H), np.float32)
    feeds = {"X": X, "sequence_lens": lens, "initial_h": zero, "initial_c": zero}
    return sess.run(["probs"], feeds)[0]


C2 = [
    pytest.param(
        "float32", id="float32", marks=pytest.mark.benchmark(group="C 370 sequences, 2 cores")
    )
]


@pytest.mark.parametrize("dtype", C2)
@pytest.mark.parametrize("how", ["blas", "threads", "onnxruntime"])
def test_c_two_cores(benchmark, dtype, how, nets, test_sequences, reference_scores):
    """The 370 sequences on both cores: lstm_ref with two BLAS threads (threadpoolctl), or
    split over two Python threads of one BLAS thread each (sequences alternately, so both
    halves hold alike lengths); onnxruntime with its default threads (one per core)."""
    net, xs = nets[dtype], test_sequences[dtype]
    steps = sum(map(len, xs))
    if how == "onnxruntime":
        label(benchmark, "onnxruntime sequence_lens, default threads", "onnxruntime", False, steps)
        sess = session(onnx_lstm_model(net, head=True), threads=0)
        H = net.layer("lstm").hidden_size

        def classify(xs):
            return onnx_classify(sess, H, xs)

    elif how == "blas":
        label(benchmark, "lstm_ref classify, 2 BLAS threads", "lstm_ref", True, steps)

        def classify(xs):
            with threadpool_limits(2, user_api="blas"):
                return net.classify(xs)[1]

    else:
        label(
            benchmark,
            "lstm_ref classify, 2 Python threads × 1 BLAS thread",
            "lstm_ref",
            False,
            steps,
        )
        pool = ThreadPoolExecutor(2)

        def classify(xs):
            halves = pool.map(lambda part: net.classify(part)[1], (xs[0::2], xs[1::2]))
            scores = np.empty((len(xs), len(net.class_names)), net.dtype)
            scores[0::2], scores[1::2] = halves
            return scores

    checked(benchmark, classify, xs, reference_scores, dtype)


# ---------------------------------------------------------------- the machine's GEMM peak
@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(d, id=d, marks=pytest.mark.benchmark(group=f"GEMM peak, {d}"))
        for d in ("float32", "float64")
    ],
)
def test_gemm_peak(benchmark, dtype):
    """A 2000 × 2000 matrix product on one BLAS thread: the machine's limit, measured in the
    same run (report.py divides every entry's GFLOP/s by it)."""
    n = 2000
    benchmark.extra_info.update(label=f"numpy {n}×{n} matmul", impl="numpy", flops=2 * n**3)
    a = np.random.default_rng(0).random((n, n)).astype(dtype)
    out = np.empty_like(a)
    benchmark(np.matmul, a, a, out=out)


# ------------------------------------------------------------------ D: a training epoch
D = grouped("D training epoch (270 sequences, mini-batch 27)")


@pytest.fixture(scope="session")
def training_data():
    x, y = load_japanese_vowels("train")
    return sort_by_length(list(x), list(y))


@pytest.fixture(scope="session")
def first_loss(nets, training_data) -> float:
    """The float64 reference's loss on the first mini-batch (before any update)."""
    net = nets["float64"]
    batch = make_batches(training_data[0], MATLAB_RECIPE_PADDING)[0]
    return loss_and_gradients(net, batch, _targets(net, training_data[1])[batch.rows])[0]


def _targets(net, labels) -> np.ndarray:
    index = {name: k for k, name in enumerate(net.class_names)}
    return np.array([index[label] for label in labels])


@pytest.mark.parametrize("dtype", D)
@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fast"])
def test_d_lstm_ref_epoch(benchmark, dtype, fast, nets, training_data, first_loss):
    """The gradients of the recipe's 10 mini-batches (MATLAB padding) + Adam: the reference
    ``loss_and_gradients`` or ``lstm_ref.train.fast.fast_loss_and_gradients``."""
    what = "fast BPTT" if fast else "reference BPTT"
    label(benchmark, f"lstm_ref epoch ({what} + Adam)", "lstm_ref", reference=not fast)
    net = nets[dtype].astype(dtype)  # a copy: training changes it
    seqs = [np.asarray(s, dtype) for s in training_data[0]]
    targets = _targets(net, training_data[1])
    batches = make_batches(seqs, MATLAB_RECIPE_PADDING)
    params, adam = learnables(net), Adam(1e-3)
    gradients = fast_loss_and_gradients if fast else loss_and_gradients
    first = gradients(net, batches[0], targets[batches[0].rows])
    assert first is not None
    np.testing.assert_allclose(first[0], first_loss, 0, ATOL[dtype])

    def epoch() -> float:
        total = 0.0
        for batch in batches:
            done = gradients(net, batch, targets[batch.rows])
            assert done is not None
            adam.step(params, done[1])
            total += done[0]
        return total

    assert np.isfinite(benchmark(epoch))


@pytest.mark.parametrize("dtype", D)
def test_d_torch_epoch(benchmark, dtype, torch_models, nets, training_data, first_loss):
    """The same epoch in torch: padded batches, nn.LSTM, Linear on the last padded step,
    cross-entropy, backward, Adam."""
    label(benchmark, "torch epoch (nn.LSTM + backward + Adam)", "torch")
    m = torch_models[dtype]
    lstm, linear = copy.deepcopy(m.lstm), copy.deepcopy(m.linear)  # training changes them
    seqs = training_data[0]
    targets = torch.from_numpy(_targets(nets[dtype], training_data[1]))
    batches = []
    for first in range(0, len(seqs), 27):
        chunk = [torch.from_numpy(np.asarray(s, dtype)) for s in seqs[first : first + 27]]
        padded = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True)
        batches.append(((padded - m.mean) / m.std, targets[first : first + 27]))
    with torch.no_grad():  # the same loss as the reference before any update
        x0, y0 = batches[0]
        loss0 = torch.nn.functional.cross_entropy(linear(lstm(x0)[0][:, -1]), y0)
    np.testing.assert_allclose(float(loss0), first_loss, 0, ATOL[dtype])
    modules = torch.nn.ModuleList([lstm, linear]).train()
    modules.requires_grad_(True)
    adam = torch.optim.Adam(modules.parameters(), lr=1e-3)

    def epoch() -> float:
        total = 0.0
        with torch.enable_grad():
            for x, y in batches:
                adam.zero_grad()
                out, _ = lstm(x)
                loss = torch.nn.functional.cross_entropy(linear(out[:, -1]), y)
                loss.backward()
                adam.step()
                total += float(loss.detach())
        return total

    try:
        assert np.isfinite(benchmark(epoch))
    finally:
        modules.eval().requires_grad_(False)


# ---------------------------------------------------------- M: peak memory of a process
RSS_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, threadpoolctl
    threadpoolctl.threadpool_limits(1)
    import lstm_ref
    from lstm_ref.datasets import load_japanese_vowels
    net = lstm_ref.load_network("JapaneseVowelsNet").astype(np.float32)
    x, _ = load_japanese_vowels("test")
    net.classify(list(x))
    stepper = net.stepper("lstm")
    for step in np.concatenate(list(x)).astype(np.float32):
        stepper.step(step)
    status = open("/proc/self/status").read().split("\\n")
    hwm = [line for line in status if line.startswith("VmHWM")][0].split()[1]
    print(json.dumps({"VmHWM_kB": int(hwm), "modules": sorted(
        m for m in __import__("sys").modules if m in ("torch", "onnxruntime", "scipy"))}))
    """
)


def test_m_peak_memory_numpy_only(benchmark):
    """VmHWM of a fresh process that classifies the 370 test sequences and streams every
    step through the stepper (float32), importing neither torch, onnxruntime nor scipy."""
    label(benchmark, "lstm_ref inference process: peak RSS (see extra_info)", "lstm_ref")
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True, check=True
    )
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["modules"] == []
    benchmark.extra_info["peak_rss_mb"] = round(facts["VmHWM_kB"] / 1024, 1)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
