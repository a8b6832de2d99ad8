"""A fast training step beside :func:`lstm_ref.train.loss.loss_and_gradients`, tested equal
to it.

The forward pass is the fast path's step (:func:`lstm_ref.fast.fast_steps`: one fused
product per step, the sigmoid folded into the weights) with every step's gates and cell
state kept in one time-major buffer, in blocks (T, 5, B, H) as the fast path's batches
(contiguous element-wise calls); backpropagation through time runs the chain rule of
:func:`lstm_ref.lstm.lstm_step_backward` over whole batches and gathers the weight
gradients into one product (dW, db, dR = Σ_t da_tᵀ [x_t, 1, h_{t-1}]) instead of one per
step.

Covered: a network ``SequenceInput → LSTM (output mode "last", covered by the fast path) →
FullyConnected → Softmax [→ ClassificationOutput]`` on an unmasked batch (MATLAB's padding,
the training recipe's); :func:`fast_loss_and_gradients` returns None for anything else, and
the caller uses the reference.
"""

from __future__ import annotations

import numpy as np

from ..fast import FAST_ORDER, StepBuffers, compile_lstm, covered, fast_steps
from ..layers import LSTM, ClassificationOutput, FullyConnected, SequenceInput, Softmax
from ..lstm import reorder_gates
from ..network import Network
from ..padding import Batch
from .loss import cross_entropy, cross_entropy_grad

Array = np.ndarray
Arrays = dict[str, Array]


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
        The mean cross-entropy; the gradients by ``"<layer>/<array>"``; probs (B, K).
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

    # forward: Z[t] = [x_t, 1, h_{t-1}]; A[t] = the blocks c_t, g, f, i, o after step t
    Z = np.empty((T + 1, B, C + 1 + H), x.dtype)
    Z[:-1, :, :C] = x.transpose(1, 0, 2)
    Z[:, :, C] = 1
    Z[0, :, C + 1 :] = f.h0
    A = np.empty((T, 5, B, H), x.dtype)
    c0 = np.broadcast_to(f.c0, (B, H))
    A[0, 0] = c0
    scratch, G = np.empty((2, B, H), x.dtype), np.empty((B, 4 * H), x.dtype)
    for t in range(T):
        if t:
            A[t, 0] = A[t - 1, 0]  # c_{t-1}, updated in place to c_t
        buf = StepBuffers.of(A[t], scratch, G)
        fast_steps(f.M, [(Z[t], Z[t + 1, :, C + 1 :])], buf, half)
    h_last = Z[T, :, C + 1 :]
    logits, fc_cache = fc.forward(h_last)
    probs, _ = softmax.forward(logits)
    loss = float(np.mean(cross_entropy(logits, targets)))

    # backward through FullyConnected, then through time
    d = cross_entropy_grad(probs, targets) / B  # (B, K)
    dh, fc_grads = fc.backward(d, fc_cache)  # (B, H)
    grads = {f"{fc.name}/{k}": g for k, g in fc_grads.items()}
    dc = np.zeros((B, H), x.dtype)
    R = reorder_gates(lstm.params.R, FAST_ORDER, inverse=True)  # (4H, H), fast order g,f,i,o
    DA = np.empty((T, B, 4 * H), x.dtype)  # dL/da_t, fast order
    one = np.array(1, dtype=x.dtype)
    left, slope, s = np.empty((3, B, H), x.dtype), np.empty((3, B, H), x.dtype), np.empty_like(dc)
    for t in reversed(range(T)):
        c, g, fg, i, o = A[t]  # (B, H) each; σ(a) of f, i, o in A[t, 2:]
        sig, c_prev = A[t, 2:], A[t - 1, 0] if t else c0
        da = DA[t].reshape(B, 4, H).transpose(1, 0, 2)  # (4, B, H) blocks g, f, i, o
        np.tanh(c, out=s)  # h = o ⊙ tanh(c): do = dh ⊙ tanh(c), dc += dh ⊙ o ⊙ (1 − tanh²c)
        np.multiply(dh, s, out=left[2])
        np.multiply(s, s, out=s)
        np.subtract(one, s, out=s)
        np.multiply(s, o, out=s)
        np.multiply(s, dh, out=s)
        np.add(dc, s, out=dc)
        np.multiply(dc, c_prev, out=left[0])  # c = f ⊙ c_prev + i ⊙ g: df = dc ⊙ c_prev
        np.multiply(dc, g, out=left[1])  # di = dc ⊙ g
        np.subtract(one, sig, out=slope)  # σ' = σ (1 − σ) for f, i, o at once
        np.multiply(slope, sig, out=slope)
        np.multiply(left, slope, out=da[1:])
        np.multiply(g, g, out=s)  # dg = dc ⊙ i, tanh' = 1 − g²
        np.subtract(one, s, out=s)
        np.multiply(s, i, out=s)
        np.multiply(s, dc, out=da[0])
        dh = DA[t] @ R  # to h_{t-1}
        np.multiply(dc, fg, out=dc)  # to c_{t-1}
    Z[:-1, :, :C], _ = inp.forward(Z[:-1, :, :C])  # the normalised inputs (T, B, C)
    DA2, Z2 = DA.reshape(T * B, 4 * H), Z[:-1].reshape(T * B, C + 1 + H)
    dM = reorder_gates(DA2.T @ Z2, FAST_ORDER)  # (4H, C + 1 + H) dW, db, dR at once; i, f, g, o
    for name, part in zip(("W", "R", "b"), (dM[:, :C], dM[:, C + 1 :], dM[:, C]), strict=True):
        grads[f"{lstm.name}/{name}"] = np.ascontiguousarray(part)
    return loss, grads, probs
