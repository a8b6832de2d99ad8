"""The fast inference path, beside the readable reference and tested equal to it.

:func:`lstm_ref.lstm.lstm_step` stays the statement of the equations; this module computes
the same numbers with fewer, larger NumPy calls. What it does differently, once, when a
network is compiled (:meth:`FastNetwork.compile`):

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
* **A sorted, shrinking batch** under masked padding: sequences sorted by length, so the
  rows still running at step t are a prefix and each step multiplies only those (the
  batch gathered time-major from all the steps in one ``take``). Under MATLAB's padding
  every row runs every (padded) step, exactly as the reference does.
  A batch keeps its gates in blocks (5, B, H), so that each element-wise call runs over
  contiguous memory (about 1.3–2× faster steps than rows of 5H); its product stays one
  plain matrix product into rows of 4H, which the first tanh reads by gate.
* **Time-major buffers** (T + 1, B, C + 1 + H): step t reads row t and writes h_t straight
  into the h columns of row t + 1, so neither x nor h is copied per step.
* **One sequence** (:meth:`FastNetwork.run_one`, the seed loop's single step) runs in
  buffers kept from call to call (:class:`Work`), laid out so that the final h and c are
  one contiguous (2H,) block: the state goes out in one copy.

Covered (anything else falls back to the reference, with equal results): a
:class:`~lstm_ref.layers.SequenceInput` (any normalisation), then one or more forward
:class:`~lstm_ref.layers.LSTM` layers with the default activations (sigmoid gates, tanh
state) and none of the cell variants (peepholes, clip, coupled gates, projection), every one
but the last with output mode "sequence", then any of ``FullyConnected``, ``Softmax``,
``ClassificationOutput`` (run through their own ``forward``). Not covered: other gate or state
activations (hard-sigmoid, softsign, ONNX's), reverse or bidirectional layers, cell variants,
any other layer type. Results are checked finite; a non-finite value sends the call back to
the reference, which names the overflow.

**The snapshot is checked on every call.** :meth:`FastNetwork.is_current` compares the
arrays folded into ``M`` (mean, std, W, R, b) value by value with copies kept at compile
time, so an in-place change of a weight (training, an ablation) is never computed with stale
weights. That comparison reads the weights twice and is the largest part of a one-step call
after the product itself (see the README's Performance section).

The streaming form, :class:`lstm_ref.fast.Stepper`, lives in :mod:`lstm_ref.fast.stepper`.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..layers import LSTM, ClassificationOutput, FullyConnected, Layer, SequenceInput, Softmax
from ..lstm import LSTMState, copy_state, reorder_gates
from ..padding import Padding, make_batches

Array = np.ndarray
FAST_ORDER = ("g", "f", "i", "o")  # column blocks of M: g, then the three sigmoid gates
HEAD_TYPES = (FullyConnected, Softmax, ClassificationOutput)  # stateless, step by step
POOLED_LENGTHS = 64  # how many sequence lengths keep their one-sequence buffers


class FastLSTM(NamedTuple):
    """One LSTM layer compiled for the fast path (a snapshot of its weights).

    Attributes
    ----------
    name : str
    M : ndarray, shape (C + 1 + H, 4H)
        Rows: x, 1 (bias), h; columns: gate blocks g, f, i, o; sigmoid columns × 0.5; the
        first layer's input normalisation folded in.
    h0, c0 : ndarray, shape (H,)
        The layer's initial state.
    last : bool
        Output mode "last" (the final h) rather than "sequence".
    C, H : int
        Input features and hidden units.
    """

    name: str
    M: Array
    h0: Array
    c0: Array
    last: bool
    C: int
    H: int


def covered(layer: Layer) -> bool:
    """Whether the fast path computes ``layer`` (an LSTM with the reference cell)."""
    return (
        type(layer) is LSTM
        and layer.gate_activation == "sigmoid"
        and layer.state_activation == "tanh"
        and layer.direction == "forward"
        and layer.variant is None
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
    scale = np.where(np.arange(4 * H) < H, 1.0, 0.5).astype(W.dtype)  # σ = ½ tanh(½a) + ½
    M = np.empty((C + 1 + H, 4 * H), dtype=W.dtype)
    np.multiply(W.T, scale, out=M[:C])
    np.multiply(b, scale, out=M[C])
    np.multiply(R.T, scale, out=M[C + 1 :])
    h0, c0 = layer._start  # (H,) each, always set
    return FastLSTM(layer.name, M, h0.copy(), c0.copy(), layer.output_mode == "last", C, H)


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
        n, H = A.shape[1:]
        pre_gates = G.reshape(n, 4, H).transpose(1, 0, 2)
        return cls(np.matmul, G, pre_gates, A[1:], A[2:], A[4], A[2:4], A[:2], A[0], p, p[0], p[1])


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


def within(a: Array, bound: float) -> bool:
    """Whether Σ a² ≤ ``bound``: one dot product saying that every value of ``a`` is finite
    and no larger than √bound (``bound`` finite, at most the dtype's largest value). False
    for a NaN or an Inf, and when the product overflows (|a| beyond ~1e19 in float32; NumPy
    then warns, or raises under ``-W error``)."""
    v = a if a.ndim == 1 else a.reshape(-1)  # a view when contiguous
    try:
        return bool(v.dot(v) <= bound)  # the method: no dispatch through np.dot
    except RuntimeWarning:  # the overflow, with warnings turned into errors
        return False


def all_finite(a: Array) -> bool:
    """Whether every value of ``a`` is finite (one dot product, when it does not overflow)."""
    v = a if a.ndim == 1 else a.reshape(-1)
    try:
        if math.isfinite(v.dot(v)):
            return True
    except RuntimeWarning:  # an overflow, with warnings turned into errors
        pass
    return bool(np.isfinite(a).all())


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
    """Run one compiled layer over a time-major batch; h_t is written into ``Z``.

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


class Run(NamedTuple):
    """One time-major batch for the fast path."""

    rows: Array  # (B,) which input sequences
    x: Array  # (T, B, C)
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
    steps = np.concatenate([*seqs, np.zeros_like(seqs[0][:1])])  # every step, then a zero row
    starts = np.cumsum(lengths) - lengths  # (N,) where each sequence's steps start
    for first in range(0, len(seqs), padding.mini_batch_size):
        rows = order[first : first + padding.mini_batch_size]
        n = lengths[rows]  # (B,), longest first
        t = np.arange(n[0])[:, None]  # (T, 1)
        at = np.where(t < n, starts[rows] + t, len(steps) - 1)  # (T, B) step t of row b, or 0
        x = steps.take(at, axis=0)  # (T, B, C)
        counts = np.searchsorted(-n, -t[:, 0])  # (T,) how many rows are longer than t
        yield Run(rows, x, counts, n, np.zeros_like(n), n)


class FastNetwork:
    """A network's layers ``0 … upto`` compiled for the fast path (a snapshot).

    Make one with :meth:`compile` (None when a layer is not covered); :meth:`is_current`
    tells whether the layers still hold what it was compiled from.
    """

    def __init__(self, layers: Sequence[Layer], lstms: list[FastLSTM], heads: list[Layer]):
        self.lstms, self.heads = lstms, heads
        self.input_size, self.dtype = lstms[0].C, lstms[0].M.dtype
        self._layers = tuple(layers)
        self._config = _config(layers)
        self._watched = _folded_arrays(layers)  # the arrays in M, and copies of them:
        self._differ = np.empty(sum(a.size for a in self._watched), bool)
        self._checks: list[tuple[Array, Array, Array]] = []  # array, copy, where they differ
        at = 0
        for a in self._watched:
            self._checks.append((a, a.copy(), self._differ[at : at + a.size].reshape(a.shape)))
            at += a.size
        norm = layers[0]
        assert isinstance(norm, SequenceInput)
        self.limit = _input_limit(norm, self.dtype)  # see within_limit
        big = float(np.finfo(self.dtype).max)
        self._largest = min(self.limit, big)  # on |x|, see within_limit
        self._bound = big if self.limit > math.sqrt(big) else self.limit**2  # x·x, run_one
        self._half = np.array(0.5, self.dtype)
        self._pool: dict[int, list[list[Work]]] = {}  # free one-sequence buffers, by T

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
        same arrays with the same values: every value folded into ``M`` (mean, std, W, R,
        b) is compared, so an in-place change is seen. (h0 and c0 are not: predict passes
        the state, and a stepper's snapshot is its own.)"""
        if len(layers) != len(self._layers) or not all(map(operator.is_, layers, self._layers)):
            return False
        if _config(layers) != self._config:
            return False
        for a, copy, differ in self._checks:
            np.not_equal(a, copy, differ)
        differ = self._differ
        return not differ[differ.argmax()]  # argmax: the first True, faster than any()

    def within_limit(self, x: Array) -> bool:
        """Whether every value of ``x`` is finite and none can overflow the input
        normalisation (no warning, whatever the values)."""
        return bool(np.abs(x).max() <= self._largest)

    def plain(self, X: object) -> tuple[list[Array], bool] | None:
        """``X`` as the sequences :meth:`run` and :meth:`run_one` take as they are, and
        whether it was one sequence: one (T, C) NumPy array (not a subclass) of the
        network's dtype with T ≥ 1, or a list or tuple of them; None for anything else.
        Their values are checked there (a non-finite one: they return None)."""
        if isinstance(X, np.ndarray):
            return ([X], True) if self._plain(X) else None
        if isinstance(X, list | tuple) and X and all(self._plain(x) for x in X):
            return list(X), False
        return None

    def _plain(self, x: object) -> bool:
        return (
            type(x) is np.ndarray
            and x.dtype == self.dtype
            and x.ndim == 2
            and x.shape[1] == self.input_size
            and x.shape[0] > 0
        )

    def run(
        self, seqs: list[Array], states: dict[str, LSTMState], padding: Padding
    ) -> tuple[list[Array] | Array, dict[str, LSTMState]] | None:
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
            sequence — one (N, K) array when each sequence's output is one vector;
            ``final``: (N, H) h and c per LSTM (as given for those not run).
            None when a value (of the input too) is not finite or the input could overflow
            the normalisation: the caller checks the input and runs the reference.
        """
        results: list[Array] = [np.empty(0)] * len(seqs)
        vectors: Array | None = None  # (N, K) when each output is one vector
        final = {n: copy_state(s) for n, s in states.items()}
        for run in batches(seqs, padding):
            if not self.within_limit(run.x):
                return None
            y, ends = self._forward(run, states)
            if not all_finite(y) or not all(all_finite(s.c) for s in ends.values()):
                return None
            if y.ndim == 2:  # (B, K)
                if vectors is None:
                    vectors = np.empty((len(seqs), y.shape[1]), y.dtype)
                vectors[run.rows] = y
            else:  # (B, T, K): each row's own steps
                for b, r in enumerate(run.rows):
                    results[r] = y[b, run.start[b] : run.start[b] + run.lengths[b]]
            for name, s in ends.items():
                final[name].h[run.rows], final[name].c[run.rows] = s
        return (results if vectors is None else vectors), final

    def run_one(
        self, x: Array, states: dict[str, LSTMState]
    ) -> tuple[Array, dict[str, LSTMState]] | None:
        """One sequence ``x`` (T, C) from ``states`` ((H,) or (1, H) h and c per LSTM): its
        output — (K,), or (T, K) per step — and the final states, (H,) each, new arrays.

        Runs in buffers kept for sequences of this length (:class:`Work`). None when a value
        of ``x`` is not finite or could overflow the normalisation, or an output is not
        finite: the caller checks the input and runs the reference.
        """
        if not within(x, self._bound):
            return None
        T = len(x)
        free = self._pool.get(T)
        works = free.pop() if free else [Work.make(f, T) for f in self.lstms]
        try:
            done = self._through(works, x, states)
        finally:
            if free is not None or len(self._pool) < POOLED_LENGTHS:
                self._pool.setdefault(T, []).append(works)
        if done is None:
            return None
        y, ends = done
        for n, s in states.items():  # the layers after ``outputs`` keep their state
            if n not in ends:
                ends[n] = LSTMState(*(a.reshape(-1).copy() for a in s))
        return y, ends

    def _through(
        self, works: list[Work], x: Array, states: dict[str, LSTMState]
    ) -> tuple[Array, dict[str, LSTMState]] | None:
        """:meth:`run_one` in ``works``: the output (a new array) and the final states
        (views of one new (2H,) array per layer), or None if a value is not finite."""
        ends = {}
        y: Array = x
        half = self._half
        for f, work in zip(self.lstms, works, strict=True):
            start, buf = states[f.name], work.buf
            work.x[:] = y
            work.h0[:] = start.h
            buf.c[:] = start.c
            fast_steps(f.M, work.steps, buf, half)
            end = work.end.copy()  # (2H,) h_T, c_T
            if not all_finite(end):
                return None
            h = end[: f.H]
            ends[f.name] = LSTMState(h, end[f.H :])
            y = h if f.last else work.hs
        for layer in self.heads:
            y, _ = layer.forward(y)
        if self.heads and not all_finite(y):
            return None
        return (y if self.heads else y.copy()), ends

    def _forward(
        self, run: Run, states: dict[str, LSTMState]
    ) -> tuple[Array, dict[str, LSTMState]]:
        """One run through the compiled layers and the heads: the output per row, (B, T, K)
        or (B, K), and the final states."""
        x, rows = run.x, run.rows
        T, B = x.shape[:2]
        ends = {}
        y: Array = x
        for f in self.lstms:
            Z = np.empty((T + 1, B, f.C + 1 + f.H), f.M.dtype)
            Z[:-1, :, : f.C] = y
            Z[:, :, f.C] = 1
            start = states[f.name]
            Z[0, :, f.C + 1 :] = start.h[rows]
            if not f.last and run.counts[-1] < B:  # the outputs after a row's end are zeros
                Z[1:, :, f.C + 1 :] = 0
            c = run_lstm(f, Z, run.counts, start.c[rows])
            hs = Z[..., f.C + 1 :]
            h_final = hs[run.stop, np.arange(B)]
            ends[f.name] = LSTMState(h_final, c)
            y = h_final if f.last else hs[1:]
        if y.ndim == 3:
            y = y.transpose(1, 0, 2)  # (B, T, H), as the heads and the trimming expect
        for layer in self.heads:
            y, _ = layer.forward(y)
        return y, ends


def _config(layers: Sequence[Layer]) -> tuple[Any, ...]:
    """What :meth:`FastNetwork.compile` reads of the layers' configuration, and which arrays
    it folds in (by identity: the engine holds them, so their ids stay theirs)."""
    config: list[Any] = []
    for x in layers:
        if isinstance(x, SequenceInput):
            config.append((x.normalization, id(x.mean), id(x.std)))
        elif isinstance(x, LSTM):
            config.append((covered(x), x.output_mode, *map(id, x.params)))
    return tuple(config)


def _folded_arrays(layers: Sequence[Layer]) -> list[Array]:
    """The arrays whose values :meth:`FastNetwork.compile` folds into ``M``: the input
    normalisation's and every compiled LSTM's W, R and b (the heads run live)."""
    arrays: list[Array] = []
    for x in layers:
        if isinstance(x, SequenceInput):
            arrays += [a for a in (x.mean, x.std) if a is not None]
        elif isinstance(x, LSTM):
            arrays += list(x.params)
    return arrays


def _input_limit(norm: SequenceInput, dtype: np.dtype) -> float:
    """A bound on |x| up to which (x − mean) / std cannot overflow ``dtype`` (inf: no
    normalisation)."""
    if norm.mean is None:
        return math.inf
    std = 1.0 if norm.std is None else float(norm.std.min())
    big = float(np.finfo(dtype).max) / 4
    return max(big * min(std, 1.0) - float(np.abs(norm.mean).max()), 0.0)
