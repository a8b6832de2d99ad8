"""Bad input gets a clear error naming what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest
from random_nets import random_lstm_params, random_network

from lstm_ref import (
    LSTM,
    FullyConnected,
    LSTMParams,
    LSTMState,
    Network,
    SequenceInput,
    load_network,
)


@pytest.fixture
def net(rng):
    return random_network(rng, C=5, H=7, K=4)


@pytest.mark.parametrize(
    ("X", "kwargs", "error", "match"),
    [
        (np.zeros((6, 4)), {}, ValueError, r"expected shape \(T, 5\); got \(6, 4\)"),
        (np.zeros((5, 9)), {}, ValueError, r"got \(5, 9\); it looks transposed — pass layout='CT'"),
        (np.zeros((9, 5)), {"layout": "CT"}, ValueError, r"expected shape \(5, T\); got \(9, 5\)"),
        (np.zeros((0, 5)), {}, ValueError, "expected at least one time step; got 0"),
        (
            np.zeros(5),
            {},
            ValueError,
            r"one sequence of shape \(T, C\) .* got an array of shape \(5,\)",
        ),
        (
            np.zeros((4, 5), dtype=complex),
            {},
            TypeError,
            "expected real numbers; got dtype complex128",
        ),
        (np.zeros((4, 5), dtype=bool), {}, TypeError, "expected real numbers; got dtype bool"),
        (np.array([["a"] * 5] * 3), {}, TypeError, "expected real numbers; got dtype <U1"),
        ([], {}, ValueError, "at least one sequence; got an empty list"),
        ([np.zeros((3, 5)), np.zeros(5)], {}, ValueError, r"sequence 1: expected a 2-D array"),
        ("abc", {}, TypeError, "expected a numpy array or a list of arrays; got str"),
        (np.zeros((4, 5)), {"layout": "NTC"}, ValueError, "layout must be 'TC'"),
        (np.zeros((2, 4, 5)), {"lengths": [4, 5]}, ValueError, r"lengths must lie in 1..4"),
        (np.zeros((2, 4, 5)), {"lengths": [4]}, ValueError, "lengths must be 2 integers"),
        (np.zeros((2, 4, 5)), {"lengths": [4.0, 2.0]}, ValueError, "lengths must be 2 integers"),
        (np.zeros((4, 5)), {"lengths": [4]}, ValueError, "only meaningful for a padded 3-D batch"),
        (
            np.zeros((4, 5)),
            {"semantics": "pytorch"},
            ValueError,
            "'matlab' or 'masked'; got 'pytorch'",
        ),
        (
            np.zeros((4, 5)),
            {"mini_batch_size": 0},
            ValueError,
            "mini_batch_size must be a positive",
        ),
        (np.zeros((4, 5)), {"sequence_length": "long"}, ValueError, "sequence_length must be"),
        (np.zeros((4, 5)), {"padding_direction": "up"}, ValueError, "'right' or 'left'; got 'up'"),
        (np.zeros((4, 5)), {"padding_value": np.nan}, ValueError, "finite number; got nan"),
        (np.zeros((4, 5)), {"padding_value": "0"}, ValueError, "finite number; got '0'"),
        (np.zeros((4, 5)), {"mini_batch_size": True}, ValueError, "positive integer; got True"),
        (np.zeros((4, 5)), {"sequence_length": True}, ValueError, "positive integer; got True"),
        (
            np.zeros((4, 5)),
            {"semantics": "masked", "padding_direction": "left"},
            ValueError,
            "apply to 'matlab' semantics only",
        ),
        (np.zeros((4, 5)), {"outputs": "lstm2"}, KeyError, r"no layer named 'lstm2'; layers are"),
    ],
)
def test_predict_rejects(net, X, kwargs, error, match):
    with pytest.raises(error, match=match):
        net.predict(X, **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected_with_its_position(net, bad):
    x = np.zeros((4, 5))
    x[2, 3] = bad
    with pytest.raises(
        ValueError, match=rf"sequence 1: non-finite value {bad} at time step 2, feature 3"
    ):
        net.predict([np.zeros((3, 5)), x])


def test_weights_of_wrong_shape(rng):
    p = random_lstm_params(rng, 5, 7)
    with pytest.raises(ValueError, match=r"'lstm': R must have shape \(4H, H\).*got \(7, 28\)"):
        LSTM(LSTMParams(p.W, p.R.T, p.b))
    with pytest.raises(
        ValueError, match=r"'lstm': W must have shape \(28, 6\) = \(4H, C\); got \(27, 6\)"
    ):
        LSTM(LSTMParams(np.zeros((27, 6)), p.R, p.b))
    with pytest.raises(
        ValueError, match=r"'lstm': b must have shape \(28,\) = \(4H,\); got \(28, 1\)"
    ):
        LSTM(LSTMParams(p.W, p.R, p.b[:, None]))
    with pytest.raises(ValueError, match=r"'lstm': h0 must have shape \(7,\)"):
        LSTM(p, initial_state=LSTMState(np.zeros(6), np.zeros(7)))
    with pytest.raises(TypeError, match=r"'lstm': W must hold real floats; got dtype int64"):
        LSTM(LSTMParams(p.W.astype(np.int64), p.R, p.b))
    with pytest.raises(ValueError, match=r"'lstm': b contains NaN or Inf"):
        LSTM(LSTMParams(p.W, p.R, np.full_like(p.b, np.nan)))
    with pytest.raises(ValueError, match="'fc': bias must have shape"):
        FullyConnected(np.zeros((3, 7)), np.zeros(4))
    with pytest.raises(ValueError, match="unknown gate activation 'relu'"):
        LSTM(p, gate_activation="relu")
    with pytest.raises(ValueError, match="output_mode must be 'sequence' or 'last'"):
        LSTM(p, output_mode="all")


def test_network_checks_layer_sizes(rng):
    lstm = LSTM(random_lstm_params(rng, 5, 7))
    with pytest.raises(
        ValueError, match="layer 'lstm' expects 5 inputs but the layer before it gives 6"
    ):
        Network([SequenceInput(6), lstm])
    with pytest.raises(
        ValueError, match="layer 'fc' expects 6 inputs but the layer before it gives 7"
    ):
        Network([SequenceInput(5), lstm, FullyConnected(np.zeros((3, 6)), np.zeros(3))])
    with pytest.raises(ValueError, match="the first layer must be a SequenceInput"):
        Network([lstm])
    with pytest.raises(ValueError, match="layer names must be unique"):
        Network([SequenceInput(5), lstm, LSTM(random_lstm_params(rng, 7, 7))])
    with pytest.raises(ValueError, match="2 class names for 3 outputs"):
        Network([SequenceInput(5), lstm, FullyConnected(np.zeros((3, 7)), np.zeros(3))], "ab")
    with pytest.raises(ValueError, match="'zscore' normalization needs std"):
        SequenceInput(5, normalization="zscore", mean=np.zeros(5))


def test_state_assignment_is_checked(net):
    with pytest.raises(
        ValueError, match=r"state must name the LSTM layers \['lstm'\]; got \['lstm2'\]"
    ):
        net.state = {"lstm2": (np.zeros(7), np.zeros(7))}
    with pytest.raises(
        ValueError, match=r"h and c must both be \(7,\) or \(N, 7\); got \(6,\) and \(6,\)"
    ):
        net.state = {"lstm": (np.zeros(6), np.zeros(6))}
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        net.state = {"lstm": (np.full(7, np.nan), np.zeros(7))}


def test_classify_needs_one_score_vector_per_sequence(rng, net):
    with pytest.raises(ValueError, match="use predict"):
        net.classify(np.zeros((3, 5)), outputs="lstm")
    seq_net = random_network(rng, output_mode="sequence")
    with pytest.raises(ValueError, match="one score vector per sequence"):
        seq_net.classify([np.zeros((3, 5)), np.zeros((4, 5))])


def test_mixed_dtypes_and_missing_files(rng, net):
    lstm32 = net.layer("lstm").astype(np.float32)
    with pytest.raises(ValueError, match=r"one dtype; got \['float32', 'float64'\]"):
        Network([net.layers[0], lstm32, *net.layers[2:]])
    with pytest.raises(FileNotFoundError, match=r"no such weight file: nowhere/net\.npz"):
        load_network("nowhere/net.npz")


def test_trace_rejects_non_lstm_layer(net):
    with pytest.raises(ValueError, match="layer 'fc' is a Fully Connected layer, not an LSTM"):
        net.trace(np.zeros((3, 5)), layer="fc")
