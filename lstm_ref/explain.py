"""One LSTM time step of one hidden unit, forward and backward, with the real numbers.

:func:`explain_step` walks through :func:`lstm_ref.lstm.lstm_step` for one unit at one
time step of one sequence: the input the layer sees, the state it starts from, the row of
W, R and b behind each gate, each gate's pre-activation and value, and the new cell and
hidden state. :func:`explain_backward` does the same for backpropagation through time with
:func:`lstm_ref.lstm.lstm_step_backward`. Both quote the library's own lines of code (read
from its source when they run, so the quotes cannot drift from the code) and check every
number they print against the library (:meth:`Network.trace`, :func:`lstm_step_backward`,
:meth:`LSTM.backward`), raising a RuntimeError if they ever disagree.

Steps and units are 1-based, as MATLAB users count; rows of W, R and b are 0-based array
indices: unit u's row in gate block k (k = 0, 1, 2, 3 for i, f, g, o, the order of
:data:`lstm_ref.lstm.GATE_NAMES`) is ``k·H + u − 1``.

The numbers come from :func:`step_details` and :func:`backward_details`, which return them
as plain data (for tests and for your own use); the two ``explain_*`` functions format them.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from .activations import Activation
from .layers import LSTM, FullyConnected, SequenceInput
from .lstm import (
    GATE_NAMES,
    Gates,
    LSTMParams,
    LSTMState,
    gate_rows,
    lstm_step,
    lstm_step_backward,
)
from .network import Network
from .sequences import as_sequence_list, make_batches
from .train import cross_entropy, softmax_index

Array = np.ndarray

GATE_ROLES = {"i": "input gate", "f": "forget gate", "g": "cell candidate", "o": "output gate"}

# The derivative of each activation written through its output y, as the backward step uses it.
DERIVATIVES = {
    "sigmoid": "{y}·(1 − {y})",
    "hard-sigmoid": "(0.2 if 0 < {y} < 1, else 0)",
    "hard-sigmoid-keras3": "(1/6 if 0 < {y} < 1, else 0)",
    "tanh": "(1 − {y}²)",
    "softsign": "(1 − |{y}|)²",
}

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
    """Every number :func:`explain_step` prints (``step`` and ``unit`` 1-based)."""

    layer: str
    step: int
    unit: int
    num_steps: int  # T
    hidden_size: int  # H
    gate_activation: str
    state_activation: str
    input_source: str | None  # the layer below, unless the LSTM reads the input layer
    x_raw: Array  # x_t as given, (C0,)
    mean: Array | None  # the input layer's mean, when it normalises
    std: Array | None  # the input layer's std, when it z-scores
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

    def gate(self, name: str) -> GateTerms:
        """The gate called ``name`` ("i", "f", "g" or "o")."""
        return self.gates[GATE_NAMES.index(name)]


@dataclass(frozen=True)
class BackwardDetails:
    """Every number :func:`explain_backward` prints (``step`` and ``unit`` 1-based)."""

    forward: StepDetails
    label: str
    label_index: int
    class_names: tuple[str, ...]
    probs: Array  # p, (K,)
    loss: float  # −log p[label]
    dlogits: Array  # p − onehot, (K,)
    fc_column: Array | None  # weights[:, unit − 1] of the FC layer on top of the LSTM, if any
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
    max_diff: float  # against lstm_step_backward and LSTM.backward
    tolerance: float

    @property
    def relative_difference(self) -> float:
        """|analytic − numeric| / max(|analytic|, |numeric|) for the total db of the i row."""
        scale = max(abs(self.db_total), abs(self.db_numeric), np.finfo(float).tiny)
        return abs(self.db_total - self.db_numeric) / scale


# ------------------------------------------------------------------- computing
@dataclass(frozen=True)
class _Run:
    """One sequence through the network from its current state, with every layer's cache."""

    net: Network
    x: Array  # (T, C0) as the network computes
    k: int  # index of the LSTM layer
    caches: list[Any]
    output: Array  # the output of layer ``upto``
    reference: Gates  # net.trace(x, layer), each (T, H)
    t: int  # 0-based step
    u: int  # 0-based unit

    @property
    def lstm(self) -> LSTM:
        return cast(LSTM, self.net.layers[self.k])

    @property
    def cache(self) -> Any:
        return self.caches[self.k]

    def prev(self, t: int) -> LSTMState:
        """(h_{t-1}, c_{t-1}) entering 0-based step t, each (1, H)."""
        if t == 0:
            return self.cache.state0
        return LSTMState(self.cache.trace.h[:, t - 1], self.cache.trace.c[:, t - 1])

    def gates(self, t: int) -> Gates:
        """What :func:`lstm_step` computed at 0-based step t, each (1, H)."""
        return Gates(*(v[:, t] for v in self.cache.trace))


def _check_index(value: Any, what: str, high: int, meaning: str) -> int:
    """``value`` as an int in 1..high, or a ValueError naming the allowed range."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if not ok or not 1 <= value <= high:
        raise ValueError(f"{what} must be an integer in 1..{high} ({meaning}); got {value!r}")
    return int(value)


def _lstm_index(net: Network, layer: str | None) -> int:
    """Index in ``net.layers`` of the LSTM layer ``layer`` (default the first)."""
    names = [lay.name for lay in net.lstm_layers]
    if not names:
        raise ValueError("the network has no LSTM layer")
    name = names[0] if layer is None else layer
    if name not in names:
        raise ValueError(f"layer must be the name of an LSTM layer, one of {names}; got {layer!r}")
    return [lay.name for lay in net.layers].index(name)


def _forward(net: Network, x: Array, upto: int) -> tuple[Array, list[Any]]:
    """Layers 0 … upto on one checked (T, C) sequence from the network's current state.

    What :meth:`Network.trace` runs, but returning every layer's output cache, not only
    the LSTM's gates.
    """
    return net.forward(make_batches([x], "masked")[0], net.state_rows(1), upto)


def _run(
    net: Network, x: Array, step: Any, unit: Any, layer: str | None, upto: int | None = None
) -> _Run:
    """Validate the arguments and run the sequence (through layer ``upto``, default the LSTM)."""
    if not isinstance(net, Network):
        raise TypeError(f"net must be a lstm_ref Network; got {type(net).__name__}")
    k = _lstm_index(net, layer)
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(f"x must be one sequence, a 2-D array (T, C); got shape {np.shape(x)}")
    seqs, _ = as_sequence_list(x, net.input_size, dtype=net.dtype)
    T, H = len(seqs[0]), net.layers[k].hidden_size
    t = _check_index(step, "step", T, f"the sequence has {T} time steps") - 1
    u = _check_index(unit, "unit", H, f"layer {net.layers[k].name!r} has {H} hidden units") - 1
    reference = net.trace(seqs[0], net.layers[k].name)  # also checks the network's state
    output, caches = _forward(net, seqs[0], k if upto is None else upto)
    return _Run(net, seqs[0], k, caches, output, reference, t, u)


def _input_source(run: _Run) -> str | None:
    """The name of the layer feeding the LSTM; None if it is the network's input layer."""
    below = run.net.layers[run.k - 1]
    return None if isinstance(below, SequenceInput) else below.name


def _activations(lstm: LSTM) -> dict[str, tuple[str, Activation]]:
    """Gate name -> (activation name, activation) as lstm_step applies them."""
    gate = (lstm.gate_activation, lstm.act.gate)
    return {
        name: (lstm.state_activation, lstm.act.state) if name == "g" else gate
        for name in GATE_NAMES
    }


def _scalar(f: Callable[[Array], Array], v: float, dtype: np.dtype) -> float:
    """``f`` applied to the scalar ``v`` in ``dtype``, as a float."""
    return float(f(np.asarray(v, dtype=dtype)))


def _details_from_run(run: _Run) -> StepDetails:
    """The forward numbers of unit u at step t, computed one unit at a time and checked."""
    t, u, lstm = run.t, run.u, run.lstm
    p, dtype, H = lstm.params, lstm.params.W.dtype, lstm.hidden_size
    x_seen = run.cache.x[0, t]
    prev = run.prev(t)
    h_prev_all = prev.h[0]
    gates = []
    for name, (act_name, act) in _activations(lstm).items():
        row = gate_rows(name, H).start + u
        wx, rh, b = float(p.W[row] @ x_seen), float(p.R[row] @ h_prev_all), float(p.b[row])
        a = wx + rh + b
        gates.append(GateTerms(name, row, wx, rh, b, a, act_name, _scalar(act.value, a, dtype)))
    i, f, g, o = (gate.value for gate in gates)
    h_prev, c_prev = float(prev.h[0, u]), float(prev.c[0, u])
    c = f * c_prev + i * g
    tanh_c = _scalar(lstm.act.state.value, c, dtype)
    h = o * tanh_c
    ref = run.reference
    if t == 0:
        ref_prev = [np.broadcast_to(s, (1, H))[0, u] for s in run.net.state[lstm.name]]
    else:
        ref_prev = [ref.h[t - 1, u], ref.c[t - 1, u]]
    mine = [h_prev, c_prev, i, f, g, o, c, h]
    theirs = [*ref_prev, *(v[t, u] for v in (ref.i, ref.f, ref.g, ref.o, ref.c, ref.h))]
    max_diff = _check("net.trace", mine, theirs, dtype)
    input_layer = cast(SequenceInput, run.net.layers[0])  # Network checks that it is one
    return StepDetails(
        layer=lstm.name,
        step=t + 1,
        unit=u + 1,
        num_steps=len(run.x),
        hidden_size=H,
        gate_activation=lstm.gate_activation,
        state_activation=lstm.state_activation,
        input_source=_input_source(run),
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
    )


def _check(against: str, mine: Sequence[float], theirs: Sequence[float], dtype: np.dtype) -> float:
    """max |mine − theirs|; a RuntimeError if it exceeds the tolerance for ``dtype``."""
    diff = float(np.max(np.abs(np.asarray(mine, float) - np.asarray(theirs, float))))
    if not diff <= TOLERANCE[np.dtype(dtype)]:
        raise RuntimeError(
            f"the explanation disagrees with {against}: max |diff| = {diff:.3g} > "
            f"{TOLERANCE[np.dtype(dtype)]:g}; lstm_ref.explain is out of date with the library"
        )
    return diff


def step_details(
    net: Network, x: Array, step: int, unit: int, layer: str | None = None
) -> StepDetails:
    """The numbers behind :func:`explain_step` (same arguments), checked against the trace.

    Raises
    ------
    ValueError
        If ``step``, ``unit`` or ``layer`` is out of range, or ``x`` is not one sequence.
    RuntimeError
        If a number computed here disagrees with :meth:`Network.trace` beyond the tolerance.
    """
    return _details_from_run(_run(net, x, step, unit, layer))


def _label_index(net: Network, label: Any) -> int:
    """Index of ``label`` in the network's class names, or a ValueError."""
    if not net.class_names:
        raise ValueError("explain_backward needs a network with class names")
    if not isinstance(label, str) or label not in net.class_names:
        raise ValueError(
            f"label must be one of the class names {list(net.class_names)}; got {label!r}"
        )
    return net.class_names.index(label)


def _loss(net: Network, x: Array, softmax: int, label: int) -> float:
    """The loss of ``x`` from the logits (the input of the softmax layer ``softmax``)."""
    logits, _ = _forward(net, x, softmax - 1)
    return float(cross_entropy(logits[:1], np.array([label]))[0])


def _central_difference(run: _Run, softmax: int, label: int, row: int) -> tuple[float, float]:
    """dL/db[row] by central difference on a copy of the network; returns (value, step)."""
    probe = run.net.astype(run.net.dtype)
    probe.state = run.net.state
    b = cast(LSTM, probe.layers[run.k]).params.b
    saved = float(b[row])
    eps = CENTRAL_DIFFERENCE_STEP * max(1.0, abs(saved))
    b[row] = saved + eps
    plus = _loss(probe, run.x, softmax, label)
    b[row] = saved - eps
    minus = _loss(probe, run.x, softmax, label)
    return (plus - minus) / (2 * eps), eps


@dataclass(frozen=True)
class _Carried:
    """What carrying dh and dc back from T to the explained step found."""

    table: tuple[tuple[int, float, float, float], ...]  # (t, dh_t, dc_t, f_t) of the unit
    dh: Array  # (1, H) dL/dh_t entering the explained step
    dc: Array  # (1, H) dL/dc_t entering it (from step t+1 only)
    step_grads: LSTMParams  # that step's contribution to dW, dR, db
    step_prev: LSTMState  # the gradients it sends to h_{t-1}, c_{t-1}
    db_total: Array  # (4H,) db summed over every step


def _gradient_at_lstm(run: _Run, softmax: int, dlogits: Array) -> Array:
    """dL/d(the LSTM layer's output), backpropagated from the logits through the layers above."""
    d = dlogits[None]
    for j in range(softmax - 1, run.k, -1):
        d, _ = run.net.layers[j].backward(d, run.caches[j])
    return d


def _carry_back(run: _Run, d_output: Array) -> _Carried:
    """Backpropagation through time with :func:`lstm_step_backward`, from T down to step 1.

    The loop of :func:`lstm_ref.lstm.lstm_backward` (whose masking does nothing for one
    sequence), written out because that function returns only the totals and the
    explanation needs the dh and dc entering each step from T down to the explained one.
    """
    p, u, last = run.lstm.params, run.u, run.lstm.output_mode == "last"
    dY = np.zeros_like(run.cache.trace.h) if last else d_output
    dh = d_output if last else np.zeros_like(d_output[:, 0])
    dc, db_total, table, found = np.zeros_like(dh), np.zeros_like(p.b), [], {}
    for t in reversed(range(len(run.x))):
        dh, gates = dh + dY[:, t], run.gates(t)
        if t >= run.t:
            table.append((t + 1, float(dh[0, u]), float(dc[0, u]), float(gates.f[0, u])))
        _, d_prev, grads = lstm_step_backward(
            p, run.cache.x[:, t], run.prev(t), gates, dh, dc, run.lstm.act
        )
        db_total += grads.b
        if t == run.t:
            found = {"dh": dh, "dc": dc, "step_grads": grads, "step_prev": d_prev}
        dh, dc = d_prev
    return _Carried(table=tuple(table), db_total=db_total, **found)


def backward_details(
    net: Network, x: Array, label: str, step: int, unit: int, layer: str | None = None
) -> BackwardDetails:
    """The numbers behind :func:`explain_backward` (same arguments), checked against the library.

    Raises
    ------
    ValueError
        If an argument is out of range, ``label`` is not a class name, or the network does
        not classify whole sequences (one softmax output per sequence).
    RuntimeError
        If a number computed here disagrees with :func:`lstm_step_backward` or
        :meth:`LSTM.backward` beyond the tolerance.
    """
    softmax = softmax_index(net)
    label_index = _label_index(net, label)
    run = _run(net, x, step, unit, layer, upto=softmax)
    if run.output.ndim != 2:
        raise ValueError(
            "explain_backward needs a sequence-to-label network (one output per sequence); "
            f"this one gives an output of shape {run.output.shape[1:]} per sequence"
        )
    fwd = _details_from_run(run)
    u, lstm, dtype = run.u, run.lstm, run.lstm.params.W.dtype
    probs = run.output[0]
    dlogits = probs.copy()  # softmax and cross-entropy together: dL/dz = p − onehot
    dlogits[label_index] -= 1
    d_output = _gradient_at_lstm(run, softmax, dlogits)
    above = run.net.layers[run.k + 1 : softmax]
    fc_column = None
    if len(above) == 1 and isinstance(above[0], FullyConnected):
        fc_column = above[0].weights[:, u]
    carried = _carry_back(run, d_output)

    # the backward step of this unit, one scalar at a time, beside lstm_step_backward's lines
    i, f, g, o = (gate.value for gate in fwd.gates)
    dh, dc_in = float(carried.dh[0, u]), float(carried.dc[0, u])
    do = dh * fwd.tanh_c
    dstate = _scalar(lstm.act.state.grad, fwd.tanh_c, dtype)
    dc = dc_in + dh * o * dstate
    di, df, dg, dc_prev = dc * g, dc * fwd.c_prev, dc * i, dc * f
    acts = _activations(lstm)
    dact = tuple(_scalar(acts[gate.name][1].grad, gate.value, dtype) for gate in fwd.gates)
    da = tuple(dv * s for dv, s in zip((di, df, dg, do), dact, strict=True))

    rows = [gate.row for gate in fwd.gates]
    _, library = lstm.backward(d_output, run.cache)
    mine = [*da, dc_prev, float(carried.db_total[rows[0]])]
    theirs = [*carried.step_grads.b[rows], carried.step_prev.c[0, u], library["b"][rows[0]]]
    if fc_column is not None and lstm.output_mode == "last":
        mine.append(float(fc_column @ dlogits))
        theirs.append(d_output[0, u])
    max_diff = _check("lstm_step_backward / LSTM.backward", mine, theirs, dtype)
    numeric, eps = _central_difference(run, softmax, label_index, rows[0])
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
        carried=carried.table,
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
        dh_prev=float(carried.step_prev.h[0, u]),
        db_total=float(carried.db_total[rows[0]]),
        db_numeric=numeric,
        eps=eps,
        max_diff=max_diff,
        tolerance=TOLERANCE[np.dtype(dtype)],
    )


# ------------------------------------------------------------------- quoting
def code_line(func: Callable[..., Any], pattern: str) -> str:
    """The one line of ``func``'s code (docstring excluded) matching the regex ``pattern``.

    Read from the source at run time and stripped of its indentation, so a quote of it
    always shows the code that runs. A RuntimeError if no line or several lines match.
    """
    source = textwrap.dedent(inspect.getsource(func))
    definition = ast.parse(source).body[0]
    if not isinstance(definition, ast.FunctionDef):
        raise TypeError(f"expected a function; got {func!r}")
    body = definition.body[1:] if ast.get_docstring(definition) else definition.body
    lines = [line.strip() for line in source.splitlines()[body[0].lineno - 1 :]]
    found = [line for line in lines if re.search(pattern, line)]
    if len(found) != 1:
        raise RuntimeError(
            f"expected one line of {func.__name__} matching {pattern!r}; found {len(found)}: "
            "lstm_ref.explain is out of date with the library"
        )
    return found[0]


# ------------------------------------------------------------------ formatting
INDENT = "   "  # body text of a section
EQUATION = "         "  # an equation, under its quoted line of code
WIDTH = 96  # longer equations break at their "=" signs


def _n(v: float) -> str:
    """A number with 6 significant digits (and no minus sign on zero)."""
    return f"{v + 0.0:.6g}"


def _p(v: float) -> str:
    """A number as a factor or term: negative numbers in parentheses."""
    return f"({_n(v)})" if v < 0 else _n(v)


def _width(text: str) -> int:
    """Display width: combining marks (the tilde of x̃) take no column."""
    return sum(not unicodedata.combining(ch) for ch in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Aligned columns: numbers to the right (floats with 6 significant digits), text left."""
    cells = [list(headers)] + [[_n(v) if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(_width(row[j]) for row in cells) for j in range(len(headers))]
    left = [isinstance(v, str) for v in rows[0]]

    def cell(text: str, j: int) -> str:
        pad = " " * (widths[j] - _width(text))
        return text + pad if left[j] else pad + text

    return [INDENT + "  ".join(cell(c, j) for j, c in enumerate(row)).rstrip() for row in cells]


def _code(func: Callable[..., Any], pattern: str) -> str:
    """The line of ``func`` that matches ``pattern``, quoted."""
    return f"{INDENT}code: {code_line(func, pattern)}"


def _equation(lhs: str, *steps: str, note: str = "") -> list[str]:
    """``lhs = step = step …`` on one line, or one ``= step`` per line when too long."""
    line = f"{EQUATION}{lhs} = {' = '.join(steps)}"
    if _width(line) <= WIDTH:
        lines = [line]
    else:
        pad = " " * _width(f"{EQUATION}{lhs} ")
        lines = [f"{EQUATION}{lhs} = {steps[0]}", *(f"{pad}= {s}" for s in steps[1:])]
    if note:
        if _width(f"{lines[-1]}    {note}") <= WIDTH:
            lines[-1] += f"    {note}"
        else:
            lines.append(f"{EQUATION}({note})")
    return lines


def _openness(v: float) -> str:
    if v in (0, 1):
        return "closed" if v == 0 else "open"
    return "nearly closed" if v < 0.1 else "nearly open" if v > 0.9 else "partly open"


def _gate_comment(gate: GateTerms) -> str:
    share = f"{100 * gate.value:.0f}%"
    return {
        "i": f"{_openness(gate.value)}: lets in {share} of the candidate g",
        "f": f"{_openness(gate.value)}: keeps {share} of c_{{t-1}}",
        "g": "the new content offered to the cell, in (−1, 1)",
        "o": f"{_openness(gate.value)}: shows {share} of the squashed cell as h_t",
    }[gate.name]


def _derivative(activation: str, y: str) -> str:
    """The derivative of ``activation`` written through its value ``y``, as a factor."""
    return DERIVATIVES.get(activation, f"{activation}'").format(y=y)


def _header(d: StepDetails, title: str) -> list[str]:
    H, u = d.hidden_size, d.unit
    return [
        f"{title}: hidden unit {u}, time step {d.step} of {d.num_steps}, layer {d.layer!r}",
        f"({H} hidden units; σ_g = {d.gate_activation}, σ_s = {d.state_activation}. Steps and "
        "units count from 1; rows of W, R and b",
        f"from 0: unit {u}'s row in gate block k = {_list(range(len(GATE_NAMES)))} "
        f"({_list(GATE_NAMES)}) is k·{H} + {u - 1}.)",
    ]


def _list(items: Sequence[Any]) -> str:
    return ", ".join(map(str, items))


def _check_line(against: str, diff: float, tolerance: float) -> str:
    return f"matches {against}: max |diff| = {diff:.3g} (tolerance {tolerance:g})"


def _join(sections: Sequence[Sequence[str]]) -> str:
    return "\n\n".join("\n".join(lines) for lines in sections)


def _input_lines(d: StepDetails) -> list[str]:
    t = d.step
    lines = [f"1. The input at step {t}"]
    if d.input_source is not None:
        lines.append(f"{INDENT}x̃_t is the output of layer {d.input_source!r} at step {t}.")
        return [
            *lines,
            *_table(["input", "x̃_t"], [[j + 1, float(v)] for j, v in enumerate(d.x_seen)]),
        ]
    columns: list[tuple[str, Array]] = [("x_t", d.x_raw)]
    if d.mean is not None and d.std is not None:
        lines.append(f"{INDENT}The input layer z-scores each feature: x̃_t = (x_t − mean) / std.")
        columns += [("mean", d.mean), ("std", d.std)]
    elif d.mean is not None:
        lines.append(f"{INDENT}The input layer centres each feature: x̃_t = x_t − mean.")
        columns.append(("mean", d.mean))
    else:
        lines.append(f"{INDENT}The input layer passes the data unchanged: x̃_t = x_t.")
    columns.append(("x̃_t", d.x_seen))
    rows = [[j + 1, *(float(a[j]) for _, a in columns)] for j in range(len(d.x_seen))]
    return [*lines, *_table(["feature", *(name for name, _ in columns)], rows)]


def _state_lines(d: StepDetails) -> list[str]:
    H, t, u = d.hidden_size, d.step, d.unit
    if t == 1:
        where = "h_0 and c_0, the layer's starting state (zeros unless set)"
    else:
        where = f"h and c as step {t - 1} left them"
    return [
        f"2. The state entering step {t}: {where}",
        f"{INDENT}h_{{t-1}}[{u}] = {_n(d.h_prev)}    c_{{t-1}}[{u}] = {_n(d.c_prev)}",
        f"{INDENT}h_{{t-1}} of ALL {H} units enters through R (each row of R has {H} weights):",
        f"{INDENT}R[row]·h_{{t-1}} = Σ_j R[row, j]·h_{{t-1}}[j]. "
        "c_{t-1} enters only this unit's own cell.",
    ]


def _terms(g: GateTerms) -> tuple[float, float, float, float]:
    return g.input_term, g.recurrent_term, g.bias, g.preactivation


def _preactivation_lines(d: StepDetails) -> list[str]:
    weights = [
        [j + 1, float(d.x_seen[j]), *map(float, d.w_rows[:, j])] for j in range(len(d.x_seen))
    ]
    terms = [[f"{g.name} ({GATE_ROLES[g.name]})", g.row, *_terms(g)] for g in d.gates]
    return [
        "3. The pre-activations: one row of W, R and b per gate",
        _code(lstm_step, r"^a = "),
        f"{INDENT}The unit's four rows of W, one weight per input; "
        "W[row]·x̃_t = Σ_j W[row, j]·x̃_t[j]:",
        *_table(["input", "x̃_t", *(f"W[{g.row}, j] ({g.name})" for g in d.gates)], weights),
        "",
        *_table(["gate", "row", "W[row]·x̃_t", "R[row]·h_{t-1}", "b[row]", "a = sum"], terms),
    ]


def _activation_lines(d: StepDetails) -> list[str]:
    lines = ["4. The gates: an activation applied to each pre-activation"]
    for g in d.gates:
        lines += [
            _code(lstm_step, rf"^{g.name} = "),
            *_equation(
                g.name,
                f"{g.activation}({_n(g.preactivation)})",
                _n(g.value),
                note=_gate_comment(g),
            ),
        ]
    return lines


def _state_update_lines(d: StepDetails) -> list[str]:
    i, f, g, o = (gate.value for gate in d.gates)
    s = d.state_activation
    return [
        "5. The new cell state and hidden state",
        _code(lstm_step, r"^c = "),
        *_equation(
            "c_t",
            "f·c_{t-1} + i·g",
            f"{_n(f)} × {_p(d.c_prev)} + {_n(i)} × {_p(g)}",
            f"{_n(f * d.c_prev)} + {_p(i * g)}",
            _n(d.c),
        ),
        _code(lstm_step, r"^h = "),
        *_equation(
            "h_t",
            f"o·{s}(c_t)",
            f"{_n(o)} × {s}({_n(d.c)})",
            f"{_n(o)} × {_p(d.tanh_c)}",
            _n(d.h),
        ),
    ]


def format_step(d: StepDetails) -> str:
    """The text of :func:`explain_step` for the numbers ``d``."""
    return _join(
        [
            _header(d, "One LSTM time step"),
            _input_lines(d),
            _state_lines(d),
            _preactivation_lines(d),
            _activation_lines(d),
            _state_update_lines(d),
            [_check_line("net.trace", d.max_diff, d.tolerance)],
        ]
    )


def explain_step(net: Network, x: Array, step: int, unit: int, layer: str | None = None) -> str:
    """A plain-text walk through one LSTM time step for one hidden unit, with the real numbers.

    Parameters
    ----------
    net : Network
        The network (its current state is the starting state, as :meth:`Network.trace`).
    x : ndarray, shape (T, C)
        One sequence, time × features.
    step : int
        The time step, 1-based (1 … T).
    unit : int
        The hidden unit, 1-based (1 … H).
    layer : str, optional
        Name of the LSTM layer (default the first).

    Returns
    -------
    str
        The input x_t and the input x̃_t the layer sees; h_{t-1} and c_{t-1} of the unit;
        for each gate i, f, g, o its row of W, R and b, the terms W[row]·x̃_t,
        R[row]·h_{t-1}, b[row], their sum and the gate's value; c_t and h_t — each
        equation beside its line of :func:`lstm_step`, and a last line saying how far the
        numbers are from :meth:`Network.trace`.

    Raises
    ------
    ValueError
        If ``step``, ``unit`` or ``layer`` is out of range, or ``x`` is not one sequence.
    RuntimeError
        If a printed number disagrees with :meth:`Network.trace` beyond 1e-12 (float64).
    """
    return format_step(step_details(net, x, step, unit, layer))


def _output_lines(b: BackwardDetails) -> list[str]:
    u = b.forward.unit
    lines = [
        "1. The loss, and its gradient down to the LSTM's output",
        f"{INDENT}L = −log p[{b.label!r}] = −log({_n(float(b.probs[b.label_index]))}) = "
        f"{_n(b.loss)}",
        f"{INDENT}Softmax and cross-entropy together: dL/dz = p − onehot (z: the logits).",
    ]
    headers = ["class", "p", "onehot", "dL/dz"]
    rows = [
        [name, float(b.probs[k]), int(k == b.label_index), float(b.dlogits[k])]
        for k, name in enumerate(b.class_names)
    ]
    if b.fc_column is not None:
        headers += [f"{b.layers_above[0]}.weights[k, {u - 1}]", "product"]
        rows = [
            [*row, float(w), float(w * dz)]
            for row, w, dz in zip(rows, b.fc_column, b.dlogits, strict=True)
        ]
    lines += _table(headers, rows)
    if b.output_mode == "sequence":
        return [
            *lines,
            f"{INDENT}Through layers {list(b.layers_above)}: the gradient of this layer's output",
            f"{INDENT}at step t joins dh_t at every step; at t = T it is {_n(b.d_output)}.",
        ]
    if b.fc_column is not None:
        how = f"Σ_k {b.layers_above[0]}.weights[k, {u - 1}]·dL/dz_k (the last column's sum)"
    else:
        how = f"through layers {list(b.layers_above)} (their backward)"
    return [*lines, f"{INDENT}dL/dh_T[{u}] = {how} = {_n(b.d_output)}"]


def _carry_lines(b: BackwardDetails) -> list[str]:
    d, u = b.forward, b.forward.unit
    return [
        f"2. Carrying dh and dc back from t = {d.num_steps} to t = {d.step} "
        "(lstm_step_backward, all units at once)",
        f"{INDENT}dc reaches step t−1 as dc·f_t, after adding the path through h_t; dh reaches",
        f"{INDENT}it as Rᵀ·da, which mixes the gradients of all {d.hidden_size} units.",
        *_table(
            ["t", f"dh_t[{u}] (in)", f"dc_t[{u}] (in)", f"f_t[{u}]"],
            [[t, dh, dc, f] for t, dh, dc, f in b.carried],
        ),
    ]


def _step_backward_lines(b: BackwardDetails) -> list[str]:
    d = b.forward
    i, f, g, o = (gate.value for gate in d.gates)
    s = d.state_activation
    gate_lines = []
    for gate, dv, dact, da in zip(d.gates, (b.di, b.df, b.dg, b.do), b.dact, b.da, strict=True):
        n = gate.name
        gate_lines += [
            _code(lstm_step_backward, rf"d{n} \* act\.\w+\.grad\({n}\)"),
            *_equation(
                f"da_{n}",
                f"d{n}·{_derivative(gate.activation, n)}",
                f"{_p(dv)} × {_p(dact)}",
                _n(da),
            ),
        ]
    return [
        f"3. Step {d.step}, unit {d.unit}, line by line (the mirror of the forward lines)",
        f"{INDENT}incoming: dh_t = {_n(b.dh)}    dc_t = {_n(b.dc_in)}",
        _code(lstm_step_backward, r"^s = "),
        *_equation(f"{s}(c_t)", f"{s}({_n(d.c)})", _n(d.tanh_c)),
        _code(lstm_step_backward, r"^do = "),
        *_equation("do", f"dh·{s}(c_t)", f"{_p(b.dh)} × {_p(d.tanh_c)}", _n(b.do)),
        _code(lstm_step_backward, r"^dc = "),
        *_equation(
            "dc",
            f"dc_t + dh·o·{_derivative(s, f'{s}(c_t)')}",
            f"{_p(b.dc_in)} + {_p(b.dh)} × {_n(o)} × {_n(b.dstate)}",
            _n(b.dc),
        ),
        _code(lstm_step_backward, r"^di, df, dg, dc_prev = "),
        *_equation("di", "dc·g", f"{_p(b.dc)} × {_p(g)}", _n(b.di)),
        *_equation("df", "dc·c_{t-1}", f"{_p(b.dc)} × {_p(d.c_prev)}", _n(b.df)),
        *_equation("dg", "dc·i", f"{_p(b.dc)} × {_n(i)}", _n(b.dg)),
        *_equation(
            "dc_{t-1}",
            "dc·f",
            f"{_p(b.dc)} × {_n(f)}",
            _n(b.dc_prev),
            note="the dc_t step t−1 receives",
        ),
        f"{INDENT}Then through each gate's activation, its derivative written through its value:",
        *gate_lines,
    ]


def _gradient_lines(b: BackwardDetails) -> list[str]:
    d, u = b.forward, b.forward.unit
    H = d.hidden_size
    rows = len(GATE_NAMES) * H
    return [
        f"4. What step {d.step} adds to the gradients of the unit's rows, and what it sends back",
        _code(lstm_step_backward, r"^grads = "),
        *_table(
            ["gate", "row", "da = what db[row] gets"],
            [[g.name, g.row, da] for g, da in zip(d.gates, b.da, strict=True)],
        ),
        f"{INDENT}dW[row, :] gets da·x̃_t (the {len(d.x_seen)} inputs of step {d.step});",
        f"{INDENT}dR[row, :] gets da·h_{{t-1}} (the h_{{t-1}} of all {H} units).",
        _code(lstm_step_backward, r"^return "),
        f"{INDENT}dh_{{t-1}}[{u}] = Σ_row R[row, {u - 1}]·da[row] over all {rows} rows "
        f"(every unit's gates) = {_n(b.dh_prev)}",
        f"{INDENT}dc_{{t-1}}[{u}] = dc·f = {_n(b.dc_prev)}",
    ]


def _total_lines(b: BackwardDetails) -> list[str]:
    d = b.forward
    row = d.gates[0].row
    return [
        f"5. The whole gradient of the input gate's bias b[{row}]: its da_i summed over all "
        f"{d.num_steps} steps",
        f"{INDENT}dL/db[{row}] = Σ_t da_i(t) = {_n(b.db_total)}",
        f"{INDENT}central difference (L(b[{row}] + ε) − L(b[{row}] − ε)) / 2ε with ε = {b.eps:g}: "
        f"{_n(b.db_numeric)}",
        f"{INDENT}relative difference: {b.relative_difference:.2g}",
    ]


def format_backward(b: BackwardDetails) -> str:
    """The text of :func:`explain_backward` for the numbers ``b``."""
    return _join(
        [
            _header(b.forward, "Backpropagation through time"),
            _output_lines(b),
            _carry_lines(b),
            _step_backward_lines(b),
            _gradient_lines(b),
            _total_lines(b),
            [_check_line("lstm_step_backward and LSTM.backward", b.max_diff, b.tolerance)],
        ]
    )


def explain_backward(
    net: Network, x: Array, label: str, step: int, unit: int, layer: str | None = None
) -> str:
    """A plain-text walk through backpropagation through time for one unit at one step.

    Parameters
    ----------
    net : Network
        A sequence-to-label network ending in a Softmax layer (its current state is the
        starting state).
    x : ndarray, shape (T, C)
        One sequence, time × features.
    label : str
        The true class of ``x``, one of ``net.class_names``.
    step, unit : int
        The time step (1 … T) and hidden unit (1 … H), 1-based.
    layer : str, optional
        Name of the LSTM layer (default the first).

    Returns
    -------
    str
        The loss −log p[label]; dL/dz = p − onehot; dL/dh_T of the unit through the layers
        above; dh and dc of the unit carried back from T to ``step`` with
        :func:`lstm_step_backward`; at ``step`` every line of the backward step with the
        numbers (do, dc, di, df, dg, dc_{t-1}, each gate's da); that step's contribution to
        db, dW and dR; the total dL/db of the input-gate row against a central difference
        of the loss; and how far the numbers are from the library's backward pass.

    Raises
    ------
    ValueError
        If an argument is out of range or ``label`` is not a class name.
    RuntimeError
        If a printed number disagrees with the library beyond 1e-12 (float64).
    """
    return format_backward(backward_details(net, x, label, step, unit, layer))
