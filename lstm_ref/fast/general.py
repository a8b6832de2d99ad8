"""The fast path's step for every other LSTM cell: any gate, state and output activation,
peepholes, a clipped pre-activation, the coupled input-forget gate and a projection — the
arithmetic of :func:`lstm_ref.lstm.variant_step`, on the compiled product of
:mod:`lstm_ref.fast.step` and its time-major, sorted and shrinking batches.

The reference cell (sigmoid gates, tanh state, no options) keeps the eight-call step of
:func:`lstm_ref.fast.step.fast_steps`; this one spends a few more calls a step on what the
options add, and none on what they do not use.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..activations import Activation
from ..lstm import CellVariant, LSTMActivations

Array = np.ndarray


class Cell(NamedTuple):
    """What an LSTM cell computes beyond the product, compiled (a snapshot).

    Attributes
    ----------
    gate, state, output : Activation
        σ_g (i, f, o), σ_s (g) and σ_h (h = o ⊙ σ_h(c)).
    peephole : ndarray, shape (3, H), optional
        Rows p_i, p_f, p_o.
    clip : float, optional
    input_forget : bool
        f = 1 − i.
    projection_t : ndarray, shape (H, P), optional
        W_hrᵀ: h = (o ⊙ σ_h(c)) W_hrᵀ.
    """

    gate: Activation
    state: Activation
    output: Activation
    peephole: Array | None
    clip: float | None
    input_forget: bool
    projection_t: Array | None

    @classmethod
    def of(cls, act: LSTMActivations, v: CellVariant | None, dtype: np.dtype) -> Cell:
        """The cell of activations ``act`` and options ``v`` (copies of their arrays)."""
        if v is None:
            return cls(act.gate, act.state, act.state, None, None, False, None)
        peephole = None if v.peephole is None else v.peephole.astype(dtype)
        projection_t = None if v.projection is None else v.projection.T.astype(dtype, order="C")
        return cls(
            act.gate, act.state, v.sigma_h(act), peephole, v.clip, v.input_forget, projection_t
        )

    def arrays(self) -> list[Array]:
        """The arrays it holds (its snapshot's copies)."""
        return [a for a in (self.peephole, self.projection_t) if a is not None]


def cell_steps(cell: Cell, M: Array, Z: Array, counts: list[int], c: Array) -> None:
    """Run ``cell`` over a time-major batch, as :func:`lstm_ref.fast.step.run_lstm` runs the
    reference cell.

    Parameters
    ----------
    cell : Cell
    M : ndarray, shape (C + 1 + P, 4H)
        The stacked weights, gate blocks g, f, i, o (unscaled).
    Z : ndarray, shape (T + 1, B, C + 1 + P)
        Z[t, :, :C] x_t, Z[:, :, C] ones, Z[0, :, C+1:] h_0; Z[t + 1, :n, C+1:] receives h_t.
    counts : list of int
        The rows (a prefix) running at each step.
    c : ndarray, shape (B, H)
        c_0, updated in place to each row's final c.
    """
    H = c.shape[1]
    C1 = Z.shape[2] - (H if cell.projection_t is None else cell.projection_t.shape[1])
    lo, hi = (None, None) if cell.clip is None else (-cell.clip, cell.clip)
    for t, n in enumerate(counts):
        a = Z[t, :n] @ M  # (n, 4H): g, f, i, o
        c_prev = c[:n]
        a_g, a_f, a_i, a_o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        if cell.peephole is not None:
            a_i += cell.peephole[0] * c_prev
            a_f += cell.peephole[1] * c_prev
        if lo is not None:
            np.clip(a[:, : 3 * H], lo, hi, out=a[:, : 3 * H])
        i = cell.gate.value(a_i)
        f = 1 - i if cell.input_forget else cell.gate.value(a_f)
        c_new = f * c_prev + i * cell.state.value(a_g)
        if cell.peephole is not None:
            a_o += cell.peephole[2] * c_new  # the output gate reads the new cell state
        if lo is not None:
            np.clip(a_o, lo, hi, out=a_o)
        m = cell.gate.value(a_o) * cell.output.value(c_new)
        c[:n] = c_new
        h = Z[t + 1, :n, C1:]
        if cell.projection_t is None:
            h[...] = m
        else:
            np.matmul(m, cell.projection_t, out=h)
