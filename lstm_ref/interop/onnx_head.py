"""ONNX import, what the data becomes: every element of every data tensor traced to the
layer output it is an affine function of, and the layers a node's reading of them adds.

:mod:`.onnx_graph` runs the graph on *element ids* instead of numbers: each element of a
data tensor is an entry of :class:`Elements` — which *base* (the network's input, or the
output of the last layer built) it comes from, which row ``b`` and step ``t`` it belongs
to, and the affine function ``R · features + c`` of that base's features at that row and
step it holds. Ops that only move elements (Transpose, Reshape, Slice, Gather, Concat, …)
move ids; the ops here compute:

==================================  =========================================================
op                                  what it makes of its data input
==================================  =========================================================
``MatMul``, ``Gemm`` (constant      new elements, each an affine function of the base
weight), ``Add``/``Sub``/``Mul``/   (nothing is added to the network yet: consecutive maps
``Div``/``Neg`` with a constant     compose)
``LSTM``                            reads its X as (T, B, F) (layout 1: (B, T, F)): the
                                    affine map before it folded into W and b (a diagonal
                                    one on the input: the SequenceInput's normalisation)
``Softmax``                         a FullyConnected for the map before it, if any, then
                                    Softmax over every feature of a row (or step)
the graph output                    a FullyConnected for the map before it, if any
==================================  =========================================================

A *read* (:meth:`Chain.read`) checks that a tensor is laid out as rows (and steps) of the
same features: which axis holds the rows, which the steps, every row and step present
once, the same affine function at the same place in each. Reading an LSTM's outputs fixes
its output mode: Y at every step → "sequence"; Y at each sequence's last step, or Y_h →
"last" (a BiLSTM's reverse half at the last step: ``last="step"``). Reading the final
states (Y_h) of several layers makes those layers one LSTMStack (:mod:`.onnx_stack`).
Anything else is refused with the node and what the reader found.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..activations import ONNX_ACTIVATIONS, activation_spec, own_name
from ..errors import InputError
from ..layers import (
    LSTM,
    Activation,
    BiLSTM,
    FullyConnected,
    Layer,
    LogSoftmax,
    Softmax,
    forward_only,
)
from .onnx_ops import node_attributes, node_name

Array = np.ndarray
STEP, FINAL_H, FINAL_C, ROW, STATE = range(5)  # an element's kind
EXTRACT_LSTM = (  # what a model whose LSTM sits after other ops can do
    "take the LSTM out with lstm_ref.interop.onnx_models.extract_lstm(path, name) "
    "(list_lstms lists them)"
)
KIND_NAMES = ["a step's output", "Y_h", "Y_c", "a row's output", "an initial state input"]
RETIRED = np.iinfo(np.int64).max  # the base of a stacked layer's Y and Y_c (.onnx_stack)


class Elements:
    """Every data element of one run of the graph, by id: ``base``, ``kind``, step ``t``
    (−1 for a row's value), row ``b``, and ``row``, its line in ``R[base]``/``c[base]``
    (its value is ``R[base][row] · features + c[base][row]``). A graph input's own
    elements (kind STATE) have base −1 − (its number) and ``row`` their flat index."""

    FIELDS = ("base", "kind", "t", "b", "row")

    def __init__(self) -> None:
        self.base, self.kind, self.t, self.b, self.row = (np.zeros(0, np.int64) for _ in range(5))
        self.R: dict[int, Array] = {}
        self.c: dict[int, Array] = {}
        self.ops: dict[int, list[str]] = {}  # the nodes whose maps each base's elements hold

    def add(self, shape: tuple[int, ...], **values: Any) -> Array:
        """New elements of a tensor of ``shape`` (every field given, broadcast to it); their ids."""
        start = len(self.base)
        for k in self.FIELDS:
            flat = np.broadcast_to(np.asarray(values[k], np.int64), shape).reshape(-1)
            setattr(self, k, np.concatenate([getattr(self, k), flat]))
        return np.arange(start, start + int(np.prod(shape)), dtype=np.int64).reshape(shape)

    def new_base(self, base: int, width: int) -> None:
        """A base whose features are its own: R = I, c = 0."""
        self.R[base], self.c[base], self.ops[base] = np.eye(width), np.zeros(width), []

    def affine(self, ids: Array, rows: Array, R: Array, c: Array, op: str) -> Array:
        """New elements laid out as ``rows`` (same base, kind, t, b as ``ids``), element k
        holding ``R[rows[k]] · features + c[rows[k]]``, made by the node ``op``."""
        base = int(self.base[ids.reshape(-1)[0]])
        self.ops[base].append(op)
        first = len(self.R[base])
        self.R[base] = np.concatenate([self.R[base], R])
        self.c[base] = np.concatenate([self.c[base], c])
        same = {k: getattr(self, k)[ids] for k in ("base", "kind", "t", "b")}
        return self.add(rows.shape, **same, row=first + rows)

    def table(self, ids: Array) -> tuple[Array, Array]:
        """R (W columns) and c of the base of ``ids`` (one base)."""
        base = int(self.base[ids.reshape(-1)[0]])
        return self.R[base], self.c[base]


@dataclass
class Read:
    """A data tensor read as rows (and steps) of features: where B and T lie, each
    element's feature, and the affine map (F, W), (F,) from the base to the features."""

    kind: int
    b_axis: int | None
    t_axis: int | None
    steps: Array  # a row read: each row's step (−1 for a final state)
    feature: Array  # each element's feature number, the tensor's shape
    R: Array
    c: Array

    @property
    def identity(self) -> bool:
        return self.R.shape[0] == self.R.shape[1] and bool(
            np.array_equal(self.R, np.eye(len(self.R))) and not self.c.any()
        )


def _varies(a: Array, axis: int) -> bool:
    return a.shape[axis] > 1 and bool(np.any(np.diff(a, axis=axis)))


@dataclass
class Chain:
    """The network built so far, one run of the graph: its layers, its current base (0 the
    input, k the output of the k-th layer), and the LSTM whose output mode the next read
    fixes."""

    el: Elements
    T: int  # the run's number of steps and rows
    B: int
    lengths: Array | None  # the run's sequence_lens, when the graph takes it
    dtype: Any
    layers: list[Layer] = field(default_factory=list)
    base: int = 0
    x_batch_first: bool | None = None  # decided by the first LSTM
    masked: set[str] = field(default_factory=set)  # LSTMs run with sequence_lens
    modes: dict[str, str] = field(default_factory=dict)  # LSTM name: how its output was read
    stacked: dict[str, str] = field(default_factory=dict)  # LSTM name: "stack/part" (.onnx_stack)

    # ------------------------------------------------------------------ reading
    def read(
        self, ids: Array, where: str, t_axis: int | None = None, b_axis: int | None = None
    ) -> Read:
        """``ids`` as rows (and steps) of features of the current base (class docstring);
        ``t_axis``/``b_axis`` given: they must hold the steps and rows there."""
        el = self.el
        self.check_base(ids, where)
        if self.base == 0 and t_axis is None:
            raise InputError(
                f"{where}: computes on the input X before any LSTM node; lstm_ref's network "
                "starts with its LSTM (a per-feature scale and shift of X before it is the "
                "input's normalisation), and an LSTM written out as MatMul, Sigmoid and Tanh "
                f"ops is not an LSTM node; {EXTRACT_LSTM}"
            )
        kinds = np.unique(el.kind[ids])
        if len(kinds) != 1:
            raise InputError(f"{where}: mixes {', '.join(KIND_NAMES[k] for k in kinds)}")
        kind = int(kinds[0])
        t, b = el.t[ids], el.b[ids]
        if self.base == 0 and self.x_batch_first:
            t, b = b, t
        if b_axis is None:
            b_axis = self._axis_of(b, where, "rows")
        if t_axis is None and kind == STEP:
            t_axis = self._axis_of(t, where, "steps", skip=b_axis)
        for coord, axis, size, what in ((b, b_axis, self.B, "row"), (t, t_axis, self.T, "step")):
            if axis is None:
                continue
            expect = np.arange(size).reshape([-1 if k == axis else 1 for k in range(ids.ndim)])
            if ids.shape[axis] != size or not np.array_equal(
                coord, np.broadcast_to(expect, coord.shape)
            ):
                raise InputError(
                    f"{where}: expected every {what} once along axis {axis} of shape {ids.shape}"
                )
        if b_axis is None and self.B > 1:
            raise InputError(f"{where}: reads one row of the batch only; expected every row")
        group = [a for a in (b_axis, t_axis) if a is not None]
        features = [a for a in range(ids.ndim) if a not in group]
        order = [*group, *features]
        rows = np.transpose(el.row[ids], order).reshape(
            -1, int(np.prod([ids.shape[a] for a in features]))
        )
        R, c = el.table(ids)
        if not np.array_equal(rows, np.broadcast_to(rows[:1], rows.shape)) and not (
            np.array_equal(R[rows], np.broadcast_to(R[rows[:1]], (*rows.shape, R.shape[1])))
            and np.array_equal(c[rows], np.broadcast_to(c[rows[:1]], rows.shape))
        ):  # the same functions, if not the same elements, in every row and step
            raise InputError(f"{where}: its rows or steps do not hold the same features")
        steps = np.full(self.B, -1)
        if t_axis is None:
            tb = (
                np.moveaxis(t, b_axis, 0).reshape(ids.shape[b_axis], -1)
                if b_axis is not None
                else t.reshape(1, -1)
            )
            if np.any(tb != tb[:, :1]):
                raise InputError(f"{where}: each row must read one step")
            steps = tb[:, 0]
        idx = np.indices(ids.shape)
        shape = tuple(ids.shape[a] for a in features)
        feature = (
            np.ravel_multi_index([idx[a] for a in features], shape)
            if features
            else np.zeros(ids.shape, np.int64)
        )
        read = Read(kind, b_axis, t_axis, steps, feature, R[rows[0]], c[rows[0]])
        self._fix_mode(read, where)
        return read

    def check_base(self, ids: Array, where: str) -> None:
        """Refuse elements that are not all of the current base, unless they are final
        states of LSTM layers that stack: those layers become one LSTMStack, the current
        base (:func:`.onnx_stack.stack_final_states`)."""
        from .onnx_stack import stack_final_states

        bases = np.unique(self.el.base[ids])
        if len(bases) == 1 and bases[0] == self.base:
            return
        if not stack_final_states(self, ids, where):
            raise InputError(
                f"{where}: reads {self._describe(bases)}; lstm_ref's network is a chain, each "
                f"layer reading the one before ({self._describe([self.base])}), or the final "
                "h (Y_h) of LSTM layers that each read the one before"
            )

    def _axis_of(self, coord: Array, where: str, what: str, skip: int | None = None) -> int | None:
        axes = [a for a in range(coord.ndim) if a != skip and _varies(coord, a)]
        if len(axes) > 1:
            raise InputError(f"{where}: its {what} run along axes {axes}; expected one axis")
        return axes[0] if axes else None

    def _describe(self, bases: Any) -> str:
        names = []
        for base in bases:
            if base == RETIRED:
                names.append("Y or Y_c of a layer now inside an LSTMStack (it returns h)")
            elif base < 0:
                names.append("an initial-state input")
            elif base == 0:
                names.append("the input X")
            else:
                names.append(f"the output of {self.layers[base - 1].name!r}")
        return " and ".join(names)

    def _fix_mode(self, read: Read, where: str) -> None:
        """The last LSTM's output mode, from how its output is read."""
        lstm = self.layers[self.base - 1] if self.base else None
        if not isinstance(lstm, LSTM | BiLSTM):
            return
        if read.kind == FINAL_C:
            raise InputError(f"{where}: reads Y_c of {lstm.name!r}; lstm_ref's layers return h")
        if read.kind == FINAL_H:
            mode = "state"
        elif read.t_axis is not None:
            mode = "sequence"
        else:
            last = np.full(self.B, self.T - 1)
            if lstm.name in self.masked and self.lengths is not None:
                last = self.lengths - 1
                if np.array_equal(read.steps, np.full(self.B, self.T - 1)):
                    raise InputError(
                        f"{where}: under sequence_lens Y[-1] is 0 for every shorter sequence "
                        "(onnxruntime), while lstm_ref's last step is each sequence's own; "
                        "gather each row's step sequence_lens − 1 (GatherND) or read Y_h"
                    )
            if not np.array_equal(read.steps, last):
                raise InputError(
                    f"{where}: reads Y of {lstm.name!r} at steps {read.steps.tolist()} of "
                    f"{self.T}; lstm_ref's layers return every step, or each sequence's last"
                )
            mode = "step"
        if mode != "sequence":
            self.check_ends_masked(lstm, where)
        seen = self.modes.setdefault(lstm.name, mode)
        if seen != mode:
            raise InputError(f"{where}: reads {lstm.name!r} as {mode!r}; it was read as {seen!r}")
        if mode == "sequence":
            return
        if isinstance(lstm, BiLSTM):  # "step": the reverse half has seen the last step only
            fwd, bwd = (dataclasses.replace(d, output_mode="last") for d in (lstm.fwd, lstm.bwd))
            bi = BiLSTM(fwd, bwd, lstm.name, lstm.merge_mode, last=mode)  # type: ignore[arg-type]
            self.layers[self.base - 1] = bi
        elif mode == "state" or forward_only(lstm):
            self.layers[self.base - 1] = dataclasses.replace(lstm, output_mode="last")
        else:
            raise InputError(
                f"{where}: the last time step of a lone reverse LSTM's Y holds its output after "
                "one step only, which lstm_ref's layers do not return; read Y_h instead"
            )

    def check_ends_masked(self, layer: Layer, where: str) -> None:
        """Refuse reading where a layer ends (its final state, its last step) when it runs
        over the padding: the graph takes sequence_lens, the layer's node does not."""
        if self.lengths is not None and layer.name not in self.masked:
            raise InputError(
                f"{where}: reads where {layer.name!r} ends, but it runs without the graph's "
                "sequence_lens, so it ends after the padding; lstm_ref's masked padding ends "
                "each sequence at its own length"
            )

    # ------------------------------------------------------------------ layers
    def add_layer(self, layer: Layer, width: int) -> None:
        """``layer`` reads the current base; its output is the new base."""
        self.layers.append(layer)
        self.base = len(self.layers)
        self.el.new_base(self.base, width)

    def dense(self, read: Read, reader: str) -> Read:
        """A FullyConnected for ``read``'s map, unless it is the identity (named after the
        map's first node, or ``reader`` for a choice of features); the read of its output."""
        if read.identity:
            return read
        name = next(iter(self.el.ops[self.base]), reader)
        self.add_layer(_fc(read.R, read.c, name, self.dtype), len(read.c))
        F = len(read.c)
        return dataclasses.replace(
            read, kind=STEP if read.t_axis is not None else ROW, R=np.eye(F), c=np.zeros(F)
        )

    def own_elements(self, shape: tuple[int, ...], read: Read) -> Array:
        """Elements of the current base in a tensor of ``shape`` laid out as ``read``."""

        def along(axis: int | None, size: int, absent: int) -> Any:
            if axis is None:
                return absent
            return np.arange(size).reshape([-1 if k == axis else 1 for k in range(len(shape))])

        kind = STEP if read.t_axis is not None else ROW
        t, b = along(read.t_axis, self.T, -1), along(read.b_axis, self.B, 0)
        return self.el.add(shape, base=self.base, kind=kind, t=t, b=b, row=read.feature)


# ------------------------------------------------------------------ the ops that compute
def linear_step(node: Any, ins: list[Any], is_data: list[bool], chain: Chain, where: str) -> Array:
    """New elements for MatMul, Gemm, Add, Sub, Mul, Div or Neg of one data tensor and
    constants (module table)."""
    op, el, name = node.op_type, chain.el, node_name(node)
    attrs = node_attributes(node)
    if sum(is_data) != 1 or (op in ("MatMul", "Gemm", "Div") and not is_data[0]):
        raise InputError(
            f"{where}: expected one data input (the first) and constants; got data at "
            f"inputs {[k for k, d in enumerate(is_data) if d]}"
        )
    k = is_data.index(True)
    constants = [np.asarray(a, np.float64) for a in ins[:k] + ins[k + 1 :] if a is not None]
    if not all(np.isfinite(a).all() for a in constants):
        raise InputError(f"{where}: a constant input holds NaN or Inf; values must be finite")
    ids = ins[k]
    chain.check_base(ids, where)
    R, c = el.table(ids)
    if op in ("MatMul", "Gemm"):
        weight = np.asarray(ins[1], np.float64)
        if op == "Gemm":
            if ids.ndim != 2:
                raise InputError(
                    f"{where}: its input must be 2-D, (B, F), by the ONNX spec; got shape "
                    f"{ids.shape} (onnxruntime refuses this graph too)"
                )
            if int(attrs.get("transA", 0)):
                raise InputError(f"{where}: transA=1 puts the rows in the features; not supported")
            weight = weight.T if int(attrs.get("transB", 0)) else weight
            weight = weight * float(attrs.get("alpha", 1.0))
        if weight.ndim != 2 or weight.shape[0] != ids.shape[-1]:
            raise InputError(
                f"{where}: expected a 2-D constant weight of {ids.shape[-1]} rows; got shape "
                f"{weight.shape}"
            )
        if np.any(np.diff(el.t[ids], axis=-1)) or np.any(np.diff(el.b[ids], axis=-1)):
            raise InputError(f"{where}: multiplies across rows or steps; expected features only")
        # each distinct vector of input elements once: (U, K) rows → (U, N) new ones
        K, N = weight.shape
        unique, inverse = np.unique(el.row[ids].reshape(-1, K), axis=0, return_inverse=True)
        new_R = np.einsum("ukw,kn->unw", R[unique], weight).reshape(-1, R.shape[1])
        new_c = c[unique] @ weight
        if op == "Gemm" and len(ins) > 2 and ins[2] is not None:
            bias = np.asarray(ins[2], np.float64) * float(attrs.get("beta", 1.0))
            if bias.shape[-1:] not in ((), (1,), (N,)) or bias.shape[:-1] not in ((), (1,)):
                raise InputError(
                    f"{where}: its bias C has shape {bias.shape}; expected one value per "
                    f"output feature, (N,) or (1, N) with N = {N}, or one for all"
                )
            new_c = new_c + bias.reshape(-1)
        rows = inverse.reshape(*ids.shape[:-1], 1) * N + np.arange(N)
        return el.affine(ids[..., :1], rows, new_R, new_c.reshape(-1), name)
    other = np.asarray(ins[1 - k] if op != "Neg" else -1.0, np.float64)
    try:
        shape = np.broadcast_shapes(ids.shape, other.shape)
    except ValueError:
        raise InputError(
            f"{where}: its constant of shape {other.shape} does not broadcast with the data's "
            f"{ids.shape} (a constant of the batch or steps traced at export, taken here at "
            "another size?); expected constants that hold for any batch and any number of steps"
        ) from None
    ids = np.broadcast_to(ids, shape)
    # each distinct (element, constant) pair once
    where_other = np.broadcast_to(np.arange(other.size).reshape(other.shape), shape)
    pairs = np.stack([el.row[ids].reshape(-1), where_other.reshape(-1)], axis=1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    rows_R, rows_c, value = R[unique[:, 0]], c[unique[:, 0]], other.reshape(-1)[unique[:, 1]]
    if op == "Add":
        new_R, new_c = rows_R, rows_c + value
    elif op == "Sub" and k == 0:
        new_R, new_c = rows_R, rows_c - value
    elif op == "Sub":
        new_R, new_c = -rows_R, value - rows_c
    else:  # Mul, Div, Neg (by −1)
        scale = 1 / value if op == "Div" else value
        new_R, new_c = rows_R * scale[:, None], rows_c * scale
    return el.affine(ids, inverse.reshape(shape), new_R, new_c, name)


def softmax_step(node: Any, ids: Array, chain: Chain, opset: int, where: str) -> Array:
    """Softmax or LogSoftmax over every feature of a row or step: a FullyConnected for the
    map before it (if any), then the layer."""
    read = chain.read(ids, where)
    rank = ids.ndim
    axis = int(node_attributes(node).get("axis", -1 if opset >= 13 else 1)) % rank
    spread = [a for a in range(rank) if a not in (read.b_axis, read.t_axis) and ids.shape[a] > 1]
    over = list(range(axis, rank)) if opset < 13 else [axis]
    if any(a not in over for a in spread) or any(a in (read.b_axis, read.t_axis) for a in over):
        raise InputError(
            f"{where}: {node.op_type} over axes {over} of shape {ids.shape} (rows on axis "
            f"{read.b_axis}, steps on {read.t_axis}); lstm_ref's {node.op_type} takes every "
            "feature of a row or step"
        )
    read = chain.dense(read, node_name(node))
    layer = Softmax if node.op_type == "Softmax" else LogSoftmax
    chain.add_layer(layer(name=node_name(node)), len(read.c))
    return chain.own_elements(ids.shape, read)


ELEMENTWISE = tuple(n for n in ONNX_ACTIVATIONS if n not in ("Affine", "ScaledTanh"))  # ops


def elementwise_step(node: Any, ids: Array, chain: Chain, where: str) -> Array:
    """An activation op (Relu, Sigmoid, Tanh, …) on every element: a FullyConnected for the
    map before it (if any), then an Activation layer in lstm_ref's spelling."""
    read = chain.dense(chain.read(ids, where), node_name(node))
    takes = ONNX_ACTIVATIONS[node.op_type][0]
    attrs = node_attributes(node)
    spec = activation_spec(node.op_type, **{k: float(attrs.get(k, v)) for k, v in takes.items()})
    chain.add_layer(Activation(own_name(spec), name=node_name(node)), len(read.c))
    return chain.own_elements(ids.shape, read)


def output_step(ids: Array, chain: Chain, name: str, where: str) -> Read:
    """The graph output ``name``: a FullyConnected for the map before it, if any."""
    return chain.dense(chain.read(ids, where), name)


def _fc(weights: Array, bias: Array, name: str, dtype: Any) -> FullyConnected:
    return FullyConnected(np.asarray(weights, dtype), np.asarray(bias, dtype), name=name)
