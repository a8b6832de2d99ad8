"""The ONNX reader on graphs made to its edges: weights and initial states given as graph
inputs (the form of ONNX's own LSTM node tests), both layouts, mixed lengths with states per
row, and the refusals, each naming the node, its position and what lstm_ref reads."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lstm_ref import InputError
from lstm_ref.interop.onnx import from_onnx


def conformance_like(rng, layout=0, direction="forward", lengths=False):
    """The form of ONNX's own LSTM node tests: X, W, R, B, (sequence_lens,) initial_h,
    initial_c all graph inputs, Y and Y_h both outputs, fixed dimensions (layout 1: batch
    first)."""
    T, B, C, H = 4, 3, 2, 3
    D = 2 if direction == "bidirectional" else 1
    names = ["X", "W", "R", "B", "sequence_lens" if lengths else "", "initial_h", "initial_c"]
    node = helper.make_node(
        "LSTM", names, ["Y", "Y_h"], name="lstm", hidden_size=H, layout=layout, direction=direction
    )
    rows = (D, B) if layout == 0 else (B, D)
    shapes = {
        "X": (T, B, C) if layout == 0 else (B, T, C),
        "W": (D, 4 * H, C),
        "R": (D, 4 * H, H),
        "B": (D, 8 * H),
        "initial_h": (*rows, H),
        "initial_c": (*rows, H),
    }
    infos = [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, s in shapes.items()]
    feeds = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    if lengths:
        infos.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]))
        feeds["sequence_lens"] = np.array([2, 4, 3], np.int32)
    graph = helper.make_graph(
        [node],
        "conformance",
        infos,
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    return model, feeds


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("output", ["Y", "Y_h"])
def test_weights_and_states_given_as_graph_inputs(rng, output, layout):
    """W, R, B given in inputs= become the layer's; initial_h/initial_c the network's state,
    one row per sequence; each output chosen by name; both layouts (onnxruntime runs layout
    0 only: the layout-1 model is compared with its layout-0 twin on transposed tensors)."""
    model, feeds = conformance_like(rng, layout)
    twin, _ = conformance_like(rng, 0)
    batch_first = ("X", "initial_h", "initial_c") if layout == 1 else ()
    swap = {k: v.transpose(1, 0, 2) if k in batch_first else v for k, v in feeds.items()}
    want = ort.InferenceSession(twin.SerializeToString()).run([output], swap)[0]
    want = want[:, 0].transpose(1, 0, 2) if output == "Y" else want[0]  # (B, T, H) or (B, H)
    given = {k: v for k, v in feeds.items() if k != "X"}
    net = from_onnx(model, inputs=given, output=output, dtype=np.float32)
    got = np.asarray(net.predict(list(swap["X"].transpose(1, 0, 2))))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_bidirectional_states_per_row_under_mixed_lengths(rng):
    """A BiLSTM's Y_h (D, B, H) with sequence_lens 2, 4, 3 and initial states per row given
    as graph inputs: the network's output (B, D·H) is onnxruntime's, row by row."""
    model, feeds = conformance_like(rng, direction="bidirectional", lengths=True)
    want = ort.InferenceSession(model.SerializeToString()).run(["Y_h"], feeds)[0]
    given = {k: v for k, v in feeds.items() if k not in ("X", "sequence_lens")}
    net = from_onnx(model, inputs=given, output="Y_h", dtype=np.float32)
    seqs = [
        row[:n]
        for row, n in zip(feeds["X"].transpose(1, 0, 2), feeds["sequence_lens"], strict=True)
    ]
    got = net.predict(seqs)
    np.testing.assert_allclose(got, want.transpose(1, 0, 2).reshape(3, -1), rtol=0, atol=1e-5)


def test_inputs_the_reader_needs_are_named(rng):
    model, feeds = conformance_like(rng)
    with pytest.raises(InputError, match=r"choose one: output=name"):
        from_onnx(model)
    with pytest.raises(InputError, match=r"got \['X', 'W', 'R', 'B'\].*inputs=\{name: array\}"):
        from_onnx(model, output="Y_h")
    weights = {k: feeds[k] for k in ("W", "R", "B")}
    with pytest.raises(InputError, match=r"\['initial_c', 'initial_h'\] hold the initial state"):
        from_onnx(model, inputs=weights, output="Y_h")
    with pytest.raises(InputError, match=r"inputs \['Z'\] are not graph inputs"):
        from_onnx(model, inputs={**weights, "Z": feeds["W"]}, output="Y_h")


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.complex64])
def test_weights_of_other_dtypes_are_refused_by_name(rng, dtype):
    model, feeds = conformance_like(rng)
    given = {k: v for k, v in feeds.items() if k != "X"}
    given["W"] = given["W"].astype(dtype)
    with pytest.raises(InputError, match=rf"input W \('W'\) has dtype {np.dtype(dtype)}"):
        from_onnx(model, inputs=given, output="Y_h")


def one_lstm_then(rng, ops, output):
    """X (T, B, 3) → a forward LSTM (H 4, outputs Y, Y_h, Y_c) → ``ops`` (nodes reading its
    outputs, constants as initializers) → ``output``."""
    C, H = 3, 4
    inits = {
        "W": rng.normal(size=(1, 4 * H, C)).astype(np.float32),
        "R": rng.normal(size=(1, 4 * H, H)).astype(np.float32),
        "first": np.array(0, np.int64),
        "axes": np.array([0], np.int64),
    }
    lstm = helper.make_node(
        "LSTM", ["X", "W", "R"], ["Y", "Y_h", "Y_c"], name="lstm", hidden_size=H
    )
    graph = helper.make_graph(
        [lstm, *ops],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", C])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("ops", "output", "message"),
    [
        (
            [helper.make_node("Gather", ["Y", "first"], ["y0"], name="first_step")],
            "y0",
            r"output 'y0': reads Y of 'lstm' at steps \[0, 0, [0, ]*\] of 5; lstm_ref's layers "
            "return every step, or each sequence's last",
        ),
        ([], "Y_c", r"output 'Y_c': reads Y_c of 'lstm'; lstm_ref's layers return h"),
        (
            [helper.make_node("Sin", ["Y_h"], ["r"], name="sine")],
            "r",
            r"node 'sine' \(Sin; node 1 of the main graph\): op Sin on the data path is not "
            "supported; lstm_ref follows Transpose,",
        ),
        (
            [helper.make_node("ReduceSum", ["Y", "axes"], ["s"], name="over_time")],
            "s",
            r"node 'over_time' \(ReduceSum; node 1 of the main graph\): op ReduceSum",
        ),
        (
            [helper.make_node("MatMul", ["Y_h", "Y_h"], ["m"], name="square")],
            "m",
            r"node 'square' \(MatMul.*expected one data input \(the first\) and constants",
        ),
        (  # what Keras 3's ONNX export writes: an LSTM step as MatMul, Sigmoid, Tanh ops
            [helper.make_node("Sigmoid", ["X"], ["gate"], name="gate")],
            "gate",
            r"node 'gate' \(Sigmoid.*computes on the input X before any LSTM node.*an LSTM "
            r"written out as MatMul, Sigmoid and Tanh ops is not an LSTM node; take the LSTM "
            r"out with lstm_ref\.interop\.onnx_models\.extract_lstm\(path, name\) "
            r"\(list_lstms lists them\)$",
        ),
        (  # a constant of one value per row of the batch the export traced
            [
                helper.make_node("Squeeze", ["Y_h", "axes"], ["h"]),
                helper.make_node(
                    "Constant",
                    [],
                    ["per_row"],
                    value=numpy_helper.from_array(np.ones((3, 1), np.float32)),
                ),
                helper.make_node("Add", ["h", "per_row"], ["shifted"], name="shift"),
            ],
            "shifted",
            r"node 'shift' \(Add.*its constant of shape \(3, 1\) does not broadcast with the "
            r"data's \(\d+, 4\)",
        ),
    ],
    ids=[
        "first-step",
        "Y_c",
        "sine",
        "sum-over-time",
        "data-times-data",
        "cell-as-ops",
        "per-row-constant",
    ],
)
def test_refusals_name_the_node_and_what_lstm_ref_reads(rng, ops, output, message):
    with pytest.raises(InputError, match=message):
        from_onnx(one_lstm_then(rng, ops, output))


def two_lstms(rng, between, ops, output, masked=(), direction="forward"):
    """X (T, B, 3) → forward LSTM 'a' (H 4) → Y squeezed to (T, B, 4) → ``between`` (nodes
    from 'ya' to 'xb'; None: Identity) → LSTM 'b' (H 4, ``direction``) → ``ops`` →
    ``output``; the nodes named in ``masked`` take the graph's sequence_lens."""
    C, H = 3, 4
    inits = {
        name: rng.normal(size=(1, 4 * H, n)).astype(np.float32)
        for name, n in (("W_a", C), ("R_a", H), ("W_b", H), ("R_b", H))
    }
    inits |= {"axis1": np.array([1], np.int64), "weight": rng.normal(size=(H, 2)).astype("f")}
    if direction == "bidirectional":
        inits["W_b"], inits["R_b"] = (
            np.concatenate([a, rng.normal(size=a.shape).astype(np.float32)])
            for a in (inits["W_b"], inits["R_b"])
        )
    sl = {k: "sequence_lens" if k in masked else "" for k in ("a", "b")}
    nodes = [
        helper.make_node(
            "LSTM",
            ["X", "W_a", "R_a", "", sl["a"]],
            ["Y_a", "Yh_a", "Yc_a"],
            name="a",
            hidden_size=H,
        ),
        helper.make_node("Squeeze", ["Y_a", "axis1"], ["ya"], name="squeeze"),
        *(between or [helper.make_node("Identity", ["ya"], ["xb"], name="same")]),
        helper.make_node(
            "LSTM",
            ["xb", "W_b", "R_b", "", sl["b"]],
            ["Y_b", "Yh_b", "Yc_b"],
            name="b",
            hidden_size=H,
            direction=direction,
        ),
        *ops,
    ]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", C])]
    if masked:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"]))
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def concat(*names, out="h"):
    return helper.make_node("Concat", list(names), [out], name="concat", axis=0)


@pytest.mark.parametrize(
    ("between", "ops", "output", "masked", "message"),
    [
        (
            [helper.make_node("Tanh", ["ya"], ["xb"], name="tanh")],
            [concat("Yh_a", "Yh_b")],
            "h",
            (),
            r"output 'h': reads the final states of \['a', 'b'\]; lstm_ref stacks LSTM layers "
            r"each read at every step by the next, up to the last one, but 'tanh' \(tanh\) lies "
            "between or after them",
        ),
        (
            None,
            [concat("Yc_a", "Yh_b")],
            "h",
            (),
            r"output 'h': reads Y_c of 'a'; lstm_ref's layers return h",
        ),
        (
            None,
            [concat("Yh_a", "Yh_b"), helper.make_node("MatMul", ["h", "weight"], ["m"])],
            "m",
            ("a",),
            r"node 'm' \(MatMul; node 5 of the main graph\): reads where 'b' ends, but it runs "
            "without the graph's sequence_lens, so it ends after the padding",
        ),
        (
            None,
            [
                concat("Yh_a", "Yh_b"),
                helper.make_node("MatMul", ["h", "weight"], ["m"], name="head"),
                helper.make_node("MatMul", ["Y_b", "weight"], ["s"], name="steps"),
                helper.make_node("Flatten", ["s"], ["fs"], axis=0),
                helper.make_node("Flatten", ["m"], ["fm"], axis=0),
                helper.make_node("Concat", ["fm", "fs"], ["both"], name="both", axis=1),
            ],
            "both",
            (),
            r"node 'steps' \(MatMul; node 6 of the main graph\): reads Y or Y_c of a layer now "
            r"inside an LSTMStack \(it returns h\)",
        ),
        (  # one layer's end too: onnxruntime runs 'b' over the zeros 'a' writes past each end
            None,
            [],
            "Yh_b",
            ("a",),
            r"output 'Yh_b': reads where 'b' ends, but it runs without the graph's sequence_lens",
        ),
    ],
    ids=["not-a-chain", "Y_c", "unmasked-layer", "Y-after-stacking", "unmasked-end"],
)
def test_final_states_of_layers_that_do_not_stack_are_refused(
    rng, between, ops, output, masked, message
):
    """Final states of several layers become an LSTMStack only for LSTM layers each read at
    every step by the next, all run over each sequence's own length, read for their h (and
    one layer's end is read only if it runs over each sequence's own length)."""
    with pytest.raises(InputError, match=message):
        from_onnx(two_lstms(rng, between, ops, output, masked))


def test_final_states_read_in_another_order_under_mixed_lengths(rng):
    """A forward LSTM then a BiLSTM, both given sequence_lens (unsorted, mixed), read as
    Concat(Y_h of 'b', Y_h of 'a') — not torch's layer order: one LSTMStack and a
    FullyConnected that reorders its features, equal to onnxruntime row by row."""
    ops = [
        helper.make_node("Concat", ["Yh_b", "Yh_a"], ["h"], name="concat", axis=0),
        helper.make_node("Transpose", ["h"], ["rows"], name="rows", perm=[1, 0, 2]),
        helper.make_node("Flatten", ["rows"], ["flat"], name="flat", axis=1),
    ]
    model = two_lstms(rng, None, ops, "flat", masked=("a", "b"), direction="bidirectional")
    lengths = np.array([2, 5, 1, 4], np.int32)
    x = rng.normal(size=(5, len(lengths), 3)).astype(np.float32)  # (T, B, C), padding random
    feeds = {"X": x, "sequence_lens": lengths}
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3  # not its note that the unused initializer 'weight' goes
    want = ort.InferenceSession(model.SerializeToString(), quiet).run(["flat"], feeds)[0]
    net = from_onnx(model, dtype=np.float32)
    assert [type(layer).__name__ for layer in net.layers[1:]] == ["LSTMStack", "FullyConnected"]
    got = net.predict([x[:n, b] for b, n in enumerate(lengths)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_a_state_input_of_a_fixed_batch_under_a_dynamic_one_is_refused(rng):
    """X's batch axis takes any size but the initial-state inputs hold the traced batch's
    rows (torch.onnx.export with dynamic_axes on x alone): the graph runs on that batch only."""
    C, H = 3, 4
    weights = {
        "W": rng.normal(size=(1, 4 * H, C)).astype(np.float32),
        "R": rng.normal(size=(1, 4 * H, H)).astype(np.float32),
    }
    lstm = helper.make_node(
        "LSTM", ["X", "W", "R", "", "", "h0", "c0"], ["Y", "Y_h"], name="lstm", hidden_size=H
    )
    graph = helper.make_graph(
        [lstm],
        "g",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", C]),
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 3, H]),
            helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, 3, H]),
        ],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    states = {k: rng.normal(size=(1, 3, H)).astype(np.float32) for k in ("h0", "c0")}
    with pytest.raises(
        InputError,
        match=r"its initial state from input 'h0' holds 3 rows whatever the batch, while X's "
        r"batch axis takes any size; the graph runs only on batches of 3",
    ):
        from_onnx(model, inputs=states)


def test_a_graph_reading_only_the_first_steps_of_any_length_is_refused(rng):
    """No LSTM node, and ops (here a Sigmoid of a product, in no form of a cell) on X's first
    step only, while X's time axis holds any number: found by running the graph with the
    later steps changed, and refused saying so."""
    C = 3
    weight = numpy_helper.from_array(rng.normal(size=(C, 4)).astype(np.float32), "weight")
    first = numpy_helper.from_array(np.array(0, np.int64), "first")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["X", "first"], ["x0"], axis=0),
            helper.make_node("MatMul", ["x0", "weight"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["gate"]),
        ],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", C])],
        [helper.make_tensor_value_info("gate", TensorProto.FLOAT, None)],
        [weight, first],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(
        InputError,
        match=r"output 'gate' reads only its first step of input 'X', whose time axis 0 holds "
        r"any number of steps \(changing the later steps changes nothing\), and no LSTM node",
    ):
        from_onnx(model)
