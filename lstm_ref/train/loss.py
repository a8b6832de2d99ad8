"""The loss and its gradients: cross-entropy, backpropagation through the layers, and the
central differences that check them.

Gradients travel the mirror path of the forward pass: :meth:`Network.forward` keeps each
layer's cache, and each layer's ``backward`` sits beside its ``forward`` (the LSTM's BPTT in
:mod:`lstm_ref.lstm`). Parameters and gradients are dicts keyed ``"<layer>/<array>"``,
e.g. ``"lstm/W"``, ``"fc/bias"``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InputError
from ..fast import writeable
from ..layers import Softmax
from ..network import Network
from ..padding import MASKED, Batch, Padding, make_batches

Array = np.ndarray
Arrays = dict[str, Array]


def learnables(net: Network) -> Arrays:
    """Every trainable array of ``net`` by ``"<layer>/<array>"`` (the arrays themselves)."""
    return {f"{layer.name}/{k}": v for layer in net.layers for k, v in layer.learnables().items()}


def softmax_index(net: Network) -> int:
    """Index of the network's final Softmax layer (layers after it must pass values through)."""
    found = [k for k, layer in enumerate(net.layers) if isinstance(layer, Softmax)]
    if not found or any(layer.learnables() for layer in net.layers[found[-1] :]):
        raise InputError("the cross-entropy loss needs a network that ends in a Softmax layer")
    return found[-1]


def cross_entropy(logits: Array, targets: Array) -> Array:
    """−log softmax(z)[target] per row, to the last digit even when p[target] ≈ 1.

    −log p = log Σ_k exp(z_k − z_target) = log(1 + Σ_{k≠target} exp(z_k − z_target)): a
    log1p of a small sum when the target has the largest logit, shifted by the largest
    difference m otherwise. ``logits`` (B, K), ``targets`` (B,) int; returns (B,).
    """
    rows = np.arange(len(targets))
    others = logits - logits[rows, targets][:, None]  # z_k − z_target
    others[rows, targets] = -np.inf
    m = np.maximum(others.max(axis=1), 0)  # (B,)
    s = np.exp(others - m[:, None]).sum(axis=1)
    return np.where(m > 0, m + np.log(np.exp(-m) + s), np.log1p(s))


def cross_entropy_grad(probs: Array, targets: Array) -> Array:
    """d(−log p[target])/dz of softmax and cross-entropy together: p − onehot, (B, K)."""
    d = probs.copy()
    d[np.arange(len(targets)), targets] -= 1
    return d


def loss_and_gradients(net: Network, batch: Batch, targets: Array) -> tuple[float, Arrays, Array]:
    """Mean cross-entropy of one batch and its gradient with respect to every learnable.

    Parameters
    ----------
    net : Network
        Ends in Softmax (optionally followed by ClassificationOutput). Each sequence starts
        from the network's initial state, as in MATLAB's training.
    batch : Batch
        A padded batch from :func:`lstm_ref.padding.make_batches`.
    targets : ndarray of int, shape (B,)
        The class index of each row.

    Returns
    -------
    loss : float
        −mean log p[target].
    grads : dict of str to ndarray
        Same keys and shapes as :func:`learnables`.
    probs : ndarray, shape (B, K)
    """
    k = softmax_index(net)
    logits, caches = net.forward(batch, upto=k - 1)  # (B, K)
    probs, _ = net.layers[k].forward(logits)
    loss = float(np.mean(cross_entropy(logits, targets)))
    d = cross_entropy_grad(probs, targets) / len(targets)  # dL/dlogits of the mean
    grads = {}
    for layer, cache in reversed(list(zip(net.layers[:k], caches, strict=True))):
        d, layer_grads = layer.backward(d, cache)
        grads.update({f"{layer.name}/{n}": g for n, g in layer_grads.items()})
    return loss, grads, probs


def mean_loss(
    net: Network, sequences: list[Array], targets: Array, padding: Padding = MASKED
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``net`` on checked (T_i, C) sequences, (N,) targets."""
    k = softmax_index(net)
    total, correct = 0.0, 0
    for batch in make_batches(sequences, padding):
        logits, _ = net.forward(batch, upto=k - 1)  # (B, K)
        rows = targets[batch.rows]
        total += float(cross_entropy(logits, rows).sum())
        correct += int((logits.argmax(axis=1) == rows).sum())
    return total / len(sequences), correct / len(sequences)


def central_difference(
    loss: Callable[[], float], array: Array, index: tuple[int, ...], eps: float
) -> float:
    """(loss(a[index] + eps) − loss(a[index] − eps)) / 2 eps, changing ``array`` in place
    and putting the value back."""
    saved = array[index]
    writeable(array)
    try:
        array[index] = saved + eps
        plus = loss()
        array[index] = saved - eps
        minus = loss()
    finally:
        array[index] = saved
    return (plus - minus) / (2 * eps)


def numerical_gradients(net: Network, batch: Batch, targets: Array, eps: float = 1e-6) -> Arrays:
    """Central differences of the loss for every element of every learnable (slow; for checks)."""
    grads = {}
    for name, p in learnables(net).items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            g[idx] = central_difference(
                lambda: loss_and_gradients(net, batch, targets)[0], p, idx, eps
            )
        grads[name] = g
    return grads
