"""lstm_ref's ONNX runner: ONNX's own backend node tests through it, and random graphs
around an LSTM node computed by it and by onnxruntime."""

from __future__ import annotations

import re
import warnings

import numpy as np
import onnx
import onnx.backend.test
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.backend.test.loader import load_model_tests

from lstm_ref.errors import InputError, InputTypeError
from lstm_ref.interop.onnx_backend import ReferenceBackend
from lstm_ref.interop.onnx_runner import ReferenceSession

# ------------------------------------------------- ONNX's backend test suite (node tests)
LSTM_CASES = r"^test_lstm_"
OTHER_OPS = (
    r"^test_(gather|gathernd|squeeze|unsqueeze|concat|slice|split|reshape|transpose|flatten|"
    r"expand|constantofshape|range|matmul|gemm|softmax|logsoftmax|conv|clip|leakyrelu|where|"
    r"if|loop11|scan9|sigmoid|tanh|relu|add|sub|mul|div|pow|shape|size|neg|abs|sqrt|exp|log|"
    r"equal|less|greater|not|and|or|min|max|argmax|reduce_mean|reduce_sum|reduce_max|pad|"
    r"constant|identity|cast|dropout|batchnorm|globalaveragepool|tile|cumsum)(_|$)"
)
# What the runner refuses, each with its message (tested below): types NumPy does not
# compute in, training mode, sequence and optional values.
REFUSED = (
    r"(FLOAT8|FLOAT4|INT4|INT2|BFLOAT16|bfloat16|e8m0)",
    r"training_mode",
    r"(_seq|_sequence|_opt)(_|$)",
)

with warnings.catch_warnings():  # ONNX's case definitions compute their outputs at import
    warnings.simplefilter("ignore")
    BACKEND_TESTS = onnx.backend.test.BackendTest(ReferenceBackend, __name__)
    NODE_CASES = {t.name: t for t in load_model_tests(kind="node")}
BACKEND_TESTS.include(LSTM_CASES).include(OTHER_OPS)
for pattern in REFUSED:
    BACKEND_TESTS.exclude(pattern)
for case_name, case in BACKEND_TESTS.test_cases.items():
    for test_name in [n for n in vars(case) if n.startswith("test_")]:
        if getattr(getattr(case, test_name), "__unittest_skip__", False):
            delattr(case, test_name)  # not selected: left out of the report, not skipped
    if any(n.startswith("test_") for n in vars(case)):
        globals()[case_name] = case


def test_every_lstm_node_case_runs() -> None:
    lstm_cases = [n for n in NODE_CASES if re.search(LSTM_CASES, n)]
    collected = vars(BACKEND_TESTS.test_cases["OnnxBackendNodeModelTest"])
    assert len(lstm_cases) >= 6
    for name in lstm_cases:
        assert not any(re.search(p, name) for p in REFUSED)
        assert f"{name}_cpu" in collected


def test_run_node_computes_one_lstm_node() -> None:
    test = NODE_CASES["test_lstm_with_peepholes"]
    (inputs, expected), node = test.data_sets[0], test.model.graph.node[0]
    feeds = dict(zip([i.name for i in test.model.graph.input], inputs, strict=True))
    outputs = ReferenceBackend.run_node(node, [feeds.get(n) for n in node.input])
    assert list(outputs._fields) == [n for n in node.output if n] and len(expected) == 1
    for got, want in zip(outputs, expected, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("test_cast_FLOAT_to_FLOAT8E4M3FN", "type float8_e4m3fn is not supported"),
        ("test_training_dropout", "training mode is not supported"),
        ("test_identity_sequence", "is of type sequence_type; the runner takes tensors only"),
        ("test_top_k", "op 'TopK' is not supported"),
    ],
)
def test_refusals_name_the_obstacle(case: str, message: str) -> None:
    test = NODE_CASES[case]
    with pytest.raises((InputError, InputTypeError), match=re.escape(message)):
        inputs = test.data_sets[0][0]
        arrays = [numpy_helper.to_array(i) if isinstance(i, TensorProto) else i for i in inputs]
        ReferenceBackend.prepare(test.model).run(arrays)


# ------------------------------------------------ random graphs against onnxruntime
def _random_model(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """An LSTM node (random direction; W, R, B constants; sequence_lens and
    initial states as inputs) and a random chain of ops on its Y; every output listed."""
    T, batch, C, H = (int(v) for v in rng.integers([3, 2, 2, 2], [7, 5, 5, 6]))
    direction = str(rng.choice(["forward", "reverse", "bidirectional"]))
    # layout 0 only: onnxruntime refuses layout 1 (ONNX's test_lstm_batchwise covers it)
    layout, D = 0, 2 if direction == "bidirectional" else 1
    inits = []

    def const(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(a, name))
        return name

    def weights(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.5, shape).astype(np.float32)

    states = (D, batch, H) if layout == 0 else (batch, D, H)
    x_shape = (T, batch, C) if layout == 0 else (batch, T, C)
    nodes = [
        helper.make_node(
            "LSTM",
            [
                "X",
                const("W", weights(D, 4 * H, C)),
                const("R", weights(D, 4 * H, H)),
                const("B", weights(D, 8 * H)),
                "lens",
                "h0",
                "c0",
            ],
            ["Y", "Y_h", "Y_c"],
            hidden_size=H,
            direction=direction,
            layout=layout,
            name="lstm",
        )
    ]
    y_shape = [T, D, batch, H] if layout == 0 else [batch, T, D, H]
    shape = list(y_shape)
    name = "Y"
    for k in range(int(rng.integers(3, 6))):
        out, op = f"t{k}", str(rng.choice(_CHAIN_OPS))
        axis = int(rng.integers(len(shape)))
        if op == "Transpose":
            perm = [int(p) for p in rng.permutation(len(shape))]
            nodes.append(helper.make_node(op, [name], [out], perm=perm))
            shape = [shape[p] for p in perm]
        elif op == "Reshape":
            merged = [*shape[:axis], -1, *shape[axis + 2 :]] if axis < len(shape) - 1 else shape
            nodes.append(helper.make_node(op, [name, const(f"shape{k}", np.array(merged))], [out]))
            shape = list(np.empty(shape).reshape(merged).shape)
        elif op == "Slice":
            lo = int(rng.integers(-shape[axis], shape[axis]))
            step = int(rng.choice([1, -1, 2]))
            ends = np.array([2**62 if step > 0 else -(2**62)])
            args = [np.array([lo]), ends, np.array([axis]), np.array([step])]
            nodes.append(
                helper.make_node(
                    op,
                    [name]
                    + [
                        const(f"{n}{k}", a)
                        for n, a in zip(("starts", "ends", "axes", "steps"), args, strict=True)
                    ],
                    [out],
                )
            )
            shape[axis] = len(range(shape[axis])[slice(lo, None, step)])
            if shape[axis] == 0:
                return _random_model(rng)
        elif op == "Gather":
            idx = rng.integers(-shape[axis], shape[axis], 2)
            nodes.append(helper.make_node(op, [name, const(f"indices{k}", idx)], [out], axis=axis))
            shape[axis] = 2
        elif op in ("Softmax", "LogSoftmax"):
            nodes.append(helper.make_node(op, [name], [out], axis=axis))
        elif op == "ReduceMean":
            nodes.append(helper.make_node(op, [name], [out], axes=[axis], keepdims=1))
            shape[axis] = 1
        elif op == "MatMul":
            w = weights(shape[-1], 3)
            nodes.append(helper.make_node(op, [name, const(f"matrix{k}", w)], [out]))
            shape[-1] = 3
        elif op == "Concat":
            nodes.append(helper.make_node(op, [name, name], [out], axis=axis))
            shape[axis] *= 2
        else:  # element-wise
            nodes.append(helper.make_node(op, [name], [out]))
        name = out
    lengths = rng.integers(1, T + 1, batch).astype(np.int32)
    feeds = {
        "X": rng.normal(size=x_shape).astype(np.float32),
        "lens": lengths,
        "h0": rng.normal(size=states).astype(np.float32),
        "c0": rng.normal(size=states).astype(np.float32),
    }
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "random",
        [
            helper.make_tensor_value_info("X", f32, x_shape),
            helper.make_tensor_value_info("lens", TensorProto.INT32, [batch]),
            helper.make_tensor_value_info("h0", f32, states),
            helper.make_tensor_value_info("c0", f32, states),
        ],
        [
            helper.make_tensor_value_info(n, f32, s)
            for n, s in (("Y", y_shape), ("Y_h", states), ("Y_c", states), (name, shape))
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, feeds


_CHAIN_OPS = [
    "Transpose",
    "Reshape",
    "Slice",
    "Gather",
    "Softmax",
    "LogSoftmax",
    "ReduceMean",
    "MatMul",
    "Concat",
    "Sigmoid",
    "Tanh",
    "Relu",
    "Neg",
    "Abs",
]


@pytest.mark.parametrize("seed", range(12))
def test_random_graphs_equal_onnxruntime(seed: int) -> None:
    model, feeds = _random_model(np.random.default_rng([20261206, seed]))
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)
    ours = ReferenceSession(model)
    assert [i.name for i in ours.get_inputs()] == [i.name for i in session.get_inputs()]
    assert [(o.name, o.type) for o in ours.get_outputs()] == [
        (o.name, o.type) for o in session.get_outputs()
    ]
    for got, want in zip(ours.run(None, feeds), expected, strict=True):
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    wide = ReferenceSession(model, dtype=np.float64).run(None, feeds)
    for got, want in zip(wide, expected, strict=True):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_session_checks_its_feeds() -> None:
    model, feeds = _random_model(np.random.default_rng(7))
    session = ReferenceSession(model)
    with pytest.raises(InputError, match=r"missing: \['lens'\]"):
        session.run(None, {k: v for k, v in feeds.items() if k != "lens"})
    with pytest.raises(InputError, match=r"unknown: \['Z'\]"):
        session.run(None, {**feeds, "Z": feeds["X"]})
    with pytest.raises(
        InputTypeError, match=r"input 'X' has dtype float64; expected tensor\(float\)"
    ):
        session.run(None, {**feeds, "X": feeds["X"].astype(np.float64)})
    with pytest.raises(InputError, match=r"input 'X' has shape"):
        session.run(None, {**feeds, "X": feeds["X"][:1]})
    with pytest.raises(InputError, match=r"unknown output\(s\) \['nope'\]"):
        session.run(["nope"], feeds)


def test_unknown_op_names_op_and_node() -> None:
    node = helper.make_node("Hardmax", ["x"], ["y"], name="/head/Hardmax")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    session = ReferenceSession(helper.make_model(graph))
    with pytest.raises(InputError, match=r"node '/head/Hardmax' \(Hardmax\): op 'Hardmax' is not"):
        session.run(None, {"x": np.zeros(2, np.float32)})
