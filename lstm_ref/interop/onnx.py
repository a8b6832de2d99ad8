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
``initial_h``, _c    (D, B, H)           ``LSTM.initial_state``, or      a constant the same in
                                         ``Network.state`` per row       every row; a graph
                                                                         input: per row
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

The graph around the LSTM nodes is followed, not matched: :mod:`.onnx_graph` says what each
graph input is, folds what is computed from constants (:mod:`.onnx_ops`) and runs the rest
on element ids; :mod:`.onnx_head` turns what the nodes compute into layers, and
:mod:`.onnx_stack` the layers whose final states a head reads into one LSTMStack. Any op it
does not follow is refused with its node, its position and what lstm_ref follows. A graph
with a ``sequence_lens`` input must pass it to every LSTM node with a reverse direction,
and to every node whose end (Y_h, the last step) is read. A loop over an LSTM cell written
out as ops (``torch.onnx.export`` of an ``nn.LSTMCell`` loop) is first rewritten into the
``LSTM`` node it computes (:mod:`.onnx_fuse`).

Export: :mod:`lstm_ref.interop.onnx_export`, with the same layout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..activations import ONNX_ACTIVATIONS, activation_spec, own_name
from ..errors import InputError, InputTypeError
from ..layers import LSTM, BiLSTM, LSTMStack, directions
from ..lstm import LSTMParams, LSTMState, reorder_gates
from ..network import Network
from .onnx_ops import node_attributes, node_name
from .onnx_runner import default_opset, read_model

Array = np.ndarray
ONNX_ORDER = "iofg"  # ONNX's gate blocks i, o, f, c in lstm_ref's names
PEEPHOLE_ROWS = [0, 2, 1]  # ONNX P rows i, o, f → lstm_ref's i, f, o (its own inverse)
OPSET = 17
_BY_LOWER = {name.lower(): name for name in ONNX_ACTIVATIONS}  # onnxruntime accepts "tanh"


def onnx_weights(one_ways: list[LSTMParams]) -> tuple[Array, Array, Array]:
    """An LSTM node's W (D, 4H, C), R (D, 4H, H) and B (D, 8H) from each direction's
    lstm_ref parameters: gate blocks in ONNX's order, B's recurrent half zero."""
    W, R, b = (
        np.stack([reorder_gates(p[k], ONNX_ORDER, inverse=True) for p in one_ways])
        for k in range(3)
    )
    return W, R, np.concatenate([b, np.zeros_like(b)], axis=-1)


# An LSTM node's alpha/beta left out default as onnxruntime has them
# (core/providers/cpu/rnn/rnn_helpers.cc), not as the ops' own defaults the spec names:
# these three, and 0 for every other parameter (Affine, ScaledTanh, ThresholdedRelu).
ORT_DEFAULTS = {"LeakyRelu": {"alpha": 0.01}, "HardSigmoid": {"alpha": 0.2, "beta": 0.5}}
ORT_DEFAULTS["Elu"] = {"alpha": 1.0}


# ------------------------------------------------------------------ one LSTM node
def _activation_specs(attrs: dict[str, Any], D: int, where: str) -> list[list[str]]:
    """The (f, g, h) spec strings of each direction, parameters resolved, in lstm_ref's own
    names where it has one (:func:`~lstm_ref.activations.own_name`)."""
    names = list(attrs.get("activations", []))
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


def float_input(value: Any, what: str, name: str, where: str) -> Array:
    """An LSTM node's float input as float64, or an InputError naming its dtype."""
    value = np.asarray(value)
    if value.dtype.kind != "f":
        raise InputError(
            f"{where}: input {what} ({name!r}) has dtype {value.dtype}; ONNX's LSTM takes "
            "float16, float32 or float64"
        )
    return value.astype(np.float64)


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
        return float_input(constants[name], what, name, where)

    direction = attrs.get("direction", "forward")
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
    layer = lstm_from_node(with_inputs(node, {5: "", 6: ""}), constants, "sequence")
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


def with_inputs(node: Any, replaced: dict[int, str]) -> Any:
    """A copy of ``node`` with the inputs at the given positions renamed ("" leaves one out)."""
    import onnx

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    while len(copy.input) < 1 + max(replaced, default=-1):
        copy.input.append("")
    for k, name in replaced.items():
        copy.input[k] = name
    return copy


# ---------------------------------------------------------------- whole graphs
def from_onnx(
    source: Any,
    *,
    inputs: Mapping[str, Any] | None = None,
    output: str | None = None,
    dtype: np.dtype | type = np.float64,
) -> Network:
    """A Network from an ONNX model: the LSTM nodes and what is around them, followed
    through the graph (:mod:`.onnx_graph`, :mod:`.onnx_head`); a loop over an LSTM cell
    written out as ops read as an LSTM node (:mod:`.onnx_fuse`).

    Parameters
    ----------
    source : path or onnx.ModelProto
        One float input X (T, B, C) or (B, T, C) with C known, optionally an integer
        ``sequence_lens`` (B,).
    inputs : mapping of str to array, optional
        Values of other graph inputs: weights (as ONNX's conformance models take W, R, B),
        and initial states (an input an LSTM's initial_h or initial_c is read from: the
        network's state, one row per sequence).
    output : str, optional
        The graph output to compute; required when the graph has several.
    dtype : float64 (default) or float32

    Returns
    -------
    Network
        SequenceInput (normalising for a per-feature scale and shift) → LSTM/BiLSTM layers
        → FullyConnected → Softmax, as the graph computes them. Its output is the graph
        output's features for each row (and step), in the graph's order.
    """
    from onnx import numpy_helper

    from .onnx_fuse import fuse_cell_loops
    from .onnx_graph import fold, needed, probe_sizes, reaching_states, roles, run_graph

    model = read_model(source)
    where = os.fspath(source) if isinstance(source, str | os.PathLike) else "model"
    opset = default_opset(model)
    given = _given(inputs, model.graph, where)
    outs = [o.name for o in model.graph.output]
    if output is None and len(outs) != 1:
        raise InputError(
            f"{where}: the graph has outputs {outs}; choose one: output=name (on the command line "
            "--graph-output NAME)"
        )
    output = outs[0] if output is None else output
    if output not in outs:
        raise InputError(f"{where}: no graph output {output!r}; it has {outs}")
    graph, positions = fuse_cell_loops(model, output, opset, where)  # LSTMCell loops: LSTMs
    nodes, _ = needed(graph, output)
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    states = reaching_states(nodes) - set(constants)
    constants.update({k: v for k, v in given.items() if k not in states})
    r = roles(graph, nodes, constants, where)
    runtime = {i.name for i in (r.x, r.lengths, *r.states, *r.measured) if i is not None}
    folded = fold(nodes, constants, runtime, opset)
    runs = [
        run_graph(nodes, r, folded, sizes, output, positions, opset, where, dtype)
        for sizes in probe_sizes(r)
    ]
    net, state_inputs = runs[0]
    for other, other_states in runs[1:]:
        if not _same(net, other) or not _same_states(state_inputs, other_states):
            raise InputError(
                f"{where}: the graph computes something else for another number of steps or "
                f"rows (the nodes read fixed positions of axes whose length varies): read "
                f"with {probe_sizes(r)[0]} it is {net.summary()!r}; with the other sizes "
                f"{other.summary()!r}"
            )
    if state_inputs:
        net.state = _state_from_inputs(net, state_inputs, given, r.states, where)
    return net


def _given(inputs: Mapping[str, Any] | None, graph: Any, where: str) -> dict[str, Array]:
    """The user's values of graph inputs, by name; every name a graph input."""
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise InputTypeError(
            f"inputs must map graph input names to arrays; got {type(inputs).__name__}"
        )
    names = [i.name for i in graph.input]
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise InputError(f"{where}: inputs {unknown} are not graph inputs; it has {names}")
    return {k: np.asarray(v) for k, v in inputs.items()}


def _same(a: Network, b: Network) -> bool:
    """Two networks with the same layers, configurations and arrays."""
    if len(a.layers) != len(b.layers):
        return False
    for x, y in zip(a.layers, b.layers, strict=True):
        if type(x) is not type(y) or x.config() != y.config():
            return False
        ax, ay = x.arrays(), y.arrays()
        if ax.keys() != ay.keys() or not all(np.array_equal(ax[k], ay[k]) for k in ax):
            return False
    return True


def _same_states(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        (x.layer, x.which, x.name, x.b_axis) == (y.layer, y.which, y.name, y.b_axis)
        and all(np.array_equal(p, q) for p, q in zip(x.index, y.index, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def _state_from_inputs(
    net: Network, states: list[Any], given: dict[str, Array], inputs: list[Any], where: str
) -> dict[str, LSTMState]:
    """The network's state, one row per sequence, from the initial-state inputs given."""
    from .onnx_graph import dims

    declared = {i.name: dims(i) for i in inputs}
    missing = sorted({s.name for s in states} - set(given))
    if missing:
        layers = sorted({s.layer for s in states if s.name in missing})
        raise InputError(
            f"{where}: graph inputs {missing} hold the initial state of {layers}; give them: "
            "from_onnx(path, inputs={name: array})"
        )
    rows: dict[str, list[Array | None]] = {s.layer: [None, None] for s in states}
    for s in states:
        a, shape = np.asarray(given[s.name], np.float64), declared[s.name]
        fixed = [d for k, d in enumerate(shape) if k != s.b_axis]
        if a.ndim != len(shape) or any(
            isinstance(d, int) and d > 0 and n != d
            for d, n in zip(fixed, np.delete(a.shape, s.b_axis), strict=True)
        ):
            raise InputError(f"{where}: input {s.name!r} has shape {a.shape}; expected {shape}")
        rows[s.layer][s.which] = np.moveaxis(a, s.b_axis, 0)[(slice(None), *s.index)]
    counts = {len(r) for pair in rows.values() for r in pair if r is not None}
    if len(counts) != 1:
        raise InputError(
            f"{where}: the initial-state inputs give {sorted(counts)} rows; expected one count"
        )
    (n,) = counts
    state = {}
    for layer in net.stateful_layers:
        parts = [(layer.name, layer)]
        if isinstance(layer, LSTMStack):  # its layers' states in layer order
            parts = [(f"{layer.name}/{part.name}", part) for part in layer.layers]
        starts = []
        for key, part in parts:
            start = part.initial_state
            assert start is not None  # a stateful layer's
            h, c = rows.get(key, [None, None])
            starts.append(
                [np.tile(s0, (n, 1)) if r is None else r for r, s0 in ((h, start.h), (c, start.c))]
            )
        state[layer.name] = LSTMState(
            *(np.concatenate(each, axis=1) for each in zip(*starts, strict=True))
        )
    return state
