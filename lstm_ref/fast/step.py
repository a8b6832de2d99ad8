"""One LSTM layer compiled for the fast path, and its steps: the arithmetic of
:func:`lstm_ref.lstm.lstm_step` in fewer, larger NumPy calls, tested equal to it.

What a compiled layer does differently, once, when it is compiled (:func:`compile_lstm`):

* **One fused product per step.** Each step multiplies the row ``z = [x_t, 1, h_{t-1}]`` by
  one stacked matrix ``M`` (C + 1 + H, 4H) — W, the bias b and R as its rows — into a
  preallocated buffer. The columns hold the gate blocks in the order **g, f, i, o**, and the
  buffer holds c just before them: the three sigmoid gates are contiguous, and one product of
  the neighbours (f, i) ⊙ (c, g) gives both terms of c_t (eight calls a step, :func:`fast_steps`).
* **The cheap sigmoid.** σ(a) = 0.5·tanh(0.5·a) + 0.5 exactly, so the columns of the sigmoid
  gates are scaled by 0.5 (exact in floating point) and one ``tanh`` runs over all 4H
  pre-activations; the gates then take ``·0.5 + 0.5``.
* **The input normalisation folded into the weights.** A ``SequenceInput`` with
  "zerocenter" or "zscore" becomes W/std and b − W·(mean/std): the raw data enter ``M``.
* **Time-major buffers** (T + 1, B, C + 1 + H): step t reads row t and writes h_t straight
  into the h columns of row t + 1, so neither x nor h is copied per step (:func:`run_lstm`).
  A batch keeps its gates in blocks (5, B, H), so that each element-wise call runs over
  contiguous memory (about 1.3–2× faster steps than rows of 5H); its product stays one
  plain matrix product into rows of 4H, which the first tanh reads by gate.
* **One sequence** runs in buffers kept from call to call (:class:`Work`), laid out so that
  the final h and c are one contiguous (2H,) block: the state goes out in one copy.

:mod:`lstm_ref.fast.engine` runs compiled layers over a network's batches.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..activations import GATE_ACTIVATIONS, STATE_ACTIVATIONS
from ..layers import LSTM, Layer, SequenceInput
from ..lstm import LSTMState, reorder_gates
from .general import Cell, cell_steps

Array = np.ndarray
FAST_ORDER = ("g", "f", "i", "o")  # column blocks of M: g, then the three sigmoid gates


class FastLSTM(NamedTuple):
    """One LSTM layer (one direction) compiled for the fast path (a snapshot of its weights).

    Attributes
    ----------
    name : str
    M : ndarray, shape (C + 1 + P, 4H)
        Rows: x, 1 (bias), h (P = H, or the projection's width); columns: gate blocks g, f,
        i, o; for the reference cell the sigmoid columns × 0.5; the first layer's input
        normalisation folded in.
    h0, c0 : ndarray, shape (P,) and (H,)
        The layer's initial state.
    last : bool
        Output mode "last" (the final h) rather than "sequence".
    C, H : int
        Input features and hidden units (cells).
    reverse : bool
        Each sequence runs from its own last step back to its first.
    cell : Cell or None
        None: the reference cell (sigmoid gates, tanh state, no options), run by
        :func:`fast_steps`; else what :func:`lstm_ref.fast.general.cell_steps` runs.
    """

    name: str
    M: Array
    h0: Array
    c0: Array
    last: bool
    C: int
    H: int
    reverse: bool = False
    cell: Cell | None = None

    @property
    def width(self) -> int:
        """P, the width of h (H, or the projection's)."""
        return self.M.shape[0] - self.C - 1


def covered(layer: Layer) -> bool:
    """Whether ``layer`` is a forward LSTM with the reference cell (see :func:`plain_cell`),
    what the fast training step computes."""
    return type(layer) is LSTM and layer.direction == "forward" and plain_cell(layer)


def plain_cell(layer: LSTM) -> bool:
    """Whether ``layer``'s cell is the reference cell: sigmoid gates and tanh state (however
    spelled) and none of the cell options."""
    return (
        layer.act.gate is GATE_ACTIVATIONS["sigmoid"]
        and layer.act.state is STATE_ACTIVATIONS["tanh"]
        and layer.variant is None
    )


def compile_lstm(
    layer: LSTM, norm: SequenceInput | None = None, last: bool | None = None
) -> FastLSTM:
    """``layer`` as a :class:`FastLSTM`, with ``norm``'s input normalisation folded in.

    Parameters
    ----------
    layer : LSTM
        Any LSTM layer (one direction).
    norm : SequenceInput, optional
        The input layer just before it: x' = (x − mean) / std gives W' = W / std and
        b' = b − W' · mean.
    last : bool, optional
        Overrides the layer's output mode ("last": True).
    """
    W, R, b = layer.params  # (4H, C), (4H, P), (4H,)
    H, C, P = b.shape[0] // 4, W.shape[1], R.shape[1]
    W, R, b = (reorder_gates(a, FAST_ORDER, inverse=True) for a in (W, R, b))
    if norm is not None and norm.std is not None:
        W = W / norm.std
    if norm is not None and norm.mean is not None:
        b = b - W @ norm.mean
    plain = plain_cell(layer)
    half = np.where(np.arange(4 * H) < H, 1.0, 0.5)  # σ = ½ tanh(½a) + ½
    scale = (half if plain else np.ones(4 * H)).astype(W.dtype)
    M = np.empty((C + 1 + P, 4 * H), dtype=W.dtype)
    np.multiply(W.T, scale, out=M[:C])
    np.multiply(b, scale, out=M[C])
    np.multiply(R.T, scale, out=M[C + 1 :])
    h0, c0 = layer._start  # (P,) and (H,), always set
    cell = None if plain else Cell.of(layer.act, layer.variant, W.dtype)
    return FastLSTM(
        layer.name,
        M,
        h0.copy(),
        c0.copy(),
        layer.output_mode == "last" if last is None else last,
        C,
        H,
        layer.direction == "reverse",
        cell,
    )


class StepBuffers(NamedTuple):
    """Views of one step's work buffer ``A``, whose blocks are c and then g, f, i, o (so that
    c, g and f, i are neighbours), and of the scratch ``p``: for one row ``A`` (5H,) and
    ``p`` (2H,); for n rows one block after the other, ``A`` (5, n, H) and ``p`` (2, n, H),
    so that each element-wise call runs over contiguous blocks, and the product goes to its
    own rows ``G`` (n, 4H) first (one plain matrix product, the same numbers whatever the
    number of BLAS threads)."""

    product: Callable[..., Any]  # ndarray.dot for one row, else np.matmul
    pre: Array  # (n, 4H) where the product goes: ``a`` itself for one row, else G
    pre_gates: Array  # (4, n, H) ``pre`` by gate, read by the first tanh
    a: Array  # (4, n, H) the gate values g, f, i, o
    sig: Array  # (3, n, H) the sigmoid gates f, i, o
    o: Array  # (n, H)
    f_i: Array  # (2, n, H) the forget and input gates
    c_g: Array  # (2, n, H) c_{t-1} and the cell candidate
    c: Array  # (n, H) the cell state, updated in place
    p: Array  # (2, n, H) scratch: f ⊙ c_{t-1}, i ⊙ g
    p_f: Array  # (n, H)
    p_i: Array  # (n, H)

    @classmethod
    def of(cls, A: Array, p: Array, G: Array | None = None) -> StepBuffers:
        if A.ndim == 1:  # one row (5H,): the product straight into a
            H = A.shape[0] // 5
            a = A[H:]
            return cls(
                np.ndarray.dot,  # the method: no dispatch through np.dot
                a,
                a,
                a,
                A[2 * H :],
                A[4 * H :],
                A[2 * H : 4 * H],
                A[: 2 * H],
                A[:H],
                p,
                p[:H],
                p[H:],
            )
        assert G is not None  # blocks (5, n, H), the product's rows G (n, 4H)
        return cls(np.matmul, G, by_gate(G), A[1:], A[2:], A[4], A[2:4], A[:2], A[0], p, p[0], p[1])


def by_gate(rows: Array) -> Array:
    """Rows (n, 4H) of four gate blocks as a view (4, n, H), one block per gate."""
    n, H = rows.shape[0], rows.shape[1] // 4
    return rows.reshape(n, 4, H).transpose(1, 0, 2)


def fast_steps(
    M: Array, steps: Sequence[tuple[Array, Array]], buf: StepBuffers, half: Array
) -> None:
    """LSTM steps on the compiled weights: eight NumPy calls a step, no allocation.

    Parameters
    ----------
    M : ndarray, shape (C + 1 + H, 4H)
        :attr:`FastLSTM.M`.
    steps : sequence of (z, h_out)
        In order, each step's ``z`` (n, C + 1 + H) or (C + 1 + H,) — ``[x_t, 1, h_{t-1}]``
        for each row — and ``h_out`` (n, H) or (H,), which receives h_t (the h columns of
        the next step's ``z``, or of ``z`` itself).
    buf : StepBuffers
        ``buf.c`` holds c_{t-1} and receives c_t.
    half : ndarray, shape ()
        0.5 in the weights' dtype.
    """
    product, pre, pre_gates, a, sig, o, f_i, c_g, c, p, p_f, p_i = buf
    for z, h_out in steps:
        product(z, M, pre)  # sigmoid columns already halved
        np.tanh(pre_gates, a)
        np.multiply(sig, half, sig)  # σ(a) = ½ tanh(½a) + ½ for f, i, o
        np.add(sig, half, sig)
        np.multiply(f_i, c_g, p)  # f ⊙ c_{t-1} and i ⊙ g
        np.add(p_f, p_i, c)  # c_t = f ⊙ c_{t-1} + i ⊙ g
        np.tanh(c, p_f)  # h_t = o ⊙ tanh(c_t)
        np.multiply(o, p_f, h_out)


def within(a: Array, limit: float) -> bool:
    """Whether every value of ``a`` is finite and Σ|a| ≤ ``limit`` (so each |a_i| is): one
    ``abs`` and one dot product with 2^-k ≥ 1/(2n) (exact scaling), which can neither
    overflow nor meet +inf − inf, and so never warns. A sum beyond ``limit`` of values each
    within it says False: the caller then takes the careful path."""
    v = a if a.ndim == 1 else a.reshape(-1)  # a view when contiguous
    scale, factor = _scales(v.size, v.dtype.char)
    return bool(np.abs(v).dot(scale) <= limit * factor)


def all_finite(a: Array) -> bool:
    """Whether every value of ``a`` is finite (False too for values summing beyond the
    dtype's largest; see :func:`within`)."""
    return within(a, LARGEST[a.dtype.char])


LARGEST = {t: float(np.finfo(t).max) for t in "fd"}  # by dtype.char: float32, float64


def finite_copy(s: LSTMState) -> LSTMState | None:
    """A copy of ``s``, or None if a value is not finite: one copy and one check when h and
    c are views of one array, h first (the states the one-sequence path returns)."""
    h, c = s
    block = h.base
    if block is None or block is not c.base or block.shape != (h.size + c.size,):
        return LSTMState(h.copy(), c.copy()) if all_finite(h) and all_finite(c) else None
    own = block.copy()
    return LSTMState(own[: h.size], own[h.size :]) if all_finite(own) else None


@functools.lru_cache(maxsize=64)
def _scales(n: int, dtype: str) -> tuple[Array, float]:
    """(n,) of 2^-k, the least power of two no larger than 1 / (2n), and 2^-k."""
    factor = 2.0 ** -math.ceil(math.log2(2 * n))
    return np.full(n, factor, dtype), factor


def work_buffers(c0: Array) -> tuple[Array, Array, Array]:
    """The batches' buffers of :class:`StepBuffers` for rows starting from ``c0`` (B, H):
    ``A`` (5, B, H) with c0 in its first block, the scratch ``p`` (2, B, H) and the
    product's rows ``G`` (B, 4H)."""
    B, H = c0.shape
    A = np.empty((5, B, H), c0.dtype)
    A[0] = c0
    return A, np.empty((2, B, H), c0.dtype), np.empty((B, 4 * H), c0.dtype)


class Work(NamedTuple):
    """Buffers for one sequence through one compiled layer, kept from call to call.

    One block of memory: the rows ``Z`` (T + 1, C + 1 + H) = ``[x_t, 1, h_{t-1}]`` — or one
    row that every step reads and writes back (``in_place``, the stepper) — then the step
    buffers ``A`` (5H,) = c, g, f, i, o and the scratch. The h columns of the last row and c
    are neighbours: ``end`` (2H,) is [h_T, c_T].
    """

    Z: Array  # (T + 1, C + 1 + H), or (1, C + 1 + H) in place
    buf: StepBuffers
    steps: list[tuple[Array, Array]]  # per step: z_t, and where h_t goes
    x: Array  # (T, C) the x columns
    h0: Array  # (H,) the h columns of the first row: h_0
    hs: Array  # (T, H) the h columns of the other rows: h_1 … h_T (Z itself in place)
    end: Array  # (2H,) h_T and c_T

    @classmethod
    def make(cls, f: FastLSTM, T: int, in_place: bool = False) -> Work:
        C, H = f.C, f.H
        rows, width = (1 if in_place else T + 1), C + 1 + H
        mem = np.empty(rows * width + 7 * H, f.M.dtype)
        Z = mem[: rows * width].reshape(rows, width)
        Z[:, C] = 1
        A, p = mem[rows * width : rows * width + 5 * H], mem[rows * width + 5 * H :]
        if in_place:
            steps = [(Z[0], Z[0, C + 1 :])]
        else:
            steps = [(Z[t], Z[t + 1, C + 1 :]) for t in range(T)]
        end = mem[rows * width - H : rows * width + H]
        hs = Z[-T:, C + 1 :]
        return cls(Z, StepBuffers.of(A, p), steps, Z[:T, :C], Z[0, C + 1 :], hs, end)


def run_lstm(f: FastLSTM, Z: Array, counts: Array, c0: Array) -> Array:
    """Run one compiled layer (one direction, in its own order of steps) over a time-major
    batch; h_t is written into ``Z``.

    Parameters
    ----------
    f : FastLSTM
    Z : ndarray, shape (T + 1, B, C + 1 + H)
        Z[t, :, :C] holds x_t, Z[:, :, C] ones and Z[0, :, C+1:] h_0; Z[t + 1, :, C+1:]
        receives h_t.
    counts : ndarray of int, shape (T,)
        How many rows (a prefix) run at step t.
    c0 : ndarray, shape (B, H)

    Returns
    -------
    ndarray, shape (B, H)
        Each row's cell state after its last step.
    """
    if f.cell is not None:  # another cell: lstm_ref.fast.general
        c = c0.copy()
        cell_steps(f.cell, f.M, Z, counts.tolist(), c)
        return c
    C = f.C
    half = np.array(0.5, dtype=Z.dtype)
    A, p, G = work_buffers(c0)
    t = 0
    for n, steps in itertools.groupby(counts.tolist()):  # the steps that run n rows
        k = len(list(steps))
        fast_steps(
            f.M,
            [(Z[s, :n], Z[s + 1, :n, C + 1 :]) for s in range(t, t + k)],
            StepBuffers.of(A[:, :n], p[:, :n], G[:n]),
            half,
        )
        t += k
    return A[0]
