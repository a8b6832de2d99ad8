"""The fast inference path, beside the readable reference and tested equal to it.

:func:`lstm_ref.lstm.lstm_step` stays the statement of the equations; the compiled layers
of :mod:`lstm_ref.fast.step` compute the same numbers with fewer, larger NumPy calls
(one fused product per step, the sigmoid and the input normalisation folded into the
weights). This module compiles a network's layers (:meth:`FastNetwork.compile`) and runs
them over its batches:

* **A sorted, shrinking batch** under masked padding: sequences sorted by length, so the
  rows still running at step t are a prefix and each step multiplies only those (the
  batch gathered time-major from all the steps in one ``take``). Under MATLAB's padding
  every row runs every (padded) step, exactly as the reference does.
* **One sequence** of a network of forward LSTMs with the reference cell
  (:meth:`FastNetwork.run_one`, the seed loop's single step) runs in buffers kept from call
  to call (:class:`~lstm_ref.fast.step.Work`); any other network runs it as a batch of one.

Covered (anything else falls back to the reference, with equal results): a
:class:`~lstm_ref.layers.SequenceInput` (any normalisation), then any sequence of LSTM,
BiLSTM, LSTMStack and TimeReversal layers (:mod:`lstm_ref.fast.layers`: either direction,
every merge mode, any activation, every cell option — :mod:`lstm_ref.fast.general`),
nothing recurrent after an output of one vector, then any of ``FullyConnected``,
``Softmax``, ``ClassificationOutput`` (run through their own ``forward``). Results are
checked finite; a non-finite value sends the call back to the reference, which names the
overflow.

**The snapshot is checked on every call, without reading the weights**
(:class:`~lstm_ref.fast.watch.Watch`): the attributes compiled from are compared by
identity, and the arrays folded into ``M`` (mean, std, W, R, b) are made read-only, so that
only an array someone made writeable again is compared value by value. An in-place change of
a weight (training, an ablation) is never computed with stale weights.

The streaming form, :class:`lstm_ref.fast.Stepper`, lives in :mod:`lstm_ref.fast.stepper`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from ..layers import ClassificationOutput, FullyConnected, Layer, SequenceInput, Softmax
from ..lstm import LSTMState, copy_state
from ..padding import Padding, split_batches
from .layers import Compiled, Rows, compile_recurrent, folded, reads, run_compiled
from .step import FastLSTM, Work, all_finite, fast_steps, within
from .watch import Watch

Array = np.ndarray
HEAD_TYPES = (FullyConnected, Softmax, ClassificationOutput)  # stateless, step by step
POOLED_LENGTHS = 64  # how many sequence lengths keep their one-sequence buffers


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
    ``mini_batch_size``; MATLAB's — :func:`lstm_ref.padding.split_batches`, unmasked."""
    if not padding.is_masked:
        for batch in split_batches(seqs, padding):
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

    Attributes
    ----------
    compiled : list
        The recurrent layers compiled (:mod:`lstm_ref.fast.layers`), in order.
    heads : list of Layer
        The layers after them, run through their own ``forward``.
    lstms : list of FastLSTM
        The compiled one-direction LSTM layers among ``compiled``.
    simple : bool
        Every recurrent layer a forward LSTM with the reference cell: one sequence runs in
        kept buffers (:meth:`run_one`), and a stepper steps it.
    """

    def __init__(self, layers: Sequence[Layer], compiled: list[Compiled], heads: list[Layer]):
        self.compiled, self.heads = compiled, heads
        self.lstms = [f for f in compiled if isinstance(f, FastLSTM)]
        self.simple = len(self.lstms) == len(compiled) and all(  # run_one and the stepper
            f.cell is None and not f.reverse for f in self.lstms
        )
        norm = layers[0]
        assert isinstance(norm, SequenceInput)
        self.input_size = norm.input_size
        arrays = [a for x in layers for a in folded(x)]  # one dtype (the Network checks)
        self.dtype = arrays[0].dtype
        self.watch = Watch(layers, [r for x in layers for r in reads(x)], arrays)
        self.limit = _input_limit(norm, self.dtype)  # on |x|, for the normalisation
        # |x| up to which every value is finite and the normalisation cannot overflow
        # (checked with :func:`within`: no warning, whatever the values)
        self._largest = min(self.limit, float(np.finfo(self.dtype).max))
        self._half = np.array(0.5, self.dtype)
        self._pool: dict[int, list[list[Work]]] = {}  # free one-sequence buffers, by T

    @classmethod
    def compile(cls, layers: Sequence[Layer]) -> FastNetwork | None:
        """Compile ``layers`` (input, recurrent layers, heads), or None if the fast path does
        not cover them (see the module docstring)."""
        done = compile_recurrent(layers)
        if done is None:
            return None
        compiled, k = done
        heads = list(layers[k:])
        if any(type(x) not in HEAD_TYPES for x in heads):
            return None
        return cls(layers, compiled, heads)

    def is_current(self, layers: Sequence[Layer]) -> bool:
        """Whether ``layers`` still hold what was compiled (:class:`~lstm_ref.fast.watch.Watch`:
        the attributes read by identity, the folded values through their read-only flags).
        (h0 and c0 are not watched: predict passes the state, and a stepper's snapshot is
        its own.)"""
        return self.watch.current(layers)

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
            if not within(run.x, self._largest):
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
        if not within(x, self._largest):
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
        rows = Rows(run.counts, run.stop)
        ends = {}
        y: Array = run.x
        for item in self.compiled:
            start = None
            if not isinstance(item, str):
                s = states[item.name]
                start = LSTMState(s.h[run.rows], s.c[run.rows])
            y, end = run_compiled(item, y, rows, start)
            if end is not None:
                ends[item.name] = end  # type: ignore[union-attr]
        if y.ndim == 3:
            y = y.transpose(1, 0, 2)  # (B, T, W), as the heads and the trimming expect
        for layer in self.heads:
            y, _ = layer.forward(y)
        return y, ends


def _input_limit(norm: SequenceInput, dtype: np.dtype) -> float:
    """A bound on |x| up to which (x − mean) / std cannot overflow ``dtype`` (inf: no
    normalisation)."""
    if norm.mean is None:
        return math.inf
    std = 1.0 if norm.std is None else float(norm.std.min())
    big = float(np.finfo(dtype).max) / 4
    return max(big * min(std, 1.0) - float(np.abs(norm.mean).max()), 0.0)
