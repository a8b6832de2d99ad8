"""The ONNX graph of the shipped network that onnxruntime runs in the benchmarks, built with
``onnx.helper`` and checked by ``onnx.checker``, and the onnxruntime session of one thread."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from test_bench_lstm import as_numpy

from lstm_ref.interop.onnx import ONNX_ORDER
from lstm_ref.lstm import reorder_gates


def onnx_lstm_model(net, *, head: bool) -> bytes:
    """An ONNX graph of the network's LSTM (float32): X (T, B, C), sequence_lens (B,),
    initial_h/initial_c (1, B, H) -> Y_h, Y_c (1, B, H); with ``head`` the input
    normalisation before it and FC + Softmax after it (-> probs (B, K))."""
    inp, lstm, fc = net.layer("sequenceinput"), net.layer("lstm"), net.layer("fc")
    W, R, b = (np.asarray(a, np.float32) for a in lstm.params)
    H, C = lstm.hidden_size, lstm.input_size

    def gates(a: np.ndarray) -> np.ndarray:  # lstm_ref's blocks i, f, g, o as ONNX's i, o, f, c
        return reorder_gates(a, ONNX_ORDER, inverse=True)[None]

    inits = [
        helper.make_tensor("W", TensorProto.FLOAT, (1, 4 * H, C), gates(W).ravel()),
        helper.make_tensor("R", TensorProto.FLOAT, (1, 4 * H, H), gates(R).ravel()),
        helper.make_tensor(
            "B", TensorProto.FLOAT, (1, 8 * H), np.concatenate([gates(b)[0], np.zeros(4 * H)])
        ),
    ]
    nodes, x_name = [], "X"
    if head:
        inits += [
            helper.make_tensor("mean", TensorProto.FLOAT, (C,), np.float32(inp.mean)),
            helper.make_tensor("std", TensorProto.FLOAT, (C,), np.float32(inp.std)),
            helper.make_tensor("fcW", TensorProto.FLOAT, fc.weights.T.shape, fc.weights.T.ravel()),
            helper.make_tensor("fcb", TensorProto.FLOAT, fc.bias.shape, fc.bias),
        ]
        nodes += [
            helper.make_node("Sub", ["X", "mean"], ["xc"]),
            helper.make_node("Div", ["xc", "std"], ["xn"]),
        ]
        x_name = "xn"
    lstm_inputs = [x_name, "W", "R", "B", "sequence_lens", "initial_h", "initial_c"]
    nodes.append(helper.make_node("LSTM", lstm_inputs, ["Y", "Y_h", "Y_c"], hidden_size=H))
    outputs = [
        helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, (1, "B", H)),
        helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, (1, "B", H)),
    ]
    if head:
        inits.append(helper.make_tensor("axes0", TensorProto.INT64, (1,), [0]))
        nodes += [
            helper.make_node("Squeeze", ["Y_h", "axes0"], ["h"]),
            helper.make_node("Gemm", ["h", "fcW", "fcb"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ]
        outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ("B", 9))]
    inputs = [
        helper.make_tensor_value_info("X", TensorProto.FLOAT, ("T", "B", C)),
        helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ("B",)),
        helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, (1, "B", H)),
        helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, (1, "B", H)),
    ]
    graph = helper.make_graph(nodes, "lstm_ref", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def session(model: bytes, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def ort_numpy(a: Any) -> np.ndarray:
    return a.numpy() if isinstance(a, ort.OrtValue) else as_numpy(a)
