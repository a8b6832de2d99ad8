"""ONNX export: a network as an ONNX graph, in the layout :mod:`lstm_ref.interop.onnx` states.

Export writes opset 17: X (T, B, C) float and ``sequence_lens`` (B,) int32 in, one LSTM node
per layer with Transpose + Reshape to (T, B, D·H) between layers, Y_h → (B, D·H) for a
"last" layer, ``Gemm``/``MatMul`` + ``Add``, ``Softmax``. Initial states are constants
expanded to the batch.

A BiLSTM whose "last" is the output at the last step (``last="step"``, MATLAB's bilstmLayer
'last') reads Y, not Y_h: its reverse half there has seen that one step only, which Y_h
(the reverse direction's state after the *first* step) is not. Under ``sequence_lens`` the
step is each row's own, L − 1, and Y[-1] would be 0 for the shorter rows, so the graph
gathers it: Y (T, D, B, H) → Transpose (B, T, D, H) → Reshape (B, T, D·H) → GatherND
(``batch_dims=1``) at indices Unsqueeze(Cast(sequence_lens) − 1) of shape (B, 1) →
(B, D·H). The forward half there equals its Y_h. The importer reads this pattern back
(:mod:`lstm_ref.interop.onnx_head`).

The class names travel in the model's ``metadata_props`` (key ``class_names``, a JSON list),
where onnxruntime shows them (``session.get_modelmeta().custom_metadata_map``) and
:func:`~lstm_ref.interop.load_model` reads them back.

A projection (PyTorch ``proj_size``) is refused: ONNX's LSTM has none (docs/INTEROP.md
says why no other encoding is offered).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..activations import onnx_spelling
from ..errors import InputError
from ..formats.writes import write_atomically
from ..layers import (
    LSTM,
    BiLSTM,
    FullyConnected,
    LSTMStack,
    SequenceInput,
    Softmax,
    directions,
    shared_by_directions,
)
from ..network import Network
from .onnx import OPSET, PEEPHOLE_ROWS, onnx_weights

Array = np.ndarray
CLASS_NAMES_KEY = "class_names"  # metadata_props key of the class names, a JSON list


def to_onnx(net: Network) -> Any:
    """An ONNX model (opset 17) computing ``net`` in float32, checked by ``onnx.checker``.

    Parameters
    ----------
    net : Network
        SequenceInput, LSTM/BiLSTM (concat, no projection), FullyConnected, Softmax layers.

    Returns
    -------
    onnx.ModelProto
        Inputs X (T, B, C) float32 and sequence_lens (B,) int32; output Y, the last layer's
        output: (B, K) after a "last" LSTM, else (T, B, K). The class names, if any, in the
        model's ``metadata_props`` under ``CLASS_NAMES_KEY`` as a JSON list.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, a: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(a, dtype), name))
        return name

    x, mode = "X", "sequence"  # the current tensor: (T, B, F) per step, or (B, F) after "last"
    nodes.append(helper.make_node("Shape", ["X"], ["X_shape"], name="x_shape"))
    nodes.append(
        helper.make_node(
            "Gather", ["X_shape", const("one", [1], np.int64)], ["batch"], name="batch", axis=0
        )
    )
    for layer in net.layers:
        out = f"{layer.name}_out"
        if isinstance(layer, SequenceInput):
            if layer.mean is not None:
                nodes.append(
                    helper.make_node(
                        "Sub",
                        [x, const(f"{layer.name}_mean", layer.mean)],
                        [f"{out}_c"],
                        name=f"{layer.name}_sub",
                    )
                )
                x = f"{out}_c"
            if layer.std is not None:
                nodes.append(
                    helper.make_node(
                        "Div",
                        [x, const(f"{layer.name}_std", layer.std)],
                        [out],
                        name=f"{layer.name}_div",
                    )
                )
                x = out
        elif isinstance(layer, LSTM | BiLSTM):
            if mode != "sequence":
                raise InputError(f"layer {layer.name!r}: an LSTM after a 'last' layer")
            x, mode = (
                _export_lstm(layer, x, nodes, const, helper),
                layer.output_mode,
            )
        elif isinstance(layer, LSTMStack):
            raise InputError(
                f"layer {layer.name!r} (LSTMStack) has no ONNX export: the exporter writes one "
                "LSTM node per LSTM or BiLSTM layer, and nothing that gathers every layer's state"
            )
        elif isinstance(layer, FullyConnected):
            W, b = const(f"{layer.name}_W", layer.weights.T), const(f"{layer.name}_b", layer.bias)
            if mode == "last":
                nodes.append(helper.make_node("Gemm", [x, W, b], [out], name=layer.name))
            else:
                nodes.append(
                    helper.make_node("MatMul", [x, W], [f"{out}_m"], name=f"{layer.name}_matmul")
                )
                nodes.append(
                    helper.make_node("Add", [f"{out}_m", b], [out], name=f"{layer.name}_add")
                )
            x = out
        elif isinstance(layer, Softmax):
            nodes.append(helper.make_node("Softmax", [x], [out], name=layer.name, axis=-1))
            x = out
        elif layer.TYPE == "Classification Output":
            continue
        else:
            raise InputError(f"layer {layer.name!r} ({layer.TYPE}) has no ONNX export")
    nodes.append(helper.make_node("Identity", [x], ["Y"], name="output"))
    K = net.output_size
    graph = helper.make_graph(
        nodes,
        "lstm_ref",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", net.input_size]),
            helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"]),
        ],
        [
            helper.make_tensor_value_info(
                "Y", TensorProto.FLOAT, ["B", K] if mode == "last" else ["T", "B", K]
            )
        ],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lstm_ref"
    )
    model.ir_version = 8
    if net.class_names:
        helper.set_model_props(model, {CLASS_NAMES_KEY: json.dumps(list(net.class_names))})
    onnx.checker.check_model(model, full_check=True)
    return model


def read_class_names(path: str | os.PathLike) -> list[str] | None:
    """The class names :func:`to_onnx` stored in an ONNX file's ``metadata_props`` (key
    ``CLASS_NAMES_KEY``, a JSON list of str), or None: another exporter's file has none."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    stored = {p.key: p.value for p in model.metadata_props}.get(CLASS_NAMES_KEY)
    if stored is None:
        return None
    names = json.loads(stored)
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise InputError(f"{path}: metadata {CLASS_NAMES_KEY!r} must be a JSON list of names")
    return names


def _export_lstm(layer: LSTM | BiLSTM, x: str, nodes: list[Any], const: Any, helper: Any) -> str:
    """One LSTM node for ``layer`` and the Transpose + Reshape to (T, B, D·H) or (B, D·H)
    (a BiLSTM ``last="step"``: its Y at each row's step sequence_lens − 1, by GatherND)."""
    from onnx import TensorProto

    one_ways = directions(layer)
    if isinstance(layer, BiLSTM) and layer.merge_mode != "concat":
        raise InputError(
            f"layer {layer.name!r}: ONNX concatenates the directions; merge {layer.merge_mode!r}"
        )
    for one in one_ways:
        if one.projection is not None:
            raise InputError(
                f"layer {one.name!r}: ONNX's LSTM has no projection (proj_size), and no other "
                "encoding reads back exactly; save it as a PyTorch state_dict (.pt) instead"
            )
    H, n = layer.hidden_size, layer.name
    D = len(one_ways)

    def stack(f: Any) -> Any:
        return np.stack([f(one) for one in one_ways])

    W, R, B = onnx_weights([one.params for one in one_ways])
    inputs = [x, const(f"{n}_W", W), const(f"{n}_R", R), const(f"{n}_B", B), "sequence_lens"]
    h0 = stack(lambda one: one.initial_state.h)[:, None]  # (D, 1, H)
    c0 = stack(lambda one: one.initial_state.c)[:, None]
    for what, a in (("h0", h0), ("c0", c0)):
        shape = f"{n}_{what}_shape"
        nodes.append(
            helper.make_node(
                "Concat",
                [
                    const(f"{n}_{what}_D", [D], np.int64),
                    "batch",
                    const(f"{n}_{what}_H", [a.shape[-1]], np.int64),
                ],
                [shape],
                name=shape,
                axis=0,
            )
        )
        nodes.append(
            helper.make_node(
                "Expand",
                [const(f"{n}_{what}", a), shape],
                [f"{n}_{what}_b"],
                name=f"{n}_{what}_expand",
            )
        )
        inputs.append(f"{n}_{what}_b")
    peepholes = [one.peephole for one in one_ways]
    if any(p is not None for p in peepholes):
        P = np.stack([np.zeros((3, H)) if p is None else p for p in peepholes])[:, PEEPHOLE_ROWS]
        inputs.append(const(f"{n}_P", P.reshape(D, 3 * H)))
    acts = []
    for one in one_ways:
        out = one.output_activation or one.state_activation
        acts += [onnx_spelling(a) for a in (one.gate_activation, one.state_activation, out)]
    names, alphas, betas = [], [], []
    for name, params in acts:
        names.append(name)
        if "alpha" in params:
            alphas.append(params["alpha"])
        if "beta" in params:
            betas.append(params["beta"])
    attrs: dict[str, Any] = {"hidden_size": H, "activations": names}
    attrs["direction"] = "bidirectional" if D == 2 else one_ways[0].direction
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    clip = shared_by_directions(layer, "clip", lambda one: one.clip)
    if clip is not None:
        attrs["clip"] = clip
    if shared_by_directions(layer, "input_forget", lambda one: one.input_forget):
        attrs["input_forget"] = 1
    last = layer.output_mode == "last"
    each_step = isinstance(layer, BiLSTM) and layer.last == "step"
    outputs = ["", f"{n}_Yh", ""] if last and not each_step else [f"{n}_Y"]
    nodes.append(helper.make_node("LSTM", inputs, outputs, name=n, **attrs))
    if each_step:  # Y (T, D, B, H) -> (B, T, D, H) -> (B, T, D·H) -> each row's step L-1
        _node(nodes, "Transpose", [f"{n}_Y"], f"{n}_t", perm=[2, 0, 1, 3])
        shape = const(f"{n}_shape", [0, 0, -1], np.int64)
        _node(nodes, "Reshape", [f"{n}_t", shape], f"{n}_steps")
        _node(nodes, "Cast", ["sequence_lens"], f"{n}_lens", to=TensorProto.INT64)
        _node(nodes, "Sub", [f"{n}_lens", const(f"{n}_one", 1, np.int64)], f"{n}_lastt")
        axes = const(f"{n}_axes", [1], np.int64)
        _node(nodes, "Unsqueeze", [f"{n}_lastt", axes], f"{n}_index")  # (B, 1)
        _node(nodes, "GatherND", [f"{n}_steps", f"{n}_index"], f"{n}_out", batch_dims=1)
        return f"{n}_out"
    if last:  # Y_h (D, B, H) -> (B, D, H) -> (B, D·H)
        _node(nodes, "Transpose", [f"{n}_Yh"], f"{n}_t", perm=[1, 0, 2])
        shape = const(f"{n}_shape", [0, -1], np.int64)
    else:  # Y (T, D, B, H) -> (T, B, D, H) -> (T, B, D·H)
        _node(nodes, "Transpose", [f"{n}_Y"], f"{n}_t", perm=[0, 2, 1, 3])
        shape = const(f"{n}_shape", [0, 0, -1], np.int64)
    _node(nodes, "Reshape", [f"{n}_t", shape], f"{n}_out")
    return f"{n}_out"


def _node(nodes: list[Any], op: str, inputs: list[str], out: str, **attrs: Any) -> None:
    """Append the node ``op`` of ``inputs`` whose one output, and name, is ``out``."""
    from onnx import helper

    nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))


def save_onnx(net: Network, path: str | os.PathLike) -> None:
    """Write :func:`to_onnx` to ``path`` (atomically)."""
    model = to_onnx(net)
    write_atomically(path, lambda f: f.write(model.SerializeToString()))
