"""The loops over time: the reference LSTM run over a batch of sequences, forward and back.

:func:`lstm_forward` runs :func:`lstm_ref.lstm.lstm_step` (or a variant's step) at every
time step; :func:`lstm_backward` is backpropagation through time, built from the backward
steps written beside them in :mod:`lstm_ref.lstm`. A reverse direction runs the same loop
over each sequence reversed within its own length (:func:`reverse_in_time`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np

from .lstm import (
    DEFAULT_ACTIVATIONS,
    CellVariant,
    Gates,
    LSTMActivations,
    LSTMParams,
    LSTMState,
    lstm_step,
    lstm_step_backward,
    variant_step,
    variant_step_backward,
)

Array = np.ndarray


def reverse_in_time(x: Array, lengths: Array | None) -> Array:
    """Each sequence of ``x`` (B, T, …) reversed over its own steps; padding stays put.

    With ``lengths`` (B,) row b becomes x[b, n−1], …, x[b, 0], x[b, n], …, x[b, T−1] for
    n = lengths[b] — so a reverse direction starts at each sequence's *own* last step, as
    PyTorch's packed sequences and ONNX's ``sequence_lens`` do. None: the whole padded
    time axis is reversed (MATLAB's bilstm on a padded batch). Its own inverse.
    """
    if lengths is None:
        return x[:, ::-1]
    T = x.shape[1]
    t = np.arange(T)
    n = lengths[:, None]
    index = np.where(t < n, n - 1 - t, t)  # (B, T) the source step of every step
    return np.take_along_axis(x, index.reshape(*index.shape, *(1,) * (x.ndim - 2)), axis=1)


def step_mask(lengths: Array | None, t: int) -> Array | None:
    """(B, 1) boolean: which sequences are still running at step t (None: all of them)."""
    return None if lengths is None else (t < lengths)[:, None]


def lstm_forward(
    p: LSTMParams,
    x: Array,
    state0: LSTMState,
    lengths: Array | None = None,
    act: LSTMActivations = DEFAULT_ACTIVATIONS,
    variant: CellVariant | None = None,
) -> tuple[Array, LSTMState, Gates]:
    """Run the LSTM over a batch of sequences.

    Parameters
    ----------
    p : LSTMParams
    x : ndarray, shape (B, T, C)
        A batch, time along axis 1.
    state0 : LSTMState
        Initial h and c, each (B, H).
    lengths : ndarray of int, shape (B,), optional
        *Masked* semantics: sequence b stops at ``lengths[b]``; its state is held from
        then on and its outputs (and trace) are zero there, like PyTorch's packed
        sequences. None: every step of ``x`` is data (MATLAB's semantics for a padded
        batch: the padding is processed like any other input).
    variant : CellVariant, optional
        Run :func:`variant_step` with these options instead of :func:`lstm_step`.

    Returns
    -------
    Y : ndarray, shape (B, T, H)
        h_t at every step ((B, T, P) with a projection).
    final : LSTMState
        The state after each sequence's last step, each (B, H).
    trace : Gates
        i, f, g, o, c, h at every step, each (B, T, H) (h (B, T, P)).
    """
    B, T, _ = x.shape
    H, H_out = p.b.shape[0] // 4, p.R.shape[1]
    widths = {name: H_out if name == "h" else H for name in Gates._fields}
    trace = Gates(*(np.zeros((B, T, widths[n]), dtype=x.dtype) for n in Gates._fields))
    step: Callable[..., Gates] = lstm_step if variant is None else partial(variant_step, v=variant)
    state = state0
    for t in range(T):
        gates = step(p, x[:, t], state, act)
        alive = step_mask(lengths, t)
        if alive is not None:
            gates = Gates(*(np.where(alive, v, 0) for v in gates))
            state = LSTMState(np.where(alive, gates.h, state.h), np.where(alive, gates.c, state.c))
        else:
            state = LSTMState(gates.h, gates.c)
        for name, value in zip(Gates._fields, gates, strict=True):
            getattr(trace, name)[:, t] = value
    return trace.h, state, trace


class StepGradients(NamedTuple):
    """What backpropagation through time computed at every step, each (B, T, ·)."""

    dh: Array  # (B, T, H)  dL/dh_t entering step t: from the outputs and from step t+1 (P)
    dc: Array  # (B, T, H)  dL/dc_t entering step t from step t+1 only
    da: Array  # (B, T, 4H) dL/da_t: step t's share of db (and, times x_t, h_{t-1}, of dW, dR)
    dh_prev: Array  # (B, T, H) what step t sends back to h_{t-1} ((B, T, P))
    dc_prev: Array  # (B, T, H) what step t sends back to c_{t-1}


def lstm_backward(
    p: LSTMParams,
    x: Array,
    state0: LSTMState,
    trace: Gates,
    dY: Array,
    d_final: LSTMState,
    lengths: Array | None = None,
    act: LSTMActivations = DEFAULT_ACTIVATIONS,
    variant: CellVariant | None = None,
    *,
    keep_steps: bool = False,
) -> tuple[Array, LSTMParams, LSTMState, StepGradients | None]:
    """Backpropagation through time: the gradients of :func:`lstm_forward`.

    Parameters
    ----------
    p, x, state0, lengths, act, variant
        As given to :func:`lstm_forward` (a variant's W_hr and peephole gradients are
        :func:`projection_gradient` and :func:`peephole_gradient` of the kept steps).
    trace : Gates
        The trace :func:`lstm_forward` returned.
    dY : ndarray, shape (B, T, H)
        Gradient of the loss with respect to the outputs Y.
    d_final : LSTMState
        Gradient with respect to the final state, each (B, H).
    keep_steps : bool
        Also return what every step received and computed (for explanations and checks).

    Returns
    -------
    dx : ndarray, shape (B, T, C)
    grads : LSTMParams
        dW (4H, C), dR (4H, H), db (4H,).
    d_state0 : LSTMState
        Gradients with respect to the initial h and c, each (B, H).
    steps : StepGradients or None
        With ``keep_steps``, the per-step gradients.
    """
    B, T = x.shape[:2]
    H, H_out = p.b.shape[0] // 4, p.R.shape[1]
    dx = np.zeros_like(x)
    grads = LSTMParams(*(np.zeros_like(w) for w in p))
    steps = None
    if keep_steps:
        widths = (H_out, H, 4 * H, H_out, H)
        steps = StepGradients(*(np.zeros((B, T, n), x.dtype) for n in widths))
    step_backward: Callable[..., tuple[Array, LSTMState, LSTMParams, Array]] = (
        lstm_step_backward if variant is None else partial(variant_step_backward, v=variant)
    )
    dh, dc = d_final
    for t in reversed(range(T)):
        prev = state0 if t == 0 else LSTMState(trace.h[:, t - 1], trace.c[:, t - 1])
        gates = Gates(*(v[:, t] for v in trace))
        alive = step_mask(lengths, t)
        # h_t = alive ? h_new : h_{t-1}, and the output at step t is alive ? h_new : 0
        dh_new = dh + dY[:, t] if alive is None else np.where(alive, dh + dY[:, t], 0)
        dc_new = dc if alive is None else np.where(alive, dc, 0)
        dx[:, t], d_prev, step_grads, da = step_backward(
            p, x[:, t], prev, gates, dh_new, dc_new, act
        )
        for total, part in zip(grads, step_grads, strict=True):
            total += part
        if steps is not None:
            steps.dh[:, t], steps.dc[:, t], steps.da[:, t] = dh_new, dc_new, da
            steps.dh_prev[:, t], steps.dc_prev[:, t] = d_prev
        if alive is None:
            dh, dc = d_prev
        else:  # finished sequences hand their gradient straight back to the held state
            dh = d_prev.h + np.where(alive, 0, dh)
            dc = d_prev.c + np.where(alive, 0, dc)
    return dx, grads, LSTMState(dh, dc), steps
