"""A fast training step beside :func:`lstm_ref.train.loss.loss_and_gradients`, tested equal
to it.

The forward pass is the fast path's step (:func:`lstm_ref.fast.fast_steps`: one fused
product per step, the sigmoid folded into the weights) with every step's gates and cell
state kept in one time-major buffer, in blocks (T, 5, B, H) as the fast path's batches
(contiguous element-wise calls); backpropagation through time runs the chain rule of
:func:`lstm_ref.lstm.lstm_step_backward` over whole batches and gathers the weight
gradients into one product (dW, db, dR = Σ_t da_tᵀ [x_t, 1, h_{t-1}]) instead of one per
step.

Its arrays, with every step's views of them, are kept from call to call (:class:`Buffers`,
by batch shape, for a few shapes and a bounded amount of memory: :func:`take_buffers`).
Allocated afresh, they would be a few MB per batch, which in the benchmark's process comes
back as 1,000 to 3,000 page faults an epoch (about 1.6 µs each where measured). The numbers
are those of fresh arrays, bit for bit: the same calls on the same layouts.

Covered: a network ``SequenceInput → LSTM (output mode "last", covered by the fast path) →
FullyConnected → Softmax [→ ClassificationOutput]`` on an unmasked batch (MATLAB's padding,
the training recipe's); :func:`fast_loss_and_gradients` returns None for anything else, and
the caller uses the reference.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..fast import FAST_ORDER, StepBuffers, by_gate, compile_lstm, covered, fast_steps
from ..layers import LSTM, ClassificationOutput, FullyConnected, SequenceInput, Softmax
from ..lstm import reorder_gates
from ..network import Network
from ..padding import Batch
from .loss import cross_entropy, cross_entropy_grad

Array = np.ndarray
Arrays = dict[str, Array]
KEPT_SHAPES = 4  # batch shapes (B, C, H, dtype) whose Buffers are kept between calls
KEPT_BYTES = 64 << 20  # at most this much memory kept by them together


def training_layers(net: Network) -> tuple[SequenceInput, LSTM, FullyConnected, Softmax] | None:
    """The four layers :func:`fast_loss_and_gradients` computes, or None if ``net`` has
    another shape (see the module docstring)."""
    layers = net.layers
    if len(layers) < 4 or any(type(x) is not ClassificationOutput for x in layers[4:]):
        return None
    inp, lstm, fc, softmax = layers[:4]
    if (
        type(inp) is not SequenceInput
        or not covered(lstm)
        or type(fc) is not FullyConnected
        or type(softmax) is not Softmax
    ):
        return None
    assert isinstance(lstm, LSTM)
    return (inp, lstm, fc, softmax) if lstm.output_mode == "last" else None


Shape = tuple[int, int, int, np.dtype]  # (B, C, H, dtype): a batch's rows, features, units


class Buffers(NamedTuple):
    """The arrays of one training step for batches of B rows (C features, H units) of up to
    ``capacity`` steps, kept from call to call (:func:`take_buffers`); a batch of T steps
    uses the first T blocks of each (contiguous, laid out as arrays of exactly T steps).

    Attributes
    ----------
    capacity : int
    Z : ndarray, shape (capacity + 1, B, C + 1 + H)
        Z[t] = [x_t, 1, h_{t-1}] (the ones written once).
    A : ndarray, shape (capacity, 5, B, H)
        Step t's blocks c_t, g, f, i, o: the cell state and the gates after the step.
    DA : ndarray, shape (capacity, B, 4H)
        dL/da_t, the gradient of step t's pre-activations, in the fast order g, f, i, o.
    dM : ndarray, shape (4H, C + 1 + H)
        Σ_t da_tᵀ [x_t, 1, h_{t-1}]: dW, db and dR side by side, in the fast order.
    c0, dc, dh, s : ndarray, shape (B, H)
        The initial cell state; the gradients reaching c_t and h_t; scratch.
    left, slope : ndarray, shape (3, B, H)
        Per step: df, di, do before the sigmoid's slope, and that slope σ (1 − σ).
    forward : list of (steps, StepBuffers)
        Step t's arguments of :func:`lstm_ref.fast.fast_steps`: [(Z[t], the h columns of
        Z[t + 1])] and the views of A[t] (one scratch and one product's rows for all steps).
    backward : list of tuples
        Step t's views: A[t]'s blocks c, g, f, i, o; its sigmoid gates A[t, 2:]; c_{t-1}
        (A[t - 1, 0], or ``c0``); DA[t], and DA[t] by gate (4, B, H).
    """

    capacity: int
    Z: Array
    A: Array
    DA: Array
    dM: Array
    c0: Array
    dc: Array
    dh: Array
    s: Array
    left: Array
    slope: Array
    forward: list[tuple[list[tuple[Array, Array]], StepBuffers]]
    backward: list[tuple[Array, ...]]

    @classmethod
    def make(cls, shape: Shape, T: int) -> Buffers:
        """New buffers for batches of ``shape`` (B, C, H, dtype) of up to T steps."""
        B, C, H, dtype = shape
        Z, A = np.empty((T + 1, B, C + 1 + H), dtype), np.empty((T, 5, B, H), dtype)
        Z[:, :, C] = 1
        DA, dM = np.empty((T, B, 4 * H), dtype), np.empty((4 * H, C + 1 + H), dtype)
        c0, dc, dh, s = np.empty((4, B, H), dtype)
        left, slope = np.empty((2, 3, B, H), dtype)
        scratch, G = np.empty((2, B, H), dtype), np.empty((B, 4 * H), dtype)
        forward = [
            ([(Z[t], Z[t + 1, :, C + 1 :])], StepBuffers.of(A[t], scratch, G)) for t in range(T)
        ]
        backward = [
            (*A[t], A[t, 2:], A[t - 1, 0] if t else c0, DA[t], by_gate(DA[t])) for t in range(T)
        ]
        return cls(T, Z, A, DA, dM, c0, dc, dh, s, left, slope, forward, backward)

    @property
    def nbytes(self) -> int:
        """The memory of the large arrays (those that grow with T)."""
        return self.Z.nbytes + self.A.nbytes + self.DA.nbytes


_kept: dict[Shape, Buffers] = {}  # free buffers by shape, the least recently used first


def take_buffers(shape: Shape, T: int) -> Buffers:
    """:class:`Buffers` for a batch of ``shape`` and T steps: the ones kept for that shape,
    taken out of the pool while in use (so that a concurrent call makes its own), or new
    ones if none are kept or they hold fewer steps."""
    work = _kept.pop(shape, None)
    return work if work is not None and work.capacity >= T else Buffers.make(shape, T)


def keep_buffers(shape: Shape, work: Buffers) -> None:
    """Put ``work`` back for the next call of ``shape``. The pool keeps the ``KEPT_SHAPES``
    shapes used last, together at most ``KEPT_BYTES`` (the least recently used go first)."""
    _kept[shape] = work
    while len(_kept) > KEPT_SHAPES or sum(w.nbytes for w in _kept.values()) > KEPT_BYTES:
        del _kept[next(iter(_kept))]  # the least recently used


def fast_loss_and_gradients(
    net: Network, batch: Batch, targets: Array
) -> tuple[float, Arrays, Array] | None:
    """What :func:`lstm_ref.train.loss.loss_and_gradients` returns, computed fast; None
    when the network or the batch is not covered.

    Parameters
    ----------
    net : Network
    batch : Batch
        Unmasked (``Padding.matlab``): every step of ``batch.x`` (B, T, C) is data.
    targets : ndarray of int, shape (B,)

    Returns
    -------
    (loss, grads, probs) or None
        The mean cross-entropy; the gradients by ``"<layer>/<array>"``; probs (B, K). New
        arrays: none of them is one of the buffers kept for the next call.
    """
    layers = training_layers(net)
    if layers is None or batch.masked:
        return None
    inp, lstm, fc, softmax = layers
    f = compile_lstm(lstm, inp)
    x = batch.x  # (B, T, C)
    B, T, C = x.shape
    H = f.H
    half = np.array(0.5, dtype=x.dtype)
    shape = (B, C, H, x.dtype)
    work = take_buffers(shape, T)

    # forward: Z[t] = [x_t, 1, h_{t-1}]; work.A[t] = the blocks c_t, g, f, i, o after step t
    Z, DA = work.Z[: T + 1], work.DA[:T]
    Z[:-1, :, :C] = x.transpose(1, 0, 2)
    Z[0, :, C + 1 :] = f.h0
    c_prev = work.c0
    c_prev[...] = f.c0
    for steps, buf in work.forward[:T]:
        np.copyto(buf.c, c_prev)  # c_{t-1}, updated in place to c_t
        fast_steps(f.M, steps, buf, half)
        c_prev = buf.c
    h_last = Z[T, :, C + 1 :]
    logits, fc_cache = fc.forward(h_last)
    probs, _ = softmax.forward(logits)
    loss = float(np.mean(cross_entropy(logits, targets)))

    # backward through FullyConnected, then through time (out= given positionally in the loop:
    # NumPy parses it faster, a quarter of a small call's cost)
    d = cross_entropy_grad(probs, targets) / B  # (B, K)
    dh, fc_grads = fc.backward(d, fc_cache)  # (B, H)
    grads = {f"{fc.name}/{k}": g for k, g in fc_grads.items()}
    dc, left, slope, s = work.dc, work.left, work.slope, work.s
    dc[...] = 0
    R = reorder_gates(lstm.params.R, FAST_ORDER, inverse=True)  # (4H, H), fast order g,f,i,o
    one = np.array(1, dtype=x.dtype)
    for c, g, fg, i, o, sig, c_prev, da_rows, da in reversed(work.backward[:T]):
        # (B, H) each; σ(a) of f, i, o in sig; da (4, B, H) = da_rows by gate g, f, i, o
        np.tanh(c, s)  # h = o ⊙ tanh(c): do = dh ⊙ tanh(c), dc += dh ⊙ o ⊙ (1 − tanh²c)
        np.multiply(dh, s, left[2])
        np.multiply(s, s, s)
        np.subtract(one, s, s)
        np.multiply(s, o, s)
        np.multiply(s, dh, s)
        np.add(dc, s, dc)
        np.multiply(dc, c_prev, left[0])  # c = f ⊙ c_prev + i ⊙ g: df = dc ⊙ c_prev
        np.multiply(dc, g, left[1])  # di = dc ⊙ g
        np.subtract(one, sig, slope)  # σ' = σ (1 − σ) for f, i, o at once
        np.multiply(slope, sig, slope)
        np.multiply(left, slope, da[1:])
        np.multiply(g, g, s)  # dg = dc ⊙ i, tanh' = 1 − g²
        np.subtract(one, s, s)
        np.multiply(s, i, s)
        np.multiply(s, dc, da[0])
        dh = np.matmul(da_rows, R, work.dh)  # to h_{t-1}
        np.multiply(dc, fg, dc)  # to c_{t-1}
    Z[:-1, :, :C], _ = inp.forward(Z[:-1, :, :C])  # the normalised inputs (T, B, C)
    DA2, Z2 = DA.reshape(T * B, 4 * H), Z[:-1].reshape(T * B, C + 1 + H)
    dM = reorder_gates(np.matmul(DA2.T, Z2, work.dM), FAST_ORDER)  # dW, db, dR; i, f, g, o
    for name, part in zip(("W", "R", "b"), (dM[:, :C], dM[:, C + 1 :], dM[:, C]), strict=True):
        grads[f"{lstm.name}/{name}"] = np.ascontiguousarray(part)
    keep_buffers(shape, work)
    return loss, grads, probs
