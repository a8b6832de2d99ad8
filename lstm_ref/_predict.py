"""How :meth:`Network.predict <lstm_ref.network.Network.predict>` computes: the fast path
where it covers the layers, else the reference batches; a framework's padded outputs; the
check that no layer's output overflowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError
from .fast import FastNetwork
from .layers import Layer
from .lstm import LSTMState, copy_state
from .padding import Batch, Padding, split_batches
from .sequences import Layout

if TYPE_CHECKING:
    from .network import Network, State

Array = np.ndarray


def masked_or_matlab(
    net: Network,
    seqs: list[Array],
    state_in: State,
    padding: Padding,
    upto: int,
    engine: FastNetwork | None,
    recheck: Callable[[], list[Array]] | None,
) -> tuple[list[Array] | Array, State]:
    """Every sequence's output of layer ``upto`` (its own steps; the fast path gives one
    (N, K) array when each is a vector) and the final states:
    through ``engine`` (the fast path of layers 0 … upto) where it covers the layers,
    else the reference. ``recheck`` validates sequences the fast path took unchecked,
    should it refuse them (the checks then name the bad value)."""
    batched = None if engine is None else engine.run(seqs, state_in, padding)
    if batched is None and recheck is not None:
        seqs = recheck()
    return batched or reference(net, seqs, state_in, padding, upto)


def padded(
    net: Network,
    seqs: list[Array],
    T: int,
    state_in: State,
    padding: Padding,
    upto: int,
    engine: FastNetwork | None,
    recheck: Callable[[], list[Array]] | None,
    skipped: list[Array] | None = None,
) -> tuple[Array, State]:
    """A framework's padded batch of outputs (:meth:`Padding.pad_outputs`): the last
    recurrent layer up to ``upto`` computed masked, its padded steps filled as the
    framework fills them, then the layers after it run over every step. ``skipped``:
    steps inside the sequences Keras's Masking skips (removed before the layers, filled
    after the last recurrent one)."""
    recurrent = [k for k in range(upto + 1) if net.layers[k].initial_state is not None]
    r = recurrent[-1] if recurrent else upto
    if r != upto:
        engine = net.fast_engine(r)
    if skipped is not None:
        seqs = [s[~k] for s, k in zip(seqs, skipped, strict=True)]
    results, final = masked_or_matlab(net, seqs, state_in, padding, r, engine, recheck)
    y = stack_if_same_shape(results)  # (N, W) for an output mode "last": nothing padded
    if isinstance(y, list):
        source = net.layers[r] if recurrent else None
        y = padding.pad_outputs(y, T, source, skipped)  # (N, T, W)
    for layer in net.layers[r + 1 : upto + 1]:  # stateless: each step on its own
        with np.errstate(over="ignore", invalid="ignore"):
            y, _ = layer.forward(y, None, None)
        check_finite_output(layer, y)
    return y, final


def reference(
    net: Network, seqs: list[Array], state_in: State, padding: Padding, upto: int
) -> tuple[list[Array], State]:
    """predict through :meth:`forward`: every sequence's output and the final states."""
    results: list[Array] = [np.empty(0)] * len(seqs)
    final = {name: copy_state(s) for name, s in state_in.items()}
    for batch in split_batches(seqs, padding):
        rows = {n: LSTMState(s.h[batch.rows], s.c[batch.rows]) for n, s in state_in.items()}
        y, caches = net.forward(batch, rows, upto)
        for b, r in enumerate(batch.rows):
            start, n = batch.start[b], batch.lengths[b]
            results[r] = y[b] if y.ndim == 2 else y[b, start : start + n]
        for layer, cache in zip(net.layers, caches, strict=False):
            if cache.final_state is not None:
                final[layer.name].h[batch.rows] = cache.final_state.h
                final[layer.name].c[batch.rows] = cache.final_state.c
    return results, final


def check_finite_output(layer: Layer, y: Array, batch: Batch | None = None) -> None:
    """Raise if ``layer``'s output ``y`` (B, T, W) or (B, W) holds a NaN or an Inf; its rows
    are ``batch``'s, or (None) the sequences in order, starting at step 0."""
    bad = ~np.isfinite(y)
    if not bad.any():
        return
    where = np.argwhere(bad)[0]
    row = int(where[0])
    start, seq = (0, row) if batch is None else (batch.start[row], batch.rows[row])
    step = f"time step {int(where[1] - start) + 1}" if y.ndim == 3 else "its last step"
    raise InputError(
        f"layer {layer.name!r} overflowed {y.dtype} on sequence {int(seq) + 1} at "
        f"{step} (a non-finite value): the inputs, state or weights are too large to compute "
        "in this dtype"
    )


def padded_length(X: object, seqs: list[Array], layout: Layout) -> int:
    """T of the caller's padded batch (N, T, C) — (N, C, T) in layout "CT" — else the
    longest sequence."""
    if isinstance(X, np.ndarray) and X.ndim == 3:
        return int(X.shape[1] if layout == "TC" else X.shape[2])
    return max(len(s) for s in seqs)


def stack_if_same_shape(arrays: list[Array] | Array) -> Array | list[Array]:
    """One (N, K) array when every result is a vector of the same length (as it is, when
    it is one already), else the list."""
    if isinstance(arrays, np.ndarray):
        return arrays
    if len({a.shape for a in arrays}) == 1 and arrays[0].ndim == 1:
        return np.stack(arrays)
    return arrays
