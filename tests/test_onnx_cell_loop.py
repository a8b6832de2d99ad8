"""A loop over nn.LSTMCell, as torch.onnx.export unrolls it (one cell of ops per step),
read by from_onnx as one LSTM and run against onnxruntime on the same file — both
exporters (the default dynamo-based one and the TorchScript-based one).

One torch module holds every case — time-major and batch-first × C ≠ H and C = H × started
from non-zero (h0, c0) given as model inputs and from zeros made inside the model — each
case with the heads fc(h_T), softmax(fc(h_T)) and the stacked per-step outputs, so that each
exporter runs once. from_onnx(output=...) reads one case's head. Then the loops that are not
one LSTM, each exported for real and refused with its reason, and Keras 3's own ONNX export
of an LSTM over a time axis of unknown length (its first step only).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch_models import distinct_gates, onnx_export

from lstm_ref import InputError
from lstm_ref.interop.onnx import from_onnx
from lstm_ref.interop.onnx_cells import find_cells
from lstm_ref.interop.onnx_specialise import constants_of
from lstm_ref.interop.torch import from_torch
from lstm_ref.lstm import LSTMState

pytest.importorskip("onnxscript")  # the dynamo exporter's own dependency

H, K, T, BATCH = 6, 3, 3, 3  # BATCH: the feeds' rows
CASES = [(bf, C, start) for bf in (False, True) for C in (4, H) for start in ("given", "zeros")]
HEADS = ("fc", "softmax", "steps")


def case_name(bf: bool, C: int, start: str) -> str:
    return f"{'batch_first' if bf else 'time_major'}_C{C}_{start}"


def steps(x: torch.Tensor, bf: bool) -> list[torch.Tensor]:
    """x[t] (time-major) or x[:, t] (batch-first), for every t."""
    return [x[:, t] if bf else x[t] for t in range(x.shape[1 if bf else 0])]


class CellLoops(torch.nn.Module):
    """Every case's LSTMCell and Linear; each case its own x (and h0, c0). Then two stacked
    cells (4 → H → 5), the second reading the first's h at each step, from given states;
    and a cell (H → 5) looping over the steps of an nn.LSTM's output."""

    def __init__(self) -> None:
        super().__init__()
        self.cells = torch.nn.ModuleList(torch.nn.LSTMCell(C, H) for _, C, _ in CASES)
        self.fcs = torch.nn.ModuleList(torch.nn.Linear(H, K) for _ in CASES)
        self.stacked = torch.nn.ModuleList([torch.nn.LSTMCell(4, H), torch.nn.LSTMCell(H, 5)])
        self.stacked_fc = torch.nn.Linear(5, K)
        self.lstm = torch.nn.LSTM(4, H)
        self.after_lstm = torch.nn.LSTMCell(H, 5)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs, given = [], iter(inputs)
        for (bf, _, start), cell, fc in zip(CASES, self.cells, self.fcs, strict=True):
            x = next(given)
            if start == "given":
                h, c = next(given), next(given)
            else:  # zeros of x's batch, made inside the model
                h = torch.zeros(x.shape[0 if bf else 1], H)
                c = torch.zeros_like(h)
            hs = []
            for x_t in steps(x, bf):
                h, c = cell(x_t, (h, c))
                hs.append(h)
            logits = fc(h)
            outputs += [logits, logits.softmax(dim=-1), torch.stack(hs, dim=1 if bf else 0)]
        x, h1, c1, h2, c2, x_lstm, h, c = given
        hs = []
        for x_t in x:
            h1, c1 = self.stacked[0](x_t, (h1, c1))
            h2, c2 = self.stacked[1](h1, (h2, c2))
            hs.append(h2)
        y, _ = self.lstm(x_lstm)
        for y_t in y:
            h, c = self.after_lstm(y_t, (h, c))
        return (*outputs, self.stacked_fc(h2), torch.stack(hs), self.stacked_fc(h))


def names() -> tuple[list[str], list[str], dict[str, dict[int, str]]]:
    """The graph's input and output names in the module's order, and each input's batch
    axis."""
    inputs, outputs, batch_axes = [], [], {}
    for bf, C, start in CASES:
        case = case_name(bf, C, start)
        inputs.append(f"x_{case}")
        batch_axes[f"x_{case}"] = {0 if bf else 1: "batch"}
        if start == "given":
            inputs += [f"h0_{case}", f"c0_{case}"]
            batch_axes.update({f"h0_{case}": {0: "batch"}, f"c0_{case}": {0: "batch"}})
        outputs += [f"{case}:{head}" for head in HEADS]
    more = ["x_stacked", "h1_stacked", "c1_stacked", "h2_stacked", "c2_stacked"]
    more += ["x_after_lstm", "h_after_lstm", "c_after_lstm"]
    batch_axes.update({name: {1 if name[0] == "x" else 0: "batch"} for name in more})
    outputs += ["stacked:fc", "stacked:steps", "after_lstm:fc"]
    return [*inputs, *more], outputs, batch_axes


def feeds_for(rng: np.random.Generator, B: int) -> list[np.ndarray]:
    """Every input (names()), B rows; states non-zero."""
    shapes = []
    for bf, C, start in CASES:
        shapes += [(B, T, C) if bf else (T, B, C), *([(B, H), (B, H)] if start == "given" else [])]
    shapes += [(T, B, 4), (B, H), (B, H), (B, 5), (B, 5)]  # the stacked cells'
    shapes += [(T, B, 4), (B, 5), (B, 5)]  # the cell after the LSTM
    return [rng.uniform(-0.8, 0.8, size=shape).astype(np.float32) for shape in shapes]


@pytest.fixture(scope="module", params=["torchscript", "dynamo"])
def exported(request):
    """The module written by one exporter, the feeds and onnxruntime's every output on them
    — once per exporter. The TorchScript export has a dynamic batch (traced with 2 rows, fed
    3); the dynamo export is as it is by default, every size fixed: it then folds the first
    step's h_prev · Rᵀ from zeros into that cell's bias. (With a dynamic batch it writes
    zeros of the batch's size instead; it reads as well — checked by hand, not here: the
    export takes 20 s.)"""
    module = distinct_gates(CellLoops(), seed=7).eval()
    rng = np.random.default_rng(11)
    inputs, outputs, batch_axes = names()
    exporter = request.param
    dynamic = exporter == "torchscript"
    example = tuple(torch.from_numpy(a) for a in feeds_for(rng, 2 if dynamic else BATCH))
    proto = onnx_export(module, example, exporter, inputs, outputs, batch_axes if dynamic else {})
    feeds = dict(zip(inputs, feeds_for(rng, BATCH), strict=True))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = dict(zip(outputs, session.run(outputs, feeds), strict=True))
    return exporter, module, proto, feeds, outputs


def case_feeds(feeds: dict, case: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The case's x, and its (h0, c0) inputs (none from zeros)."""
    return feeds[f"x_{case}"], {k: v for k, v in feeds.items() if k.endswith(case) and k[0] != "x"}


def sequences(x: np.ndarray, bf: bool) -> list[np.ndarray]:
    return list(x if bf else x.transpose(1, 0, 2))


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: case_name(*c))
def test_cell_loop_imports_and_matches_onnxruntime(exported, case, head):
    """Each case's head equals onnxruntime's on the same file, from the case's own
    non-zero (h0, c0) or from zeros: the unrolled cells read as one LSTM layer."""
    _, _, proto, feeds, outputs = exported
    bf = case[0]
    name = case_name(*case)
    x, states = case_feeds(feeds, name)
    net = from_onnx(proto, inputs=states or None, output=f"{name}:{head}", dtype=np.float32)
    layers = {"fc": ["FullyConnected"], "softmax": ["FullyConnected", "Softmax"], "steps": []}
    assert [type(layer).__name__ for layer in net.layers] == [
        "SequenceInput", "LSTM", *layers[head],
    ]  # fmt: skip
    assert not np.any(net.layers[1].initial_state)  # zeros, or the given rows: net.state
    got = net.predict(sequences(x, bf))
    want = outputs[f"{name}:{head}"]
    if head == "steps" and not bf:  # (T, B, H) in the graph
        want = want.transpose(1, 0, 2)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: case_name(*c))
def test_cell_loop_is_the_modules_cell(exported, case):
    """The imported LSTM holds the module's own weights, exactly (R from the second step
    where the dynamo exporter folded the first step's), and the network equals from_torch
    of the same LSTMCell and Linear (float64)."""
    _, module, proto, feeds, _ = exported
    k = CASES.index(case)
    name = case_name(*case)
    x, states = case_feeds(feeds, name)
    net = from_onnx(proto, inputs=states or None, output=f"{name}:fc")
    cell = module.cells[k]
    W, R, b = net.layers[1].params
    np.testing.assert_array_equal(W, cell.weight_ih.detach().double().numpy())
    np.testing.assert_array_equal(R, cell.weight_hh.detach().double().numpy())
    np.testing.assert_array_equal(b, (cell.bias_ih.double() + cell.bias_hh.double()).detach())
    reference = from_torch(
        module, prefix=f"cells.{k}", head=f"fcs.{k}", softmax=False, dtype=np.float64
    )
    if states:
        h0, c0 = (states[f"{s}_{name}"].astype(np.float64) for s in ("h0", "c0"))
        reference.state = {reference.layers[1].name: LSTMState(h0, c0)}
    seqs = [s.astype(np.float64) for s in sequences(x, case[0])]
    np.testing.assert_allclose(net.predict(seqs), reference.predict(seqs), rtol=0, atol=1e-12)


@pytest.mark.parametrize("head", ["fc", "steps"])
def test_a_loop_over_stacked_cells_reads_as_stacked_lstms(exported, head):
    """Two cells, the second reading the first's h at each step: two LSTM layers, each
    holding its cell's own weights, from their given states; equal to onnxruntime."""
    _, module, proto, feeds, outputs = exported
    states = {k: v for k, v in feeds.items() if k.endswith("_stacked") and k[0] != "x"}
    net = from_onnx(proto, inputs=states, output=f"stacked:{head}", dtype=np.float32)
    assert [type(layer).__name__ for layer in net.layers] == [
        "SequenceInput", "LSTM", "LSTM", *(["FullyConnected"] if head == "fc" else []),
    ]  # fmt: skip
    for layer, cell in zip(net.layers[1:3], module.stacked, strict=True):
        np.testing.assert_array_equal(layer.params.W, cell.weight_ih.detach().numpy())
        np.testing.assert_array_equal(layer.params.R, cell.weight_hh.detach().numpy())
    got = np.asarray(net.predict(sequences(feeds["x_stacked"], False)))
    want = outputs[f"stacked:{head}"]
    want = want.transpose(1, 0, 2) if head == "steps" else want
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_a_cell_loop_over_an_lstms_output_reads_as_stacked_lstms(exported):
    """nn.LSTM, then a cell over the steps of its output: two LSTM layers, the second the
    cell's own, from its given state; equal to onnxruntime."""
    _, module, proto, feeds, outputs = exported
    states = {k: feeds[k] for k in ("h_after_lstm", "c_after_lstm")}
    net = from_onnx(proto, inputs=states, output="after_lstm:fc", dtype=np.float32)
    assert [type(layer).__name__ for layer in net.layers] == [
        "SequenceInput", "LSTM", "LSTM", "FullyConnected",
    ]  # fmt: skip
    np.testing.assert_array_equal(net.layers[2].params.R, module.after_lstm.weight_hh.detach())
    got = net.predict(sequences(feeds["x_after_lstm"], False))
    np.testing.assert_allclose(got, outputs["after_lstm:fc"], rtol=0, atol=1e-5)


def test_the_dynamo_export_folds_the_first_step_from_zeros(exported):
    """What the weights test above reads through: from zeros, the dynamo exporter's first
    cell has one product (h_prev · Rᵀ folded into its bias) when every size is fixed; it
    has two in TorchScript's export."""
    exporter, _, proto, _, _ = exported
    cells = find_cells(proto.graph, constants_of(proto.graph))
    assert len(cells) == T * (len(CASES) + 3)
    folded = [c for c in cells if not c.h_prev]
    assert len(folded) == (
        sum(start == "zeros" for _, _, start in CASES) if exporter == "dynamo" else 0
    )


# ------------------------------------------------------------------------------- refusals
class Body(torch.nn.Module):
    """fc of what ``body(cells, x, h, c)`` returns, x (5, 2, 4) and (h, c) given; ``cells``
    LSTMCells (4 → H)."""

    def __init__(self, body, cells: int = 1) -> None:
        super().__init__()
        self.body = body
        self.cells = torch.nn.ModuleList(torch.nn.LSTMCell(4, H) for _ in range(cells))
        self.fc = torch.nn.Linear(H, K)

    def forward(self, x, h, c):
        return self.fc(self.body(self.cells, x, h, c))


def run(cells, xs, h, c) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The cells taken in turn over the steps ``xs``: every h and every c."""
    hs, cs = [], []
    for k, x_t in enumerate(xs):
        h, c = cells[k % len(cells)](x_t, (h, c))
        hs.append(h)
        cs.append(c)
    return hs, cs


def h_not_carried(cells, x, h0, c, every_h: bool = True):
    """Every step from the first h, c carried; the sum of every step's h (or the last)."""
    hs = []
    for x_t in x:
        h, c = cells[0](x_t, (h0, c))
        hs.append(h)
    return sum(hs) if every_h else hs[-1]


def c_after_step_3(cells, x, h, c):
    """The last h plus the c after step 3."""
    hs, cs = run(cells, x, h, c)
    return hs[-1] + cs[2]


def two_continuations(cells, x, h, c):
    """Steps 1 and 2, then step 3 twice from step 2's state."""
    hs, cs = run(cells, list(x[:2]), h, c)
    a, _ = cells[0](x[2], (hs[-1], cs[-1]))
    b, _ = cells[0](x[2] + 0, (hs[-1], cs[-1]))
    return a + b


def _export_loop(module: torch.nn.Module, steps: int = 5, dynamic_time: bool = False):
    """The loop as the TorchScript exporter writes it, x (steps, 2, 4)."""
    g = torch.Generator().manual_seed(3)
    args = (torch.randn(steps, 2, 4, generator=g), *torch.randn(2, 2, H, generator=g))
    module = distinct_gates(module.eval(), seed=5)
    dynamic = {"x": {0: "steps"}} if dynamic_time else {}
    return onnx_export(module, args, "torchscript", ["x", "h", "c"], ["y"], dynamic)


def last_h(xs):
    """A body: the h of the last of the steps ``xs(x)``."""
    return lambda cells, x, h, c: run(cells, xs(x), h, c)[0][-1]


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (
            Body(last_h(list), cells=5),  # a ModuleList of cells, one per step
            r"the LSTM cells '/cells.0/Mul_2' and '/cells.1/Mul_2' have different W and R and "
            r"b: each step its own cell is not one LSTM",
        ),
        (
            Body(last_h(lambda x: [x[t] for t in range(0, 5, 2)])),
            r"the loop of 3 LSTM cells \('/cells.0/Mul_2' … '/cells.0_2/Mul_2'\) reads steps "
            r"\[1, 3, 5\] of 'x'; an LSTM reads steps 1, 2, …, 3 in order, none skipped",
        ),
        (
            Body(last_h(lambda x: [x[t] if t % 2 else 2 * x[t] for t in range(5)])),
            r"reads x from '.*', '.*', '.*', …, not steps of one tensor; a loop over one cell",
        ),
        (  # the same x at every step (as a decoder fed one context vector)
            Body(last_h(lambda x: [x.mean(0)] * 5)),
            r"reads x from '.*ReduceMean.*', not steps of one tensor",
        ),
        (
            Body(last_h(lambda x: [x[t, :, [3, 2, 1, 0]] for t in range(5)])),
            r"the LSTM cell '/cells.0/Mul_2' reads x '.*', which is not one step \(rows × "
            r"features\) of 'x'",
        ),
        (
            Body(last_h(lambda x: [x[t] for t in range(3)])),
            r"reads steps 1 to 3 of 'x', whose time axis 0 holds 5 steps: the graph computes "
            "the first 3 step",
        ),
        (
            Body(c_after_step_3),
            r"reads the cell state c of the LSTM cell '/cells.0_2/Mul_2', before the loop's "
            "last step",
        ),
        (
            Body(h_not_carried),
            r"the LSTM cell '/cells.0_1/Mul_2' reads c from cell '/cells.0/Mul_2' but h from "
            "'h'; a loop over one cell reads both from the step before",
        ),
        (  # the steps before the last have no h, so no cell: the last starts from their c
            Body(lambda *a: h_not_carried(*a, every_h=False)),
            r"the loop of one LSTM cell \('/cells.0_4/Mul_2'\) starts from c_prev '.*', "
            "computed from 'x' by ops that are not a cell of the loop",
        ),
        (
            Body(two_continuations),
            r"the LSTM cells '/cells.0_2/Mul_2' and '/cells.0_3/Mul_2' both continue from cell "
            "'/cells.0_1/Mul_2'",
        ),
    ],
    ids=["per_step_cells", "skipped", "two_tensors", "one_x", "not_a_step",
         "fewer_steps", "c_before_the_end", "h_not_carried", "state_from_the_data",
         "two_continuations"],
)  # fmt: skip
def test_cell_loops_that_are_not_one_lstm_are_refused(module, message):
    with pytest.raises(InputError, match=message):
        from_onnx(_export_loop(module))


def test_a_fixed_loop_over_a_dynamic_time_axis_is_refused():
    """Exported with a dynamic time axis, the traced loop still runs its 5 steps: the file
    computes the first 5 steps of any longer input (onnxruntime shows it)."""
    proto = _export_loop(Body(last_h(lambda x: [x[t] for t in range(len(x))])), dynamic_time=True)
    rng = np.random.default_rng(0)
    x, h, c = (rng.normal(size=s).astype(np.float32) for s in ((7, 2, 4), (2, H), (2, H)))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    seven, five = (session.run(None, {"x": a, "h": h, "c": c})[0] for a in (x, x[:5]))
    np.testing.assert_array_equal(seven, five)
    with pytest.raises(InputError, match="whose time axis 0 holds any number of steps: the graph"):
        from_onnx(proto, inputs={"h": h, "c": c})


def test_keras_onnx_export_of_an_unknown_length_is_refused(tmp_path):
    """Keras 3's own ONNX export of an LSTM over a time axis of unknown length writes its
    first step only, as ops: onnxruntime's output is Keras's on the first step alone.
    Refused, saying so."""
    os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    x = np.random.default_rng(4).normal(size=(2, 5, 3)).astype(np.float32)
    model(x)  # built
    path = tmp_path / "keras.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's own notes
        model.export(str(path), format="onnx", verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    first_step = np.asarray(model(x[:, :1]).detach())
    np.testing.assert_allclose(got, first_step, rtol=0, atol=1e-6)
    assert np.abs(got - np.asarray(model(x).detach())).max() > 1e-3
    with pytest.raises(
        InputError, match=r"whose time axis 1 holds any number of steps: the graph computes "
        r"the first 1 step\(s\) only .* writes every step of an LSTM on keras.Input\(\(T, C\)\)"
    ):  # fmt: skip
        from_onnx(path)
