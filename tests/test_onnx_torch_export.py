"""Models written by torch.onnx.export, both exporters (TorchScript-based, at its default
opset and at opset 11 — Squeeze's axes an attribute, Softmax's 2-D coercion — and the
default dynamo-based one), read by from_onnx and run against onnxruntime on the same file.

One torch module holds every case — time-major and batch_first × 1 and 2 layers × uni- and
bidirectional nn.LSTMs, and 3 one-way layers, each started from its own non-zero (h0, c0)
given as model inputs, each with the heads output[:, -1], h_n, h_n[-1], cat(h_n[-2],
h_n[-1]), every layer's final h (as h_n.permute(1, 0, 2).reshape(B, -1) and as
torch.cat(list(h_n), 1)) and cat(h_n[-1], h_n[0]) (a Linear on each), and h_n itself as a
graph output — so that each exporter runs once (the dynamo exporter takes seconds a model).
from_onnx(output=...) reads one head's part of the graph. The dynamo exporter keeps the
number of steps it traced (it specialises T), so both read batches of that length, of
another batch size than the export's, with random data. Mixed lengths: the TorchScript
exporter writes a packed batch (pack_padded_sequence, lengths sorted) as the LSTM nodes'
sequence_lens; the dynamo exporter fails on one (torch.export cannot trace its sizes).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch_models import distinct_gates, onnx_export

from lstm_ref import InputError
from lstm_ref.interop.onnx import from_onnx

pytest.importorskip("onnxscript")  # the dynamo exporter's own dependency

C, H, K, T = 3, 4, 2, 5
CASES = [(bf, L, bi) for bf in (False, True) for L in (1, 2) for bi in (False, True)]
CASES += [(bf, 3, False) for bf in (False, True)]
HEADS = ("last", "h_n", "h_n[-1]", "cat", "permute", "list", "cat(h_n[-1], h_n[0])", "h_n itself")
TWO_ROWS = ("cat", "cat(h_n[-1], h_n[0])")  # heads that need h_n of two rows at least
PACKED = [(True, 2, True), (False, 2, False), (True, 3, False)]  # on a packed batch
PACKED_HEADS = ("permute", "cat", "h_n itself")
EXPORTERS = ["torchscript", "torchscript-opset11", "dynamo"]


def case_name(bf: bool, L: int, bi: bool) -> str:
    return f"{'batch_first' if bf else 'time_major'}_{L}layer_{'bi' if bi else 'uni'}"


def heads(L: int, bi: bool) -> list[str]:
    return [h for h in HEADS if h not in TWO_ROWS or L * (2 if bi else 1) >= 2]


def linear_heads(L: int, bi: bool) -> list[str]:
    return [h for h in heads(L, bi) if h != "h_n itself"]


def head_reads(h_n: torch.Tensor, last: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Each head's input, from h_n (L·D, B, H) and the output at the last step, if given."""
    reads = {
        "h_n": h_n,
        "h_n[-1]": h_n[-1],
        "permute": h_n.permute(1, 0, 2).reshape(h_n.shape[1], -1),
        "list": torch.cat(list(h_n), 1),
    }
    if last is not None:
        reads["last"] = last
    if h_n.shape[0] >= 2:
        reads["cat"] = torch.cat([h_n[-2], h_n[-1]], dim=1)
        reads["cat(h_n[-1], h_n[0])"] = torch.cat([h_n[-1], h_n[0]], dim=1)
    return reads


def head_linears(L: int, bi: bool) -> torch.nn.ModuleDict:
    D = 2 if bi else 1
    widths = {"last": D * H, "h_n": H, "h_n[-1]": H, "permute": L * D * H, "list": L * D * H}
    widths |= {"cat": 2 * H, "cat(h_n[-1], h_n[0])": 2 * H}
    linears = {_key(h): torch.nn.Linear(widths[h], K) for h in linear_heads(L, bi)}
    return torch.nn.ModuleDict(linears)


def _key(head: str) -> str:  # ModuleDict keys take no dots or brackets
    return "".join(ch if ch.isalnum() else "_" for ch in head)


def expected_layers(L: int, bi: bool, head: str) -> list[str]:
    """The network's layers after SequenceInput: the lowest layer h_n's rows come from on
    stacks every layer above it into one LSTMStack; a Linear head a FullyConnected."""
    D = 2 if bi else 1
    lowest = {"last": L - 1, "h_n[-1]": L - 1, "cat": (L * D - 2) // D}.get(head, 0)
    lstm = "BiLSTM" if bi else "LSTM"
    recurrent = [lstm] * lowest + (["LSTMStack"] if lowest < L - 1 else [lstm])
    return recurrent + ([] if head == "h_n itself" else ["FullyConnected"])


def export(model, example, inputs, outputs, exporter, rows) -> onnx.ModelProto:
    """``model`` (its forward(x, *rest)) written by one exporter; ``rows`` each input's
    batch axis, left dynamic."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' own deprecation and tracer notes
        if exporter == "dynamo":
            batch = torch.export.Dim("batch")
            first, *rest = ({rows[n]: batch} for n in inputs)
            dynamic = (first, tuple(rest))  # forward(x, *states)
            program = torch.onnx.export(
                model, example, dynamo=True, verbose=False, input_names=inputs,
                output_names=outputs, dynamic_shapes=dynamic,
            )  # fmt: skip
            return program.model_proto
        buffer = io.BytesIO()
        opset = {"opset_version": 11} if exporter.endswith("opset11") else {}
        torch.onnx.export(
            model, example, buffer, dynamo=False, input_names=inputs, output_names=outputs,
            dynamic_axes={n: {rows[n]: "batch"} for n in inputs}, **opset,
        )  # fmt: skip
        return onnx.load_from_string(buffer.getvalue())


def run_onnxruntime(proto: onnx.ModelProto, feeds: dict, outputs: list[str]) -> dict:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(outputs, session.run(outputs, feeds), strict=True))


def per_row(head: str, got: np.ndarray) -> np.ndarray:
    """A graph output as the network returns it: an h_n-shaped one (L·D, B, ·) as (B, ·)."""
    if head in ("h_n", "h_n itself"):
        return got.transpose(1, 0, 2).reshape(got.shape[1], -1)
    return got


class Cases(torch.nn.Module):
    """Every case's LSTM and head Linears; x (B, T, C) shared, each case's h0, c0 its own."""

    def __init__(self) -> None:
        super().__init__()
        self.lstms = torch.nn.ModuleList()
        self.fcs = torch.nn.ModuleList()
        for bf, L, bi in CASES:
            self.lstms.append(torch.nn.LSTM(C, H, L, batch_first=bf, bidirectional=bi))
            self.fcs.append(head_linears(L, bi))
        # started from zeros, which the exporters compute from x's shape
        self.zero_state = torch.nn.LSTM(C, H, 2, batch_first=True, bidirectional=True)
        self.zero_state_fc = torch.nn.Linear(2 * H, K)
        self.mlp = torch.nn.ModuleList(
            torch.nn.Linear(n, m) for n, m in ((2 * H, 5), (5, 4), (4, K))
        )

    def forward(self, x, *states):
        outputs = []
        for k, ((bf, L, bi), lstm, fcs) in enumerate(zip(CASES, self.lstms, self.fcs, strict=True)):
            h0, c0 = states[2 * k : 2 * k + 2]
            y, (h_n, _) = lstm(x if bf else x.transpose(0, 1), (h0, c0))
            reads = head_reads(h_n, y[:, -1] if bf else y[-1])
            outputs += [fcs[_key(h)](reads[h]) for h in linear_heads(L, bi)] + [h_n]
        y, _ = self.zero_state(x)
        outputs.append(self.zero_state_fc(y[:, -1]).softmax(dim=-1))
        first, second, third = self.mlp
        hidden = torch.tanh(second(torch.sigmoid(torch.relu(first(y[:, -1])))))
        outputs.append(torch.log_softmax(third(hidden), dim=-1))
        return tuple(outputs)


def names() -> tuple[list[str], list[str]]:
    """The graph's input and output names, in the module's order."""
    inputs, outputs = ["x"], []
    for bf, L, bi in CASES:
        case = case_name(bf, L, bi)
        inputs += [f"h0_{case}", f"c0_{case}"]
        outputs += [f"{case}:{h}" for h in heads(L, bi)]
    return inputs, [*outputs, "zero_state:softmax", "zero_state:mlp"]


def states(rng: np.random.Generator, B: int, cases: list = CASES) -> list[np.ndarray]:
    out = []
    for _, L, bi in cases:
        D = 2 if bi else 1
        out += [rng.normal(size=(L * D, B, H)).astype(np.float32) for _ in range(2)]
    return out


@pytest.fixture(scope="module", params=EXPORTERS)
def exported(request) -> tuple[onnx.ModelProto, dict, dict]:
    """The module written by one exporter, the feeds (a batch of another size than the
    export's) and onnxruntime's every output on them — once per exporter."""
    torch.manual_seed(0)
    model = distinct_gates(Cases(), seed=3).eval()
    rng = np.random.default_rng(1)
    example = (torch.randn(2, T, C), *(torch.from_numpy(s) for s in states(rng, 2)))
    inputs, outputs = names()
    rows = {n: 0 if n == "x" else 1 for n in inputs}
    proto = export(model, example, inputs, outputs, request.param, rows)
    B = 3
    feeds = [rng.normal(size=(B, T, C)).astype(np.float32), *states(rng, B)]
    feeds = dict(zip(inputs, feeds, strict=True))
    return proto, feeds, run_onnxruntime(proto, feeds, outputs)


@pytest.mark.parametrize(
    ("case", "head"),
    [(case, head) for case in CASES for head in heads(*case[1:])],
    ids=lambda v: case_name(*v) if isinstance(v, tuple) else v,
)
def test_torch_export_imports_and_matches_onnxruntime(exported, case, head):
    """Each head, of one layer or of several (then those layers are one LSTMStack), equals
    onnxruntime on the exported file."""
    proto, feeds, outputs = exported
    _, L, bi = case
    name = f"{case_name(*case)}:{head}"
    case_inputs = {k: v for k, v in feeds.items() if k.endswith(case_name(*case))}
    net = from_onnx(proto, inputs=case_inputs, output=name, dtype=np.float32)
    assert [type(layer).__name__ for layer in net.layers[1:]] == expected_layers(L, bi, head)
    x = feeds["x"]
    got = net.predict(list(x))  # (B, K·rows of h_n): each row's features in the graph's order
    np.testing.assert_allclose(got, per_row(head, outputs[name]), rtol=0, atol=1e-5)


def test_zero_initial_state_computed_from_the_input_shape(exported):
    """No (h0, c0) given: each exporter computes zeros of x's batch size at run time (a
    Shape subgraph), read as the layers' zero state; a Softmax head after the Linear."""
    proto, feeds, outputs = exported
    net = from_onnx(proto, output="zero_state:softmax", dtype=np.float32)
    assert [type(layer).__name__ for layer in net.layers[1:]] == [
        "BiLSTM", "BiLSTM", "FullyConnected", "Softmax",
    ]  # fmt: skip
    got = net.predict(list(feeds["x"]))
    np.testing.assert_allclose(got, outputs["zero_state:softmax"], rtol=0, atol=1e-5)


def test_element_wise_heads(exported):
    """Linear → Relu → Sigmoid → Linear → Tanh → Linear → LogSoftmax: each activation an
    Activation layer in lstm_ref's spelling where it has one."""
    proto, feeds, outputs = exported
    net = from_onnx(proto, output="zero_state:mlp", dtype=np.float32)
    assert [layer.description() for layer in net.layers[3:]] == [
        "5 fully connected layer", "Relu", "sigmoid", "4 fully connected layer", "tanh",
        "2 fully connected layer", "log softmax",
    ]  # fmt: skip
    got = net.predict(list(feeds["x"]))
    np.testing.assert_allclose(got, outputs["zero_state:mlp"], rtol=0, atol=1e-5)


class Packed(torch.nn.Module):
    """The PACKED cases on one packed batch (pack_padded_sequence, its lengths sorted as
    the TorchScript exporter needs them), each from its own (h0, c0), with PACKED_HEADS."""

    def __init__(self) -> None:
        super().__init__()
        self.lstms = torch.nn.ModuleList(
            torch.nn.LSTM(C, H, L, batch_first=bf, bidirectional=bi) for bf, L, bi in PACKED
        )
        self.fcs = torch.nn.ModuleList(head_linears(L, bi) for _, L, bi in PACKED)

    def forward(self, x, lengths, *states):
        outputs = []
        for k, ((bf, _, _), lstm, fcs) in enumerate(zip(PACKED, self.lstms, self.fcs, strict=True)):
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                x if bf else x.transpose(0, 1), lengths, batch_first=bf
            )
            _, (h_n, _) = lstm(packed, states[2 * k : 2 * k + 2])
            reads = head_reads(h_n)
            outputs += [fcs[_key(h)](reads[h]) for h in PACKED_HEADS[:-1]] + [h_n]
        return tuple(outputs)


@pytest.fixture(scope="module")
def packed_export() -> tuple[onnx.ModelProto, dict, dict]:
    """Packed is written by the TorchScript exporter (its lengths become every LSTM node's
    sequence_lens), and run by onnxruntime on 4 sequences of 5, 4, 4 and 2 steps, the
    padding random."""
    torch.manual_seed(0)
    model = distinct_gates(Packed(), seed=4).eval()
    rng = np.random.default_rng(2)
    example = (
        torch.randn(2, T, C),
        torch.tensor([T, T - 2]),
        *(torch.from_numpy(s) for s in states(rng, 2, PACKED)),
    )
    inputs = ["x", "lengths", *(f"{s}_{case_name(*c)}" for c in PACKED for s in ("h0", "c0"))]
    outputs = [f"{case_name(*c)}:{h}" for c in PACKED for h in PACKED_HEADS]
    rows = {n: 0 if n in ("x", "lengths") else 1 for n in inputs}
    proto = export(model, example, inputs, outputs, "torchscript", rows)
    lengths = np.array([T, T - 1, T - 1, 2], np.int64)
    x = rng.normal(size=(len(lengths), T, C)).astype(np.float32)
    feeds = dict(zip(inputs, [x, lengths, *states(rng, len(lengths), PACKED)], strict=True))
    return proto, feeds, run_onnxruntime(proto, feeds, outputs)


@pytest.mark.parametrize("head", PACKED_HEADS)
@pytest.mark.parametrize("case", PACKED, ids=lambda c: case_name(*c))
def test_packed_mixed_lengths_import_and_match_onnxruntime(packed_export, case, head):
    """Mixed lengths through sequence_lens: each sequence ends at its own length in every
    layer of the stack, as in onnxruntime."""
    proto, feeds, outputs = packed_export
    _, L, bi = case
    name = f"{case_name(*case)}:{head}"
    case_inputs = {k: v for k, v in feeds.items() if k.endswith(case_name(*case))}
    net = from_onnx(proto, inputs=case_inputs, output=name, dtype=np.float32)
    assert [type(layer).__name__ for layer in net.layers[1:]] == expected_layers(L, bi, head)
    seqs = [row[:n] for row, n in zip(feeds["x"], feeds["lengths"], strict=True)]
    got = net.predict(seqs)
    np.testing.assert_allclose(got, per_row(head, outputs[name]), rtol=0, atol=1e-5)


class PackedLast(torch.nn.Module):
    """Two stacked LSTMs on a packed batch, a Linear on the last one's final h (one LSTM
    alone fails in the TorchScript exporter itself with this head)."""

    def __init__(self):
        super().__init__()
        self.lstm, self.fc = torch.nn.LSTM(C, H, 2, batch_first=True), torch.nn.Linear(H, 3)

    def forward(self, x, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)
        return self.fc(self.lstm(packed)[1][0][-1])


def test_packed_lengths_of_a_fixed_batch_under_a_dynamic_x_are_refused_saying_so():
    """The lengths exported with a fixed batch of 3 while x's batch axis is dynamic: the
    file runs on 3 rows only, which the refusal says (not the reader's probe size)."""
    torch.manual_seed(0)
    model = distinct_gates(PackedLast(), seed=5).eval()
    example = (torch.randn(3, T, C), torch.tensor([T, T - 1, 2]))
    proto = onnx_export(model, example, "torchscript", ["x", "lengths"], ["y"], {"x": {0: "B"}})
    x = np.random.default_rng(3).normal(size=(3, T, C)).astype(np.float32)
    feeds = {"x": x, "lengths": np.array([T, T - 1, 2])}
    (runtime,) = run_onnxruntime(proto, feeds, ["y"]).values()
    assert runtime.shape == (3, 3)
    with pytest.raises(
        InputError,
        match=r"sequence_lens holds 3 rows whatever the batch, while X's batch axis takes any "
        r"size; the graph runs only on batches of 3: export it with the lengths input's batch",
    ):
        from_onnx(proto)
