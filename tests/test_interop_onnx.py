"""ONNX in and out, against onnxruntime: its own hard-coded LSTM test vectors, random
non-uniform nodes with every attribute, whole classifier graphs, and the exporter."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from random_nets import random_lstm_params, random_network, random_sequences
from torch_models import Classifier, distinct_gates

from lstm_ref import (
    LSTM,
    FullyConnected,
    InputError,
    LSTMState,
    Network,
    Padding,
    SequenceInput,
    Softmax,
)
from lstm_ref.interop import load_model, save_model
from lstm_ref.interop.onnx import from_onnx, lstm_from_node, run_lstm_node
from lstm_ref.interop.onnx_export import save_onnx, to_onnx
from lstm_ref.interop.torch import from_torch
from lstm_ref.layers import BiLSTM

ORT_CASES = json.loads((Path(__file__).parent / "data" / "onnxruntime_lstm.json").read_text())
INPUTS = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]


def lstm_node(attrs: dict, present: set[str], outputs=("Y", "Y_h", "Y_c")) -> onnx.NodeProto:
    return helper.make_node(
        "LSTM", [n if n in present else "" for n in INPUTS], list(outputs), name="lstm", **attrs
    )


def ort_run(node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's outputs of the one-node graph, float32, every input a graph input."""
    elem = {np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}
    inputs = [helper.make_tensor_value_info(k, elem[v.dtype], v.shape) for k, v in feeds.items()]
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in node.output]
    graph = helper.make_graph([node], "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def case_tensors(case: dict) -> tuple[dict, dict]:
    T, B, C, H = (case[k] for k in ("seq_length", "batch_size", "input_size", "hidden_size"))
    D = 2 if case["direction"] == "bidirectional" else 1
    shapes = {
        "X": (T, B, C),
        "W": (D, 4 * H, C),
        "R": (D, 4 * H, H),
        "B": (D, 8 * H),
        "P": (D, 3 * H),
        "initial_h": (D, B, H),
        "initial_c": (D, B, H),
    }
    feeds = {k: np.array(case[k], np.float32).reshape(s) for k, s in shapes.items() if k in case}
    if "sequence_lens" in case:
        feeds["sequence_lens"] = np.array(case["sequence_lens"], np.int32)
    attrs = {"hidden_size": H, "direction": case["direction"]}
    if "clip" in case:
        attrs["clip"] = case["clip"]
    if case.get("input_forget"):
        attrs["input_forget"] = 1
    if "activations" in case:
        attrs["activations"] = case["activations"]
    return feeds, attrs


@pytest.mark.parametrize("case", ORT_CASES["cases"], ids=lambda c: c["name"])
def test_onnxruntime_hard_coded_vectors(case):
    feeds, attrs = case_tensors(case)
    node = lstm_node(attrs, set(feeds))
    Y, Y_h, Y_c = run_lstm_node(node, feeds)
    theirs = ort_run(node, feeds)
    for name, ours, got in zip(("Y", "Y_h", "Y_c"), (Y, Y_h, Y_c), theirs, strict=True):
        if name in case:
            atol = case.get("atol", 1e-6)  # wider only where the data file notes why
            np.testing.assert_allclose(ours.reshape(-1), case[name], rtol=0, atol=atol)
        np.testing.assert_allclose(ours, got, rtol=0, atol=1e-6, err_msg=name)  # and ORT itself


def random_node_inputs(rng, T, B, C, H, D, lengths=None):
    scale = np.repeat([0.6, 0.9, 1.2, 0.5], H)[:, None]  # a different scale per gate block
    feeds = {
        "X": rng.normal(size=(T, B, C)),
        "W": rng.normal(size=(D, 4 * H, C)) * scale,
        "R": rng.normal(size=(D, 4 * H, H)) * scale / np.sqrt(H),
        "B": rng.normal(size=(D, 8 * H)) * 0.5 + 0.2,
        "initial_h": rng.uniform(-0.8, 0.8, size=(D, B, H)),
        "initial_c": rng.normal(size=(D, B, H)),
        "P": rng.normal(size=(D, 3 * H)),
    }
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    if lengths is not None:
        feeds["sequence_lens"] = np.array(lengths, np.int32)
    return feeds


VARIANTS = [
    {"direction": "forward"},
    {"direction": "reverse"},
    {"direction": "bidirectional"},
    {"direction": "forward", "clip": 0.7},
    {"direction": "forward", "input_forget": 1},
    {"direction": "bidirectional", "clip": 1.5, "input_forget": 1},
    {
        "direction": "forward",
        "activations": ["HardSigmoid", "ScaledTanh", "Softsign"],
        "activation_alpha": [0.3, 1.5],
        "activation_beta": [0.4, 0.8],
    },
    {
        "direction": "bidirectional",
        "activations": ["Sigmoid", "Elu", "Softplus", "hardsigmoid", "LeakyRelu", "Tanh"],
        "activation_alpha": [0.7, 0.25, 0.3],
    },
    {"direction": "forward", "activations": ["Sigmoid", "Affine", "ThresholdedRelu"]},
    {"direction": "reverse", "activations": ["Sigmoid", "Relu", "Tanh"]},
]


@pytest.mark.parametrize("attrs", VARIANTS, ids=lambda a: str(sorted(a.items())))
@pytest.mark.parametrize("lengths", [None, [5, 2, 4], [3, 0, 5]], ids=["full", "mixed", "zero"])
def test_random_nodes_match_onnxruntime(rng, attrs, lengths):
    D = 2 if attrs["direction"] == "bidirectional" else 1
    feeds = random_node_inputs(rng, 5, 3, 4, 3, D, lengths)
    node = lstm_node({"hidden_size": 3, **attrs}, set(feeds))
    for ours, theirs in zip(run_lstm_node(node, feeds), ort_run(node, feeds), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


def test_zero_length_gives_zero_state_not_the_initial_one(rng):
    feeds = random_node_inputs(rng, 3, 2, 4, 3, 1, [0, 3])
    node = lstm_node({"hidden_size": 3}, set(feeds))
    Y, Y_h, Y_c = run_lstm_node(node, feeds)
    assert feeds["initial_h"][0, 0].any() and not Y_h[0, 0].any() and not Y_c[0, 0].any()
    assert not Y[:, 0, 0].any()
    np.testing.assert_allclose(Y_h, ort_run(node, feeds)[1], rtol=0, atol=1e-6)


def test_layout_1_is_layout_0_transposed(rng):
    feeds = random_node_inputs(rng, 4, 3, 2, 3, 2, [4, 1, 3])
    node0 = lstm_node({"hidden_size": 3, "direction": "bidirectional"}, set(feeds))
    batchwise = dict(feeds, X=feeds["X"].transpose(1, 0, 2))
    for k in ("initial_h", "initial_c"):
        batchwise[k] = feeds[k].transpose(1, 0, 2)
    node1 = lstm_node({"hidden_size": 3, "direction": "bidirectional", "layout": 1}, set(feeds))
    (Y0, h0, c0), (Y1, h1, c1) = run_lstm_node(node0, feeds), run_lstm_node(node1, batchwise)
    np.testing.assert_array_equal(Y1, Y0.transpose(2, 0, 1, 3))
    np.testing.assert_array_equal(h1, h0.transpose(1, 0, 2))
    np.testing.assert_array_equal(c1, c0.transpose(1, 0, 2))


def test_gate_and_peephole_order_matter(rng):
    """Reading W's blocks in PyTorch's order, or P in the order i, f, o, would be caught."""
    feeds = random_node_inputs(rng, 4, 2, 3, 3, 1)
    node = lstm_node({"hidden_size": 3}, {"X", "W", "R", "B", "P"})
    layer = lstm_from_node(node, feeds, "sequence")
    H = 3
    np.testing.assert_array_equal(layer.params.W[H : 2 * H], feeds["W"][0, 2 * H : 3 * H])  # f
    np.testing.assert_array_equal(layer.peephole[2], feeds["P"][0, H : 2 * H])  # p_o


def classifier_graph(rng, C=4, H=3, K=3, seq_lens=True):
    """X → Sub/Div → bidirectional LSTM (Y) → Transpose/Reshape → LSTM (Y_h) → Squeeze →
    Gemm → Softmax, as the PyTorch and MATLAB exporters lay it out."""
    f = lambda *s: (rng.normal(size=s) * 0.6).astype(np.float32)  # noqa: E731
    inits = {
        "mean": f(C),
        "std": np.abs(f(C)) + 0.5,
        "W1": f(2, 4 * H, C),
        "R1": f(2, 4 * H, H),
        "B1": f(2, 8 * H),
        "W2": f(1, 4 * H, 2 * H),
        "R2": f(1, 4 * H, H),
        "B2": f(1, 8 * H),
        "perm_shape": np.array([0, 0, -1], np.int64),
        "fc_W": f(K, H),
        "fc_b": f(K),
        "axes": np.array([0], np.int64),
    }
    sl = "sequence_lens" if seq_lens else ""
    nodes = [
        helper.make_node("Sub", ["X", "mean"], ["xc"], name="sub"),
        helper.make_node("Div", ["xc", "std"], ["xn"], name="div"),
        helper.make_node(
            "LSTM",
            ["xn", "W1", "R1", "B1", sl],
            ["Y1"],
            name="bilstm",
            hidden_size=H,
            direction="bidirectional",
        ),
        helper.make_node("Transpose", ["Y1"], ["Y1t"], name="t1", perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Y1t", "perm_shape"], ["Y1r"], name="r1"),
        helper.make_node(
            "LSTM",
            ["Y1r", "W2", "R2", "B2", sl],
            ["", "Yh2"],
            name="lstm2",
            hidden_size=H,
        ),
        helper.make_node("Squeeze", ["Yh2", "axes"], ["last"], name="squeeze"),
        helper.make_node("Gemm", ["last", "fc_W", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", C])]
    if seq_lens:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"]))
    graph = helper.make_graph(
        nodes,
        "classifier",
        inputs,
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["B", K])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def padded(seqs):
    T = max(len(s) for s in seqs)
    x = np.zeros((T, len(seqs), seqs[0].shape[1]), np.float32)
    for b, s in enumerate(seqs):
        x[: len(s), b] = s
    return x, np.array([len(s) for s in seqs], np.int32)


def test_whole_classifier_graph_matches_onnxruntime(rng, tmp_path):
    model = classifier_graph(rng)
    path = tmp_path / "classifier.onnx"
    path.write_bytes(model.SerializeToString())
    seqs = random_sequences(rng, [6, 2, 5, 3], 4)
    x, lengths = padded(seqs)
    want = ort.InferenceSession(str(path)).run(None, {"X": x, "sequence_lens": lengths})[0]
    net = load_model(path)
    assert [layer.TYPE for layer in net.layers] == [
        "Sequence Input",
        "BiLSTM",
        "LSTM",
        "Fully Connected",
        "Softmax",
    ]
    np.testing.assert_allclose(net.predict(seqs), want, rtol=0, atol=1e-5)


def test_pytorch_exported_graph_imports(rng, tmp_path):
    """torch.onnx.export's own layout: zero initial states from ConstantOfShape, Y[-1]."""

    class LastStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = distinct_gates(torch.nn.LSTM(4, 5, 2), seed=9)
            self.fc = torch.nn.Linear(5, 3)

        def forward(self, x):
            y, _ = self.lstm(x)
            return self.fc(y[-1]).softmax(-1)

    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and what we want
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastStep().eval(),
            (torch.randn(6, 2, 4),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["X"],
            output_names=["Y"],
            dynamic_axes={"X": {0: "T", 1: "B"}},
        )
    x = rng.normal(size=(7, 3, 4)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"X": x})[0]
    np.testing.assert_allclose(
        load_model(path).predict(list(x.transpose(1, 0, 2))), want, atol=1e-6
    )


@pytest.mark.parametrize("which", ["torch-bidirectional", "matlab-like"])
def test_export_runs_in_onnxruntime_with_masked_batches(rng, tmp_path, which):
    if which == "torch-bidirectional":
        model = distinct_gates(Classifier(4, 5, 3, num_layers=2, bidirectional=True), 3)
        net = from_torch(model, class_names=["a", "b", "c"])
    else:  # z-score input, a non-zero initial state, MATLAB's hard sigmoid
        net = random_network(rng, C=4, normalization="zscore", gate_activation="hard-sigmoid")
    net32 = net.astype(np.float32)
    path = tmp_path / "net.onnx"
    save_onnx(net, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    seqs = random_sequences(rng, [7, 3, 5, 1, 6], 4)
    x, lengths = padded(seqs)
    got = ort.InferenceSession(str(path)).run(None, {"X": x, "sequence_lens": lengths})[0]
    np.testing.assert_allclose(got, net32.predict(seqs, padding=Padding.masked()), atol=1e-6)
    again = from_onnx(path, dtype=np.float32)
    for a, b in zip(net32.layers, again.layers, strict=True):
        kept = {k: v for k, v in a.arrays().items() if not k.endswith("bias_split")}  # b whole
        for (ka, va), (kb, vb) in zip(kept.items(), b.arrays().items(), strict=True):
            assert ka == kb
            np.testing.assert_array_equal(va, vb, err_msg=f"{a.name}/{ka}")


def test_bad_graphs_are_refused(rng, tmp_path):
    model = classifier_graph(rng)
    model.graph.node[-2].op_type = "LayerNormalization"
    with pytest.raises(
        InputError,
        match=r"node 'fc' \(LayerNormalization; node 7 of the main graph\): op "
        "LayerNormalization on the data path is not supported",
    ):
        from_onnx(model)
    model = classifier_graph(rng)
    model.graph.node[2].op_type = "GRU"
    with pytest.raises(
        InputError, match=r"node 'bilstm' \(GRU.*op GRU on the data path is not supported"
    ):
        from_onnx(model)
    model = classifier_graph(rng)
    model.graph.node[2].attribute[0].ListFields()  # activations unknown
    model.graph.node[2].attribute.append(helper.make_attribute("activations", ["Swish"] * 6))
    with pytest.raises(InputError, match="node 'bilstm' \\(LSTM\\): unknown activation 'Swish'"):
        from_onnx(model)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(classifier_graph(rng).SerializeToString()[:100])
    with pytest.raises(InputError, match=r"broken\.onnx: not an ONNX model"):
        load_model(broken)
    with pytest.raises(InputError, match=r"cannot import a \.h6 file"):
        load_model(tmp_path / "x.h6")


def test_export_refuses_projection(rng):
    net = from_torch(distinct_gates(Classifier(4, 5, 3, proj_size=2), 1))
    with pytest.raises(InputError, match="ONNX's LSTM has no projection"):
        to_onnx(net)


def last_step_graph(rng, direction="forward", branch=False):
    """X → LSTM (Y) → the last step → Gemm → Softmax (no sequence_lens): one direction by
    Slice and Squeeze; two as torch.onnx.export writes output[-1] (Transpose, Reshape,
    Gather)."""
    H, D = 3, 2 if direction == "bidirectional" else 1
    f = lambda *s: (rng.normal(size=s) * 0.6).astype(np.float32)  # noqa: E731
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    inits = {
        "W": f(D, 4 * H, 4),
        "R": f(D, 4 * H, H),
        "B": f(D, 8 * H),
        "starts": i64(-1),
        "ends": i64(2**63 - 1),
        "axes": i64(0),
        "sq": i64(0, 1),
        "shape": i64(0, 0, -1),
        "minus_one": np.array(-1, np.int64),
        "fc_W": f(3, D * H),
        "fc_b": f(3),
    }
    lstm = helper.make_node(
        "LSTM", ["X", "W", "R", "B"], ["Y"], name="lstm", hidden_size=H, direction=direction
    )
    if D == 1:
        last = [
            helper.make_node("Slice", ["Y", "starts", "ends", "axes"], ["Y_last"], name="last"),
            helper.make_node("Squeeze", ["Y_last", "sq"], ["h"], name="squeeze"),
        ]
    else:
        last = [
            helper.make_node("Transpose", ["Y"], ["Yt"], name="t", perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", ["Yt", "shape"], ["Yr"], name="r"),
            helper.make_node("Gather", ["Yr", "minus_one"], ["h"], name="last", axis=0),
        ]
    nodes = [
        lstm,
        *last,
        helper.make_node("Gemm", ["h", "fc_W", "fc_b"], ["z"], name="fc", transB=1),
        helper.make_node("Softmax", ["z"], ["p"], name="softmax"),
    ]
    if branch:
        nodes.append(helper.make_node("Relu", ["Y"], ["Y2"], name="second_head"))
    graph = helper.make_graph(
        nodes,
        "last",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", 4])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["B", 3])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_last_step_graphs(rng, direction):
    model = last_step_graph(rng, direction)
    x = rng.normal(size=(5, 3, 4)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString())
    want = sess.run(None, {"X": x})[0]
    net = from_onnx(model)
    got = net.predict(list(x.transpose(1, 0, 2)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    if direction == "bidirectional":
        assert net.layers[1].last == "step"


def test_graphs_lstm_ref_cannot_represent_are_refused(rng):
    with pytest.raises(InputError, match=r"node 'softmax'.*a lone reverse LSTM's Y.*read Y_h"):
        from_onnx(last_step_graph(rng, "reverse"))
    # a node the output does not need is left unread, as onnxruntime leaves it unrun
    assert isinstance(from_onnx(last_step_graph(rng, branch=True)).layers[1], LSTM)


def bilstm_last_step_network(rng, stacked=False, C=4, H=5, K=3):
    """MATLAB's common bilstm classifier: z-score input → [bilstm 'sequence' →] bilstm 'last'
    (the output at the last step) → fc → softmax; every gate block, bias and state differs."""

    def direction(way, mode, inputs):
        h0, c0 = rng.uniform(-0.5, 0.5, H), rng.normal(size=H)
        params = random_lstm_params(rng, inputs, H)
        return LSTM(params, output_mode=mode, direction=way, initial_state=LSTMState(h0, c0))

    def bilstm(name, mode, inputs, **kw):
        both = (direction(d, mode, inputs) for d in ("forward", "reverse"))
        return BiLSTM(*both, name=name, **kw)

    norm = {"mean": rng.normal(size=C), "std": rng.uniform(0.5, 2.0, size=C)}
    layers = [SequenceInput(C, normalization="zscore", **norm)]
    if stacked:
        layers.append(bilstm("bilstm_seq", "sequence", C))
    layers.append(bilstm("bilstm", "last", 2 * H if stacked else C, last="step"))
    layers += [FullyConnected(rng.normal(size=(K, 2 * H)), rng.normal(size=K)), Softmax()]
    return Network(layers, class_names=["a", "b", "c"])


@pytest.mark.parametrize("stacked", [False, True], ids=["one", "stacked"])
def test_export_bilstm_last_step_matches_onnxruntime_on_masked_batches(rng, tmp_path, stacked):
    """Its reverse half is its output at each sequence's own last step: the graph gathers
    Y at sequence_lens − 1, and reads back as the same network, every array exact."""
    net = bilstm_last_step_network(rng, stacked)
    net32 = net.astype(np.float32)
    path = tmp_path / "bilstm.onnx"
    save_onnx(net, path)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert "GatherND" in [n.op_type for n in model.graph.node]
    seqs = random_sequences(rng, [7, 3, 5, 1, 6], 4)
    x, lengths = padded(seqs)
    got = ort.InferenceSession(str(path)).run(None, {"X": x, "sequence_lens": lengths})[0]
    np.testing.assert_allclose(got, net32.predict(seqs), rtol=0, atol=1e-6)
    # not blind to the reading: the reverse direction's final state (Y_h) is far off
    bi = net32.layers[-3]
    as_state = Network([*net32.layers[:-3], BiLSTM(bi.fwd, bi.bwd), *net32.layers[-2:]])
    assert np.abs(got - as_state.predict(seqs)).max() > 1e-2
    again = from_onnx(path, dtype=np.float32)
    assert again.layers[-3].last == "step"
    for a, b in zip(net32.layers, again.layers, strict=True):
        mode = [getattr(layer, "output_mode", None) for layer in (a, b)]
        assert a.TYPE == b.TYPE and mode[0] == mode[1]
        for (ka, va), (kb, vb) in zip(a.arrays().items(), b.arrays().items(), strict=True):
            assert ka == kb
            np.testing.assert_array_equal(va, vb, err_msg=f"{a.name}/{ka}")


def each_last_step_graph(rng, lens_ops="int32-add", direction="bidirectional", H=3, C=4, K=3):
    """X → LSTM (Y, sequence_lens) → Transpose (B, T, D, H) → GatherND at each row's step
    sequence_lens − 1 → Reshape (B, D·H) → MatMul + Add → Softmax, the indices computed
    otherwise than the exporter does (``lens_ops``: an int32 Add of −1 before the Cast and
    a Reshape to (−1, 1); or Unsqueeze, Squeeze, Identity, Sub), every name different."""
    D = 2 if direction == "bidirectional" else 1
    f = lambda *s: (rng.normal(size=s) * 0.6).astype(np.float32)  # noqa: E731
    inits = {
        "w": f(D, 4 * H, C),
        "r": f(D, 4 * H, H),
        "bias": f(D, 8 * H),
        "minus1": np.array([-1], np.int32),
        "one": np.array(1, np.int64),
        "axes02": np.array([0, 2], np.int64),
        "axis0": np.array([0], np.int64),
        "col": np.array([-1, 1], np.int64),
        "flat": np.array([0, -1], np.int64),
        "dense_w": f(D * H, K),
        "dense_b": f(K),
    }
    if lens_ops == "int32-add":  # lengths − 1 in int32, then int64, then (B, 1)
        index = [
            helper.make_node("Add", ["minus1", "L"], ["l1"], name="a"),
            helper.make_node("Cast", ["l1"], ["l2"], name="b", to=TensorProto.INT64),
            helper.make_node("Reshape", ["l2", "col"], ["idx"], name="c"),
        ]
    elif lens_ops == "squeeze":  # (1, B, 1) → (B, 1), then − 1
        index = [
            helper.make_node("Cast", ["L"], ["l2"], name="b", to=TensorProto.INT64),
            helper.make_node("Unsqueeze", ["l2", "axes02"], ["l3"], name="c"),
            helper.make_node("Squeeze", ["l3", "axis0"], ["l4"], name="c2"),
            helper.make_node("Identity", ["l4"], ["l5"], name="c3"),
            helper.make_node("Sub", ["l5", "one"], ["idx"], name="c4"),
        ]
    else:  # "no-offset": the lengths themselves, one past each last step
        index = [
            helper.make_node("Cast", ["L"], ["l2"], name="b", to=TensorProto.INT64),
            helper.make_node("Reshape", ["l2", "col"], ["idx"], name="c"),
        ]
    nodes = [
        helper.make_node(
            "LSTM",
            ["X", "w", "r", "bias", "L"],
            ["steps"],
            name="rnn",
            hidden_size=H,
            direction=direction,
        ),
        *index,
        helper.make_node("Transpose", ["steps"], ["bt"], name="d", perm=[2, 0, 1, 3]),
        helper.make_node("GatherND", ["bt", "idx"], ["at_end"], name="e", batch_dims=1),
        helper.make_node("Reshape", ["at_end", "flat"], ["feat"], name="g"),
        helper.make_node("MatMul", ["feat", "dense_w"], ["z0"], name="h"),
        helper.make_node("Add", ["z0", "dense_b"], ["z"], name="i"),
        helper.make_node("Softmax", ["z"], ["p"], name="j"),
    ]
    graph = helper.make_graph(
        nodes,
        "each_last",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", C]),
            helper.make_tensor_value_info("L", TensorProto.INT32, ["N"]),
        ],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", K])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("direction", "lens_ops"),
    [("bidirectional", "int32-add"), ("forward", "int32-add"), ("bidirectional", "squeeze")],
)
def test_each_last_step_is_recognised_by_structure_not_names(rng, direction, lens_ops):
    model = each_last_step_graph(rng, lens_ops, direction)
    onnx.checker.check_model(model, full_check=True)
    seqs = random_sequences(rng, [2, 6, 4, 5], 4)
    x, lengths = padded(seqs)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"X": x, "L": lengths})[0]
    net = from_onnx(model)
    np.testing.assert_allclose(net.predict(seqs), want, rtol=0, atol=1e-6)
    lstm = net.layers[1]
    assert lstm.output_mode == "last" and getattr(lstm, "last", "step") == "step"


def test_last_steps_lstm_ref_cannot_read_are_refused(rng):
    with pytest.raises(InputError, match=r"node 'e' \(GatherND\).*out of bounds"):
        from_onnx(each_last_step_graph(rng, lens_ops="no-offset"))
    with pytest.raises(InputError, match=r"node 'j' \(Softmax.*a lone reverse LSTM's Y"):
        from_onnx(each_last_step_graph(rng, direction="reverse"))
    masked = last_step_graph(rng, "bidirectional")  # Y[-1] under sequence_lens: 0 if shorter
    masked.graph.input.append(helper.make_tensor_value_info("L", TensorProto.INT32, ["B"]))
    masked.graph.node[0].input.append("L")
    with pytest.raises(
        InputError, match=r"node 'softmax' \(Softmax.*Y\[-1\] is 0 for every shorter"
    ):
        from_onnx(masked)
    unmasked = each_last_step_graph(rng)  # a BiLSTM that ignores the graph's sequence_lens
    unmasked.graph.node[0].input[4] = ""
    with pytest.raises(InputError, match=r"node 'rnn' \(LSTM.*run over the padding"):
        from_onnx(unmasked)


# MATLAB's exportONNXNetwork, as the Deep Learning Toolbox Converter for ONNX Model Format
# (support package 19.1.2, "Copyright 2018-2019 The MathWorks") writes it. No MATLAB-written
# LSTM .onnx with a licence to copy was found, so the graph is built here from the facts in
# that converter's source, read in a public copy (github.com/Nicholas-Schaub/NeuroNet,
# src/+nnet/+internal/+cnn/+onnx/: ConverterForSequenceInputLayer, ConverterForLSTMLayer,
# ConverterForBiLSTMLayer, ConverterForFullyConnectedLayer, ConverterForSoftmaxLayer,
# ConverterForClassificationOutputLayer, ConverterForNetwork, NetworkMetadata): IR version 3
# with every initializer also a graph input; opset 6 by default (6-9 allowed; at opset 6
# the node is LSTM-1, which onnxruntime 1.32 does not implement, so these use 9); the input
# named after the sequenceInputLayer with dims [10, 1, C] and no normalisation node; an
# LSTM node named after the layer, inputs X, W, R, B (Wb in iofc order, Rb = 0), no
# sequence_lens, initial_h/initial_c constants (D, 1, H); activations [gate, state, state]
# per direction; OutputMode 'sequence' → Y, then Squeeze(axes=[1]) for lstmLayer or
# Transpose(perm=[0, 2, 1, 3]) + Reshape([0, 0, -1]) for bilstmLayer; OutputMode 'last' →
# Y_h alone (outputs ['', name]), for bilstmLayer too; fullyConnectedLayer → Gemm
# (transB=1, alpha = beta = 1) on that tensor with no Flatten; softmaxLayer → Softmax with
# no axis; the graph output is the softmax tensor, dims [1, K].
def matlab_graph(rng, layers, C=4, H=3, K=3):
    """The graph exportONNXNetwork (19.1.2) writes for sequenceinput → ``layers`` (each
    (kind, OutputMode, gate, state) for lstmLayer/bilstmLayer, or "fc", "softmax")."""
    scale = np.repeat([0.6, 0.9, 1.2, 0.5], H)[:, None]
    inits, nodes, x, width = {}, [], "sequenceinput", C
    for kind, *opts in layers:
        if kind in ("lstm", "bilstm"):
            mode, gate, state = opts
            D = 2 if kind == "bilstm" else 1
            inits[f"{kind}_W"] = rng.normal(size=(D, 4 * H, width)) * scale
            inits[f"{kind}_R"] = rng.normal(size=(D, 4 * H, H)) * scale / np.sqrt(H)
            Wb = rng.normal(size=(D, 4 * H)) * 0.5 + 0.2
            inits[f"{kind}_B"] = np.concatenate([Wb, np.zeros((D, 4 * H))], axis=1)  # Rb = 0
            inits[f"{kind}_initial_h"] = rng.uniform(-0.8, 0.8, size=(D, 1, H))
            inits[f"{kind}_initial_c"] = rng.normal(size=(D, 1, H))
            ins = [x, *(f"{kind}_{k}" for k in ("W", "R", "B")), ""]
            ins += [f"{kind}_initial_h", f"{kind}_initial_c"]
            nodes.append(
                helper.make_node(
                    "LSTM",
                    ins,
                    [kind] if mode == "sequence" else ["", kind],
                    name=kind,
                    activations=[gate, state, state] * D,
                    direction="bidirectional" if D == 2 else "forward",
                    hidden_size=H,
                )
            )
            x, width = kind, D * H
            if mode == "sequence" and D == 1:
                nodes.append(
                    helper.make_node(
                        "Squeeze", [x], [f"{x}_Squeeze"], name=f"{x}_Squeeze", axes=[1]
                    )
                )
                x = f"{x}_Squeeze"
            elif mode == "sequence":
                t, r = f"{x}_Transpose", f"{x}_Reshape"
                nodes.append(helper.make_node("Transpose", [x], [t], name=t, perm=[0, 2, 1, 3]))
                inits[f"{r}_shape"] = np.array([0, 0, -1], np.int64)
                nodes.append(helper.make_node("Reshape", [t, f"{r}_shape"], [r], name=r))
                x = r
        elif kind == "fc":
            inits["fc_W"], inits["fc_B"] = rng.normal(size=(K, width)), rng.normal(size=K)
            nodes.append(
                helper.make_node(
                    "Gemm", [x, "fc_W", "fc_B"], ["fc"], name="fc", alpha=1.0, beta=1.0, transB=1
                )
            )
            x = "fc"
        else:
            nodes.append(helper.make_node("Softmax", [x], ["softmax"], name="softmax"))
            x = "softmax"
    tensors = [
        numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
        for k, v in inits.items()
    ]
    graph = helper.make_graph(
        nodes,
        "network",
        [
            *(helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in tensors),
            helper.make_tensor_value_info("sequenceinput", TensorProto.FLOAT, [10, 1, C]),
        ],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, K] if x == "softmax" else None)],
        tensors,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 3
    return model


@pytest.mark.parametrize(
    "layers",
    [
        [
            ("bilstm", "sequence", "HardSigmoid", "Tanh"),
            ("lstm", "sequence", "Sigmoid", "Softsign"),
        ],
        [("lstm", "sequence", "Sigmoid", "Tanh"), ("bilstm", "last", "Sigmoid", "Tanh")],
    ],
    ids=["bilstm-lstm-sequence", "lstm-bilstm-last"],
)
def test_matlab_exported_layout_imports_and_matches_onnxruntime(rng, layers):
    """Up to the recurrent layers, which onnxruntime runs (the head after them it refuses:
    next test). MATLAB's HardSigmoid carries no alpha/beta: ONNX's 0.2, 0.5 are MATLAB's."""
    model = matlab_graph(rng, layers)
    x = rng.normal(size=(10, 1, 4)).astype(np.float32)  # the exported input is fixed: 10 × 1
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"sequenceinput": x})[0]
    net = from_onnx(model)
    got = net.predict(x[:, 0])
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=0, atol=1e-6)
    if layers[-1][1] == "last":  # MATLAB's ONNX bilstm 'last' is Y_h: the reverse final state
        assert net.layers[-1].last == "state"


def test_matlab_exported_classifier_head_is_refused_as_onnxruntime_refuses_it(rng):
    """Gemm straight on Y_h (1, B, H): not 2-D, so onnxruntime will not load the graph
    (microsoft/onnxruntime#1016 reports it for MATLAB's sequence output)."""
    model = matlab_graph(rng, [("lstm", "last", "Sigmoid", "Tanh"), ("fc",), ("softmax",)])
    with pytest.raises(Exception, match="First input does not have rank 2"):
        ort.InferenceSession(model.SerializeToString())
    with pytest.raises(
        InputError, match=r"node 'fc' \(Gemm; node 1 of the main graph\): its input must be 2-D"
    ):
        from_onnx(model)


def test_matlab_bilstm_learnables_convert_to_onnx(rng, tmp_path):
    """A bilstm 'last' .mat (MATLAB's reading: the output at the last step) → .onnx, as
    `lstm-ref convert` does it, runs in onnxruntime on a masked batch."""
    net = bilstm_last_step_network(rng)
    save_model(net, tmp_path / "net.mat")
    from_mat = load_model(tmp_path / "net.mat")
    assert from_mat.layers[1].last == "step"
    save_model(from_mat, tmp_path / "net.onnx")
    seqs = random_sequences(rng, [4, 9, 2], 4)
    x, lengths = padded(seqs)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    got = session.run(None, {"X": x, "sequence_lens": lengths})[0]
    np.testing.assert_allclose(got, net.predict(seqs), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("activations", "alphas", "own"),
    [
        (["Sigmoid", "Tanh", "Tanh"], [], ("sigmoid", "tanh", None)),
        (["HardSigmoid", "Softsign", "Softsign"], [], ("hard-sigmoid", "softsign", None)),
        (["HardSigmoid", "Tanh", "Softsign"], [1 / 6], ("hard-sigmoid-keras3", "tanh", "softsign")),
        (
            ["hardsigmoid", "Tanh", "Tanh"],
            [0.3],
            ("HardSigmoid(alpha=0.30000001192092896, beta=0.5)", "tanh", None),
        ),
    ],
    ids=["sigmoid-tanh", "matlab-hard-sigmoid-softsign", "keras3-hard-sigmoid", "other-alpha"],
)
def test_imported_activations_take_lstm_refs_own_names(rng, activations, alphas, own):
    """An ONNX activation that is one of lstm_ref's functions comes in under lstm_ref's name
    (HardSigmoid's alpha 1/6 as the file's float32 stores it is Keras 3's), so the rest of
    the library knows it; written back out, it is ONNX's spelling again."""
    C, H = 3, 4
    inits = {
        "W": rng.normal(size=(1, 4 * H, C)),
        "R": rng.normal(size=(1, 4 * H, H)) * 0.5,
        "B": rng.normal(size=(1, 8 * H)) * 0.3,
    }
    attrs = {"hidden_size": H, "activations": activations}
    if alphas:
        attrs["activation_alpha"] = alphas
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["", "Y_h"], name="lstm", **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, None, C])],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    lstm = from_onnx(model).layers[1]
    assert (lstm.gate_activation, lstm.state_activation, lstm.output_activation) == own
    x = rng.normal(size=(5, 2, C)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"X": x})[0][0]
    got = from_onnx(model).predict(list(x.transpose(1, 0, 2)))
    np.testing.assert_allclose(np.stack(got), want, rtol=0, atol=1e-6)
    written = next(n for n in to_onnx(from_onnx(model)).graph.node if n.op_type == "LSTM")
    names = helper.get_attribute_value(
        next(a for a in written.attribute if a.name == "activations")
    )
    assert [n.decode().lower() for n in names] == [a.lower() for a in activations]


def test_onnx_imported_network_is_one_the_rest_of_the_library_knows(rng, tmp_path):
    """A sigmoid/tanh ONNX network runs on the fast path, and verify's activation causes
    and the torch exporter recognise its names."""
    from lstm_ref.verify.causes import GATE_ACTIVATION_TITLES

    torch.manual_seed(0)
    net = from_torch(distinct_gates(Classifier(4, 5, 3), seed=1))
    save_onnx(net, tmp_path / "net.onnx")
    imported = from_onnx(str(tmp_path / "net.onnx"))
    assert imported.fast_engine() is not None
    assert imported.layers[1].gate_activation in GATE_ACTIVATION_TITLES
    save_model(imported, tmp_path / "net.pt")  # refuses activations it has no nn.LSTM for
    seqs = random_sequences(rng, [4, 6, 3], 4)
    np.testing.assert_allclose(
        load_model(tmp_path / "net.pt").predict(seqs), imported.predict(seqs), rtol=0, atol=1e-12
    )
