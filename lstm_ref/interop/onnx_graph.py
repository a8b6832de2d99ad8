"""ONNX import, the graph followed: what each graph input is, the constants folded, and
one run of the graph on element ids for a number of steps and rows.

The graph's inputs, by what they feed:

=====================  ======================================================================
graph input            role
=====================  ======================================================================
given in ``inputs=``   a constant (W, R, B, P of ONNX's conformance models), unless it is
                       an initial state (below)
reaching an LSTM's     an initial state: the network's state, one row per sequence, from
initial_h/initial_c    the array given in ``inputs=`` (required)
only measured          its shape only (``Shape``, ``Size``): the probe's sizes
(``Shape``, ``Size``)
an integer vector      ``sequence_lens``
the one float input    X (3-D, its feature count known)
left
=====================  ======================================================================

Every node the chosen output needs runs once, in order, under a *probe*: the data's
symbolic dimensions given sizes (two probes with different sizes, so a reading that
depends on the sizes is caught). A node of constants only is folded once, in NumPy
(:mod:`.onnx_ops`), and so is what is computed from shapes and lengths, under each probe.
A node with data in it either moves elements (``MOVES``: run on the ids themselves by the
same NumPy code), measures them (``Shape``, ``Size``), or computes (:mod:`.onnx_head`,
``LSTM`` here); any other op is refused with its node and position.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import LSTM, BiLSTM, LSTMStack, SequenceInput, directions, forward_only
from .onnx_head import (
    ELEMENTWISE,
    EXTRACT_LSTM,
    FINAL_C,
    FINAL_H,
    STATE,
    STEP,
    Chain,
    Elements,
    elementwise_step,
    linear_step,
    output_step,
    softmax_step,
)
from .onnx_ops import node_attributes, node_name, run_node

Array = np.ndarray
MOVES = (
    "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Split", "Concat", "Gather",
    "GatherElements", "GatherND", "Flatten", "Expand", "Tile", "Identity",
)  # fmt: skip
AS_IS = ("Cast", "CastLike", "Dropout")  # on float data: the same elements
MEASURES = ("Shape", "Size")
LINEAR = ("MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Neg")
PROBE_SIZES = (5, 3, 7, 4, 6, 9)  # for X's axes the graph leaves open


@dataclass
class Roles:
    """The graph inputs by role (module table)."""

    x: Any  # onnx.ValueInfoProto
    lengths: Any | None
    states: list[Any]
    measured: list[Any]  # inputs only measured (Shape, Size): any values of their shape


@dataclass
class StateInput:
    """Where an LSTM's initial h or c comes from in a graph input: its row axis, and for
    each of the layer's state features (forward first) its index in the other axes."""

    layer: str  # a layer inside an LSTMStack: "stack/layer"
    which: int  # 0 h, 1 c
    name: str
    b_axis: int
    index: tuple[Array, ...]


@dataclass
class Run:
    """One run of the graph under a probe: the network's layers, its input's
    normalisation, the initial-state inputs (name and shape under the probe) and where
    the LSTMs read them."""

    chain: Chain
    first: SequenceInput
    state_inputs: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    states: list[StateInput] = field(default_factory=list)


def dims(value_info: Any) -> list[int | str]:
    """A graph input's dimensions: a number, or the symbolic name ("" if unnamed)."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in shape.dim]


def needed(graph: Any, output: str) -> tuple[list[Any], dict[str, int]]:
    """The nodes ``output`` depends on, in the graph's order, and each one's position in
    the graph (by its first output's name)."""
    want, keep, positions = {output}, [], {}
    for k in range(len(graph.node) - 1, -1, -1):
        node = graph.node[k]
        if any(o in want for o in node.output):
            keep.append(node)
            positions[node.output[0]] = k
            want.update(i for i in node.input if i)
    return keep[::-1], positions


def roles(graph: Any, nodes: list[Any], constants: dict[str, Array], where: str) -> Roles:
    """The role of each graph input ``nodes`` read (module table), or an InputError naming
    the ones left over."""
    used = {i for node in nodes for i in node.input}
    read = {i for node in nodes if node.op_type not in MEASURES for i in node.input}
    states = reaching_states(nodes)
    runtime = [i for i in graph.input if i.name in used and i.name not in constants]
    measured = [i for i in runtime if i.name not in read]  # only its shape is used
    state_inputs = [i for i in runtime if i.name in states]
    lengths = [i for i in runtime if i not in state_inputs + measured and _is_integer(i)]
    floats = [i for i in runtime if i not in state_inputs + measured + lengths]
    if not floats and lengths:
        raise InputError(
            f"{where}: no float input X: {[i.name for i in lengths]} hold integers (token ids "
            "for an Embedding?), and lstm_ref's network reads float sequences; if an LSTM "
            f"follows, {EXTRACT_LSTM}"
        )
    if len(floats) != 1 or len(lengths) > 1:
        raise InputError(
            f"{where}: expected one float input X (and optionally an integer sequence_lens); "
            f"got {[i.name for i in floats + lengths]}: give every other input's value "
            "(weights, for one) as from_onnx(path, inputs={name: array})"
        )
    x = floats[0]
    shape = dims(x)
    if len(shape) != 3 or not isinstance(shape[2], int) or shape[2] <= 0:
        raise InputError(
            f"{where}: input {x.name!r} has dimensions {shape}; expected 3 (steps and rows "
            "in either order, then the features, their count known)"
        )
    return Roles(x, lengths[0] if lengths else None, state_inputs, measured)


def _is_integer(value_info: Any) -> bool:
    return value_info.type.tensor_type.elem_type in _INTEGER_TYPES


_INTEGER_TYPES = (2, 3, 4, 5, 6, 7, 12, 13)  # TensorProto's (u)int8 … (u)int64


def reaching_states(nodes: list[Any]) -> set[str]:
    """Every tensor some LSTM's initial_h or initial_c is computed from."""
    want: set[str] = set()
    for node in reversed(nodes):
        if node.op_type == "LSTM":
            want.update(n for n in list(node.input)[5:7] if n)
        if node.op_type not in MEASURES and any(o in want for o in node.output):
            want.update(i for i in node.input if i)  # a shape carries no element of its input
    return want


def fold(
    nodes: list[Any], constants: dict[str, Array], runtime: set[str], opset: int
) -> dict[str, Array]:
    """Every tensor computed from constants only, computed once."""
    values = dict(constants)
    for node in nodes:
        if any(i in runtime or (i and i not in values) for i in node.input):
            runtime.update(node.output)
            continue
        outs = run_node(node, [values[i] if i else None for i in node.input], opset)
        values.update(zip(node.output, outs, strict=False))
    return values


def probe_sizes(roles_: Roles) -> list[dict[str, int]]:
    """The sizes of X's symbolic dimensions under each probe (one probe if it has none):
    different in the two probes, and from X's fixed dimensions (so no axis can be taken
    for another)."""
    x = dims(roles_.x)
    symbolic = [d for d in x[:2] if isinstance(d, str)]
    free = [n for n in PROBE_SIZES if n not in x]
    probes = [free[: len(symbolic)], free[len(symbolic) : 2 * len(symbolic)]]
    return [dict(zip(symbolic, p, strict=True)) for p in probes[: 2 if symbolic else 1]]


def run_graph(
    nodes: list[Any],
    roles_: Roles,
    folded: dict[str, Array],
    sizes: dict[str, int],
    output: str,
    positions: dict[str, int],
    opset: int,
    where: str,
    dtype: Any,
) -> tuple[Any, list[StateInput]]:
    """The network the graph computes under one probe (module docstring), and where its
    LSTMs read their initial states."""
    from ..network import Network

    el = Elements()
    x_dims = dims(roles_.x)
    shape = tuple(sizes.get(d, d) if isinstance(d, str) else d for d in x_dims)
    d0, d1, C = (int(s) for s in shape)
    el.new_base(0, C)
    data: dict[str, Array] = {
        roles_.x.name: el.add(
            (d0, d1, C),
            base=0,
            kind=STEP,
            t=np.arange(d0)[:, None, None],
            b=np.arange(d1)[None, :, None],
            row=np.arange(C),
        )
    }
    state_inputs = []
    for k, state in enumerate(roles_.states):
        s_shape = tuple(_size(d, sizes, where, state.name) for d in dims(state))
        flat = np.arange(int(np.prod(s_shape))).reshape(s_shape)
        data[state.name] = el.add(s_shape, base=-1 - k, kind=STATE, t=-1, b=-1, row=flat)
        state_inputs.append((state.name, s_shape))
    values = dict(folded)
    for i in roles_.measured:
        values[i.name] = np.zeros([_size(d, sizes, where, i.name) for d in dims(i)])
    lengths = None
    if roles_.lengths is not None:
        (d,) = dims(roles_.lengths)
        rows = _size(d, sizes, where, roles_.lengths.name) if d != "" else d1
        steps = d0 if rows == d1 else d1
        lengths = np.maximum(steps - np.arange(rows), 1).astype(np.int32)
        values[roles_.lengths.name] = lengths
    chain = Chain(el, T=d0, B=d1, lengths=lengths, dtype=dtype)  # T, B: see lstm_step
    run = Run(chain, SequenceInput(C), state_inputs)
    for node in nodes:
        if all(o in values for o in node.output if o):
            continue
        k = positions[node.output[0]]
        at = f"{where}: node {node_name(node)!r} ({node.op_type}; node {k} of the main graph)"
        is_data = [i in data for i in node.input]
        ins = [data[i] if i in data else values.get(i) if i else None for i in node.input]
        if not any(is_data):
            values.update(zip(node.output, run_node(node, ins, opset), strict=False))
            continue
        outs = _data_step(node, ins, is_data, run, opset, at)
        into = values if node.op_type in MEASURES else data
        into.update((n, out) for n, out in zip(node.output, outs, strict=False) if n)
    if output not in data:
        raise InputError(f"{where}: output {output!r} does not depend on the input X")
    output_step(data[output], chain, output, f"{where}: output {output!r}")
    if not any(isinstance(x, LSTM | BiLSTM | LSTMStack) for x in chain.layers):
        raise InputError(f"{where}: no LSTM node between input {roles_.x.name!r} and {output!r}")
    states = [dataclasses.replace(s, layer=chain.stacked.get(s.layer, s.layer)) for s in run.states]
    return Network([run.first, *chain.layers]), states


def _size(d: int | str, sizes: dict[str, int], where: str, name: str) -> int:
    if isinstance(d, int) and d > 0:
        return d
    if d in sizes:
        return sizes[d]
    raise InputError(
        f"{where}: input {name!r} has a dimension {d or '(unnamed)'!r} that is neither a "
        "number nor one of X's dimensions; name it as X's rows are named"
    )


def _data_step(
    node: Any, ins: list[Any], is_data: list[bool], run: Run, opset: int, at: str
) -> list[Any]:
    """The outputs of a node with data in it: element ids, or numbers (Shape, Size)."""
    op, chain = node.op_type, run.chain
    if op in MEASURES:
        return run_node(node, ins, opset)
    if op in AS_IS:
        if op in ("Cast", "CastLike") and _to_integer(node, ins):
            raise InputError(f"{at}: casts the data to integers; expected float data")
        return [ins[0]]
    if op in MOVES:
        if (any(is_data[1:]) and op != "Concat") or (op == "Concat" and not all(is_data)):
            raise InputError(
                f"{at}: data in an index, shape or with constants ({op}); lstm_ref follows "
                "data moved by constant indices and shapes"
            )
        return run_node(node, ins, opset)
    if op in LINEAR:
        return [linear_step(node, ins, is_data, chain, at)]
    if op in ("Softmax", "LogSoftmax"):
        return [softmax_step(node, ins[0], chain, opset, at)]
    if op in ELEMENTWISE:
        return [elementwise_step(node, ins[0], chain, at)]
    if op == "LSTM":
        return lstm_step(node, ins, is_data, run, at)
    before_lstm = f"; if an LSTM follows, {EXTRACT_LSTM}" if chain.base == 0 else ""
    raise InputError(
        f"{at}: op {op} on the data path is not supported; lstm_ref follows "
        f"{', '.join(MOVES + AS_IS)} and computes {', '.join(LINEAR + ELEMENTWISE)}, Softmax, "
        f"LogSoftmax and LSTM{before_lstm}"
    )


def _to_integer(node: Any, ins: list[Any]) -> bool:
    if node.op_type == "CastLike":
        return ins[1] is not None and not np.issubdtype(np.asarray(ins[1]).dtype, np.floating)
    return int(node_attributes(node).get("to", 1)) in _INTEGER_TYPES


def lstm_step(node: Any, ins: list[Any], is_data: list[bool], run: Run, at: str) -> list[Any]:
    """An LSTM node's layer (the map before it folded in) and its outputs' elements."""
    from .onnx import float_input, lstm_from_node, with_inputs

    chain, el = run.chain, run.chain.el
    ins = ins + [None] * (8 - len(ins))
    is_data = is_data + [False] * (8 - len(is_data))
    names = list(node.input) + [""] * (8 - len(node.input))
    if not is_data[0]:
        raise InputError(f"{at}: its X is a constant; expected the data")
    for k, what in ((1, "W"), (2, "R"), (3, "B"), (7, "P")):
        if ins[k] is not None and not is_data[k]:
            ins[k] = float_input(ins[k], what, names[k], at)
        if is_data[k]:
            raise InputError(
                f"{at}: its {what} ({names[k]!r}) is computed from the data; expected a "
                "constant (an initializer, a Constant, or given in from_onnx(path, inputs=))"
            )
    attrs = node_attributes(node)
    layout = int(attrs.get("layout", 0))
    t_axis, b_axis = (0, 1) if layout == 0 else (1, 0)
    x = ins[0]
    if chain.base == 0 and chain.x_batch_first is None:  # which of X's axes runs in time
        chain.x_batch_first = False
        try:
            chain.read(x, at, t_axis, b_axis)
        except InputError:
            chain.x_batch_first = True
            chain.T, chain.B = chain.B, chain.T
        if chain.lengths is not None and len(chain.lengths) != chain.B:
            raise _fixed_batch(at, "sequence_lens", len(chain.lengths), "the lengths input's")
    read = chain.read(x, f"{at} input X", t_axis, b_axis)
    W = np.asarray(ins[1], np.float64)
    if W.ndim != 3 or W.shape[-1] != len(read.c):
        raise InputError(f"{at}: W has shape {W.shape}; X has {len(read.c)} features")
    bias = (
        np.zeros((W.shape[0], 2 * W.shape[1])) if ins[3] is None else np.asarray(ins[3], np.float64)
    )
    if read.identity:
        pass
    elif chain.base == 0 and _is_normalisation(read):
        scale = np.diag(read.R)
        run.first = _normalisation(scale, read.c, chain.dtype)
    else:  # the map before the LSTM folded into its W and b
        bias = bias.copy()
        bias[:, : W.shape[1]] += W @ read.c
        W = W @ read.R
    constants = {names[1]: W, names[2]: ins[2], "_B": bias}
    if names[7]:
        constants[names[7]] = ins[7]
    blank = [5, 6]
    for k in (5, 6):
        if ins[k] is not None and not is_data[k]:
            constants[names[k]] = _one_state(np.asarray(ins[k], np.float64), layout, chain.B, at)
            blank.remove(k)
    copy = with_inputs(node, {3: "_B", **dict.fromkeys(blank, ""), 4: ""})
    layer = lstm_from_node(copy, constants, "sequence", chain.dtype)
    D, H = len(directions(layer)), layer.hidden_size
    if ins[4] is not None:
        if is_data[4] or chain.lengths is None or not np.array_equal(ins[4], chain.lengths):
            raise InputError(f"{at}: its sequence_lens must be the graph input sequence_lens")
        chain.masked.add(layer.name)
    elif chain.lengths is not None and not forward_only(layer):
        raise InputError(
            f"{at}: the graph takes sequence_lens but this node does not, so its reverse "
            "direction would run over the padding; lstm_ref's masked padding starts it at "
            "each sequence's own end"
        )
    for k in (5, 6):
        if is_data[k]:
            run.states.append(_state_input(ins[k], k - 5, layer, layout, run, at))
    chain.add_layer(layer, D * H)
    return _lstm_outputs(chain, el, layout, D, H)


def _is_normalisation(read: Any) -> bool:
    """A map on X that scales and shifts each feature alone (the SequenceInput's)."""
    R = read.R
    return (
        R.shape[0] == R.shape[1]
        and np.array_equal(R, np.diag(np.diag(R)))
        and bool(np.all(np.diag(R) != 0))
    )


def _normalisation(scale: Array, shift: Array, dtype: Any) -> SequenceInput:
    """x·scale + shift as (x − mean) / std (zscore), or x − mean (zerocenter) if scale is 1."""
    C = len(scale)
    if np.all(scale == 1):
        return SequenceInput(C, normalization="zerocenter", mean=np.asarray(-shift, dtype))
    std = 1 / scale
    return SequenceInput(
        C, normalization="zscore", mean=np.asarray(-shift * std, dtype), std=np.asarray(std, dtype)
    )


def _one_state(a: Array, layout: int, B: int, at: str) -> Array:
    """A constant initial state (D, B, H) (layout 1: (B, D, H)) the same in every row, as
    the (D, 1, H) (layout 1: (1, D, H)) lstm_from_node takes."""
    b_axis = 1 if layout == 0 else 0
    if a.ndim != 3 or a.shape[b_axis] not in (1, B):
        raise InputError(
            f"{at}: initial state of shape {a.shape}; expected {B} rows on axis {b_axis}"
        )
    first = np.take(a, [0], axis=b_axis)
    if not np.array_equal(a, np.broadcast_to(first, a.shape)):
        raise InputError(
            f"{at}: its initial state is a constant that differs between rows; lstm_ref's "
            "state per row comes from a graph input (give it in from_onnx(path, inputs=))"
        )
    return first


def _fixed_batch(at: str, what: str, rows: int, whose: str) -> InputError:
    """The refusal of ``what``, from an input of a fixed batch of ``rows``, under X's
    dynamic batch axis (the reader's probe gave X another number of rows); ``whose``:
    the inputs to export with a dynamic batch axis, possessive."""
    return InputError(
        f"{at}: {what} holds {rows} rows whatever the batch, while X's batch axis takes any "
        f"size; the graph runs only on batches of {rows}: export it with {whose} batch "
        "axis dynamic too, or with X's fixed"
    )


def _state_input(ids: Array, which: int, layer: Any, layout: int, run: Run, at: str) -> StateInput:
    """Where the rows of an initial state (D, B, H) (layout 1: (B, D, H)) come from in a
    graph input: one of its axes holds the rows, the others the same places in each."""
    el, chain = run.chain.el, run.chain
    bases = np.unique(el.base[ids])
    if ids.ndim != 3 or len(bases) != 1 or bases[0] >= 0 or np.any(el.kind[ids] != STATE):
        raise InputError(f"{at}: its initial state must be (D, B, H) parts of one graph input")
    name, shape = run.state_inputs[-1 - int(bases[0])]
    rows = np.moveaxis(ids, 1 if layout == 0 else 0, 0)  # (B, D, H)
    if len(rows) != chain.B:  # a fixed batch in the state, a dynamic one in X
        raise _fixed_batch(
            at, f"its initial state from input {name!r}", len(rows), "the state inputs'"
        )
    coords = np.unravel_index(el.row[rows], shape)
    row_number = np.broadcast_to(np.arange(chain.B)[:, None, None], rows.shape)
    for axis in range(len(shape)):
        rest = [c for k, c in enumerate(coords) if k != axis]
        if np.array_equal(coords[axis], row_number) and all(
            np.array_equal(c, np.broadcast_to(c[:1], c.shape)) for c in rest
        ):
            return StateInput(layer.name, which, name, axis, tuple(c[0].reshape(-1) for c in rest))
    raise InputError(f"{at}: its initial state's rows are not one axis of input {name!r}")


def _lstm_outputs(chain: Chain, el: Elements, layout: int, D: int, H: int) -> list[Array]:
    """Elements of Y (T, D, B, H), Y_h and Y_c (D, B, H); layout 1: B first."""
    T, B, base = chain.T, chain.B, chain.base
    feature = np.arange(D * H).reshape(D, 1, H)
    t = np.arange(T)[:, None, None, None]
    b = np.arange(B)[None, None, :, None]
    Y = el.add((T, D, B, H), base=base, kind=STEP, t=t, b=b, row=feature[None])
    finals = [
        el.add((D, B, H), base=base, kind=kind, t=-1, b=b[0], row=feature)
        for kind in (FINAL_H, FINAL_C)
    ]
    if layout == 1:
        return [Y.transpose(2, 0, 1, 3), *(f.transpose(1, 0, 2) for f in finals)]
    return [Y, *finals]
