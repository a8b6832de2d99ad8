"""Models written by torch.onnx.export, both exporters (TorchScript-based, at its default
opset and at opset 11 — Squeeze's axes an attribute, Softmax's 2-D coercion — and the
default dynamo-based one), read by from_onnx and run against onnxruntime on the same file.

One torch module holds every case — time-major and batch_first × 1 and 2 layers × uni- and
bidirectional nn.LSTMs, each started from its own non-zero (h0, c0) given as model inputs,
each with the heads output[:, -1], h_n, h_n[-1] and cat(h_n[-2], h_n[-1]) (a Linear on
each) — so that each exporter runs once (the dynamo exporter takes seconds a model).
from_onnx(output=...) reads one head's part of the graph. The dynamo exporter keeps the
number of steps it traced (it specialises T), so both read batches of that length, of
another batch size than the export's, with random data.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch_models import distinct_gates

from lstm_ref import InputError
from lstm_ref.interop.onnx import from_onnx

pytest.importorskip("onnxscript")  # the dynamo exporter's own dependency

C, H, K, T = 3, 4, 2, 5
CASES = [(bf, L, bi) for bf in (False, True) for L in (1, 2) for bi in (False, True)]
HEADS = ("last", "h_n", "h_n[-1]", "cat")


def case_name(bf: bool, L: int, bi: bool) -> str:
    return f"{'batch_first' if bf else 'time_major'}_{L}layer_{'bi' if bi else 'uni'}"


def representable(L: int, bi: bool, head: str) -> bool:
    """Whether the head reads the last layer only (else it reads layer 1's final state too,
    which a chain of layers does not return)."""
    if head == "h_n":
        return L == 1
    if head == "cat":
        return bi
    return True


class Cases(torch.nn.Module):
    """Every case's LSTM and head Linears; x (B, T, C) shared, each case's h0, c0 its own."""

    def __init__(self) -> None:
        super().__init__()
        self.lstms = torch.nn.ModuleList()
        self.fcs = torch.nn.ModuleList()
        for bf, L, bi in CASES:
            D = 2 if bi else 1
            self.lstms.append(torch.nn.LSTM(C, H, L, batch_first=bf, bidirectional=bi))
            widths = {"last": D * H, "h_n": H, "h_n[-1]": H, "cat": 2 * H}
            self.fcs.append(torch.nn.ModuleList(torch.nn.Linear(widths[h], K) for h in HEADS))
        # started from zeros, which the exporters compute from x's shape
        self.zero_state = torch.nn.LSTM(C, H, 2, batch_first=True, bidirectional=True)
        self.zero_state_fc = torch.nn.Linear(2 * H, K)
        self.mlp = torch.nn.ModuleList(
            torch.nn.Linear(n, m) for n, m in ((2 * H, 5), (5, 4), (4, K))
        )

    def forward(self, x, *states):
        outputs = []
        for k, ((bf, _, _), lstm, fcs) in enumerate(zip(CASES, self.lstms, self.fcs, strict=True)):
            h0, c0 = states[2 * k : 2 * k + 2]
            y, (h_n, _) = lstm(x if bf else x.transpose(0, 1), (h0, c0))
            last = y[:, -1] if bf else y[-1]
            reads = {"last": last, "h_n": h_n, "h_n[-1]": h_n[-1]}
            if h_n.shape[0] >= 2:
                reads["cat"] = torch.cat([h_n[-2], h_n[-1]], dim=1)
            outputs += [fc(reads[h]) for h, fc in zip(HEADS, fcs, strict=True) if h in reads]
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
        outputs += [f"{case}:{h}" for h in HEADS if h != "cat" or L * (2 if bi else 1) >= 2]
    return inputs, [*outputs, "zero_state:softmax", "zero_state:mlp"]


def states(rng: np.random.Generator, B: int) -> list[np.ndarray]:
    out = []
    for _, L, bi in CASES:
        D = 2 if bi else 1
        out += [rng.normal(size=(L * D, B, H)).astype(np.float32) for _ in range(2)]
    return out


@pytest.fixture(scope="module", params=["torchscript", "torchscript-opset11", "dynamo"])
def exported(request) -> tuple[onnx.ModelProto, dict, dict]:
    """The module written by one exporter, the feeds (a batch of another size than the
    export's) and onnxruntime's every output on them — once per exporter."""
    torch.manual_seed(0)
    model = distinct_gates(Cases(), seed=3).eval()
    rng = np.random.default_rng(1)
    example = (torch.randn(2, T, C), *(torch.from_numpy(s) for s in states(rng, 2)))
    inputs, outputs = names()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' own deprecation and tracer notes
        if request.param == "dynamo":
            batch = torch.export.Dim("batch")
            dynamic = ({0: batch}, tuple({1: batch} for _ in inputs[1:]))  # (x, *states)
            program = torch.onnx.export(
                model, example, dynamo=True, verbose=False, input_names=inputs,
                output_names=outputs, dynamic_shapes=dynamic,
            )  # fmt: skip
            proto = program.model_proto
        else:
            buffer = io.BytesIO()
            opset = {"opset_version": 11} if request.param.endswith("opset11") else {}
            torch.onnx.export(
                model, example, buffer, dynamo=False, input_names=inputs, output_names=outputs,
                dynamic_axes={"x": {0: "batch"}, **{n: {1: "batch"} for n in inputs[1:]}},
                **opset,
            )  # fmt: skip
            proto = onnx.load_from_string(buffer.getvalue())
    B = 3
    feeds = [rng.normal(size=(B, T, C)).astype(np.float32), *states(rng, B)]
    feeds = dict(zip(inputs, feeds, strict=True))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return proto, feeds, dict(zip(outputs, session.run(outputs, feeds), strict=True))


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: case_name(*c))
def test_torch_export_imports_and_matches_onnxruntime(exported, case, head):
    proto, feeds, outputs = exported
    _, L, bi = case
    name = f"{case_name(*case)}:{head}"
    if name not in outputs:
        pytest.skip("h_n has one row: no h_n[-2]")
    case_inputs = {k: v for k, v in feeds.items() if k.endswith(case_name(*case))}
    if not representable(L, bi, head):
        with pytest.raises(InputError, match=r"reads the output of .* and .*a chain"):
            from_onnx(proto, inputs=case_inputs, output=name)
        return
    net = from_onnx(proto, inputs=case_inputs, output=name, dtype=np.float32)
    x = feeds["x"]
    got = net.predict(list(x))  # (B, K·rows of h_n): each row's features in the graph's order
    want = outputs[name]
    if head == "h_n":  # (D, B, K) in the graph
        want = want.transpose(1, 0, 2).reshape(len(x), -1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


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
