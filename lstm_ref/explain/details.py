"""The numbers behind the explanations, computed one unit at a time and checked.

:func:`step_details` and :func:`backward_details` return every number that
:func:`~lstm_ref.explain.explain_step` and :func:`~lstm_ref.explain.explain_backward`
print, as plain data; :mod:`lstm_ref.explain.text` formats them. Each recomputes the
library's arithmetic for one unit with scalars and compares the result with the library
(:meth:`Network.trace`, the per-step gradients of :func:`lstm_ref.lstm_loop.lstm_backward`,
:meth:`LSTM.backward`), raising a RuntimeError beyond :data:`TOLERANCE`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from .._checks import check_index
from ..errors import InputError, InputTypeError
from ..layers import LSTM, Cache, FullyConnected, LSTMCache, SequenceInput
from ..lstm import (
    GATE_NAMES,
    GATES,
    Gates,
    LSTMState,
    gate_rows,
)
from ..network import Network
from ..padding import make_batches
from ..parts import Part, part_names, recurrent_part
from ..sequences import as_sequence_list
from ..train import central_difference, cross_entropy, cross_entropy_grad, softmax_index

Array = np.ndarray

# Largest disagreement with the library tolerated, by dtype (float32 rounds much earlier).
TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

# Step of the central difference of the loss, relative to max(1, |b[row]|).
CENTRAL_DIFFERENCE_STEP = 1e-6


# ---------------------------------------------------------------------------- data
@dataclass(frozen=True)
class GateTerms:
    """One gate of one unit at one step: its row of W, R, b, the three terms and the value."""

    name: str  # "i", "f", "g" or "o"
    row: int  # 0-based row of W, R and b: k·H + unit − 1
    input_term: float  # W[row] · x̃_t
    recurrent_term: float  # R[row] · h_{t-1}
    bias: float  # b[row]
    preactivation: float  # a[row], the sum of the three
    activation: str  # name of the activation applied (σ_g, or σ_s for g)
    value: float  # the gate's value


@dataclass(frozen=True)
class StepDetails:
    """Every number :func:`~lstm_ref.explain.explain_step` prints (``step``, ``unit`` 1-based)."""

    layer: str
    step: int
    unit: int
    num_steps: int  # T
    hidden_size: int  # H
    gate_activation: str
    state_activation: str
    input_source: str | None  # the layer below, unless the LSTM reads the input layer
    x_raw: Array  # x_t as given, (C0,)
    mean: Array | None  # the input layer's mean, when it normalises, (C0,)
    std: Array | None  # the input layer's std, when it z-scores, (C0,)
    x_seen: Array  # x̃_t, what the LSTM layer multiplies by W, (C,)
    w_rows: Array  # W[row] for i, f, g, o, (4, C)
    h_prev: float  # h_{t-1}[unit]
    c_prev: float  # c_{t-1}[unit]
    gates: tuple[GateTerms, ...]  # i, f, g, o
    c: float  # c_t[unit]
    tanh_c: float  # σ_s(c_t)
    h: float  # h_t[unit]
    max_diff: float  # against net.trace
    tolerance: float
    reverse: bool = False  # a reverse direction: it reads the sequence from step T to step 1

    def gate(self, name: str) -> GateTerms:
        """The gate called ``name`` ("i", "f", "g" or "o")."""
        return self.gates[GATE_NAMES.index(name)]


@dataclass(frozen=True)
class BackwardDetails:
    """Every number :func:`~lstm_ref.explain.explain_backward` prints (1-based step, unit)."""

    forward: StepDetails
    label: str
    label_index: int
    class_names: tuple[str, ...]
    probs: Array  # p, (K,)
    loss: float  # −log p[label]
    dlogits: Array  # p − onehot, (K,)
    fc_column: Array | None  # weights[:, unit − 1] of the FC layer on top of the LSTM, (K,)
    layers_above: tuple[str, ...]  # the layers between the LSTM and the softmax
    output_mode: str  # of the LSTM layer: "last" or "sequence"
    d_output: float  # dL/d(output at T)[unit] from the layers above
    carried: tuple[tuple[int, float, float, float], ...]  # (t, dh_t, dc_t, f_t) from T to step
    dh: float  # dL/dh_t[unit], incoming
    dc_in: float  # dL/dc_t[unit] from step t+1 only (incoming)
    do: float
    dstate: float  # σ_s'(c_t), written through σ_s(c_t)
    dc: float  # dc_in + dh·o·σ_s'(c_t): the total dL/dc_t[unit]
    di: float
    df: float
    dg: float
    dc_prev: float  # dL/dc_{t-1}[unit] = dc·f
    dact: tuple[float, ...]  # each gate's activation derivative at its pre-activation
    da: tuple[float, ...]  # dL/da[row] for i, f, g, o: this step's contribution to db[row]
    dh_prev: float  # dL/dh_{t-1}[unit] (from every unit's da, through R)
    db_total: float  # dL/db[row of i], summed over every step
    db_numeric: float  # the same, by central difference of the loss
    eps: float
    max_diff: float  # against lstm_backward's per-step gradients and LSTM.backward
    tolerance: float

    @property
    def relative_difference(self) -> float:
        """``|analytic − numeric| / max(|analytic|, |numeric|)`` for the total db of the i row."""
        scale = max(abs(self.db_total), abs(self.db_numeric), np.finfo(float).tiny)
        return abs(self.db_total - self.db_numeric) / scale


# ------------------------------------------------------------------- computing
@dataclass(frozen=True)
class _Run:
    """One sequence through the network from its current state, with every layer's cache."""

    net: Network
    x: Array  # (T, C0), checked and cast to the network's dtype
    part: Part  # the LSTM: a layer, one direction of a BiLSTM, a layer of an LSTMStack
    caches: list[Cache]  # of layers 0 … upto
    output: Array  # the output of layer ``upto``, (1, …)
    reference: Gates  # the part's trace (net.trace's columns), each (T, H), in time order
    t: int  # 0-based step
    u: int  # 0-based unit

    @property
    def k(self) -> int:
        """Index of the part's recurrent layer in ``net.layers``."""
        return self.part.index

    @property
    def lstm(self) -> LSTM:
        return cast(LSTM, self.part.layer)

    @property
    def cache(self) -> LSTMCache:
        return cast(LSTMCache, self.part.cache(self.caches[self.k]))

    @property
    def p(self) -> int:
        """The 0-based step t in the order the LSTM processed the steps (T−1−t if reverse)."""
        return len(self.x) - 1 - self.t if self.part.reverse else self.t

    def prev(self, p: int) -> LSTMState:
        """The state entering processed step p (0-based): h and c, each (1, H)."""
        if p == 0:
            return self.cache.state0
        return LSTMState(self.cache.trace.h[:, p - 1], self.cache.trace.c[:, p - 1])


def _lstm_part(net: Network, layer: str | None) -> Part:
    """The part ``layer`` (default the first recurrent layer): one direction of equations,
    one LSTM (a BiLSTM's or an LSTMStack's named by its own part name)."""
    part = recurrent_part(net, layer)
    if not isinstance(part.layer, LSTM):
        raise InputError(
            f"explain follows one LSTM's equations; layer {part.name!r} is a "
            f"{part.layer.TYPE} layer: name one of the network's LSTMs "
            f"({part_names(net, one_direction=True)})"
        )
    return part


def _forward(net: Network, x: Array, upto: int) -> tuple[Array, list[Cache]]:
    """Layers 0 … upto on one checked (T, C0) sequence from the network's current state (what
    :meth:`Network.trace` runs), with every layer's cache."""
    return net.forward(make_batches([x])[0], net.state_rows(1), upto)


def _run(
    net: Network, x: Array, step: object, unit: object, layer: str | None, upto: int | None = None
) -> _Run:
    """Validate the arguments and run the sequence (through layer ``upto``, default the LSTM)."""
    if not isinstance(net, Network):
        raise InputTypeError(f"net must be a lstm_ref Network; got {type(net).__name__}")
    part = _lstm_part(net, layer)
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise InputError(f"x must be one sequence, a 2-D array (T, C); got shape {np.shape(x)}")
    seqs, _ = as_sequence_list(x, net.input_size, dtype=net.dtype)
    T, H = len(seqs[0]), cast(LSTM, part.layer).hidden_size
    t = check_index(step, "step", 1, T, f"the sequence has {T} time steps") - 1
    u = check_index(unit, "unit", 1, H, f"layer {part.name!r} has {H} hidden units") - 1
    reference = part.trace(net, seqs[0])  # also checks the network's state
    output, caches = _forward(net, seqs[0], part.index if upto is None else upto)
    return _Run(net, seqs[0], part, caches, output, reference, t, u)


def _scalar(f: Callable[[Array], Array], v: float, dtype: np.dtype) -> float:
    """``f`` applied to the scalar ``v`` in ``dtype``, as a float."""
    return float(f(np.asarray(v, dtype=dtype)))


def _check(against: str, mine: Sequence[float], theirs: Sequence[float], dtype: np.dtype) -> float:
    """max |mine − theirs|; a RuntimeError if it exceeds the tolerance for ``dtype``."""
    diff = float(np.max(np.abs(np.asarray(mine, float) - np.asarray(theirs, float))))
    if not diff <= TOLERANCE[np.dtype(dtype)]:
        raise RuntimeError(
            f"the explanation disagrees with {against}: max |diff| = {diff:.3g} > "
            f"{TOLERANCE[np.dtype(dtype)]:g}; lstm_ref.explain is out of date with the library"
        )
    return diff


def _details_from_run(run: _Run) -> StepDetails:
    """The forward numbers of unit u at step t, computed one unit at a time and checked."""
    t, u, lstm = run.t, run.u, run.lstm
    p, dtype, H = lstm.params, lstm.params.W.dtype, lstm.hidden_size
    x_seen = run.cache.x[0, run.p]
    prev = run.prev(run.p)
    gates = []
    for gate in GATES:
        row = gate_rows(gate.name, H).start + u
        wx, rh, b = float(p.W[row] @ x_seen), float(p.R[row] @ prev.h[0]), float(p.b[row])
        a = wx + rh + b
        name = lstm.state_activation if gate.activation == "state" else lstm.gate_activation
        value = _scalar(lstm.act.of(gate.name).value, a, dtype)
        gates.append(GateTerms(gate.name, row, wx, rh, b, a, name, value))
    i, f, g, o = (gate.value for gate in gates)
    h_prev, c_prev = float(prev.h[0, u]), float(prev.c[0, u])
    c = f * c_prev + i * g
    tanh_c = _scalar(lstm.act.state.value, c, dtype)
    h = o * tanh_c
    ref, before = run.reference, t + 1 if run.part.reverse else t - 1  # the step processed before
    if run.p == 0:
        ref_prev = [np.broadcast_to(s, (1, H))[0, u] for s in run.part.state(run.net)]
    else:
        ref_prev = [ref.h[before, u], ref.c[before, u]]
    mine = [h_prev, c_prev, i, f, g, o, c, h]
    theirs = [*ref_prev, *(v[t, u] for v in (ref.i, ref.f, ref.g, ref.o, ref.c, ref.h))]
    max_diff = _check("net.trace", mine, theirs, dtype)
    input_layer = cast(SequenceInput, run.net.layers[0])  # Network checks that it is one
    return StepDetails(
        layer=run.part.name,
        step=t + 1,
        unit=u + 1,
        num_steps=len(run.x),
        hidden_size=H,
        gate_activation=lstm.gate_activation,
        state_activation=lstm.state_activation,
        input_source=run.part.input_source(run.net),
        x_raw=run.x[t],
        mean=input_layer.mean,
        std=input_layer.std,
        x_seen=x_seen,
        w_rows=p.W[[gate.row for gate in gates]],
        h_prev=h_prev,
        c_prev=c_prev,
        gates=tuple(gates),
        c=c,
        tanh_c=tanh_c,
        h=h,
        max_diff=max_diff,
        tolerance=TOLERANCE[np.dtype(dtype)],
        reverse=run.part.reverse,
    )


def step_details(
    net: Network, x: Array, step: int, unit: int, layer: str | None = None
) -> StepDetails:
    """The numbers behind :func:`~lstm_ref.explain.explain_step` (same arguments, same
    errors), checked against :meth:`Network.trace` within ``TOLERANCE``."""
    return _details_from_run(_run(net, x, step, unit, layer))


def _label_index(net: Network, label: object) -> int:
    """Index of ``label`` in the network's class names, or an InputError."""
    if not net.class_names:
        raise InputError("explain_backward needs a network with class names")
    if not isinstance(label, str) or label not in net.class_names:
        raise InputError(
            f"label must be one of the class names {list(net.class_names)}; got {label!r}"
        )
    return net.class_names.index(label)


def _loss(net: Network, x: Array, softmax: int, label: int) -> float:
    """The loss of ``x`` from the logits (the input of the softmax layer ``softmax``)."""
    logits, _ = _forward(net, x, softmax - 1)
    return float(cross_entropy(logits[:1], np.array([label]))[0])


def _numeric_db(run: _Run, softmax: int, label: int, row: int) -> tuple[float, float]:
    """dL/db[row] by central difference on a copy of the network; returns (value, step)."""
    probe = run.net.astype(run.net.dtype)
    b = cast(LSTM, probe.layers[run.k]).params.b
    eps = CENTRAL_DIFFERENCE_STEP * max(1.0, abs(float(b[row])))
    value = central_difference(lambda: _loss(probe, run.x, softmax, label), b, (row,), eps)
    return value, eps


def _gradient_at_lstm(run: _Run, softmax: int, dlogits: Array) -> Array:
    """dL/d(the LSTM layer's output), (1, H) or (1, T, H), from the logits' gradient (K,)."""
    d = dlogits[None]
    for j in range(softmax - 1, run.k, -1):
        d, _ = run.net.layers[j].backward(d, run.caches[j])
    return d


def backward_details(
    net: Network, x: Array, label: str, step: int, unit: int, layer: str | None = None
) -> BackwardDetails:
    """The numbers behind :func:`~lstm_ref.explain.explain_backward` (same arguments), checked
    against the library.

    Raises
    ------
    InputError
        If an argument is out of range, ``label`` is not a class name, or the network does
        not classify whole sequences (one softmax output per sequence).
    InputTypeError
        If ``net`` is not a Network.
    RuntimeError
        If a number computed here disagrees with :func:`lstm_ref.lstm_loop.lstm_backward` or
        :meth:`LSTM.backward` beyond the tolerance.
    """
    softmax = softmax_index(net)
    label_index = _label_index(net, label)
    run = _run(net, x, step, unit, layer, upto=softmax)
    if run.part.path or run.part.reverse:
        raise InputError(
            f"explain_backward follows a forward LSTM layer of the network's own; "
            f"{run.part.describe()} is not one (its forward step: explain_step)"
        )
    if run.output.ndim != 2:
        raise InputError(
            "explain_backward needs a sequence-to-label network (one output per sequence); "
            f"this one gives an output of shape {run.output.shape[1:]} per sequence"
        )
    fwd = _details_from_run(run)
    t, u, lstm, dtype = run.t, run.u, run.lstm, run.lstm.params.W.dtype
    probs = run.output[0]
    dlogits = cross_entropy_grad(run.output, np.array([label_index]))[0]
    d_output = _gradient_at_lstm(run, softmax, dlogits)
    above = run.net.layers[run.k + 1 : softmax]
    fc_column = None
    if len(above) == 1 and isinstance(above[0], FullyConnected):
        fc_column = above[0].weights[:, u]
    grads, steps = lstm.backward_steps(d_output, run.cache)  # BPTT, every step kept (1, T, ·)
    f_trace = run.cache.trace.f
    carried = tuple(
        (s + 1, float(steps.dh[0, s, u]), float(steps.dc[0, s, u]), float(f_trace[0, s, u]))
        for s in reversed(range(t, len(run.x)))
    )

    # the backward step of this unit, one scalar at a time, beside lstm_step_backward's lines
    i, f, g, o = (gate.value for gate in fwd.gates)
    dh, dc_in = float(steps.dh[0, t, u]), float(steps.dc[0, t, u])
    do = dh * fwd.tanh_c
    dstate = _scalar(lstm.act.state.grad, fwd.tanh_c, dtype)
    dc = dc_in + dh * o * dstate
    di, df, dg, dc_prev = dc * g, dc * fwd.c_prev, dc * i, dc * f
    dact = tuple(_scalar(lstm.act.of(gate.name).grad, gate.value, dtype) for gate in fwd.gates)
    da = tuple(dv * s for dv, s in zip((di, df, dg, do), dact, strict=True))

    rows = [gate.row for gate in fwd.gates]
    mine = [*da, dc_prev, float(steps.da[0, :, rows[0]].sum())]  # db: the steps' sum
    theirs = [*steps.da[0, t, rows], steps.dc_prev[0, t, u], grads.b[rows[0]]]
    if fc_column is not None and lstm.output_mode == "last":
        mine.append(float(fc_column @ dlogits))
        theirs.append(d_output[0, u])
    max_diff = _check("lstm_backward / LSTM.backward", mine, theirs, dtype)
    numeric, eps = _numeric_db(run, softmax, label_index, rows[0])
    return BackwardDetails(
        forward=fwd,
        label=label,
        label_index=label_index,
        class_names=run.net.class_names,
        probs=probs,
        loss=_loss(run.net, run.x, softmax, label_index),
        dlogits=dlogits,
        fc_column=fc_column,
        layers_above=tuple(lay.name for lay in above),
        output_mode=lstm.output_mode,
        d_output=float(d_output[0, u] if d_output.ndim == 2 else d_output[0, -1, u]),
        carried=carried,
        dh=dh,
        dc_in=dc_in,
        do=do,
        dstate=dstate,
        dc=dc,
        di=di,
        df=df,
        dg=dg,
        dc_prev=dc_prev,
        dact=dact,
        da=da,
        dh_prev=float(steps.dh_prev[0, t, u]),
        db_total=float(grads.b[rows[0]]),
        db_numeric=numeric,
        eps=eps,
        max_diff=max_diff,
        tolerance=TOLERANCE[np.dtype(dtype)],
    )
