"""ONNX: graphs with ``LSTM`` nodes and a classifier head, in and out.

The layout of the ``LSTM`` operator, once (opsets 7, 14, 22; ``onnx.defs``; D = 2 for
``direction="bidirectional"`` else 1, d the direction, 0 forward and 1 reverse):

===================  ==================  ==============================  ========================
ONNX input           shape (layout 0)    lstm_ref                        transform
===================  ==================  ==============================  ========================
``X``                (T, B, C)           (B, T, C) batches               layout 1: (B, T, C)
``W``                (D, 4H, C)          ``LSTM.params.W``               blocks i, o, f, c →
                                                                         i, f, g, o
``R``                (D, 4H, H)          ``LSTM.params.R``               the same reorder
``B``                (D, 8H)             ``LSTM.params.b``               Wb + Rb, then reorder
``sequence_lens``    (B,) int32          ``Padding.onnx()``              —
``initial_h``, _c    (D, B, H)           ``LSTM.initial_state``          a constant with B = 1
``P``                (D, 3H)             ``LSTM.peephole`` (3, H)        rows i, o, f → i, f, o
``Y``                (T, D, B, H)        [forward ‖ reverse] per step    layout 1: (B, T, D, H)
``Y_h``, ``Y_c``     (D, B, H)           the final state                 layout 1: (B, D, H)
===================  ==================  ==============================  ========================

Attributes: ``hidden_size``; ``direction`` forward → :class:`LSTM`, reverse →
``LSTM(direction="reverse")``, bidirectional → :class:`BiLSTM`; ``activations`` f, g, h
per direction → ``gate_activation``, ``state_activation``, ``output_activation`` (h when
it is not g), with ``activation_alpha``/``activation_beta`` consumed in order by the
activations that take them and onnxruntime's defaults otherwise (``ORT_DEFAULTS``: it
departs from the spec's "the ops' own defaults" for Affine, ScaledTanh and ThresholdedRelu,
whose parameters default to 0); ``clip`` → ``clip``;
``input_forget`` → ``input_forget`` (f = 1 − i, as onnxruntime computes it).

``sequence_lens`` semantics (onnxruntime): Y is 0 at every step past each length, Y_h/Y_c
hold each sequence's last valid step, a reverse direction starts at each sequence's own
last step, and a length of 0 gives Y_h = Y_c = 0. In ``Network.predict`` this is
``Padding.onnx()`` (computed as ``Padding.masked()``; per-step outputs come back padded
with Y's zeros; empty sequences are refused); :func:`run_lstm_node` computes one node on
raw tensors with all of it, zero lengths included.

The graph around the LSTM nodes (their inputs, stacking, the classifier head: Transpose,
Squeeze, Reshape, the last step by ``Gather``/``Slice`` or each sequence's last valid step
by ``GatherND`` at ``sequence_lens − 1``, Gemm/MatMul + Add, Sub/Div normalisation,
Softmax) is read by :mod:`lstm_ref.interop.onnx_head`, which lists every op it accepts;
any other op is refused with its op type and node name. A graph with a ``sequence_lens``
input must pass it to every LSTM node with a reverse direction.

Export: :mod:`lstm_ref.interop.onnx_export`, with the same layout.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..activations import ONNX_ACTIVATIONS, activation_spec, own_name
from ..errors import InputError
from ..layers import LSTM, BiLSTM, Layer, SequenceInput, directions, forward_only
from ..lstm import LSTMParams, LSTMState, reorder_gates
from ..network import Network
from .onnx_head import (
    Graph,
    Lengths,
    Path,
    head_step,
    lengths_step,
    node_attributes,
    node_name,
)

Array = np.ndarray
ONNX_ORDER = "iofg"  # ONNX's gate blocks i, o, f, c in lstm_ref's names
PEEPHOLE_ROWS = [0, 2, 1]  # ONNX P rows i, o, f → lstm_ref's i, f, o (its own inverse)
OPSET = 17
_BY_LOWER = {name.lower(): name for name in ONNX_ACTIVATIONS}  # onnxruntime accepts "tanh"
# An LSTM node's alpha/beta left out default as onnxruntime has them
# (core/providers/cpu/rnn/rnn_helpers.cc), not as the ops' own defaults the spec names:
# these three, and 0 for every other parameter (Affine, ScaledTanh, ThresholdedRelu).
ORT_DEFAULTS = {"LeakyRelu": {"alpha": 0.01}, "HardSigmoid": {"alpha": 0.2, "beta": 0.5}}
ORT_DEFAULTS["Elu"] = {"alpha": 1.0}


# ------------------------------------------------------------------ one LSTM node
def _activation_specs(attrs: dict[str, Any], D: int, where: str) -> list[list[str]]:
    """The (f, g, h) spec strings of each direction, parameters resolved, in lstm_ref's own
    names where it has one (:func:`~lstm_ref.activations.own_name`)."""
    names = [n.decode() if isinstance(n, bytes) else n for n in attrs.get("activations", [])]
    if not names:
        names = ["Sigmoid", "Tanh", "Tanh"] * D
    if len(names) != 3 * D:
        raise InputError(
            f"{where}: {len(names)} activations for {D} direction(s); expected {3 * D}"
        )
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    specs = []
    for name in names:
        canonical = _BY_LOWER.get(name.lower())
        if canonical is None:
            raise InputError(
                f"{where}: unknown activation {name!r}; expected one of {list(ONNX_ACTIVATIONS)}"
            )
        takes, defaults = ONNX_ACTIVATIONS[canonical][0], ORT_DEFAULTS.get(canonical, {})
        params = {}
        for key, queue in (("alpha", alphas), ("beta", betas)):
            if key in takes:
                params[key] = queue.pop(0) if queue else defaults.get(key, 0.0)
        specs.append(own_name(activation_spec(canonical, **params)))
    return [specs[3 * d : 3 * d + 3] for d in range(D)]


def lstm_from_node(
    node: Any, constants: dict[str, Array], output_mode: str, dtype: np.dtype | type = np.float64
) -> LSTM | BiLSTM:
    """The lstm_ref layer of one ONNX ``LSTM`` node (see the module table).

    ``constants`` holds the node's W, R and the optional B, P, initial_h, initial_c by
    tensor name. An initial state must have batch 1 (it becomes the layer's own).
    """
    where = f"node {node.name or '(unnamed)'!r} (LSTM)"
    attrs = node_attributes(node)
    inputs = list(node.input) + [""] * (8 - len(node.input))

    def const(k: int, what: str) -> Array | None:
        name = inputs[k]
        if not name:
            return None
        if name not in constants:
            raise InputError(f"{where}: input {what} ({name!r}) must be a constant initializer")
        return np.asarray(constants[name], dtype=np.float64)

    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "reverse", "bidirectional"):
        raise InputError(
            f"{where}: direction {direction!r}; expected forward/reverse/bidirectional"
        )
    D = 2 if direction == "bidirectional" else 1
    W, R = const(1, "W"), const(2, "R")
    if W is None or R is None:
        raise InputError(f"{where}: W and R are required")
    H = int(attrs.get("hidden_size") or R.shape[-1])
    C = W.shape[-1]
    layout = int(attrs.get("layout", 0))
    expect = {
        "W": (W, (D, 4 * H, C)),
        "R": (R, (D, 4 * H, H)),
        "B": (const(3, "B"), (D, 8 * H)),
        "P": (const(7, "P"), (D, 3 * H)),
        "initial_h": (const(5, "initial_h"), (D, 1, H) if layout == 0 else (1, D, H)),
        "initial_c": (const(6, "initial_c"), (D, 1, H) if layout == 0 else (1, D, H)),
    }
    for what, (a, shape) in expect.items():
        if a is not None and a.shape != shape:
            raise InputError(f"{where}: {what} has shape {a.shape}; expected {shape}")
    B, P = expect["B"][0], expect["P"][0]
    h0, c0 = (
        None if a is None else (a[:, 0] if layout == 0 else a[0])
        for a in (expect["initial_h"][0], expect["initial_c"][0])
    )
    clip = attrs.get("clip")
    input_forget = bool(attrs.get("input_forget", 0))
    specs = _activation_specs(attrs, D, where)
    ways = ["forward", "reverse"] if D == 2 else [direction]
    layers = []
    name = node_name(node)
    for d, way in enumerate(ways):
        bias = np.zeros(4 * H) if B is None else B[d, : 4 * H] + B[d, 4 * H :]
        f, g, h = specs[d]
        start = None
        if h0 is not None or c0 is not None:
            start = LSTMState(
                np.zeros(H) if h0 is None else h0[d], np.zeros(H) if c0 is None else c0[d]
            )
        layers.append(
            LSTM(
                LSTMParams(
                    *(reorder_gates(a, ONNX_ORDER).astype(dtype) for a in (W[d], R[d], bias))
                ),
                name=f"{name}_reverse" if D == 2 and d == 1 else name,
                output_mode=output_mode,  # type: ignore[arg-type]
                gate_activation=f,
                state_activation=g,
                output_activation=None if h == g else h,
                initial_state=None
                if start is None
                else LSTMState(*(s.astype(dtype) for s in start)),
                direction=way,  # type: ignore[arg-type]
                peephole=None if P is None else P[d].reshape(3, H)[PEEPHOLE_ROWS].astype(dtype),
                clip=None if clip is None else float(clip),
                input_forget=input_forget,
            )
        )
    return layers[0] if D == 1 else BiLSTM(layers[0], layers[1], name=name)


def run_lstm_node(node: Any, tensors: dict[str, Array]) -> tuple[Array, Array, Array]:
    """Y, Y_h, Y_c of one ONNX ``LSTM`` node on raw tensors, with onnxruntime's semantics
    (module docstring): layout, ``sequence_lens`` with zero lengths, initial states of any
    batch.

    Parameters
    ----------
    node : onnx.NodeProto
        An ``LSTM`` node.
    tensors : dict of str to ndarray
        Every input the node names: X (T, B, C) (layout 1: (B, T, C)), W (D, 4H, C),
        R (D, 4H, H), and the optional B (D, 8H), sequence_lens (B,), initial_h and
        initial_c (D, B, H) (layout 1: (B, D, H)), P (D, 3H).

    Returns
    -------
    Y : ndarray, shape (T, D, B, H)
        (B, T, D, H) with layout 1; 0 past each sequence's length.
    Y_h, Y_c : ndarray, shape (D, B, H)
        (B, D, H) with layout 1; each sequence's last valid step, 0 for a length of 0.
    """
    attrs = node_attributes(node)
    inputs = list(node.input) + [""] * (8 - len(node.input))
    layout = int(attrs.get("layout", 0))
    get = {k: tensors.get(name) if name else None for k, name in enumerate(inputs)}
    X = np.asarray(get[0], dtype=np.float64)
    x = X.transpose(1, 0, 2) if layout == 0 else X  # (B, T, C)
    batch, T = x.shape[:2]
    constants = {inputs[k]: tensors[inputs[k]] for k in (1, 2, 3, 7) if inputs[k]}
    layer = lstm_from_node(_blank_inputs(node, (5, 6)), constants, "sequence")
    lengths = None if get[4] is None else np.asarray(get[4]).astype(int)
    state = None
    if get[5] is not None or get[6] is not None:
        widths = layer.state_widths
        h0, c0 = (
            np.zeros((batch, w)) if a is None else _per_row(np.asarray(a, np.float64), layout)
            for a, w in ((get[5], widths[0]), (get[6], widths[1]))
        )
        state = LSTMState(h0, c0)
    run = np.maximum(lengths, 1) if lengths is not None else None  # a 0-length row runs 1 step
    y, cache = layer.forward(x, run, state)  # (B, T, D·H)
    final = cache.final_state
    if lengths is not None:
        empty = (lengths == 0)[:, None]
        y = np.where((np.arange(T)[None, :, None] < lengths[:, None, None]), y, 0)
        final = LSTMState(*(np.where(empty, 0, s) for s in final))
    D = len(directions(layer))
    Y = y.reshape(batch, T, D, -1)  # (B, T, D, H)
    Y_h, Y_c = (s.reshape(batch, D, -1) for s in final)  # (B, D, H)
    if layout == 0:
        return Y.transpose(1, 2, 0, 3), Y_h.transpose(1, 0, 2), Y_c.transpose(1, 0, 2)
    return Y, Y_h, Y_c


def _per_row(a: Array, layout: int) -> Array:
    """(D, B, H) (layout 0) or (B, D, H) → (B, D·H), forward first."""
    rows = a.transpose(1, 0, 2) if layout == 0 else a
    return rows.reshape(rows.shape[0], -1)


# ---------------------------------------------------------------- whole graphs
def from_onnx(source: Any, *, dtype: np.dtype | type = np.float64) -> Network:
    """A Network from an ONNX model: its LSTM nodes and the head :mod:`.onnx_head` lists.

    Parameters
    ----------
    source : path or onnx.ModelProto
        One float input X (T, B, C) (or (B, T, C) for layout 1), optionally an int32
        ``sequence_lens`` (B,), one output.
    dtype : float64 (default) or float32

    Returns
    -------
    Network
        SequenceInput (normalising for Sub/Div) → LSTM/BiLSTM layers → FullyConnected →
        Softmax, in the graph's order.
    """
    import onnx
    from onnx import numpy_helper

    where = "model"
    if isinstance(source, str | os.PathLike):
        where = os.fspath(source)
        try:
            model = onnx.load(where)
        except Exception as e:  # protobuf's DecodeError and friends: not an ONNX file
            raise InputError(f"{where}: not an ONNX model: {e}") from None
    else:
        model = source
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            value = node_attributes(node).get("value")
            if value is not None:
                constants[node.output[0]] = numpy_helper.to_array(value)
    data = [i for i in graph.input if i.name not in constants]
    seq_lens = [i for i in data if i.type.tensor_type.elem_type == onnx.TensorProto.INT32]
    floats = [i for i in data if i not in seq_lens]
    if len(floats) != 1 or len(seq_lens) > 1:
        raise InputError(
            f"{where}: expected one float input X (and optionally int32 sequence_lens); got "
            f"{[i.name for i in data]}"
        )
    x_in = floats[0]
    dims = [d.dim_value for d in x_in.type.tensor_type.shape.dim]
    if len(dims) != 3 or dims[2] <= 0:
        raise InputError(f"{where}: input {x_in.name!r} must be 3-D with a known feature count")
    C = dims[2]
    layout_axes = ("T", "B", "F")
    first_lstm = next((n for n in graph.node if n.op_type == "LSTM"), None)
    if first_lstm is not None and int(node_attributes(first_lstm).get("layout", 0)) == 1:
        layout_axes = ("B", "T", "F")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    g = Graph(
        where,
        constants,
        dtype,
        int(opset),
        seq_lens[0].name if seq_lens else None,
        {i for n in graph.node for i in n.input} | {o.name for o in graph.output},
    )
    if g.seq_lens is not None:
        g.lengths[g.seq_lens] = Lengths(0, ("B",))
    tensors: dict[str, Path] = {x_in.name: Path(layout_axes, {"F": C})}
    shapes: set[str] = set()  # computed from the data's shape only (Shape and arithmetic on it)
    zeros: set[str] = set()  # of those, the ones known to be all zeros (ConstantOfShape 0)
    used: set[str] = set()  # data tensors already consumed (the path is one chain)
    for k, node in enumerate(graph.node):
        ins = [n for n in node.input if n in tensors]
        if node.op_type == "Expand" and not ins and node.input[0] in constants:
            constants[node.output[0]] = constants[node.input[0]]  # broadcast over the batch
            continue
        if not ins and node.op_type != "Shape" and any(n in g.lengths for n in node.input):
            derived = lengths_step(node, g)  # index arithmetic on sequence_lens
            if derived is not None:
                g.lengths[node.output[0]] = derived
            continue
        if node.op_type == "Shape" or (not ins and any(n in shapes for n in node.input)):
            shapes.update(node.output)
            value = node_attributes(node).get("value")
            if node.op_type == "ConstantOfShape" and (
                value is None or not numpy_helper.to_array(value).any()
            ):
                zeros.update(node.output)
            elif node.input and node.input[0] in zeros and node.op_type in _ZERO_KEEPING:
                zeros.update(node.output)
            continue
        if not ins:
            continue  # a node of constants only: never on the data path
        if len(ins) > 1:
            raise InputError(
                f"{where}: node {node.name or k!r} ({node.op_type}) joins two data paths"
            )
        if ins[0] in used:
            raise InputError(
                f"{where}: node {node.name or k!r} ({node.op_type}) branches the data path at "
                f"{ins[0]!r}; expected one chain from the input to the output"
            )
        used.add(ins[0])
        if node.op_type == "LSTM":
            node = _without_zero_states(node, zeros, shapes, where)
            out = _lstm_step(node, tensors[ins[0]], g)
        else:
            out = head_step(node, tensors[ins[0]], g)
        for name in node.output:
            if name:
                tensors[name] = out
    outs = [o.name for o in graph.output]
    if len(outs) != 1 or outs[0] not in tensors:
        raise InputError(f"{where}: expected one graph output on the data path; got {outs}")
    path = tensors[outs[0]]
    if path.pending_fc is not None:
        path.layers.append(path.pending_fc)
    if not any(isinstance(x, LSTM | BiLSTM) for x in path.layers):
        raise InputError(f"{where}: no LSTM node on the path from {x_in.name!r} to {outs[0]!r}")
    layers = path.layers
    first: Layer = SequenceInput(C)
    if layers and isinstance(layers[0], SequenceInput):
        first, layers = layers[0], layers[1:]
    return Network([first, *layers])


def _lstm_step(node: Any, p: Path, g: Graph) -> Path:
    """The path after an ``LSTM`` node: its layer added, Y (T, D, B, H) or Y_h (D, B, H)."""
    name = node_name(node)
    attrs = node_attributes(node)
    lstm_in = ("T", "B", "F") if int(attrs.get("layout", 0)) == 0 else ("B", "T", "F")
    if p.axes != lstm_in:
        raise InputError(f"{g.where}: node {name!r} (LSTM) takes axes {lstm_in}; got {p.axes}")
    lens = node.input[4] if len(node.input) > 4 else ""
    if lens and lens != g.seq_lens:
        raise InputError(f"{g.where}: node {name!r}: sequence_lens must be the graph input")
    used = [k for k, o in enumerate(node.output) if o and o in g.consumed]
    if len(used) != 1 or used[0] == 2:
        raise InputError(f"{g.where}: node {name!r} (LSTM): use exactly one of Y and Y_h")
    mode = "sequence" if used[0] == 0 else "last"
    layer = lstm_from_node(node, g.constants, mode, g.dtype)
    if g.seq_lens is not None and not lens and not forward_only(layer):
        raise InputError(
            f"{g.where}: node {name!r} (LSTM): the graph takes sequence_lens but this "
            "node does not, so its reverse direction would run over the padding; lstm_ref's "
            "masked padding starts it at each sequence's own end"
        )
    if lens:
        g.masked.add(layer.name)
    p.layers.append(layer)
    y_axes = {("T", 0): "TDBH", ("B", 0): "BTDH", ("T", 1): "DBH", ("B", 1): "BDH"}
    D = len(directions(layer))
    return Path(tuple(y_axes[lstm_in[0], used[0]]), {"D": D, "H": layer.hidden_size}, p.layers)


_ZERO_KEEPING = ("Slice", "Expand", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Gather")


def _without_zero_states(node: Any, zeros: set[str], shapes: set[str], where: str) -> Any:
    """The LSTM node with initial states computed as zeros (PyTorch's exporter) left out."""
    states = [k for k in (5, 6) if len(node.input) > k and node.input[k] in shapes]
    if any(node.input[k] not in zeros for k in states):
        raise InputError(
            f"{where}: node {node.name!r} (LSTM): its initial state is computed at run time "
            "and not zero; expected a constant"
        )
    return _blank_inputs(node, states)


def _blank_inputs(node: Any, positions: Any) -> Any:
    """A copy of ``node`` with the inputs at ``positions`` left out."""
    import onnx

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    for k in positions:
        if len(copy.input) > k:
            copy.input[k] = ""
    return copy
