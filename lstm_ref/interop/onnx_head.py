"""ONNX import, the ops around the LSTM nodes: the data path as named axes, one op at a time.

:func:`lstm_ref.interop.onnx.from_onnx` walks the graph and hands every op on the data path
that is not an ``LSTM`` to :func:`head_step`. The path is one tensor with named axes — T
time, B batch, D direction, H features per direction, F features, 1 a singleton — and each
supported op either renames, drops or merges axes, or adds a layer:

==================================  =========================================================
op                                  on the path
==================================  =========================================================
``Transpose``                       permutes the axes
``Squeeze``/``Unsqueeze``           drop or add a singleton (or a D of size 1)
``Reshape``/``Flatten``             merge D, H (forward first) into F, keeping T and B
``Gather``/``Slice`` index −1 of T  the last time step: the last LSTM becomes "last"
                                    (with ``sequence_lens`` refused: ``Y[-1]`` is 0 there
                                    for every shorter sequence)
``GatherND`` (``batch_dims=1``)     each sequence's last valid step: indices
of (B, T, …) by ``sequence_lens``   ``sequence_lens − 1`` of shape (B, 1); the last LSTM
                                    becomes "last" (a BiLSTM: ``last="step"``)
``Gather``/``Slice`` of D (size 1)  the one direction
``Gemm``, ``MatMul`` + ``Add``      FullyConnected on a (…, F) path: ``Gemm`` on (B, F) only
``Sub``, ``Div`` by constants       the SequenceInput's normalisation, before any LSTM
``Softmax``                         Softmax over F (the opset's default axis: 1 before
                                    opset 13, −1 from 13)
``Identity``                        nothing
==================================  =========================================================

The indices of a ``GatherND`` come from ``sequence_lens`` through :func:`lengths_step`:
``Cast`` to an integer type, ``Add``/``Sub`` of an integer constant, ``Unsqueeze``,
``Squeeze``, ``Reshape`` to singletons around B, ``Identity`` — whatever the tensors are
named. Any other op on the data path, or one of these used otherwise, is refused with its
op type and node name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import (
    LSTM,
    BiLSTM,
    FullyConnected,
    Layer,
    SequenceInput,
    Softmax,
    forward_only,
)

Array = np.ndarray


def node_name(node: Any) -> str:
    """A node's name, or (unnamed) its first output's, or its op type."""
    return str(node.name or next((o for o in node.output if o), node.op_type))


def node_attributes(node: Any) -> dict[str, Any]:
    """An ONNX node's attributes by name, as Python values."""
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@dataclass
class Path:
    """The one tensor the data flows through, as named axes (module docstring), the
    layers so far, and a MatMul waiting for its Add."""

    axes: tuple[str, ...]
    sizes: dict[str, int]
    layers: list[Layer] = field(default_factory=list)
    pending_fc: FullyConnected | None = None


@dataclass(frozen=True)
class Lengths:
    """A tensor computed from ``sequence_lens``: its values plus ``offset``, on ``axes``
    (B and singletons "1")."""

    offset: int
    axes: tuple[str, ...]


@dataclass
class Graph:
    """What every step needs to know about the graph it is in."""

    where: str  # the file, for messages
    constants: dict[str, Array]
    dtype: Any
    opset: int  # of the default domain
    seq_lens: str | None  # the graph input sequence_lens
    consumed: set[str]  # every tensor some node or the graph output reads
    lengths: dict[str, Lengths] = field(default_factory=dict)
    masked: set[str] = field(default_factory=set)  # LSTM layers run with sequence_lens


_INTEGER_TYPES = (2, 3, 4, 5, 6, 7, 12, 13)  # TensorProto's (u)int8 … (u)int64


def lengths_step(node: Any, g: Graph) -> Lengths | None:
    """What ``node`` makes of a tensor computed from ``sequence_lens`` (module docstring);
    None for anything else, which only matters if a GatherND then reads it."""
    op, ins = node.op_type, list(node.input)
    src = [g.lengths[n] for n in ins if n in g.lengths]
    if len(src) != 1:
        return None
    lens = src[0]
    attrs = node_attributes(node)
    axes_given = _squeeze_axes(node, attrs, g) if op in ("Squeeze", "Unsqueeze") else None
    if op == "Identity" or (op == "Cast" and attrs.get("to") in _INTEGER_TYPES):
        return lens
    if op in ("Add", "Sub") and len(ins) == 2:
        other = g.constants.get(ins[1] if ins[0] in g.lengths else ins[0])
        if other is None or np.size(other) != 1 or np.ndim(other) > len(lens.axes):
            return None  # not one integer that leaves the axes as they are
        if not np.issubdtype(other.dtype, np.integer):
            return None
        if op == "Sub" and ins[0] not in g.lengths:
            return None  # c − sequence_lens
        value = int(np.reshape(other, -1)[0])
        return Lengths(lens.offset + (value if op == "Add" else -value), lens.axes)
    if op == "Unsqueeze" and axes_given is not None:
        return Lengths(lens.offset, _unsqueezed(lens.axes, axes_given))
    if op == "Squeeze" and axes_given is not None:
        drop = {int(a) % len(lens.axes) for a in axes_given}
        if any(lens.axes[a] != "1" for a in drop):
            return None
        return Lengths(lens.offset, tuple(a for k, a in enumerate(lens.axes) if k not in drop))
    if op == "Reshape" and len(ins) > 1 and ins[1] in g.constants:
        shape = [int(v) for v in np.reshape(g.constants[ins[1]], -1)]
        laid = tuple(
            "B" if v == -1 or (v == 0 and k < len(lens.axes) and lens.axes[k] == "B") else "1"
            for k, v in enumerate(shape)
        )
        ok = laid.count("B") == 1 and all(v in (-1, 0, 1) for v in shape)
        return Lengths(lens.offset, laid) if ok else None
    return None


def head_step(node: Any, p: Path, g: Graph) -> Path:
    """The path after ``node``, any op but ``LSTM`` (module docstring), or an InputError
    naming the node."""
    op, name = node.op_type, node_name(node)
    attrs = node_attributes(node)
    bad = InputError(f"{g.where}: node {name!r}: op {op} on axes {p.axes} is not supported")
    if p.pending_fc is not None and op != "Add":
        p.layers.append(p.pending_fc)
        p.pending_fc = None
    if op == "Identity":
        return p
    if op == "Transpose":
        perm = list(attrs.get("perm", reversed(range(len(p.axes)))))
        return Path(tuple(p.axes[k] for k in perm), p.sizes, p.layers)
    if op in ("Squeeze", "Unsqueeze"):
        return _squeeze(node, op, attrs, p, g, bad)
    if op in ("Reshape", "Flatten"):
        return _merge_features(node, op, p, g.constants, bad)
    if op in ("Gather", "Slice"):
        return _last_step(node, op, attrs, p, g, bad)
    if op == "GatherND":
        return _each_last_step(node, attrs, p, g, bad)
    if op in ("Gemm", "MatMul"):
        return _fully_connected(node, op, attrs, p, g, name, bad)
    if op in ("Add", "Sub", "Div"):
        other = [g.constants.get(n) for n in node.input if n in g.constants]
        if len(other) != 1:
            raise bad
        value = np.asarray(other[0], np.float64).reshape(-1)
        if op == "Add" and p.pending_fc is not None:
            fc = p.pending_fc
            fc = _fc(fc.weights, np.broadcast_to(value, fc.bias.shape), fc.name, g.dtype)
            p.layers.append(fc)
            return Path(p.axes, p.sizes, p.layers)
        return _normalise(op, value, p, name, bad, g.dtype)
    if op == "Softmax":
        rank = len(p.axes)
        axis = int(attrs.get("axis", -1 if g.opset >= 13 else 1)) % rank
        # before opset 13 Softmax flattens the axes from `axis` on: the last axis only if so
        if p.axes[axis] != "F" or (g.opset < 13 and axis != rank - 1):
            raise bad
        p.layers.append(Softmax(name=name))
        return p
    raise InputError(f"{g.where}: node {name!r}: op {op} is not supported (LSTM heads: see docs)")


def _squeeze_axes(node: Any, attrs: dict[str, Any], g: Graph) -> Any:
    """A Squeeze's or Unsqueeze's axes: the attribute (opset < 13) or the constant second
    input; None if neither."""
    given = attrs.get("axes")
    if given is None and len(node.input) > 1:
        given = g.constants.get(node.input[1])
    return given


def _unsqueezed(axes: tuple[str, ...], given: Any) -> tuple[str, ...]:
    """``axes`` with an axis "1" inserted at each of ``given`` (of the new rank)."""
    new = list(axes)
    for a in sorted(int(a) % (len(axes) + len(given)) for a in given):
        new.insert(a, "1")
    return tuple(new)


def _squeeze(node: Any, op: str, attrs: dict[str, Any], p: Path, g: Graph, bad: InputError) -> Path:
    given = _squeeze_axes(node, attrs, g)
    if given is None:
        raise bad
    if op == "Unsqueeze":
        return Path(_unsqueezed(p.axes, given), p.sizes, p.layers)
    where_axes = sorted(int(a) % len(p.axes) for a in given)
    if any(
        p.axes[a] not in ("1", "D") or (p.axes[a] == "D" and p.sizes["D"] != 1) for a in where_axes
    ):
        raise bad
    kept = tuple(x for k, x in enumerate(p.axes) if k not in where_axes)
    return _one_direction(kept, p)


def _fully_connected(
    node: Any, op: str, attrs: dict[str, Any], p: Path, g: Graph, name: str, bad: InputError
) -> Path:
    """Gemm (W or Wᵀ, bias × beta) on (B, F), or MatMul on (…, F) waiting for its Add."""
    if op == "Gemm" and len(p.axes) != 2:
        raise InputError(
            f"{g.where}: node {name!r} (Gemm): its input must be 2-D, (B, F), by the ONNX "
            f"spec; got axes {p.axes} (onnxruntime refuses this graph too). An LSTM's Y_h "
            "(D, B, H) needs a Squeeze or Reshape first"
        )
    if p.axes[-1] != "F" or any(a not in ("T", "B") for a in p.axes[:-1]):
        raise bad
    weight = g.constants.get(node.input[1])
    if weight is None:
        raise InputError(f"{g.where}: node {name!r} ({op}): the weight must be a constant")
    if op == "MatMul":
        p.pending_fc = _fc(weight.T, np.zeros(weight.shape[1]), name, g.dtype)
        return Path(p.axes, {"F": weight.shape[1]}, p.layers, p.pending_fc)
    if int(attrs.get("transA", 0)) or float(attrs.get("alpha", 1)) != 1:
        raise bad
    Wt = weight if int(attrs.get("transB", 0)) else weight.T  # (K, F)
    bias = g.constants.get(node.input[2]) if len(node.input) > 2 else None
    K = Wt.shape[0]
    b = np.zeros(K) if bias is None else np.broadcast_to(bias * float(attrs.get("beta", 1)), (K,))
    p.layers.append(_fc(Wt, b, name, g.dtype))
    return Path(p.axes, {"F": K}, p.layers)


def _one_direction(axes: tuple[str, ...], p: Path) -> Path:
    """Without its D axis (of size 1) a tensor's H axis holds the features, F."""
    if "D" in axes or "H" not in axes:
        return Path(axes, p.sizes, p.layers)
    return Path(tuple("F" if a == "H" else a for a in axes), {"F": p.sizes["H"]}, p.layers)


def _features(p: Path) -> int:
    return p.sizes["F"] if "F" in p.axes else p.sizes.get("D", 1) * p.sizes["H"]


def _merge_features(
    node: Any, op: str, p: Path, constants: dict[str, Array], bad: InputError
) -> Path:
    """Reshape/Flatten that keeps T and B and merges D, H (forward first) into F."""
    kept = [a for a in p.axes if a in ("T", "B")]
    rest = [a for a in p.axes if a not in ("T", "B")]
    if p.axes[: len(kept)] != tuple(kept) or [a for a in rest if a != "1"] not in (
        ["D", "H"],
        ["H"],
        ["F"],
    ):
        raise bad
    F = _features(p)
    if op == "Flatten":
        if kept != ["B"] or int(node_attributes(node).get("axis", 1)) != 1:
            raise bad
    else:
        shape = constants.get(node.input[1])
        if shape is None or len(shape) != len(kept) + 1 or int(shape[-1]) not in (-1, F):
            raise bad
        if any(int(v) not in (0, -1) for v in shape[:-1]) or list(shape).count(-1) > 1:
            raise bad
    return Path((*kept, "F"), {"F": F}, p.layers)


def _last_step(
    node: Any, op: str, attrs: dict[str, Any], p: Path, g: Graph, bad: InputError
) -> Path:
    """Gather/Slice of the last time step (the last LSTM becomes "last") or of the one
    direction of a one-direction LSTM."""
    if op == "Gather":  # Gather(data, index) on one axis; a 1-element index keeps the axis
        index = g.constants.get(node.input[1])
        if index is None or np.size(index) != 1:
            raise bad
        axis = int(attrs.get("axis", 0)) % len(p.axes)
        start, keep = int(np.reshape(index, -1)[0]), np.ndim(index) > 0
    else:  # Slice(data, starts, ends, axes, steps) of one axis, kept with length 1
        starts, ends, axes, steps = (
            g.constants.get(n) if n else None for n in [*node.input[1:], "", "", ""][:4]
        )
        if starts is None or ends is None or np.size(starts) != 1:
            raise bad
        if steps is not None and int(np.reshape(steps, -1)[0]) != 1:
            raise bad
        axis = int(np.reshape(axes, -1)[0]) % len(p.axes) if axes is not None else 0
        start, keep = int(np.reshape(starts, -1)[0]), True
        if p.axes[axis] == "T" and int(np.reshape(ends, -1)[0]) < 2**31 - 1:
            raise bad  # the last step runs from -1 to the end
    label = p.axes[axis]
    left = tuple(a for k, a in enumerate(p.axes) if k != axis or keep)
    if keep:
        left = tuple("1" if k == axis else a for k, a in enumerate(p.axes))
    if label == "D" and p.sizes["D"] == 1:
        return _one_direction(left, p)
    if label != "T" or start != -1:
        raise bad
    lstm = _last_lstm(p)
    if lstm is not None and lstm.name in g.masked:
        raise InputError(
            f"{bad}: under sequence_lens Y[-1] is 0 for every shorter sequence "
            "(onnxruntime), while lstm_ref's last step is each sequence's own; gather each "
            "row's step sequence_lens − 1 (GatherND) or read Y_h"
        )
    return _at_last_step(p, left, bad)


def _each_last_step(node: Any, attrs: dict[str, Any], p: Path, g: Graph, bad: InputError) -> Path:
    """GatherND(batch_dims=1) of a (B, T, …) path at indices sequence_lens − 1, (B, 1):
    each sequence's output at its own last valid step."""
    index = g.lengths.get(node.input[1])
    if (
        index != Lengths(-1, ("B", "1"))
        or int(attrs.get("batch_dims", 0)) != 1
        or p.axes[:2] != ("B", "T")
    ):
        came = "not computed from sequence_lens"
        if index is not None:
            came = f"sequence_lens {index.offset:+d} on axes {index.axes}"
        raise InputError(
            f"{bad}: expected GatherND with batch_dims=1 of a (B, T, ...) LSTM output at "
            "indices sequence_lens - 1 of shape (B, 1) (each sequence's last valid step); "
            f"got batch_dims={int(attrs.get('batch_dims', 0))}, indices {came}"
        )
    # a reverse direction here ran with sequence_lens: from_onnx refuses it otherwise
    return _at_last_step(p, ("B", *p.axes[2:]), bad)


def _last_lstm(p: Path) -> LSTM | BiLSTM | None:
    return next((x for x in reversed(p.layers) if isinstance(x, LSTM | BiLSTM)), None)


def _at_last_step(p: Path, left: tuple[str, ...], bad: InputError) -> Path:
    """The path ``left`` after reading the last LSTM's output at each sequence's last
    step: that LSTM becomes "last" (a BiLSTM's reverse half: its output there)."""
    lstms = [k for k, x in enumerate(p.layers) if isinstance(x, LSTM | BiLSTM)]
    last = p.layers[lstms[-1]] if lstms else None
    if isinstance(last, BiLSTM) and last.output_mode == "sequence":
        # the reverse half at the last step has seen that one step only
        fwd, bwd = (dataclasses.replace(d, output_mode="last") for d in (last.fwd, last.bwd))
        p.layers[lstms[-1]] = BiLSTM(fwd, bwd, last.name, last.merge_mode, last="step")
    elif forward_only(last) and last.output_mode == "sequence":
        p.layers[lstms[-1]] = dataclasses.replace(last, output_mode="last")
    else:
        raise InputError(
            f"{bad}: the last time step of a lone reverse LSTM's Y holds its output after one "
            "step only, which lstm_ref's layers do not return; read Y_h instead"
        )
    return Path(left, p.sizes, p.layers)


def _fc(weights: Array, bias: Array, name: str, dtype: Any) -> FullyConnected:
    return FullyConnected(np.asarray(weights, dtype), np.asarray(bias, dtype), name=name)


def _normalise(op: str, value: Array, p: Path, name: str, bad: InputError, dtype: Any) -> Path:
    """Sub (x − mean) then Div (/ std) before any LSTM: the SequenceInput's normalisation."""
    if p.layers and not (len(p.layers) == 1 and isinstance(p.layers[0], SequenceInput)):
        raise bad
    C = p.sizes["F"]
    value = np.broadcast_to(value, (C,)).astype(dtype)
    first = p.layers[0] if p.layers else None
    if op == "Sub" and first is None:
        layer = SequenceInput(C, normalization="zerocenter", mean=value)
    elif op == "Div" and isinstance(first, SequenceInput) and first.normalization == "zerocenter":
        layer = SequenceInput(C, normalization="zscore", mean=first.mean, std=value)
    else:
        raise bad
    return Path(p.axes, p.sizes, [layer])
