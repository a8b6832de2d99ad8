"""Training from scratch: the loss and BPTT through every layer (``loss``), L2, clipping and
Adam (``optimizer``), the training loop (``loop``), MATLAB's initialisers
(``initializers``), recipes with ``fit``/``evaluate`` (``recipe``) and the named
JapaneseVowelsNet recipe with its model card (``japanese_vowels``)."""

from .initializers import glorot, lstm_classifier, orthogonal, unit_forget_gate
from .loop import EpochRecord, TrainingOptions, sort_by_length, train
from .loss import (
    central_difference,
    cross_entropy,
    cross_entropy_grad,
    learnables,
    loss_and_gradients,
    numerical_gradients,
    softmax_index,
)
from .optimizer import Adam, add_l2, clip_gradients
from .recipe import Evaluation, Recipe, evaluate, fit

__all__ = [
    "Adam",
    "EpochRecord",
    "Evaluation",
    "Recipe",
    "TrainingOptions",
    "add_l2",
    "central_difference",
    "clip_gradients",
    "cross_entropy",
    "cross_entropy_grad",
    "evaluate",
    "fit",
    "glorot",
    "learnables",
    "loss_and_gradients",
    "lstm_classifier",
    "numerical_gradients",
    "orthogonal",
    "softmax_index",
    "sort_by_length",
    "train",
    "unit_forget_gate",
]
