"""A scikit-learn-compatible sequence classifier, without scikit-learn as a dependency.

:class:`LSTMClassifier` follows scikit-learn's estimator contract — ``fit``, ``predict``,
``predict_proba``, ``score``, ``classes_``, ``get_params``/``set_params`` — so it works in
pipelines, grid searches and cross-validation, and it takes the layouts of the time-series
libraries aeon and sktime:

* ``layout="CT"`` (default, aeon's and sktime's): a 3-D array (N, C, T) ("numpy3D") or a list
  of (C, T) arrays of different lengths;
* ``layout="TC"`` (lstm_ref's own): a 3-D array (N, T, C) or a list of (T, C) arrays;
* either way, a 2-D array (N, T) is N univariate series (C = 1).

Under the hood: :func:`lstm_ref.train.fit` with the defaults ``lstm-ref train`` uses for
anyone's data (masked padding, mini-batches shuffled every epoch, a stratified validation
split and early stopping with the best weights kept), and :meth:`Network.classify`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Literal

import numpy as np

from ._checks import (
    check_choice,
    check_count,
    check_flag,
    check_fraction,
    check_seed,
    check_two_classes,
)
from .errors import InputError, InputTypeError
from .network import Network
from .padding import Padding
from .train.recipe import VALIDATION_FRACTION, YOUR_DATA, Recipe, fit_holding_out

Array = np.ndarray
Layout = Literal["CT", "TC"]


class LSTMClassifier:
    """An LSTM sequence classifier with scikit-learn's interface.

    Parameters
    ----------
    hidden_size : int
        LSTM hidden units.
    max_epochs : int
        Epochs at most (early stopping usually ends sooner).
    learning_rate : float
        Adam's learning rate.
    batch_size : int
        Sequences per mini-batch (masked padding: results never depend on it at predict).
    patience : int or None
        Early stopping: epochs without a better validation loss; None trains every epoch.
    validation_fraction : float
        The fraction of each class held out for early stopping (with ``patience``).
    zscore : bool
        Normalise each input feature by the training data's mean and std.
    random_state : int
        Seeds the initial weights, the shuffling and the validation split.
    layout : {"CT", "TC"}
        Axis order of 3-D arrays and of the arrays in a list (see the module docstring).

    Attributes
    ----------
    classes_ : ndarray, shape (K,)
        The class labels, sorted, as given to ``fit``.
    network_ : Network
        The trained network (its class names are ``str`` of ``classes_``).
    n_features_in_ : int
        C, the features per time step seen by ``fit``.
    history_ : list of EpochRecord
        The training log.
    """

    def __init__(
        self,
        hidden_size: int = YOUR_DATA.hidden_size,
        max_epochs: int = YOUR_DATA.options.max_epochs,
        learning_rate: float = YOUR_DATA.options.learning_rate,
        batch_size: int = YOUR_DATA.options.padding.mini_batch_size,
        patience: int | None = YOUR_DATA.options.patience,
        validation_fraction: float = VALIDATION_FRACTION,
        zscore: bool = YOUR_DATA.zscore,
        random_state: int = YOUR_DATA.seed,
        layout: Layout = "CT",
    ) -> None:
        self.hidden_size = hidden_size
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.zscore = zscore
        self.random_state = random_state
        self.layout = layout

    # ------------------------------------------------------------ scikit-learn API
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters, by name."""
        return {name: getattr(self, name) for name in _parameter_names()}

    def set_params(self, **params: Any) -> LSTMClassifier:
        """Set constructor parameters; returns ``self``."""
        unknown = sorted(set(params) - set(_parameter_names()))
        if unknown:
            raise InputError(f"unknown parameters {unknown}; expected {_parameter_names()}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        changed = {
            k: v
            for k, v in self.get_params().items()
            if v != inspect.signature(type(self)).parameters[k].default
        }
        return f"LSTMClassifier({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags, when scikit-learn asks (it is never imported otherwise)."""
        from sklearn.utils import ClassifierTags, Tags, TargetTags  # type: ignore[import-untyped]

        tags = Tags(estimator_type="classifier", target_tags=TargetTags(required=True))
        tags.classifier_tags = ClassifierTags(multi_class=True)
        return tags

    def fit(self, X: Any, y: Any) -> LSTMClassifier:
        """Train a new network on sequences ``X`` with labels ``y`` (N,); returns ``self``."""
        self._check_params()
        if y is None:
            raise InputError("LSTMClassifier requires y to be passed, but the target y is None")
        seqs = _sequences(X, self.layout)
        labels = _labels(y, len(seqs))
        if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
            raise InputError("Unknown label type: continuous targets; a classifier needs classes")
        check_two_classes(labels, "y")
        self.classes_ = np.unique(labels)
        options = dataclasses.replace(
            YOUR_DATA.options,
            max_epochs=self.max_epochs,
            padding=Padding.masked(self.batch_size),
            learning_rate=self.learning_rate,
            patience=self.patience,
        )
        recipe = Recipe(self.random_state, self.hidden_size, self.zscore, options)
        names, class_names = [str(c) for c in labels], [str(c) for c in self.classes_]
        self.network_, self.history_ = fit_holding_out(
            seqs, names, class_names, recipe, fraction=self.validation_fraction, log=None
        )
        self.n_features_in_ = self.network_.input_size
        return self

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities, (N, K) in the order of ``classes_``."""
        net = self._fitted()
        _, scores = net.classify(_sequences(X, self.layout, net.input_size))
        return np.atleast_2d(scores)

    def predict(self, X: Any) -> Array:
        """The predicted class of each sequence, (N,), of ``classes_``'s dtype."""
        probs = self.predict_proba(X)
        return self.classes_[probs.argmax(axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """The fraction of sequences classified correctly."""
        predicted = self.predict(X)
        return float(np.mean(predicted == _labels(y, len(predicted))))

    # -------------------------------------------------------------------- checks
    def _check_params(self) -> None:
        check_count(self.hidden_size, "hidden_size")
        check_count(self.max_epochs, "max_epochs")
        check_count(self.batch_size, "batch_size")
        if self.patience is not None:
            check_count(self.patience, "patience")
        check_fraction(self.validation_fraction, "validation_fraction")
        check_flag(self.zscore, "zscore")
        check_seed(self.random_state, "random_state")
        check_choice(self.layout, "layout", ("CT", "TC"))

    def _fitted(self) -> Network:
        net = getattr(self, "network_", None)
        if net is None:
            raise NotFittedError("this LSTMClassifier is not fitted yet: call fit(X, y) first")
        return net


class NotFittedError(InputError, AttributeError):
    """predict before fit (an AttributeError too, as scikit-learn's own NotFittedError)."""


def _parameter_names() -> list[str]:
    return [p for p in inspect.signature(LSTMClassifier).parameters]


def _labels(y: Any, n: int) -> Array:
    """``y`` as a 1-D array of ``n`` labels, one per sequence — never broadcast."""
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != n:
        raise InputError(
            f"y must hold one label per sequence: {n} sequences, y of shape {labels.shape}"
        )
    return labels


def _sequences(X: Any, layout: str, features: int | None = None) -> list[Array]:
    """``X`` in any accepted layout as a list of (T, C) float arrays."""
    from .sequences import as_sequence_list

    if hasattr(X, "toarray"):
        raise InputTypeError("sparse input is not supported: pass X.toarray()")
    if not isinstance(X, list | tuple):
        X = np.asarray(X)  # array-likes (memmaps, wrappers with __array__)
    elif X and all(np.ndim(s) == 1 for s in X):  # a list of univariate series
        X = [np.asarray(s)[:, None] if layout == "TC" else np.asarray(s)[None, :] for s in X]
    if isinstance(X, np.ndarray) and X.ndim == 1:
        raise InputError(
            f"X must be 2-D or 3-D; got a 1-D array of shape {X.shape}. Reshape your data: "
            "X[None, :] for one univariate series"
        )
    if isinstance(X, np.ndarray) and X.ndim == 2:  # (N, T): univariate series
        X = X[:, :, None] if layout == "TC" else X[:, None, :]
    if isinstance(X, np.ndarray) and X.ndim != 3:
        raise InputError(
            f"X must be (N, C, T) or (N, T) (layout={layout!r}) or a list of series; got an "
            f"array of shape {X.shape}"
        )
    if isinstance(X, np.ndarray):
        C = X.shape[1] if layout == "CT" else X.shape[2]
    elif isinstance(X, list | tuple) and X:
        first = np.asarray(X[0])
        C = first.shape[0] if layout == "CT" and first.ndim == 2 else first.shape[-1]
    else:
        raise InputError(
            f"X must be an array or a non-empty list of series; got {type(X).__name__}"
        )
    if features is not None and C != features:
        raise InputError(
            f"X has {C} features per time step; the classifier was fitted on {features}"
        )
    seqs, _ = as_sequence_list(X, C, layout="TC" if layout == "TC" else "CT")
    return seqs
