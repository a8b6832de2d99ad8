"""Training from scratch: cross-entropy, backpropagation through the layers, L2
regularisation, gradient clipping (MATLAB's three methods), Adam, and a gradient check.

Gradients travel the mirror path of the forward pass: :meth:`Network.forward` keeps each
layer's cache, and each layer's ``backward`` sits beside its ``forward`` (the LSTM's BPTT in
:mod:`lstm_ref.lstm`). Parameters and gradients are dicts keyed ``"<layer>/<array>"``,
e.g. ``"lstm/W"``, ``"fc/bias"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from .layers import LSTM, ClassificationOutput, FullyConnected, Softmax
from .network import Network
from .sequences import Batch, as_sequence_list, make_batches

Array = np.ndarray
Arrays = dict[str, Array]
ClipMethod = Literal["l2norm", "global-l2norm", "absolute-value"]

# MATLAB's L2 factors: weights 1, biases 0 (InputWeightsL2Factor, BiasL2Factor, …).
L2_FACTORS = {LSTM: {"W": 1.0, "R": 1.0, "b": 0.0}, FullyConnected: {"weights": 1.0, "bias": 0.0}}


def learnables(net: Network) -> Arrays:
    """Every trainable array of ``net`` by ``"<layer>/<array>"`` (the arrays themselves)."""
    return {f"{layer.name}/{k}": v for layer in net.layers for k, v in layer.learnables().items()}


def loss_and_gradients(net: Network, batch: Batch, targets: Array) -> tuple[float, Arrays, Array]:
    """Mean cross-entropy of one batch and its gradient with respect to every learnable.

    Parameters
    ----------
    net : Network
        Ends in Softmax (optionally followed by ClassificationOutput). Each sequence starts
        from the network's initial state, as in MATLAB's training.
    batch : Batch
        A padded batch from :func:`lstm_ref.sequences.make_batches`.
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
    B = len(targets)
    logits, caches = net.forward(batch, upto=k - 1)  # (B, K)
    probs, _ = net.layers[k].forward(logits)
    loss = float(np.mean(cross_entropy(logits, targets)))
    d = probs.copy()  # softmax and cross-entropy together: dL/dlogits = (p − onehot) / B
    d[np.arange(B), targets] -= 1
    d /= B
    grads = {}
    for layer, cache in reversed(list(zip(net.layers[:k], caches, strict=True))):
        d, layer_grads = layer.backward(d, cache)
        grads.update({f"{layer.name}/{n}": g for n, g in layer_grads.items()})
    return loss, grads, probs


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


def softmax_index(net: Network) -> int:
    """Index of the network's final Softmax layer (a ClassificationOutput may follow it)."""
    tail = [layer for layer in net.layers if not isinstance(layer, ClassificationOutput)]
    if not isinstance(tail[-1], Softmax):
        raise ValueError("the cross-entropy loss needs a network that ends in a Softmax layer")
    return net.layers.index(tail[-1])


def add_l2(net: Network, grads: Arrays, factor: float) -> None:
    """grads += factor · L2-factor · weights, in place (MATLAB's L2Regularization)."""
    for layer in net.layers:
        for name, scale in L2_FACTORS.get(type(layer), {}).items():
            if scale:
                grads[f"{layer.name}/{name}"] += factor * scale * layer.learnables()[name]


def clip_gradients(grads: Arrays, threshold: float, method: ClipMethod = "l2norm") -> Arrays:
    """MATLAB's GradientThreshold.

    ``"l2norm"``: rescale each parameter's gradient whose own L2 norm exceeds the threshold
    (MATLAB's default); ``"global-l2norm"``: rescale all gradients together when their joint
    norm exceeds it; ``"absolute-value"``: clip each element to ±threshold.
    """
    if method == "l2norm":
        return {
            k: g * min(1.0, threshold / max(np.linalg.norm(g), 1e-300)) for k, g in grads.items()
        }
    if method == "global-l2norm":
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        return {k: g * min(1.0, threshold / max(norm, 1e-300)) for k, g in grads.items()}
    _check_clip_method(method)
    return {k: np.clip(g, -threshold, threshold) for k, g in grads.items()}


def _check_clip_method(method: str) -> None:
    if method not in get_args(ClipMethod):
        raise ValueError(
            f"gradient threshold method must be 'l2norm', 'global-l2norm' or 'absolute-value'; "
            f"got {method!r}"
        )


@dataclass
class Adam:
    """Adam with bias correction (MATLAB's defaults: β1 0.9, β2 0.999, ε 1e-8)."""

    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    m: Arrays = field(default_factory=dict)
    v: Arrays = field(default_factory=dict)
    t: int = 0

    def step(self, params: Arrays, grads: Arrays) -> None:
        """Update ``params`` in place."""
        self.t += 1
        for k, p in params.items():
            g = grads[k]
            m = self.m[k] = self.beta1 * self.m.get(k, 0) + (1 - self.beta1) * g
            v = self.v[k] = self.beta2 * self.v.get(k, 0) + (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1**self.t)
            v_hat = v / (1 - self.beta2**self.t)
            p -= self.learning_rate * m_hat / (np.sqrt(v_hat) + self.epsilon)


@dataclass(frozen=True)
class TrainingOptions:
    """MATLAB's trainingOptions("adam", …) for sequence classification.

    Defaults are the Japanese Vowels recipe: mini-batches of 27 in data order (sort the
    data by length first; Shuffle "never"), SequenceLength "longest", right padding with 0
    and no masking, GradientThreshold 1 ("l2norm"), L2Regularization 1e-4. A numeric
    SequenceLength (MATLAB's truncated backpropagation in chunks) is not supported.
    """

    max_epochs: int = 60
    mini_batch_size: int = 27
    learning_rate: float = 1e-3
    gradient_threshold: float = 1.0
    gradient_threshold_method: ClipMethod = "l2norm"
    l2_regularization: float = 1e-4
    sequence_length: Literal["longest", "shortest"] = "longest"
    verbose_every: int = 10

    def __post_init__(self) -> None:
        for name in ("max_epochs", "mini_batch_size", "verbose_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name in ("learning_rate", "gradient_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        if not self.l2_regularization >= 0:
            raise ValueError(f"l2_regularization must be >= 0; got {self.l2_regularization!r}")
        if self.sequence_length not in ("longest", "shortest"):
            raise ValueError(
                "training supports sequence_length 'longest' or 'shortest' (not MATLAB's "
                f"chunked truncated backpropagation); got {self.sequence_length!r}"
            )
        _check_clip_method(self.gradient_threshold_method)


@dataclass
class EpochRecord:
    """One line of the training log."""

    epoch: int
    loss: float  # mean training loss over the epoch's mini-batches
    accuracy: float  # training accuracy over the epoch's mini-batches
    seconds: float  # elapsed since training started
    validation_accuracy: float | None = None


def train(
    net: Network,
    sequences: Sequence[Array],
    labels: Sequence[str],
    options: TrainingOptions = TrainingOptions(),
    validation: tuple[Sequence[Array], Sequence[str]] | None = None,
    log: Callable[[str], None] | None = print,
) -> list[EpochRecord]:
    """Train ``net`` in place on labelled sequences (each (T_i, C), checked like
    :meth:`Network.predict`'s input), one label per sequence.

    Deterministic: no shuffling, no randomness beyond the initial weights. Prints one line
    every ``options.verbose_every`` epochs (and the first and last) to ``log``.
    """
    seqs, _ = as_sequence_list(list(sequences), net.input_size, dtype=net.dtype)
    if len(labels) != len(seqs):
        raise ValueError(
            f"expected one label per sequence: {len(seqs)} sequences, {len(labels)} labels"
        )
    index = {name: k for k, name in enumerate(net.class_names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the class names {list(net.class_names)}")
    targets = np.array([index[label] for label in labels])
    batches = make_batches(
        seqs,
        "matlab",
        mini_batch_size=options.mini_batch_size,
        sequence_length=options.sequence_length,
    )
    params = learnables(net)
    adam = Adam(options.learning_rate)
    history: list[EpochRecord] = []
    start = time.perf_counter()
    if log:
        log(f"{'epoch':>5}  {'loss':>8}  {'accuracy':>8}  {'val. acc.':>9}  {'time (s)':>8}")
    for epoch in range(1, options.max_epochs + 1):
        losses, correct = [], 0
        for batch in batches:
            loss, grads, probs = loss_and_gradients(net, batch, targets[batch.rows])
            add_l2(net, grads, options.l2_regularization)
            grads = clip_gradients(
                grads, options.gradient_threshold, options.gradient_threshold_method
            )
            adam.step(params, grads)
            losses.append(loss * len(batch.rows))
            correct += int((probs.argmax(axis=1) == targets[batch.rows]).sum())
        record = EpochRecord(
            epoch, sum(losses) / len(seqs), correct / len(seqs), time.perf_counter() - start
        )
        if validation is not None:
            record.validation_accuracy = accuracy(net, *validation, options.mini_batch_size)
        history.append(record)
        if log and (epoch % options.verbose_every == 0 or epoch in (1, options.max_epochs)):
            val = "" if record.validation_accuracy is None else f"{record.validation_accuracy:.4f}"
            r = record
            log(f"{epoch:>5}  {r.loss:>8.4f}  {r.accuracy:>8.4f}  {val:>9}  {r.seconds:>8.2f}")
    return history


def accuracy(
    net: Network, sequences: Sequence[Array], labels: Sequence[str], mini_batch_size: int = 27
) -> float:
    """Fraction of sequences classified correctly (MATLAB semantics, mini-batches in data order)."""
    predicted, _ = net.classify(list(sequences), mini_batch_size=mini_batch_size)
    return float(np.mean(predicted == np.asarray(labels)))


def sort_by_length(
    sequences: Sequence[Array], labels: Sequence[str]
) -> tuple[list[Array], list[str]]:
    """Sequences and labels in order of increasing length (stable), as MATLAB's recipe does."""
    order = sorted(range(len(sequences)), key=lambda k: len(sequences[k]))
    return [sequences[k] for k in order], [labels[k] for k in order]


def numerical_gradients(net: Network, batch: Batch, targets: Array, eps: float = 1e-6) -> Arrays:
    """Central differences of the loss for every element of every learnable (slow; for checks)."""
    grads = {}
    for name, p in learnables(net).items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            saved = p[idx]
            p[idx] = saved + eps
            plus = loss_and_gradients(net, batch, targets)[0]
            p[idx] = saved - eps
            minus = loss_and_gradients(net, batch, targets)[0]
            p[idx] = saved
            g[idx] = (plus - minus) / (2 * eps)
        grads[name] = g
    return grads
