"""JapaneseVowelsNet: the named recipe that made the shipped network, and its model card.

The model card is the template ``model_card.md`` beside this file, filled from the weight
file's metadata and the evaluation.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from ..datasets import load_japanese_vowels
from ..datasets.japanese_vowels import CLASS_NAMES, provenance
from ..formats import save_network
from ..formats.writes import write_text_atomically
from ..network import Network
from .loop import EpochRecord, Log
from .recipe import Evaluation, Recipe, environment, evaluate, fit

NAME = "JapaneseVowelsNet"
FILES = (f"{NAME}.npz", "MODEL_CARD.md")  # what build_japanese_vowels_net writes to out_dir
TRAIN_COMMAND = "lstm-ref train --out weights"
JAPANESE_VOWELS = Recipe()  # seed 0, 100 hidden units, z-score, MATLAB's training options


def japanese_vowels_net(
    recipe: Recipe = JAPANESE_VOWELS, log: Log | None = print
) -> tuple[Network, list[EpochRecord], Evaluation, float]:
    """Train JapaneseVowelsNet on the bundled data; return it, its history, its test
    evaluation and the training time in seconds."""
    x_train, y_train = load_japanese_vowels("train")
    x_test, y_test = load_japanese_vowels("test")
    start = time.perf_counter()
    net, history = fit(x_train, list(y_train), CLASS_NAMES, recipe, log=log)
    seconds = time.perf_counter() - start
    return net, history, evaluate(net, x_test, list(y_test), recipe.options.padding), seconds


def build_japanese_vowels_net(
    out_dir: str | Path, recipe: Recipe = JAPANESE_VOWELS, log: Log | None = print
) -> Path:
    """Train JapaneseVowelsNet and write ``JapaneseVowelsNet.npz`` and ``MODEL_CARD.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net, history, evaluation, seconds = japanese_vowels_net(recipe, log)
    metadata = {
        "name": NAME,
        "recipe": recipe.as_dict(),
        "data_sha256": {s: provenance()["splits"][s]["bundle_sha256"] for s in ("train", "test")},
        "test_accuracy": evaluation.accuracy,
        "test_accuracy_matlab_batches": evaluation.matlab_accuracy,
        "test_accuracy_matlab_defaults": evaluation.matlab_default_accuracy,
        "weights_sha256": net.digest(),
        "training_seconds": round(seconds, 1),
        "trained_with": environment(),
    }
    path, card = (out / name for name in FILES)
    save_network(net, path, metadata)
    write_text_atomically(card, model_card(net, history, evaluation, metadata))
    if log:
        log(
            f"test accuracy {evaluation.accuracy:.4f} "
            f"(MATLAB mini-batches {evaluation.matlab_accuracy:.4f})"
        )
        log(f"wrote {path} and {card}")
    return path


def model_card(
    net: Network, history: list[EpochRecord], evaluation: Evaluation, metadata: dict[str, Any]
) -> str:
    """The model card of a trained JapaneseVowelsNet, in Markdown (``model_card.md`` filled)."""
    options = metadata["recipe"]["options"]
    padding = options["padding"]
    data, env = provenance(), metadata["trained_with"]
    template = Template((resources.files(__package__) / "model_card.md").read_text())
    return template.substitute(
        name=NAME,
        summary=net.summary(),
        citation=data["citation"],
        doi=data["doi"],
        license=data["license"]["name"],
        train_sha256=metadata["data_sha256"]["train"],
        test_sha256=metadata["data_sha256"]["test"],
        seed=metadata["recipe"]["seed"],
        mini_batch_size=padding["mini_batch_size"],
        sequence_length=padding["sequence_length"],
        direction=padding["direction"],
        padding_value=f"{padding['value']:g}",
        learning_rate=options["learning_rate"],
        gradient_threshold=options["gradient_threshold"],
        gradient_threshold_method=options["gradient_threshold_method"],
        l2_regularization=options["l2_regularization"],
        max_epochs=options["max_epochs"],
        train_command=TRAIN_COMMAND,
        seconds=metadata["training_seconds"],
        seconds_rounded=f"{metadata['training_seconds']:.0f}",
        machine=env["machine"],
        python=env["python"],
        numpy=env["numpy"],
        final_loss=f"{history[-1].loss:.4f}",
        final_accuracy=f"{history[-1].accuracy:.4f}",
        weights_sha256=metadata["weights_sha256"],
        accuracy=f"{evaluation.accuracy:.4f}",
        matlab_accuracy=f"{evaluation.matlab_accuracy:.4f}",
        matlab_default_accuracy=f"{evaluation.matlab_default_accuracy:.4f}",
        confusion=evaluation.confusion_table(),
        default_cost=f"{evaluation.accuracy - evaluation.matlab_default_accuracy:.1%}",
    )
