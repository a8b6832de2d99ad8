"""The LSTM: one reference step that reads like the equations, and its backward step.

Shapes: B sequences in a batch, T time steps, C input features, H hidden units.
The stacked rows of ``W``, ``R`` and ``b`` are four blocks of H rows in the order
**i, f, g, o** (input gate, forget gate, cell candidate, output gate) — MATLAB's and
PyTorch's order. This module is the one place where that order is written down (``GATES``,
with each gate's role and activation); every importer maps its framework's layout onto it
with :func:`reorder_gates`.

The equations, for t = 1 … T, from (h_0, c_0)::

    a_t = W x_t + R h_{t-1} + b            pre-activations, 4H
    i_t = σ_g(a_t[i])                      input gate
    f_t = σ_g(a_t[f])                      forget gate
    g_t = σ_s(a_t[g])                      cell candidate
    o_t = σ_g(a_t[o])                      output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t        cell state
    h_t = o_t ⊙ σ_s(c_t)                   hidden state (the layer's output)

σ_g is the gate activation (sigmoid by default), σ_s the state activation (tanh).

The variants the frameworks add are one step function beside it, :func:`variant_step`
(the options in :class:`CellVariant`): ONNX's peepholes, cell clip and coupled input-forget
gate, a separate output activation σ_h for h_t = o_t ⊙ σ_h(c_t), and PyTorch's projection
h_t = W_hr (o_t ⊙ σ_h(c_t)), whose h has P < H values. A reverse direction is the same loop
over each sequence reversed in time. The loops over time, forward and backward, are in
:mod:`lstm_ref.lstm_loop`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from .activations import Activation, parse_activation
from .errors import InputError

Array = np.ndarray


class Gate(NamedTuple):
    """One of the four gate blocks: its name, its role, and which activation it applies."""

    name: str  # as in the equations: "i", "f", "g", "o"
    role: str  # what it does, for people
    activation: Literal["gate", "state"]  # σ_g or σ_s


GATES = (  # the order of the four row blocks of W, R and b: i, f, g, o
    Gate("i", "input gate", "gate"),
    Gate("f", "forget gate", "gate"),
    Gate("g", "cell candidate", "state"),
    Gate("o", "output gate", "gate"),
)
GATE_NAMES = tuple(gate.name for gate in GATES)
GATE = {gate.name: gate for gate in GATES}


def gate_rows(gate: str, H: int) -> slice:
    """The rows of W, R and b (or columns of the pre-activations) that belong to ``gate``."""
    k = GATE_NAMES.index(gate)
    return slice(k * H, (k + 1) * H)


def reorder_gates(
    blocks: Array, order: Sequence[str], axis: int = 0, *, inverse: bool = False
) -> Array:
    """Reorder the four gate blocks of ``blocks`` from ``order`` to i, f, g, o — or, with
    ``inverse``, from i, f, g, o to ``order`` (what an exporter writes).

    Parameters
    ----------
    blocks : ndarray, shape (4H, …) along ``axis``
        A weight matrix or bias whose blocks follow another framework's order.
    order : sequence of str
        That order, in this module's gate names: ONNX's i, o, f, c is ``"iofg"``;
        Keras's and PyTorch's i, f, c, o is ``"ifgo"`` (nothing to do).
    axis : int
        The stacked axis.

    Returns
    -------
    ndarray
        The same blocks, in the order i, f, g, o (``order`` with ``inverse``), a new array.
    """
    order = tuple(order)
    if sorted(order) != sorted(GATE_NAMES):
        raise InputError(f"order must name each gate of {GATE_NAMES} once; got {order}")
    if blocks.shape[axis] % 4:
        raise InputError(
            f"axis {axis} must hold four gate blocks (4H); got length {blocks.shape[axis]}"
        )
    parts = np.split(blocks, 4, axis=axis)
    if inverse:
        return np.concatenate([parts[GATE_NAMES.index(name)] for name in order], axis=axis)
    return np.concatenate([parts[order.index(name)] for name in GATE_NAMES], axis=axis)


class LSTMParams(NamedTuple):
    """The learnable parameters of one LSTM layer (plain arrays, nothing hidden)."""

    W: Array  # (4H, C) input weights, row blocks i, f, g, o
    R: Array  # (4H, H) recurrent weights ((4H, P) with a projection)
    b: Array  # (4H,)   bias (one vector, as in MATLAB; PyTorch's b_ih + b_hh)


class LSTMState(NamedTuple):
    """Hidden and cell state, each (B, H) — h is (B, P) with a projection. (The network's
    state API also holds (H,) rows.)"""

    h: Array
    c: Array


def copy_state(state: LSTMState) -> LSTMState:
    """A copy of ``state``'s h and c (arrays the caller may then change)."""
    return LSTMState(state.h.copy(), state.c.copy())


class Gates(NamedTuple):
    """Everything one step computes; each (B, H), or (B, T, H) in a trace over time."""

    i: Array  # input gate
    f: Array  # forget gate
    g: Array  # cell candidate
    o: Array  # output gate
    c: Array  # cell state c_t
    h: Array  # hidden state h_t = o ⊙ σ_s(c_t)


class LSTMActivations(NamedTuple):
    """The gate activation σ_g and the state activation σ_s (any of
    :mod:`lstm_ref.activations`, named by their spec strings)."""

    gate: Activation
    state: Activation

    @classmethod
    def from_names(cls, gate: str = "sigmoid", state: str = "tanh") -> LSTMActivations:
        return cls(parse_activation(gate, "gate"), parse_activation(state, "state"))

    def of(self, gate: str) -> Activation:
        """The activation the gate called ``gate`` applies (σ_s for g, σ_g for the others)."""
        return self.state if GATE[gate].activation == "state" else self.gate


DEFAULT_ACTIVATIONS = LSTMActivations.from_names()


def lstm_step(
    p: LSTMParams, x_t: Array, prev: LSTMState, act: LSTMActivations = DEFAULT_ACTIVATIONS
) -> Gates:
    """One LSTM time step — the equations above, line by line.

    Parameters
    ----------
    p : LSTMParams
        W (4H, C), R (4H, H), b (4H,).
    x_t : ndarray, shape (B, C)
        The input at this time step.
    prev : LSTMState
        h_{t-1} and c_{t-1}, each (B, H).
    act : LSTMActivations
        σ_g and σ_s.

    Returns
    -------
    Gates
        i, f, g, o, c_t, h_t, each (B, H).
    """
    sigma_g, sigma_s = act.gate.value, act.state.value
    H = p.b.shape[0] // 4
    a = x_t @ p.W.T + prev.h @ p.R.T + p.b  # (B, 4H) pre-activations
    i = sigma_g(a[:, gate_rows("i", H)])  # (B, H) input gate
    f = sigma_g(a[:, gate_rows("f", H)])  # (B, H) forget gate
    g = sigma_s(a[:, gate_rows("g", H)])  # (B, H) cell candidate
    o = sigma_g(a[:, gate_rows("o", H)])  # (B, H) output gate
    c = f * prev.c + i * g  # (B, H) cell state
    h = o * sigma_s(c)  # (B, H) hidden state
    return Gates(i, f, g, o, c, h)


def lstm_step_backward(
    p: LSTMParams,
    x_t: Array,
    prev: LSTMState,
    gates: Gates,
    dh: Array,
    dc: Array,
    act: LSTMActivations = DEFAULT_ACTIVATIONS,
) -> tuple[Array, LSTMState, LSTMParams, Array]:
    """The chain rule through :func:`lstm_step`, each line the mirror of a forward line.

    Parameters
    ----------
    p, x_t, prev, act
        As given to :func:`lstm_step`.
    gates : Gates
        What :func:`lstm_step` returned.
    dh : ndarray, shape (B, H)
        dL/dh_t: all that reaches h_t (from step t+1 and from the outputs).
    dc : ndarray, shape (B, H)
        The part of dL/dc_t that arrives from step t+1 through c_{t+1}; the path through
        h_t = o ⊙ σ_s(c_t) is added here.

    Returns
    -------
    dx_t : ndarray, shape (B, C)
    d_prev : LSTMState
        Gradients with respect to h_{t-1} and c_{t-1}.
    grads : LSTMParams
        This step's contribution to dW (4H, C), dR (4H, H), db (4H,).
    da : ndarray, shape (B, 4H)
        dL/da_t, the gradient of the pre-activations, row by row.
    """
    i, f, g, o, c, _ = gates
    H = c.shape[1]
    s = act.state.value(c)  # σ_s(c_t)
    do = dh * s  # h = o ⊙ σ_s(c)
    dc = dc + dh * o * act.state.grad(s)
    di, df, dg, dc_prev = dc * g, dc * prev.c, dc * i, dc * f  # c = f ⊙ c_prev + i ⊙ g
    da = np.empty((c.shape[0], 4 * H), dtype=c.dtype)  # (B, 4H) through the activations
    da[:, gate_rows("i", H)] = di * act.gate.grad(i)  # i = σ_g(a[i])
    da[:, gate_rows("f", H)] = df * act.gate.grad(f)  # f = σ_g(a[f])
    da[:, gate_rows("g", H)] = dg * act.state.grad(g)  # g = σ_s(a[g])
    da[:, gate_rows("o", H)] = do * act.gate.grad(o)  # o = σ_g(a[o])
    grads = LSTMParams(W=da.T @ x_t, R=da.T @ prev.h, b=da.sum(axis=0))  # a = W x + R h + b
    return da @ p.W, LSTMState(h=da @ p.R, c=dc_prev), grads, da


class CellVariant(NamedTuple):
    """The options :func:`variant_step` adds to the reference step; the defaults are none.

    Attributes
    ----------
    peephole : ndarray, shape (3, H), optional
        Rows p_i, p_f, p_o (this order): a_i += p_i ⊙ c_{t-1}, a_f += p_f ⊙ c_{t-1},
        a_o += p_o ⊙ c_t — the output gate reads the *new* cell state (ONNX ``P``).
    clip : float, optional
        Every pre-activation (after bias and peephole) clipped to [−clip, clip] (ONNX).
    input_forget : bool
        The forget gate coupled to the input gate, f = 1 − i (ONNX ``input_forget``).
    output : Activation, optional
        σ_h in h_t = o_t ⊙ σ_h(c_t) when it differs from σ_s (ONNX's third activation).
    projection : ndarray, shape (P, H), optional
        W_hr: h_t = W_hr (o_t ⊙ σ_h(c_t)), P values fed back through R (4H, P) (PyTorch
        ``proj_size``).
    """

    peephole: Array | None = None
    clip: float | None = None
    input_forget: bool = False
    output: Activation | None = None
    projection: Array | None = None

    def sigma_h(self, act: LSTMActivations) -> Activation:
        """The activation of h = o ⊙ σ_h(c): ``output``, else the state activation σ_s."""
        return act.state if self.output is None else self.output

    @property
    def used(self) -> list[str]:
        """The names of the options in use (none: the reference step)."""
        options = [
            ("peepholes", self.peephole is not None),
            ("cell clip", self.clip is not None),
            ("input_forget", self.input_forget),
            ("a separate output activation σ_h", self.output is not None),
            ("projection", self.projection is not None),
        ]
        return [name for name, on in options if on]


NO_VARIANT = CellVariant()


def variant_step(
    p: LSTMParams,
    x_t: Array,
    prev: LSTMState,
    act: LSTMActivations = DEFAULT_ACTIVATIONS,
    v: CellVariant = NO_VARIANT,
) -> Gates:
    """:func:`lstm_step` with the options of ``v`` (see :class:`CellVariant`).

    Shapes as in :func:`lstm_step`; with a projection, h_{t-1} and h_t are (B, P). With
    every option at its default this computes exactly what :func:`lstm_step` does.
    """
    sigma_g, sigma_s = act.gate.value, act.state.value
    sigma_h = v.sigma_h(act).value
    H = p.b.shape[0] // 4
    a = x_t @ p.W.T + prev.h @ p.R.T + p.b  # (B, 4H) pre-activations
    p_i, p_f, p_o = (0, 0, 0) if v.peephole is None else v.peephole  # (H,) each

    def clip(z: Array) -> Array:
        return z if v.clip is None else np.clip(z, -v.clip, v.clip)

    i = sigma_g(clip(a[:, gate_rows("i", H)] + p_i * prev.c))  # input gate
    f = 1 - i if v.input_forget else sigma_g(clip(a[:, gate_rows("f", H)] + p_f * prev.c))
    g = sigma_s(clip(a[:, gate_rows("g", H)]))  # cell candidate
    c = f * prev.c + i * g  # cell state
    o = sigma_g(clip(a[:, gate_rows("o", H)] + p_o * c))  # output gate: peephole on c_t
    h = o * sigma_h(c)  # hidden state …
    if v.projection is not None:
        h = h @ v.projection.T  # … projected to P values
    return Gates(i, f, g, o, c, h)


def variant_step_backward(
    p: LSTMParams,
    x_t: Array,
    prev: LSTMState,
    gates: Gates,
    dh: Array,
    dc: Array,
    act: LSTMActivations = DEFAULT_ACTIVATIONS,
    v: CellVariant = NO_VARIANT,
) -> tuple[Array, LSTMState, LSTMParams, Array]:
    """The chain rule through :func:`variant_step`, each line the mirror of a forward line.

    Takes and returns what :func:`lstm_step_backward` does (dh_t is (B, P) with a
    projection). The gradients of W_hr and of the peepholes come from the per-step
    gradients: :func:`projection_gradient`, :func:`peephole_gradient`. A clipped
    pre-activation passes no gradient.
    """
    i, f, g, o, c, _ = gates
    H = c.shape[1]
    sigma_h = v.sigma_h(act)
    p_i, p_f, p_o = (0, 0, 0) if v.peephole is None else v.peephole
    clip = v.clip
    a = None if clip is None else x_t @ p.W.T + prev.h @ p.R.T + p.b  # again, for the clip

    def through_clip(
        dz: Array, gate: str, peep: Array | float = 0.0, c_read: Array | float = 0.0
    ) -> Array:
        """d clip(z)/dz · dz, z = a[gate] + peep ⊙ c_read: 1 inside the clip, 0 outside."""
        if a is None or clip is None:
            return dz
        return np.where(np.abs(a[:, gate_rows(gate, H)] + peep * c_read) < clip, dz, 0)

    if v.projection is not None:
        dh = dh @ v.projection  # h = m W_hrᵀ
    s = sigma_h.value(c)
    do = dh * s  # m = o ⊙ σ_h(c)
    dz_o = through_clip(do * act.gate.grad(o), "o", p_o, c)
    dc = dc + dh * o * sigma_h.grad(s) + dz_o * p_o  # o reads c_t through its peephole
    di, df, dg, dc_prev = dc * g, dc * prev.c, dc * i, dc * f  # c = f ⊙ c_prev + i ⊙ g
    if v.input_forget:  # f = 1 − i
        di, df = di - df, np.zeros_like(df)
    dz_i = through_clip(di * act.gate.grad(i), "i", p_i, prev.c)
    dz_f = through_clip(df * act.gate.grad(f), "f", p_f, prev.c)
    dz_g = through_clip(dg * act.state.grad(g), "g")
    dc_prev = dc_prev + dz_i * p_i + dz_f * p_f  # i and f read c_{t-1} through theirs
    da = np.empty((c.shape[0], 4 * H), dtype=c.dtype)  # (B, 4H)
    for name, dz in (("i", dz_i), ("f", dz_f), ("g", dz_g), ("o", dz_o)):
        da[:, gate_rows(name, H)] = dz
    grads = LSTMParams(W=da.T @ x_t, R=da.T @ prev.h, b=da.sum(axis=0))
    return da @ p.W, LSTMState(h=da @ p.R, c=dc_prev), grads, da


def projection_gradient(trace: Gates, dh: Array, sigma_h: Activation) -> Array:
    """dW_hr (P, H) = Σ_t dh_tᵀ (o_t ⊙ σ_h(c_t)): ``dh`` (B, T, P) is what reached each
    projected h_t (``StepGradients.dh``), ``trace`` the forward trace."""
    m = trace.o * sigma_h.value(trace.c)  # (B, T, H); zero where a sequence has stopped
    return np.einsum("btp,bth->ph", dh, m)


def peephole_gradient(trace: Gates, state0: LSTMState, da: Array) -> Array:
    """d(p_i, p_f, p_o) (3, H): Σ_t of da_i ⊙ c_{t-1}, da_f ⊙ c_{t-1}, da_o ⊙ c_t, from the
    per-step pre-activation gradients ``da`` (B, T, 4H) (``StepGradients.da``)."""
    H = trace.c.shape[-1]
    c_prev = np.concatenate([state0.c[:, None], trace.c[:, :-1]], axis=1)  # (B, T, H)
    reads = (("i", c_prev), ("f", c_prev), ("o", trace.c))  # what each peephole multiplies
    return np.stack([(da[..., gate_rows(k, H)] * c).sum(axis=(0, 1)) for k, c in reads])
