"""A network's recurrent layers compiled for the fast path, and how each runs over one
time-major batch: forward and reverse LSTMs (any cell), bidirectional ones (every merge
mode, "last" read as the state or at the last step), stacks of them (every layer's final
h gathered), and the time reversal.

A batch here is time-major, (T, B, W), its rows sorted by length under masked padding (the
rows still running at step t are a prefix, ``counts[t]``) and each row's own number of steps
in ``stop``; under MATLAB's padding every row runs every step. A reverse direction reads
each row's own steps backwards — one gather (:func:`reversed_rows`) — and its outputs are
gathered back into time order the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..layers import LSTM, BiLSTM, Layer, LSTMStack, SequenceInput, TimeReversal, directions
from ..layers.bidirectional import MERGES
from ..lstm import LSTMState
from .step import FastLSTM, compile_lstm, run_lstm

Array = np.ndarray
REVERSAL = "reversal"  # a TimeReversal layer, compiled
LSTM_READS = ("name", "params", "act", "variant", "output_mode", "direction")


class FastBiLSTM(NamedTuple):
    """A :class:`~lstm_ref.layers.BiLSTM` compiled: its two directions and their merge."""

    name: str
    fwd: FastLSTM
    bwd: FastLSTM  # with every step's output when "last" is read at the last step
    merge: str
    last_step: bool  # "last" read at each sequence's last step (else the final states)

    @property
    def last(self) -> bool:
        return self.fwd.last


class FastStack(NamedTuple):
    """An :class:`~lstm_ref.layers.LSTMStack` compiled: its layers, run in order."""

    name: str
    parts: tuple[FastLSTM | FastBiLSTM, ...]
    last: bool  # every layer's final h (else the top layer's outputs)
    columns: list[tuple[slice, slice]]  # where each part's h and c sit in the joint state


Compiled = FastLSTM | FastBiLSTM | FastStack | str


def compile_recurrent(layers: Sequence[Layer]) -> tuple[list[Compiled], int] | None:
    """The recurrent part of ``layers`` (a SequenceInput first; its normalisation folded into
    the first LSTM) compiled, and the index of the first layer after it; None when a layer
    there is of another kind, or follows an output of one vector."""
    first = layers[0] if layers else None
    if type(first) is not SequenceInput:
        return None
    norm: SequenceInput | None = first
    compiled: list[Compiled] = []
    k = 1
    while k < len(layers) and type(layers[k]) in (LSTM, BiLSTM, LSTMStack, TimeReversal):
        x = layers[k]
        if compiled and getattr(compiled[-1], "last", False):
            return None  # one vector per sequence: nothing recurrent can follow
        if isinstance(x, LSTMStack):
            parts = [
                _compile_lstm_layer(part, norm if j == 0 else None)
                for j, part in enumerate(x.layers)
            ]
            compiled.append(FastStack(x.name, tuple(parts), x.output_mode == "last", x.columns()))
            norm = None
        elif isinstance(x, LSTM | BiLSTM):
            compiled.append(_compile_lstm_layer(x, norm))
            norm = None
        else:
            compiled.append(REVERSAL)
        k += 1
    if not any(isinstance(c, FastLSTM | FastBiLSTM | FastStack) for c in compiled):
        return None
    return compiled, k


def _compile_lstm_layer(x: LSTM | BiLSTM, norm: SequenceInput | None) -> FastLSTM | FastBiLSTM:
    """One LSTM or BiLSTM compiled (``norm`` folded into it)."""
    if isinstance(x, LSTM):
        return compile_lstm(x, norm)
    step = x.last == "step"
    bwd = compile_lstm(x.bwd, norm, last=False if step else None)
    return FastBiLSTM(x.name, compile_lstm(x.fwd, norm), bwd, x.merge_mode, step)


def reads(layer: Layer) -> list[tuple[object, tuple[str, ...]]]:
    """The objects and attributes :func:`compile_recurrent` reads of ``layer`` (the heads
    run live: none)."""
    if isinstance(layer, SequenceInput):
        return [(layer, ("normalization", "mean", "std"))]
    if isinstance(layer, LSTM):
        return [(layer, LSTM_READS)]
    if isinstance(layer, BiLSTM):
        bi = ("name", "fwd", "bwd", "merge_mode", "last")
        return [(layer, bi), (layer.fwd, LSTM_READS), (layer.bwd, LSTM_READS)]
    if isinstance(layer, LSTMStack):  # its list of layers: each item by identity
        return [(layer, ("name", "layers", "output_mode"))] + [
            r for part in layer.layers for r in reads(part)
        ]
    return []


def folded(layer: Layer) -> list[Array]:
    """The arrays of ``layer`` whose values a compilation copies into its own."""
    if isinstance(layer, SequenceInput):
        return [a for a in (layer.mean, layer.std) if a is not None]
    if isinstance(layer, LSTM | BiLSTM | LSTMStack):
        arrays = []
        for x in directions(layer):
            v = x.variant
            extra = [] if v is None else [a for a in (v.peephole, v.projection) if a is not None]
            arrays += [*x.params, *extra]
        return arrays
    return []


class Rows(NamedTuple):
    """What a compiled layer needs of the batch besides its input."""

    counts: Array  # (T,) rows running at each step (a prefix)
    stop: Array  # (B,) each row's number of steps


def reversed_rows(y: Array, stop: Array) -> Array:
    """Each row of ``y`` (T, B, W) reversed over its own ``stop`` steps (padding in place)."""
    t = np.arange(y.shape[0])[:, None]  # (T, 1)
    index = np.where(t < stop, stop - 1 - t, t)  # (T, B); its own inverse
    return np.take_along_axis(y, index[:, :, None], axis=0)


def run_direction(f: FastLSTM, y: Array, rows: Rows, start: LSTMState) -> tuple[Array, LSTMState]:
    """One compiled direction over ``y`` (T, B, C) from ``start`` ((B, P), (B, H)): its
    output — (T, B, P) in time order, zeros past each row's end, or the final h (B, P) —
    and its final state."""
    T, B = y.shape[:2]
    C = f.C
    Z = np.empty((T + 1, B, C + 1 + f.width), f.M.dtype)
    Z[:-1, :, :C] = reversed_rows(y, rows.stop) if f.reverse else y
    Z[:, :, C] = 1
    Z[0, :, C + 1 :] = start.h
    if not f.last and rows.counts[-1] < B:  # the outputs after a row's end are zeros
        Z[1:, :, C + 1 :] = 0
    c = run_lstm(f, Z, rows.counts, start.c)
    hs = Z[:, :, C + 1 :]
    h_final = hs[rows.stop, np.arange(B)]
    end = LSTMState(h_final, c)
    if f.last:
        return h_final, end
    return (reversed_rows(hs[1:], rows.stop) if f.reverse else hs[1:]), end


def run_compiled(
    item: Compiled, y: Array, rows: Rows, start: LSTMState | None
) -> tuple[Array, LSTMState | None]:
    """One compiled layer over ``y`` (T, B, W) from ``start`` (its (B, ·) state rows; None
    for the time reversal): its output and its final state."""
    if isinstance(item, str):
        return reversed_rows(y, rows.stop), None
    assert start is not None
    if isinstance(item, FastStack):
        ends = []
        for part, (hs, cs) in zip(item.parts, item.columns, strict=True):
            y, end = run_compiled(part, y, rows, LSTMState(start.h[:, hs], start.c[:, cs]))
            assert end is not None
            ends.append(end)
        final = LSTMState(*(np.concatenate(each, axis=-1) for each in zip(*ends, strict=True)))
        return (final.h if item.last else y), final
    if isinstance(item, FastLSTM):
        return run_direction(item, y, rows, start)
    hf, cf = item.fwd.width, item.fwd.H
    y_f, end_f = run_direction(item.fwd, y, rows, LSTMState(start.h[:, :hf], start.c[:, :cf]))
    y_b, end_b = run_direction(item.bwd, y, rows, LSTMState(start.h[:, hf:], start.c[:, cf:]))
    if item.last_step:  # the reverse output at each row's last step
        y_b = y_b[rows.stop - 1, np.arange(len(rows.stop))]
    end = LSTMState(*(np.concatenate(p, axis=-1) for p in zip(end_f, end_b, strict=True)))
    return MERGES[item.merge](y_f, y_b), end
