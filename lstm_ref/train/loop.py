"""The training loop: MATLAB's trainingOptions("adam", …) and the epochs over mini-batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._checks import check_choice, check_count, check_number
from ..errors import InputError, counted
from ..fast import writeable
from ..network import Network
from ..padding import Batch, Padding, check_padding, make_batches
from ..sequences import as_sequence_list
from .fast import fast_loss_and_gradients
from .loss import learnables, loss_and_gradients, mean_loss
from .optimizer import CLIP_METHODS, Adam, ClipMethod, add_l2, clip_gradients

Array = np.ndarray
Log = Callable[[str], None]
MATLAB_RECIPE_PADDING = Padding.matlab(mini_batch_size=27)  # Japanese Vowels: sorted batches of 27


@dataclass(frozen=True)
class TrainingOptions:
    """MATLAB's trainingOptions("adam", …) for sequence classification.

    Defaults are the Japanese Vowels recipe: ``padding`` MATLAB's, mini-batches of 27 in
    data order (sort the data by length first; Shuffle "never"), SequenceLength "longest",
    right padding with 0 and no masking; GradientThreshold 1 ("l2norm"),
    L2Regularization 1e-4. ``Padding.masked(...)`` trains on masked batches instead. A
    numeric SequenceLength (MATLAB's truncated backpropagation in chunks) is not supported.
    """

    max_epochs: int = 60
    padding: Padding = MATLAB_RECIPE_PADDING
    learning_rate: float = 1e-3
    gradient_threshold: float = 1.0
    gradient_threshold_method: ClipMethod = "l2norm"
    l2_regularization: float = 1e-4
    verbose_every: int = 10
    patience: int | None = None  # early stopping on validation loss; None: train every epoch
    shuffle: Literal["never", "once", "every-epoch"] = "never"  # MATLAB's Shuffle

    def __post_init__(self) -> None:
        check_count(self.max_epochs, "max_epochs")
        check_count(self.verbose_every, "verbose_every")
        if self.patience is not None:
            check_count(self.patience, "patience")
        for name in ("learning_rate", "gradient_threshold"):
            if not check_number(getattr(self, name), name) > 0:
                raise InputError(f"{name} must be positive; got {getattr(self, name)!r}")
        if not check_number(self.l2_regularization, "l2_regularization") >= 0:
            raise InputError(f"l2_regularization must be >= 0; got {self.l2_regularization!r}")
        if not isinstance(check_padding(self.padding).sequence_length, str):
            raise InputError(
                "training supports sequence_length 'longest' or 'shortest' (not MATLAB's "
                f"chunked truncated backpropagation); got {self.padding.sequence_length!r}"
            )
        check_choice(self.gradient_threshold_method, "gradient threshold method", CLIP_METHODS)
        check_choice(self.shuffle, "shuffle", ("never", "once", "every-epoch"))


@dataclass
class EpochRecord:
    """One line of the training log."""

    epoch: int
    loss: float  # mean training loss over the epoch's mini-batches
    accuracy: float  # training accuracy over the epoch's mini-batches
    seconds: float  # elapsed since training started
    validation_loss: float | None = None
    validation_accuracy: float | None = None


def train(
    net: Network,
    sequences: Sequence[Array],
    labels: Sequence[str],
    options: TrainingOptions = TrainingOptions(),
    validation: tuple[Sequence[Array], Sequence[str]] | None = None,
    log: Log | None = print,
    seed: int = 0,
) -> list[EpochRecord]:
    """Train ``net`` in place on labelled sequences (each (T_i, C), checked like
    :meth:`Network.predict`'s input), one label per sequence.

    With ``validation`` (sequences, labels) each epoch is also scored there (masked padding);
    with ``options.patience`` training stops once the validation loss has not improved for
    that many epochs, and the weights of the best epoch are kept.

    Deterministic: the only randomness is the order of the sequences when
    ``options.shuffle`` is "once" or "every-epoch" (NumPy's ``default_rng(seed)``). Prints a
    table —
    one line every ``options.verbose_every`` epochs, the first, the last and the best — to
    ``log``. Training that diverges (a weight or a layer's output no longer finite) stops
    with an InputError.
    """
    targets = _targets(net, sequences, labels, "")
    seqs, _ = as_sequence_list(list(sequences), net.input_size, dtype=net.dtype)
    checked = None
    if validation is not None:
        vseqs, _ = as_sequence_list(list(validation[0]), net.input_size, dtype=net.dtype)
        checked = (vseqs, _targets(net, vseqs, validation[1], "validation "))
    elif options.patience is not None:
        raise InputError("early stopping (patience) needs validation data")
    rng = np.random.default_rng(seed)

    def shuffled() -> tuple[Array, list[Batch]]:  # the sequences' order and its batches
        order = rng.permutation(len(seqs)) if options.shuffle != "never" else np.arange(len(seqs))
        return order, make_batches([seqs[k] for k in order], options.padding)

    order, batches = shuffled()
    params = learnables(net)
    adam = Adam(options.learning_rate)
    history: list[EpochRecord] = []
    best: tuple[float, int, dict[str, Array]] | None = None  # (loss, epoch, weights)
    start = time.perf_counter()
    if log:
        log(
            f"{'epoch':>5}  {'loss':>8}  {'accuracy':>8}  {'val. loss':>9}  {'val. acc.':>9}  "
            f"{'time (s)':>8}"
        )
    for epoch in range(1, options.max_epochs + 1):
        if options.shuffle == "every-epoch" and epoch > 1:  # new batches; else padded once
            order, batches = shuffled()
        losses, correct = [], 0
        for batch in batches:
            rows = order[batch.rows]  # the sequences of this batch, as numbered in seqs
            computed = fast_loss_and_gradients(net, batch, targets[rows])  # None: not covered
            loss, grads, probs = computed or loss_and_gradients(net, batch, targets[rows])
            add_l2(net, grads, options.l2_regularization)
            grads = clip_gradients(
                grads, options.gradient_threshold, options.gradient_threshold_method
            )
            adam.step(params, grads)
            _check_not_diverged(params, epoch, options)
            losses.append(loss * len(rows))
            correct += int((probs.argmax(axis=1) == targets[rows]).sum())
        r = EpochRecord(
            epoch, sum(losses) / len(seqs), correct / len(seqs), time.perf_counter() - start
        )
        if checked is not None:
            r.validation_loss, r.validation_accuracy = mean_loss(net, *checked)
        history.append(r)
        v = r.validation_loss
        if v is not None and (best is None or v < best[0]):
            best = (v, epoch, {k: p.copy() for k, p in params.items()})
        stop = (
            options.patience is not None
            and best is not None
            and (epoch - best[1] >= options.patience)
        )
        if log and (epoch % options.verbose_every == 0 or epoch in (1, options.max_epochs) or stop):
            log(_log_line(r))
        if stop:
            break
    if options.patience is not None and best is not None:
        for k, kept in best[2].items():
            writeable(params[k])[...] = kept
        if log:
            waited = counted(options.patience, "epoch")
            ended = (
                f"early stop after epoch {epoch}: no lower validation loss for {waited}"
                if stop
                else f"stopped at the epoch limit ({options.max_epochs})"
            )
            log(
                f"{ended}; kept the weights of epoch {best[1]}, whose validation loss "
                f"({best[0]:.4f}) was the lowest"
            )
    return history


def _targets(net: Network, seqs: Sequence[Array], labels: Sequence[str], what: str) -> Array:
    """The class index of each label, checked against the sequences and the class names."""
    if len(labels) != len(seqs):
        raise InputError(
            f"expected one {what}label per sequence: {len(seqs)} sequences, {len(labels)} labels"
        )
    index = {name: k for k, name in enumerate(net.class_names)}
    unknown = sorted(set(map(str, labels)) - set(index))
    if unknown:
        raise InputError(
            f"{what}labels {unknown} are not among the class names {list(net.class_names)}"
        )
    return np.array([index[str(label)] for label in labels])


def _log_line(r: EpochRecord) -> str:
    def cell(v: float | None) -> str:
        return f"{'':>9}" if v is None else f"{v:>9.4f}"

    return (
        f"{r.epoch:>5}  {r.loss:>8.4f}  {r.accuracy:>8.4f}  {cell(r.validation_loss)}  "
        f"{cell(r.validation_accuracy)}  {r.seconds:>8.2f}"
    )


def _check_not_diverged(params: dict[str, Array], epoch: int, options: TrainingOptions) -> None:
    """Stop with a clear error as soon as an update leaves a weight non-finite."""
    broken = [name for name, p in params.items() if not np.isfinite(p).all()]
    if broken:
        raise InputError(
            f"training diverged in epoch {epoch}: {broken} are no longer finite (learning rate "
            f"{options.learning_rate:g} too large?); the network is unusable — nothing was saved"
        )


def sort_by_length(
    sequences: Sequence[Array], labels: Sequence[str]
) -> tuple[list[Array], list[str]]:
    """Sequences and labels in order of increasing length (stable), as MATLAB's recipe does."""
    order = sorted(range(len(sequences)), key=lambda k: len(sequences[k]))
    return [sequences[k] for k in order], [labels[k] for k in order]
