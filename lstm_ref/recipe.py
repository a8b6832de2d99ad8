"""How a sequence classifier is trained and judged here, and how JapaneseVowelsNet was made.

The recipe is MATLAB's for Japanese Vowels ("Sequence Classification Using Deep Learning"):
training sequences sorted by length, mini-batches of 27 in that order (Shuffle "never"),
SequenceLength "longest" with unmasked right padding, Adam 1e-3, GradientThreshold 1
("l2norm"), L2Regularization 1e-4, MATLAB's initialisers — plus z-score input
normalisation (the sequence input layer's Normalization "zscore", statistics from the
training set), which lifts test accuracy from about 0.94 to about 0.97.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import load_japanese_vowels
from .datasets.japanese_vowels import CLASS_NAMES, provenance
from .formats import save_network
from .initializers import lstm_classifier
from .network import Network
from .train import EpochRecord, TrainingOptions, sort_by_length, train

Array = np.ndarray
NAME = "JapaneseVowelsNet"
TRAIN_COMMAND = "lstm-ref train --out weights"


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a trained network, given the data."""

    seed: int = 0
    hidden_size: int = 100
    zscore: bool = True
    options: TrainingOptions = field(default_factory=TrainingOptions)

    def __post_init__(self) -> None:
        if not isinstance(self.hidden_size, int) or self.hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive integer; got {self.hidden_size!r}")


def fit(
    sequences: Sequence[Array],
    labels: Sequence[str],
    class_names: Sequence[str],
    recipe: Recipe = Recipe(),
    validation: tuple[Sequence[Array], Sequence[str]] | None = None,
    log: Callable[[str], None] | None = print,
) -> tuple[Network, list[EpochRecord]]:
    """Initialise a sequence classifier and train it by ``recipe``.

    Parameters
    ----------
    sequences : list of ndarray, each (T_i, C)
    labels : sequence of str, one per sequence
    class_names : sequence of str
        The output classes, in output order.
    """
    if not sequences:
        raise ValueError("expected at least one training sequence")
    stacked = np.concatenate([np.asarray(s, dtype=np.float64) for s in sequences])  # (ΣT, C)
    norm = {"mean": stacked.mean(axis=0), "std": stacked.std(axis=0)} if recipe.zscore else {}
    rng = np.random.default_rng(recipe.seed)
    net = lstm_classifier(rng, stacked.shape[1], recipe.hidden_size, class_names, **norm)
    ordered, ordered_labels = sort_by_length(list(sequences), list(labels))
    history = train(net, ordered, ordered_labels, recipe.options, validation, log)
    return net, history


@dataclass(frozen=True)
class Evaluation:
    """Test results. ``accuracy`` scores each sequence alone (no padding at all);
    ``matlab_accuracy`` follows MATLAB's recipe: test data sorted by length, mini-batches
    of 27, unmasked right padding to each batch's longest sequence;
    ``matlab_default_accuracy`` is MATLAB's ``classify`` with its defaults: data order,
    mini-batches of 128, unmasked right padding."""

    accuracy: float
    matlab_accuracy: float
    matlab_default_accuracy: float
    confusion: Array  # (K, K): rows true class, columns predicted
    class_names: tuple[str, ...]

    def confusion_table(self) -> str:
        """The confusion matrix as a Markdown table."""
        names = self.class_names
        head = "| true \\ predicted | " + " | ".join(names) + " |"
        rule = "|---" * (len(names) + 1) + "|"
        rows = [
            f"| **{n}** | " + " | ".join(map(str, row)) + " |"
            for n, row in zip(names, self.confusion, strict=True)
        ]
        return "\n".join([head, rule, *rows])


def evaluate(net: Network, sequences: Sequence[Array], labels: Sequence[str]) -> Evaluation:
    """Score ``net`` on labelled sequences both ways (see :class:`Evaluation`)."""
    labels = np.asarray(labels)
    alone, _ = net.classify(list(sequences), semantics="masked")
    ordered, ordered_labels = sort_by_length(list(sequences), list(labels))
    batched, _ = net.classify(ordered, mini_batch_size=27)
    index = {n: k for k, n in enumerate(net.class_names)}
    confusion = np.zeros((len(index), len(index)), dtype=int)
    for true, predicted in zip(labels, alone, strict=True):
        confusion[index[true], index[predicted]] += 1
    default, _ = net.classify(list(sequences))
    return Evaluation(
        accuracy=float(np.mean(alone == labels)),
        matlab_accuracy=float(np.mean(batched == np.asarray(ordered_labels))),
        matlab_default_accuracy=float(np.mean(default == labels)),
        confusion=confusion,
        class_names=net.class_names,
    )


def weights_digest(net: Network) -> str:
    """SHA-256 over every array of every layer (name, dtype, shape, bytes), in layer order."""
    digest = hashlib.sha256()
    for layer in net.layers:
        for name, a in layer.arrays().items():
            digest.update(f"{layer.name}/{name}:{a.dtype.str}:{a.shape}".encode())
            digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def japanese_vowels_net(
    recipe: Recipe = Recipe(), log: Callable[[str], None] | None = print
) -> tuple[Network, list[EpochRecord], Evaluation, float]:
    """Train JapaneseVowelsNet on the bundled data; return it, its history, its test
    evaluation and the training time in seconds."""
    x_train, y_train = load_japanese_vowels("train")
    x_test, y_test = load_japanese_vowels("test")
    start = time.perf_counter()
    net, history = fit(x_train, list(y_train), CLASS_NAMES, recipe, log=log)
    seconds = time.perf_counter() - start
    return net, history, evaluate(net, x_test, list(y_test)), seconds


def build_japanese_vowels_net(
    out_dir: str | Path, recipe: Recipe = Recipe(), log: Callable[[str], None] | None = print
) -> Path:
    """Train JapaneseVowelsNet and write ``JapaneseVowelsNet.npz`` and ``MODEL_CARD.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net, history, evaluation, seconds = japanese_vowels_net(recipe, log)
    metadata = {
        "name": NAME,
        "recipe": _recipe_dict(recipe),
        "data_sha256": {s: provenance()["splits"][s]["bundle_sha256"] for s in ("train", "test")},
        "test_accuracy": evaluation.accuracy,
        "test_accuracy_matlab_batches": evaluation.matlab_accuracy,
        "test_accuracy_matlab_defaults": evaluation.matlab_default_accuracy,
        "weights_sha256": weights_digest(net),
        "training_seconds": round(seconds, 1),
        "trained_with": _environment(),
    }
    path = out / f"{NAME}.npz"
    save_network(net, path, metadata)
    (out / "MODEL_CARD.md").write_text(model_card(net, history, evaluation, metadata))
    if log:
        log(
            f"test accuracy {evaluation.accuracy:.4f} "
            f"(MATLAB mini-batches {evaluation.matlab_accuracy:.4f})"
        )
        log(f"wrote {path} and {out / 'MODEL_CARD.md'}")
    return path


def _recipe_dict(recipe: Recipe) -> dict[str, Any]:
    d = dataclasses.asdict(recipe)
    d["options"] = dataclasses.asdict(recipe.options)
    return d


def _environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }


def model_card(
    net: Network, history: list[EpochRecord], evaluation: Evaluation, metadata: dict[str, Any]
) -> str:
    """The model card of a trained JapaneseVowelsNet, in Markdown."""
    r = metadata["recipe"]
    o = r["options"]
    last = history[-1]
    data = provenance()
    env = metadata["trained_with"]
    default_accuracy = evaluation.matlab_default_accuracy
    return f"""# Model card: {NAME}

A pure-NumPy reproduction of MATLAB's pretrained JapaneseVowelsNet, trained from scratch by
`lstm_ref` (MATLAB's own weights are not public). Load it with
`lstm_ref.load_network("{NAME}")`.

## Architecture

```
{net.summary()}
```

Class names "1" … "9" (the speaker). The sequence input layer z-scores each of the 12
features with the training set's mean and standard deviation (population std, over all
time steps of all 270 training sequences); MATLAB's table does not show normalisation.

## Data

{data["citation"]} UCI Machine Learning Repository, doi:{data["doi"]}, licence
{data["license"]["name"]}. 270 training sequences (30 per speaker, 7–26 steps), 370 test
sequences (7–29 steps), 12 LPC cepstrum coefficients per step. Bundled copy digests
(see `lstm_ref.datasets.japanese_vowels`): train `{metadata["data_sha256"]["train"]}`,
test `{metadata["data_sha256"]["test"]}`.

## Training recipe

MATLAB's recipe for this network, run by `lstm_ref.train` in float64:

| setting | value |
|---|---|
| seed (NumPy `default_rng`, initial weights only) | {r["seed"]} |
| initialisers | glorot W, orthogonal R, unit-forget-gate b; FC glorot, zero bias |
| input normalisation | z-score, training-set statistics |
| data order | training sequences sorted by length; Shuffle "never" |
| mini-batches | {o["mini_batch_size"]}, "{o["sequence_length"]}", right-padded with 0, unmasked |
| optimiser | Adam, learning rate {o["learning_rate"]}, β1 0.9, β2 0.999, ε 1e-8 |
| gradient threshold | {o["gradient_threshold"]} ("{o["gradient_threshold_method"]}") |
| L2 regularisation | {o["l2_regularization"]} on weights, 0 on biases |
| epochs | {o["max_epochs"]} |

Reproduce it with `{TRAIN_COMMAND}` (about {metadata["training_seconds"]:.0f} s here).
Training took {metadata["training_seconds"]} s on {env["machine"]}, Python {env["python"]},
NumPy {env["numpy"]}. Final epoch: training loss {last.loss:.4f}, training accuracy
{last.accuracy:.4f}.

Reproducibility: the same seed, NumPy and BLAS kernel give bit-identical weights. Another
BLAS kernel rounds the matrix products differently: retraining with OpenBLAS's Sandybridge
kernel instead of Haswell changed no weight by more than 1.1e-15 and no test prediction. The
test suite retrains and requires every weight within 1e-9 of the shipped ones and identical
test predictions. Weights digest (`lstm_ref.recipe.weights_digest`):
`{metadata["weights_sha256"]}`.

## Results on the 370 test sequences

| evaluation | accuracy |
|---|---|
| each sequence alone, no padding (as the walkthrough) | **{evaluation.accuracy:.4f}** |
| MATLAB's way: sorted by length, batches of 27, padded | {evaluation.matlab_accuracy:.4f} |
| MATLAB `classify` defaults: data order, batches of 128 | {default_accuracy:.4f} |

The seed was fixed at 0 before training; it turned out the best of the five seeds tried.
Seeds 0–4 of the same recipe (measured 2026-11-28) give 0.9703, 0.9649, 0.9568, 0.9622,
0.9622 each sequence alone (mean 0.963) and 0.9703, 0.9622, 0.9568, 0.9649, 0.9568 in
MATLAB's batches. For comparison: the bare MATLAB recipe (no normalisation) gives
0.935–0.949 over seeds in a torch cross-check; MATLAB's published BiLSTM variant of the
example 0.9541; the best published methods on this split about 0.98.

Confusion matrix (each sequence alone):

{evaluation.confusion_table()}

## Limitations

Trained on nine male speakers of one vowel pair; it identifies those speakers only. Padding
semantics matter: in right-padded, unmasked mini-batches a shorter sequence is followed by
padding (zeros, which the input layer z-scores to −mean/std) before its last output is read.
Sorted batches of similar lengths barely notice; MATLAB's default batches of 128 in data
order cost {evaluation.accuracy - default_accuracy:.1%} of accuracy (table
above). Score sequences alone or with `semantics="masked"` to avoid it.
"""
