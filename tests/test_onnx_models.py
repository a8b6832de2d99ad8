"""The LSTM inside a bigger ONNX model: listed, specialised, extracted, and compared with
the tensors onnxruntime computes when it runs the whole model.

Two models: silero-vad's ``silero_vad.onnx`` as its package ships it (a convolutional
front end, ``If`` branches on the sample rate and on the state's shape, an LSTM whose
weights are sliced from initializers), and a generated stand-in of the same structure
that also writes an LSTM cell out as ops — so the suite never depends on the package
alone.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lstm_ref.errors import InputError
from lstm_ref.interop.onnx_models import capture, extract_lstm, list_lstms, specialise
from lstm_ref.interop.onnx_runner import ReferenceSession
from lstm_ref.lstm import LSTMState
from lstm_ref.network import Network

F32 = TensorProto.FLOAT
BATCH, SAMPLES, H = 3, 13, 6  # the stand-in: a stride-2 conv of width 3 gives T = 6 steps
CELL_ORDERS = {16000: "oigf", 8000: "gfoi"}  # the cell's gate blocks, as written in each branch
CELL_H = {
    16000: 5,
    8000: 6,
}  # 8000's cell is as wide as the LSTM: x and h_prev told apart by source


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


# -------------------------------------------------------------- the generated stand-in
def _branch(rate: int, rng: np.random.Generator) -> onnx.GraphProto:
    """One sample rate's graph: conv front end → LSTM (weights sliced from PyTorch's
    layout, initial state from the 'state' input) → a cell written out as ops → head."""
    p, C, H2 = f"sr{rate}/", 4, CELL_H[rate]
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(a), p + name))
        return p + name

    def node(op: str, inputs: list[str], name: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [p + name], name=p + name, **attrs))
        return p + name

    def w(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.5, shape).astype(np.float32)

    def onnx_order(a: str, what: str) -> str:  # PyTorch's blocks i, f, g, o → ONNX's i, o, f, g
        bounds = ((0, H), (3 * H, 4 * H), (H, 3 * H))
        parts = [
            node(
                "Slice",
                [a, const(f"{what}{k}s", np.array([s])), const(f"{what}{k}e", np.array([e]))],
                f"{what}_slice{k}",
            )
            for k, (s, e) in enumerate(bounds)
        ]
        return node("Concat", parts, f"{what}_cat", axis=0)

    def unsqueezed(a: str, what: str) -> str:  # a leading direction axis
        return node("Unsqueeze", [a, const(f"{what}_ax", np.array([0]))], f"{what}_onnx")

    stride = 2 if rate == 16000 else 1
    x = node("Unsqueeze", ["audio", const("ax1", np.array([1]))], "unsqueeze")
    x = node(
        "Conv",
        [x, const("conv_w", w(C, 1, 3)), const("conv_b", w(C))],
        "conv",
        strides=[stride],
        pads=[0, 1],
    )
    x = node("Transpose", [node("Relu", [x], "relu")], "to_tbc", perm=[2, 0, 1])
    h0, c0 = (
        unsqueezed(
            node("Gather", ["state", const(f"k{k}", np.array(k))], f"gather{k}", axis=0),
            f"state{k}",
        )
        for k in (0, 1)
    )
    W = unsqueezed(onnx_order(const("w_ih", w(4 * H, C)), "W"), "W")
    R = unsqueezed(onnx_order(const("w_hh", w(4 * H, H)), "R"), "R")
    biases = [onnx_order(const(b, w(4 * H)), b) for b in ("b_ih", "b_hh")]
    B = unsqueezed(node("Concat", biases, "B_cat", axis=0), "B")
    nodes.append(
        helper.make_node(
            "LSTM",
            [x, W, R, B, "", h0, c0],
            [p + "Y", p + "Y_h", p + "Y_c"],
            name=p + "rnn/LSTM",
            hidden_size=H,
        )
    )
    feat = node("Squeeze", [p + "Y_h", const("ax0", np.array([0]))], "feat")
    # the cell: z = feat·Wxᵀ + (h_prev·Whᵀ + b) by Gemm, four blocks in CELL_ORDERS[rate]
    z = node(
        "Add",
        [
            node("MatMul", [feat, const("cell_wx", w(H, 4 * H2))], "cell_x"),
            node(
                "Gemm",
                ["cell_h", const("cell_wh", w(4 * H2, H2)), const("cell_b", w(4 * H2))],
                "cell_h_gemm",
                transB=1,
            ),
        ],
        "cell_z",
    )
    nodes.append(
        helper.make_node(
            "Split",
            [z, const("four", np.array([H2] * 4))],
            [p + f"block{k}" for k in range(4)],
            name=p + "cell_split",
            axis=1,
        )
    )
    gate = {
        g: node("Tanh" if g == "g" else "Sigmoid", [p + f"block{k}"], f"gate_{g}")
        for k, g in enumerate(CELL_ORDERS[rate])
    }
    c_new = node(
        "Add",
        [node("Mul", ["cell_c", gate["f"]], "keep"), node("Mul", [gate["i"], gate["g"]], "write")],
        "cell_c_new",
    )
    h_new = node("Mul", [gate["o"], node("Tanh", [c_new], "tanh_c")], "cell_h_new")
    node(
        "Sigmoid",
        [
            node(
                "Add",
                [node("MatMul", [h_new, const("head_w", w(H2, 1))], "head"), const("head_b", w(1))],
                "logit",
            )
        ],
        "out",
    )
    node("Concat", [p + "Y_h", p + "Y_c"], "state_out", axis=0)
    outputs = [helper.make_tensor_value_info(p + n, F32, s) for n, s in _outputs(H2)]
    return helper.make_graph(nodes, p + "branch", [], outputs, inits)


def _outputs(cell: int | str) -> list[tuple[str, list[int | str]]]:
    """A branch's outputs and their shapes (the model's: the same names with a trailing _)."""
    return [
        ("out", ["batch", 1]),
        ("state_out", [2, "batch", H]),
        ("cell_h_new", ["batch", cell]),
        ("cell_c_new", ["batch", cell]),
    ]


def standin(seed: int = 20261206) -> onnx.ModelProto:
    """The stand-in: If on 'sr' (16000 or 8000) around each rate's branch."""
    rng = np.random.default_rng(seed)
    rate_is_16k = helper.make_node("Equal", ["sr", "k16000"], ["is16k"], name="sr_equal")
    choose = helper.make_node(
        "If",
        ["is16k"],
        [n + "_" for n, _ in _outputs("cell")],
        name="sr_if",
        then_branch=_branch(16000, rng),
        else_branch=_branch(8000, rng),
    )
    graph = helper.make_graph(
        [rate_is_16k, choose],
        "standin",
        [
            helper.make_tensor_value_info("audio", F32, ["batch", "samples"]),
            helper.make_tensor_value_info("state", F32, [2, "batch", H]),
            helper.make_tensor_value_info("cell_h", F32, ["batch", "cell"]),
            helper.make_tensor_value_info("cell_c", F32, ["batch", "cell"]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info(n + "_", F32, s) for n, s in _outputs("cell")],
        [numpy_helper.from_array(np.array(16000, np.int64), "k16000")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _feeds(rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "audio": rng.normal(size=(BATCH, SAMPLES)).astype(np.float32),
        "state": rng.normal(0, 0.5, (2, BATCH, H)).astype(np.float32),
        "cell_h": rng.normal(0, 0.5, (BATCH, CELL_H[rate])).astype(np.float32),
        "cell_c": rng.normal(0, 0.5, (BATCH, CELL_H[rate])).astype(np.float32),
    }


def test_standin_lists_its_lstms_and_cells() -> None:
    sites = list_lstms(standin())
    assert sorted((s.kind, s.name) for s in sites) == [
        ("LSTM", "sr16000/rnn/LSTM"),
        ("LSTM", "sr8000/rnn/LSTM"),
        ("cell", "sr16000/cell_h_new"),
        ("cell", "sr8000/cell_h_new"),
    ]
    for s in sites:
        (branch,) = s.branches
        assert (branch.node, branch.depends_on) == ("sr_if", ("input 'sr'",))
        assert branch.subgraph == ("then_branch" if "16000" in s.name else "else_branch")
    lstm = next(s for s in sites if s.name == "sr16000/rnn/LSTM")
    assert lstm.hidden_size == H and lstm.shapes["sr16000/Y_h"] == (1, "batch", H)
    cell = next(s for s in sites if s.name == "sr8000/cell_h_new")
    assert cell.inputs == ("sr8000/feat", "cell_h", "cell_c") and cell.hidden_size == CELL_H[8000]


def test_standin_refusal_names_the_branch_and_the_input() -> None:
    with pytest.raises(
        InputError,
        match=r"the LSTM 'sr16000/rnn/LSTM' lies in an If branch on input 'sr'; "
        r"fix 'sr' \(fixed=\.\.\.\) to inline it",
    ):
        extract_lstm(standin(), "sr16000/rnn/LSTM")
    with pytest.raises(
        InputError, match=r"no LSTM named 'rnn'; the model's LSTMs are \['sr16000/cell_h_new'"
    ):
        extract_lstm(standin(), "rnn")


@pytest.mark.parametrize("rate", [16000, 8000])
def test_standin_lstm_and_cell_equal_onnxruntimes_tensors(rate: int) -> None:
    model, rng = standin(), np.random.default_rng(rate)
    feeds = _feeds(rate, rng)
    special = specialise(model, fixed={"sr": rate})
    assert {n.op_type for n in special.graph.node}.isdisjoint({"If", "Constant"})
    whole = _ort(model, {**feeds, "sr": np.array(rate, np.int64)})
    for a, b in zip(_ort(special, feeds), whole, strict=True):
        np.testing.assert_array_equal(a, b)  # the same computation, folded
    for a, b in zip(
        ReferenceSession(model).run(None, {**feeds, "sr": np.array(rate)}), whole, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    p = f"sr{rate}/"
    lstm = extract_lstm(model, p + "rnn/LSTM", fixed={"sr": rate})
    node = next(n for n in special.graph.node if n.op_type == "LSTM")
    assert list(node.output) == [p + "Y", p + "Y_h", p + "Y_c"]
    assert _assert_same_run_as_node(lstm, special, feeds, node) >= 3  # T steps

    cell = extract_lstm(model, p + "cell_h_new", fixed={"sr": rate})
    seen = capture(special, feeds, [p + "feat", p + "cell_h_new", p + "cell_c_new"])
    state = LSTMState(feeds["cell_h"], feeds["cell_c"])
    h = seen[p + "cell_h_new"]
    _assert_same_run(cell, seen[p + "feat"][:, None], state, h[:, None], h, seen[p + "cell_c_new"])


def _assert_same_run(
    net: Network, x: np.ndarray, state: LSTMState, y: np.ndarray, h: np.ndarray, c: np.ndarray
) -> None:
    """net on x (B, T, C) from ``state`` gives y (B, T, H) and the final h, c (float32 ≤ 1e-5)."""
    name = net.layers[1].name
    net.state = {name: LSTMState(*(np.asarray(s, np.float64) for s in state))}
    out, final = net.predict(np.asarray(x, np.float64), return_state=True)
    np.testing.assert_allclose(out, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(final[name].h, h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(final[name].c, c, rtol=1e-5, atol=1e-5)


def _assert_same_run_as_node(
    net: Network, model: onnx.ModelProto, feeds: dict[str, np.ndarray], node: onnx.NodeProto
) -> int:
    """net computes what the one-direction ONNX LSTM ``node`` of ``model`` computed on
    ``feeds`` (captured from onnxruntime): from its X, initial_h, initial_c to its Y, Y_h,
    Y_c. Returns T, the steps the node ran."""
    x, h0, c0, Y, Y_h, Y_c = capture(
        model, feeds, [*(node.input[k] for k in (0, 5, 6)), *node.output]
    ).values()
    _assert_same_run(
        net,
        x.transpose(1, 0, 2),
        LSTMState(h0[0], c0[0]),
        Y[:, 0].transpose(1, 0, 2),
        Y_h[0],
        Y_c[0],
    )
    return len(x)


def test_a_chain_of_two_lstms() -> None:
    rng = np.random.default_rng(3)
    T, C, H1, H2 = 5, 3, 4, 5
    w = {
        k: numpy_helper.from_array(rng.normal(0, 0.5, s).astype(np.float32), k)
        for k, s in (
            ("W1", (1, 4 * H1, C)),
            ("R1", (1, 4 * H1, H1)),
            ("B1", (1, 8 * H1)),
            ("W2", (1, 4 * H2, H1)),
            ("R2", (1, 4 * H2, H2)),
            ("B2", (1, 8 * H2)),
        )
    }
    axes = numpy_helper.from_array(np.array([1]), "axes")
    nodes = [
        helper.make_node("Tanh", ["audio"], ["x"], name="front"),
        helper.make_node("LSTM", ["x", "W1", "R1", "B1"], ["Y1"], name="lstm1", hidden_size=H1),
        helper.make_node("Squeeze", ["Y1", "axes"], ["x2"], name="squeeze"),
        helper.make_node("LSTM", ["x2", "W2", "R2", "B2"], ["Y2"], name="lstm2", hidden_size=H2),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("audio", F32, [T, "batch", C])],
        [helper.make_tensor_value_info("Y2", F32, [T, 1, "batch", H2])],
        [*w.values(), axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    net = extract_lstm(model, ["lstm1", "lstm2"])
    audio = rng.normal(size=(T, 2, C)).astype(np.float32)
    x, y = capture(model, {"audio": audio}, ["x", "Y2"]).values()
    np.testing.assert_allclose(
        net.predict(x.transpose(1, 0, 2).astype(np.float64)),
        y[:, 0].transpose(1, 0, 2),
        rtol=1e-5,
        atol=1e-5,
    )


# ------------------------------------------------------------------ silero-vad's model
SILERO = importlib.util.find_spec("silero_vad")
SILERO_LSTM = "If_0_then_branch__Inline_0__/decoder/rnn/LSTM"


def _silero_file(name: str) -> str:
    if SILERO is None:
        pytest.skip("silero-vad is not installed (the test extra installs it)")
    from importlib.resources import files

    return str(files("silero_vad") / "data" / name)


@pytest.fixture(scope="module")
def silero() -> str:
    """silero-vad's default model: an LSTM node in If branches."""
    return _silero_file("silero_vad.onnx")


def _silero_feeds(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "input": rng.normal(0, 0.3, (BATCH, 576)).astype(np.float32),
        "state": rng.normal(0, 0.3, (2, BATCH, 128)).astype(np.float32),
    }


def test_silero_vad_lists_four_lstms_in_branches(silero: str) -> None:
    sites = list_lstms(silero)
    assert len(sites) == 4 and {s.kind for s in sites} == {"LSTM"}
    for s in sites:
        rate, state = s.branches
        assert rate.depends_on == ("input 'sr'",) and state.depends_on == (
            "shape of input 'state'",
        )
        assert s.hidden_size == 128
    with pytest.raises(
        InputError, match=rf"the LSTM '{SILERO_LSTM}' lies in an If branch on input 'sr'; fix 'sr'"
    ):
        extract_lstm(silero, SILERO_LSTM)


def test_silero_vad_lstm_equals_onnxruntimes_tensors(silero: str) -> None:
    feeds = _silero_feeds(np.random.default_rng(16000))
    whole = _ort(onnx.load(silero), {**feeds, "sr": np.array(16000, np.int64)})
    for a, b in zip(
        ReferenceSession(silero).run(None, {**feeds, "sr": np.array(16000)}), whole, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    special = specialise(silero, fixed={"sr": 16000})
    for a, b in zip(_ort(special, feeds), whole, strict=True):
        np.testing.assert_array_equal(a, b)
    net = extract_lstm(silero, SILERO_LSTM, fixed={"sr": 16000})
    node = next(n for n in special.graph.node if n.name == SILERO_LSTM)
    _assert_same_run_as_node(net, special, feeds, node)


def test_silero_vad_dynamo_export_cell_equals_onnxruntimes_tensors() -> None:
    """silero_vad_op18_ifless.onnx: the same network through torch's dynamo-based exporter,
    its LSTMCell written out as ops inside the If on 'sr'."""
    path = _silero_file("silero_vad_op18_ifless.onnx")
    sites = list_lstms(path)
    assert [(s.kind, str(s.branches[0])) for s in sites] == [
        ("cell", "If 'node_cond__1' (then_branch, on input 'sr')"),
        ("cell", "If 'node_cond__1' (else_branch, on input 'sr')"),
    ]
    special = specialise(path, fixed={"sr": 16000})
    (site,) = list_lstms(special)
    assert site.hidden_size == 128 and site.in_main_graph
    net = extract_lstm(path, site.name, fixed={"sr": 16000})
    feeds = _silero_feeds(np.random.default_rng(8000))
    x, h0, c0, h, c = capture(special, feeds, [*site.inputs, *site.outputs]).values()
    _assert_same_run(net, x[:, None], LSTMState(h0, c0), h[:, None], h, c)


# ------------------------------------------------- a cell in a Scan body (as tf2onnx writes)
def _scan_model(rng: np.random.Generator, T: int, C: int, H: int) -> onnx.ModelProto:
    """Scan over time; its body an LSTM cell written out with Slice blocks in order
    f, g, o, i, its weights initializers of the main graph (outer scope)."""
    order = "fgoi"
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, s).astype(np.float32), n)
        for n, s in (("Wx", (4 * H, C)), ("WhT", (H, 4 * H)), ("b", (4 * H,)))
    ]
    body_nodes = [
        helper.make_node("Gemm", ["x_t", "Wx", "b"], ["zx"], transB=1),
        helper.make_node("MatMul", ["h_prev", "WhT"], ["zh"]),
        helper.make_node("Add", ["zx", "zh"], ["z"]),
    ]
    for k, g in enumerate(order):
        bounds = [
            numpy_helper.from_array(np.array([v]), f"{g}_{w}")
            for w, v in (("s", k * H), ("e", (k + 1) * H), ("a", -1))
        ]
        inits.extend(bounds)
        body_nodes.append(helper.make_node("Slice", ["z", *(t.name for t in bounds)], [f"z_{g}"]))
        body_nodes.append(helper.make_node("Tanh" if g == "g" else "Sigmoid", [f"z_{g}"], [g]))
    body_nodes += [
        helper.make_node("Mul", ["f", "c_prev"], ["kept"]),
        helper.make_node("Mul", ["i", "g"], ["written"]),
        helper.make_node("Add", ["kept", "written"], ["c_new"]),
        helper.make_node("Tanh", ["c_new"], ["tanh_c"]),
        helper.make_node("Mul", ["o", "tanh_c"], ["h_new"], name="cell/h"),
        helper.make_node("Identity", ["h_new"], ["y_t"]),
    ]
    vi = helper.make_tensor_value_info
    body = helper.make_graph(
        body_nodes,
        "cell",
        [
            vi("h_prev", F32, ["batch", H]),
            vi("c_prev", F32, ["batch", H]),
            vi("x_t", F32, ["batch", C]),
        ],
        [
            vi("h_new", F32, ["batch", H]),
            vi("c_new", F32, ["batch", H]),
            vi("y_t", F32, ["batch", H]),
        ],
    )
    scan = helper.make_node(
        "Scan", ["h0", "c0", "x"], ["h_T", "c_T", "y"], name="scan", body=body, num_scan_inputs=1
    )
    graph = helper.make_graph(
        [scan],
        "scan_lstm",
        [vi("h0", F32, ["batch", H]), vi("c0", F32, ["batch", H]), vi("x", F32, [T, "batch", C])],
        [vi("h_T", F32, ["batch", H]), vi("c_T", F32, ["batch", H]), vi("y", F32, [T, "batch", H])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_a_cell_in_a_scan_body_equals_onnxruntime() -> None:
    rng = np.random.default_rng(11)
    T, C, H2 = 5, 3, 4
    model = _scan_model(rng, T, C, H2)
    (site,) = list_lstms(model)
    assert (site.kind, site.name, str(site.branches[0])) == (
        "cell",
        "cell/h",
        "Scan 'scan' (body, on no input)",
    )
    feeds = {
        "h0": rng.normal(0, 0.5, (2, H2)).astype(np.float32),
        "c0": rng.normal(0, 0.5, (2, H2)).astype(np.float32),
        "x": rng.normal(size=(T, 2, C)).astype(np.float32),
    }
    h_T, c_T, y = _ort(model, feeds)
    for a, b in zip(ReferenceSession(model).run(None, feeds), (h_T, c_T, y), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    net = extract_lstm(model, "cell/h")
    _assert_same_run(
        net,
        feeds["x"].transpose(1, 0, 2),
        LSTMState(feeds["h0"], feeds["c0"]),
        y.transpose(1, 0, 2),
        h_T,
        c_T,
    )


def test_specialise_checks_what_it_is_given() -> None:
    model = standin()
    with pytest.raises(InputError, match=r"\['rate'\] are not inputs of the model"):
        specialise(model, fixed={"rate": 16000})
    with pytest.raises(InputError, match=r"fixed 'sr' = 16000.5 is not a int64 value"):
        specialise(model, fixed={"sr": 16000.5})
    with pytest.raises(InputError, match=r"input 'state' is \[2, '\?', 6\]; got shape \(3, 2, 6\)"):
        specialise(model, shapes={"state": (3, 2, 6)})
    with pytest.raises(InputError, match=r"\['sr'\] given both in fixed and in shapes"):
        specialise(model, fixed={"sr": 8000}, shapes={"sr": ()})
