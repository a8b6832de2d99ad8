"""The fast inference path, beside the readable reference and tested equal to it.

:func:`lstm_ref.lstm.lstm_step` stays the statement of the equations; this module computes
the same numbers with fewer, larger NumPy calls. What it does differently, once, when a
network is compiled (:meth:`FastNetwork.compile`):

* **One fused product per step.** Each step multiplies the row ``[x_t, h_{t-1}, 1]`` by one
  stacked matrix ``M`` (C + H + 1, 4H) — W, R and the bias b as its last row — into a
  preallocated buffer. The columns hold the gate blocks in the order **o, i, f, g**, and c
  sits after them in the same buffer: the three sigmoid gates are contiguous, and one
  product of the neighbours (i, f) ⊙ (g, c) gives both terms of c_t (eight calls a step).
* **The cheap sigmoid.** σ(a) = 0.5·tanh(0.5·a) + 0.5 exactly, so the columns of the sigmoid
  gates are scaled by 0.5 (exact in floating point) and one ``tanh`` runs over all 4H
  pre-activations; the gates then take ``·0.5 + 0.5``.
* **The input normalisation folded into the weights.** A ``SequenceInput`` with
  "zerocenter" or "zscore" becomes W/std and b − W·(mean/std): the raw data enter ``M``.
* **A sorted, shrinking batch** under masked padding: sequences sorted by length, so the
  rows still running at step t are a prefix and each step multiplies only those. Under
  MATLAB's padding every row runs every (padded) step, exactly as the reference does.
* **Time-major buffers** (T + 1, B, C + H + 1): step t reads row t and writes h_t straight
  into the h columns of row t + 1, so neither x nor h is copied per step.

Covered (anything else falls back to the reference, with equal results): a
:class:`~lstm_ref.layers.SequenceInput` (any normalisation), then one or more forward
:class:`~lstm_ref.layers.LSTM` layers with the default activations (sigmoid gates, tanh
state) and none of the cell variants (peepholes, clip, coupled gates, projection), every one
but the last with output mode "sequence", then any of ``FullyConnected``, ``Softmax``,
``ClassificationOutput`` (run through their own ``forward``). Not covered: other gate or state
activations (hard-sigmoid, softsign, ONNX's), reverse or bidirectional layers, cell variants,
any other layer type. Results are checked finite; a non-finite value sends the call back to
the reference, which names the overflow.

The streaming form, :class:`lstm_ref.fast.Stepper`, lives in :mod:`lstm_ref.fast.stepper`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..layers import LSTM, ClassificationOutput, FullyConnected, Layer, SequenceInput, Softmax
from ..lstm import LSTMState, copy_state, reorder_gates
from ..padding import Padding, make_batches

Array = np.ndarray
FAST_ORDER = ("o", "i", "f", "g")  # column blocks of M: the three sigmoid gates, then g
HEAD_TYPES = (FullyConnected, Softmax, ClassificationOutput)  # stateless, step by step


class FastLSTM(NamedTuple):
    """One LSTM layer compiled for the fast path (a snapshot of its weights).

    Attributes
    ----------
    name : str
    M : ndarray, shape (C + H + 1, 4H)
        Rows: x, h, 1 (bias); columns: gate blocks o, i, f, g; sigmoid columns × 0.5; the
        first layer's input normalisation folded in.
    h0, c0 : ndarray, shape (H,)
        The layer's initial state.
    last : bool
        Output mode "last" (the final h) rather than "sequence".
    """

    name: str
    M: Array
    h0: Array
    c0: Array
    last: bool

    @property
    def C(self) -> int:
        return self.M.shape[0] - self.H - 1

    @property
    def H(self) -> int:
        return self.M.shape[1] // 4


def covered(layer: Layer) -> bool:
    """Whether the fast path computes ``layer`` (an LSTM with the reference cell)."""
    return (
        type(layer) is LSTM
        and layer.gate_activation == "sigmoid"
        and layer.state_activation == "tanh"
        and getattr(layer, "direction", "forward") == "forward"
        and getattr(layer, "variant", None) is None
    )


def compile_lstm(layer: LSTM, norm: SequenceInput | None = None) -> FastLSTM:
    """``layer`` as a :class:`FastLSTM`, with ``norm``'s input normalisation folded in.

    Parameters
    ----------
    layer : LSTM
        Covered by the fast path (see :func:`covered`).
    norm : SequenceInput, optional
        The input layer just before it: x' = (x − mean) / std gives W' = W / std and
        b' = b − W' · mean.
    """
    W, R, b = layer.params  # (4H, C), (4H, H), (4H,)
    H, C = R.shape[1], W.shape[1]
    W, R, b = (reorder_gates(a, FAST_ORDER, inverse=True) for a in (W, R, b))
    if norm is not None and norm.std is not None:
        W = W / norm.std
    if norm is not None and norm.mean is not None:
        b = b - W @ norm.mean
    scale = np.where(np.arange(4 * H) < 3 * H, 0.5, 1.0).astype(W.dtype)  # σ = ½ tanh(½a) + ½
    M = np.empty((C + H + 1, 4 * H), dtype=W.dtype)
    np.multiply(W.T, scale, out=M[:C])
    np.multiply(R.T, scale, out=M[C : C + H])
    np.multiply(b, scale, out=M[C + H])
    h0, c0 = layer.initial_state or (np.zeros(H, W.dtype), np.zeros(H, W.dtype))
    return FastLSTM(layer.name, M, h0.copy(), c0.copy(), layer.output_mode == "last")


class StepBuffers(NamedTuple):
    """Views of one step's work buffer ``A`` (n, 5H) — or (5H,) for one row — whose column
    blocks are o, i, f, g and then c, so that i, f and g, c are neighbours."""

    a: Array  # (n, 4H) the pre-activations, then the gate values in place
    sig: Array  # (n, 3H) the sigmoid gates o, i, f
    o: Array  # (n, H)
    i_f: Array  # (n, 2H) the input and forget gates
    g_c: Array  # (n, 2H) the cell candidate and c_{t-1}
    c: Array  # (n, H) the cell state, updated in place
    p: Array  # (n, 2H) scratch: i ⊙ g, f ⊙ c_{t-1}
    p_i: Array  # (n, H)
    p_f: Array  # (n, H)

    @classmethod
    def of(cls, A: Array, p: Array) -> StepBuffers:
        H = A.shape[-1] // 5
        return cls(
            A[..., : 4 * H],
            A[..., : 3 * H],
            A[..., :H],
            A[..., H : 3 * H],
            A[..., 3 * H :],
            A[..., 4 * H :],
            p,
            p[..., :H],
            p[..., H:],
        )


def fast_step(M: Array, z: Array, buf: StepBuffers, h_out: Array, half: Array) -> None:
    """One LSTM step on the compiled weights: eight NumPy calls, no allocation.

    Parameters
    ----------
    M : ndarray, shape (C + H + 1, 4H)
        :attr:`FastLSTM.M`.
    z : ndarray, shape (n, C + H + 1) or (C + H + 1,)
        ``[x_t, h_{t-1}, 1]`` for each row.
    buf : StepBuffers
        ``buf.c`` holds c_{t-1} and receives c_t.
    h_out : ndarray, shape (n, H) or (H,)
        Receives h_t (may be the h columns of the next step's ``z``).
    half : ndarray, shape ()
        0.5 in the weights' dtype.
    """
    a, sig, o, i_f, g_c, c, p, p_i, p_f = buf
    (np.dot if z.ndim == 1 else np.matmul)(z, M, a)  # sigmoid columns already halved
    np.tanh(a, out=a)
    np.multiply(sig, half, out=sig)  # σ(a) = ½ tanh(½a) + ½ for o, i, f
    np.add(sig, half, out=sig)
    np.multiply(i_f, g_c, out=p)  # i ⊙ g and f ⊙ c_{t-1}
    np.add(p_i, p_f, out=c)  # c_t = f ⊙ c_{t-1} + i ⊙ g
    np.tanh(c, out=p_i)  # h_t = o ⊙ tanh(c_t)
    np.multiply(o, p_i, out=h_out)


def all_finite(a: Array) -> bool:
    """Whether every value of ``a`` is finite (one dot product for a vector, when it does
    not overflow)."""
    if a.ndim == 1 and math.isfinite(np.dot(a, a)):
        return True
    return bool(np.isfinite(a).all())


def work_buffers(c0: Array) -> tuple[Array, Array]:
    """The buffers of :class:`StepBuffers` for rows starting from ``c0`` (n, H) or (H,):
    ``A`` (n, 5H) with c0 in its last block, and the scratch ``p`` (n, 2H)."""
    H = c0.shape[-1]
    A = np.empty((*c0.shape[:-1], 5 * H), c0.dtype)
    A[..., 4 * H :] = c0
    return A, np.empty((*c0.shape[:-1], 2 * H), c0.dtype)


def run_lstm(f: FastLSTM, Z: Array, counts: Array, c0: Array) -> Array:
    """Run one compiled layer over a time-major batch; h_t is written into ``Z``.

    Parameters
    ----------
    f : FastLSTM
    Z : ndarray, shape (T + 1, B, C + H + 1) or (T + 1, C + H + 1) for one sequence
        Z[t, :, :C] holds x_t, Z[0, :, C:C+H] h_0 and Z[:, :, -1] ones; Z[t + 1, :, C:C+H]
        receives h_t.
    counts : ndarray of int, shape (T,)
        How many rows (a prefix) run at step t; ignored for one sequence.
    c0 : ndarray, shape (B, H) or (H,)

    Returns
    -------
    ndarray, shape (B, H) or (H,)
        Each row's cell state after its last step.
    """
    C, H = f.C, f.H
    half = np.array(0.5, dtype=Z.dtype)
    A, p = work_buffers(c0)
    if Z.ndim == 2:
        buf = StepBuffers.of(A, p)
        for z, h in zip(Z[:-1], Z[1:, C : C + H], strict=True):  # row t in, h_t to row t + 1
            fast_step(f.M, z, buf, h, half)
        return buf.c
    n_prev = -1
    for t, n in enumerate(counts):
        if n != n_prev:
            buf, n_prev = StepBuffers.of(A[:n], p[:n]), n
        fast_step(f.M, Z[t, :n], buf, Z[t + 1, :n, C : C + H], half)
    return A[:, 4 * H :]


class Run(NamedTuple):
    """One time-major batch for the fast path."""

    rows: Array  # (B,) which input sequences
    x: Array  # (T, B, C) or (T, C) for one sequence
    counts: Array  # (T,) rows running at each step (a prefix)
    stop: Array  # (B,) the step after which each row's final state is read
    start: Array  # (B,) where each row's data starts (left padding)
    lengths: Array  # (B,) steps of data per row


def one_pass(padding: Padding) -> bool:
    """Whether one sequence alone under ``padding`` computes exactly its own steps (all but
    MATLAB's numeric sequence length, which pads it to a whole number of chunks)."""
    return padding.is_masked or isinstance(padding.sequence_length, str)


def batches(seqs: list[Array], padding: Padding) -> Iterator[Run]:
    """The runs of ``seqs``: masked — sorted by length (longest first) in chunks of
    ``mini_batch_size``; MATLAB's — :func:`lstm_ref.padding.make_batches`, unmasked."""
    if not padding.is_masked:
        for batch in make_batches(seqs, padding):
            T, B = batch.x.shape[1], len(batch.rows)
            x, full = batch.x.transpose(1, 0, 2), np.full(B, T)
            yield Run(batch.rows, x, np.full(T, B), full, batch.start, batch.lengths)
        return
    lengths = np.array([len(s) for s in seqs])
    order = np.argsort(-lengths, kind="stable")
    for first in range(0, len(seqs), padding.mini_batch_size):
        rows = order[first : first + padding.mini_batch_size]
        n = lengths[rows]
        x = np.zeros((int(n[0]), len(rows), seqs[0].shape[1]), seqs[0].dtype)
        for b, r in enumerate(rows):
            x[: n[b], b] = seqs[r]
        counts = (n[None, :] > np.arange(n[0])[:, None]).sum(axis=1)
        yield Run(rows, x, counts, n, np.zeros_like(n), n)


class FastNetwork:
    """A network's layers ``0 … upto`` compiled for the fast path (a snapshot).

    Make one with :meth:`compile` (None when a layer is not covered); :meth:`is_current`
    tells whether the layers still hold what it was compiled from.
    """

    def __init__(self, layers: Sequence[Layer], lstms: list[FastLSTM], heads: list[Layer]):
        self.lstms, self.heads = lstms, heads
        self._config, self._sources = _reads(layers)  # the arrays themselves, and a copy:
        self._copy = np.concatenate([a.ravel() for a in self._sources])
        self._scratch, self._differ = np.empty_like(self._copy), np.empty(self._copy.shape, bool)
        norm = layers[0]
        assert isinstance(norm, SequenceInput)
        self.limit = _input_limit(norm, lstms[0].M.dtype)  # see within_limit

    @classmethod
    def compile(cls, layers: Sequence[Layer]) -> FastNetwork | None:
        """Compile ``layers`` (input, LSTMs, heads), or None if the fast path does not cover
        them (see the module docstring)."""
        first = layers[0] if layers else None
        k = 1
        while k < len(layers) and covered(layers[k]):
            k += 1
        lstm_layers, heads = list(layers[1:k]), list(layers[k:])
        if (
            type(first) is not SequenceInput
            or not lstm_layers
            or any(isinstance(x, LSTM) and x.output_mode == "last" for x in lstm_layers[:-1])
            or any(type(x) not in HEAD_TYPES for x in heads)
        ):
            return None
        assert isinstance(first, SequenceInput)
        lstms = [
            compile_lstm(x, first if j == 0 else None)  # type: ignore[arg-type]
            for j, x in enumerate(lstm_layers)
        ]
        return cls(layers, lstms, heads)

    def is_current(self, layers: Sequence[Layer]) -> bool:
        """Whether ``layers`` are still the layers compiled, configured alike, holding the
        same arrays with the same values (every value compared: an in-place change is seen)."""
        config, arrays = _reads(layers)
        if config != self._config or any(
            a is not b for a, b in zip(arrays, self._sources, strict=True)
        ):
            return False
        np.concatenate([a.ravel() for a in arrays], out=self._scratch)
        return not np.not_equal(self._scratch, self._copy, out=self._differ).any()

    def within_limit(self, x: Array) -> bool:
        """Whether no value of ``x`` can overflow the input normalisation."""
        return self.limit == math.inf or bool(np.abs(x).max() <= self.limit)

    def run(
        self, seqs: list[Array], states: dict[str, LSTMState], padding: Padding
    ) -> tuple[list[Array], dict[str, LSTMState]] | None:
        """The outputs of every sequence (in input order) and each LSTM's final state.

        Parameters
        ----------
        seqs : list of ndarray, each (T_i, C)
            Checked sequences in the network's dtype.
        states : dict of str to LSTMState
            Each LSTM's starting state, (N, H) rows (broadcast views are fine).
        padding : Padding

        Returns
        -------
        (outputs, final) or None
            ``outputs[r]``: (T_r, K) or (K,) as :meth:`Network.predict` returns for one
            sequence; ``final``: (N, H) h and c per LSTM (as given for those not run).
            None when a value is not finite or the input could overflow the
            normalisation: the caller runs the reference.
        """
        results: list[Array] = [np.empty(0)] * len(seqs)
        final = {n: copy_state(s) for n, s in states.items()}
        for run in batches(seqs, padding):
            if not self.within_limit(run.x):
                return None
            y, ends = self._forward(run, states)
            if not all_finite(y) or not all(all_finite(s.c) for s in ends.values()):
                return None
            for b, r in enumerate(run.rows):
                one = y if run.x.ndim == 2 else y[b]
                results[r] = (
                    one if one.ndim == 1 else one[run.start[b] : run.start[b] + run.lengths[b]]
                )
            for name, s in ends.items():
                final[name].h[run.rows], final[name].c[run.rows] = s
        return results, final

    def run_one(
        self, x: Array, states: dict[str, LSTMState]
    ) -> tuple[Array, dict[str, LSTMState]] | None:
        """One sequence ``x`` (T, C) from ``states`` ((H,) h and c per LSTM): its output and
        the final states, (H,) each — :meth:`run` without the batching; None as there."""
        if not self.within_limit(x):
            return None
        n = np.array([len(x)])
        zero = np.zeros(1, int)
        y, ends = self._forward(Run(zero, x, n, n, zero, n), states)
        if not all_finite(y) or not all(all_finite(s.c) for s in ends.values()):
            return None
        final = {k: copy_state(s) for k, s in {**states, **ends}.items()}
        return y, final

    def _forward(
        self, run: Run, states: dict[str, LSTMState]
    ) -> tuple[Array, dict[str, LSTMState]]:
        """One run through the compiled layers and the heads: the output, time-major per
        step ((T, B, K) or (T, K)) or per row ((B, K) or (K,)), and the final states."""
        x, one = run.x, run.x.ndim == 2
        T = x.shape[0]
        rows = run.rows
        ends = {}
        y: Array = x
        for f in self.lstms:
            B = () if one else (len(rows),)
            Z = np.zeros((T + 1, *B, f.C + f.H + 1), f.M.dtype)
            Z[:-1, ..., : f.C] = y
            Z[..., -1] = 1
            start = states[f.name]
            Z[0, ..., f.C : f.C + f.H] = start.h if one else start.h[rows]
            c = run_lstm(f, Z, run.counts, start.c if one else start.c[rows])
            hs = Z[..., f.C : f.C + f.H]
            h_final = hs[run.stop[0]] if one else hs[run.stop, np.arange(len(rows))]
            ends[f.name] = LSTMState(h_final, c)
            y = h_final if f.last else hs[1:]
        if not one and y.ndim == 3:
            y = y.transpose(1, 0, 2)  # (B, T, H), as the heads and the trimming expect
        for layer in self.heads:
            y, _ = layer.forward(y)
        return y, ends


def _reads(layers: Sequence[Layer]) -> tuple[tuple[Any, ...], list[Array]]:
    """What :meth:`FastNetwork.compile` reads: which layers, what it reads of their
    configuration, and the arrays it folds into its snapshot (the heads run live)."""
    config: list[Any] = [tuple(map(id, layers))]
    arrays: list[Array] = []
    for x in layers:
        if isinstance(x, SequenceInput):
            config.append(x.normalization)
            arrays += [a for a in (x.mean, x.std) if a is not None]
        elif isinstance(x, LSTM):
            config.append((covered(x), x.output_mode))
            arrays += [*x.params, *x.initial_state]  # type: ignore[misc]
    return tuple(config), arrays


def _input_limit(norm: SequenceInput, dtype: np.dtype) -> float:
    """A bound on |x| up to which (x − mean) / std cannot overflow ``dtype`` (inf: no
    normalisation)."""
    if norm.mean is None:
        return math.inf
    std = 1.0 if norm.std is None else float(norm.std.min())
    big = float(np.finfo(dtype).max) / 4
    return max(big * min(std, 1.0) - float(np.abs(norm.mean).max()), 0.0)
