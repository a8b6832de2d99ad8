"""LSTMClassifier in scikit-learn's ecosystem: its estimator checks, its tools, aeon's layouts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from lstm_ref.estimator import LSTMClassifier, NotFittedError

SMALL = {"hidden_size": 4, "max_epochs": 3, "patience": None}

# The checks that do not apply to a sequence classifier, and why.
NOT_APPLICABLE = {
    "check_n_features_in": "a 2-D X is N univariate series: n_features_in_ is C (here 1), "
    "and the series length T may differ between fit and predict",
    "check_n_features_in_after_fitting": "as check_n_features_in",
    "check_classifiers_train": "it predicts on series of another length, which an LSTM can",
    "check_estimators_unfitted": "raises lstm_ref's NotFittedError (a ValueError and an "
    "AttributeError, as scikit-learn's) without importing scikit-learn",
    "check_complex_data": "complex input is a TypeError, as everywhere in lstm_ref",
    "check_dtype_object": "object arrays are refused, never converted (lstm_ref's rule)",
    "check_estimators_empty_data_messages": "refused with lstm_ref's own message (no time step)",
    "check_supervised_y_2d": "a (N, 1) y is refused, not silently raveled (lstm_ref's rule)",
}


with warnings.catch_warnings():  # scikit-learn warns that it is not a BaseEstimator subclass
    warnings.filterwarnings("ignore", "Estimator LSTMClassifier does not inherit", UserWarning)
    estimator_checks = parametrize_with_checks(
        [LSTMClassifier(**SMALL)], expected_failed_checks=lambda _: NOT_APPLICABLE
    )


@estimator_checks
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.filterwarnings("ignore:Estimator LSTMClassifier does not inherit:UserWarning")
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def two_class_series(rng, n=24, C=2, layout="CT", equal=True):
    """Series whose class is the sign of their mean: learnable in a few epochs."""
    y = np.array([k % 2 for k in range(n)])
    lengths = [12] * n if equal else rng.integers(6, 15, size=n)
    series = [
        rng.normal(size=(C, T)) * 0.3 + (1 if c else -1) for T, c in zip(lengths, y, strict=True)
    ]
    if layout == "TC":
        series = [s.T for s in series]
    return (np.stack(series) if equal else series), y


def test_learns_and_takes_aeons_layouts(rng):
    X, y = two_class_series(rng)  # aeon's numpy3D (N, C, T)
    model = LSTMClassifier(hidden_size=8, max_epochs=60, patience=None, learning_rate=0.02)
    assert model.fit(X, y) is model
    assert model.score(X, y) == 1.0
    np.testing.assert_array_equal(model.classes_, [0, 1])
    assert model.n_features_in_ == 2
    probs = model.predict_proba(X)
    np.testing.assert_allclose(probs, model.network_.classify(list(X), layout="CT")[1], atol=0)
    as_list = list(X)  # aeon's np-list of (C, T)
    np.testing.assert_array_equal(model.predict_proba(as_list), probs)
    tc = LSTMClassifier(**{**model.get_params(), "layout": "TC"}).fit(np.swapaxes(X, 1, 2), y)
    np.testing.assert_allclose(tc.predict_proba(np.swapaxes(X, 1, 2)), probs, atol=1e-12)
    ragged, labels = two_class_series(rng, equal=False)
    assert model.score(ragged, labels) >= 0.9  # series of other lengths
    with pytest.raises(ValueError, match=r"X has 3 features per time step; .* fitted on 2"):
        model.predict(np.zeros((2, 3, 5)))


def test_string_labels_params_clone_and_cross_validation(rng):
    X, y = two_class_series(rng, n=30)
    names = np.where(y == 1, "up", "down")
    model = LSTMClassifier(hidden_size=6, max_epochs=40, learning_rate=0.02, patience=10)
    model.fit(X, names)
    assert model.predict(X).dtype == names.dtype and set(model.predict(X)) <= {"down", "up"}
    assert len(model.history_) <= 40
    params = model.get_params()
    twin = clone(model)
    assert twin.get_params() == params and not hasattr(twin, "network_")
    assert model.set_params(hidden_size=5) is model and model.hidden_size == 5
    with pytest.raises(ValueError, match="unknown parameters"):
        model.set_params(units=5)
    assert repr(model).startswith("LSTMClassifier(hidden_size=5")
    scores = cross_val_score(LSTMClassifier(**SMALL), X, y, cv=2)
    assert scores.shape == (2,)


def test_predict_before_fit_and_bad_targets(rng):
    X, y = two_class_series(rng, n=6)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        LSTMClassifier().predict(X)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        LSTMClassifier(**SMALL).fit(X, y + 0.5)
    with pytest.raises(ValueError, match="one label per sequence"):
        LSTMClassifier(**SMALL).fit(X, y[:-1])
