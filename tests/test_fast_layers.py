"""Every network lstm_ref can import runs on the fast path, equal to the reference: reverse
and bidirectional LSTMs (each merge mode, "last" as the state or at the last step), stacked
layers, every activation, peepholes, clip, the coupled input-forget gate, a projection, the
time reversal, every head — random different weights per gate, non-zero states, mixed
lengths, masked and MATLAB's padding."""

from __future__ import annotations

import numpy as np
import pytest
from random_nets import random_lstm_params, random_sequences
from test_fast import PADDINGS, close, reference

from lstm_ref import LSTMParams, LSTMState, Network
from lstm_ref.layers import (
    LSTM,
    BiLSTM,
    ClassificationOutput,
    FullyConnected,
    LSTMStack,
    SequenceInput,
    Softmax,
    TimeReversal,
)

C, H, P, K = 4, 5, 3, 3


def lstm(rng, name, C_in, output_mode="sequence", width=H, **options) -> LSTM:
    """An LSTM of H cells with a random non-zero initial state and ``options``."""
    h_width = width if options.get("projection") is None else options["projection"].shape[0]
    params = random_lstm_params(rng, C_in, width)
    if h_width != width:  # R reads the projected h
        params = LSTMParams(params.W, rng.normal(size=(4 * width, h_width)) * 0.5, params.b)
    start = LSTMState(rng.uniform(-0.5, 0.5, h_width), rng.normal(size=width))
    return LSTM(params, name=name, output_mode=output_mode, initial_state=start, **options)


def network(rng, recurrent, width) -> Network:
    """SequenceInput (z-score) → ``recurrent`` layers → FC → softmax → classification."""
    norm = SequenceInput(
        C, normalization="zscore", mean=rng.normal(size=C), std=rng.uniform(0.5, 2, C)
    )
    fc = FullyConnected(rng.normal(size=(K, width)), rng.normal(size=K))
    names = tuple(f"c{k}" for k in range(K))
    return Network([norm, *recurrent, fc, Softmax(), ClassificationOutput(names)])


def options(rng, kind):
    return {
        "hard-sigmoid": {"gate_activation": "hard-sigmoid"},
        "keras3": {"gate_activation": "hard-sigmoid-keras3", "state_activation": "softsign"},
        "onnx": {
            "gate_activation": "HardSigmoid(alpha=0.3, beta=0.4)",
            "state_activation": "ScaledTanh(alpha=1.2, beta=0.7)",
            "output_activation": "Softsign",
        },
        "onnx-spelling": {"gate_activation": "Sigmoid", "state_activation": "Tanh"},
        "peephole": {"peephole": rng.normal(size=(3, H))},
        "clip": {"clip": 0.7},
        "coupled": {"input_forget": True},
        "projection": {"projection": rng.normal(size=(P, H))},
        "everything": {
            "peephole": rng.normal(size=(3, H)),
            "clip": 1.1,
            "input_forget": True,
            "gate_activation": "hard-sigmoid",
            "output_activation": "Elu(alpha=0.5)",
        },
    }[kind]


def check(net: Network, rng, dtype, outputs=(None,)) -> None:
    """The fast path covers ``net`` and equals the reference: every padding, from per-row
    states, one sequence from the held state, the layers' outputs named in ``outputs``."""
    net = net.astype(dtype)
    assert net.fast_engine() is not None
    xs = [x.astype(dtype) for x in random_sequences(rng, [3, 7, 5, 6, 1], C)]
    for padding in PADDINGS:
        for name in outputs:
            got = net.predict(xs, name, padding=padding, return_state=True)
            close(got, reference(net, xs, name, padding=padding, return_state=True), dtype)
    net.state = {
        x.name: LSTMState(*(rng.normal(size=(len(xs), a.shape[-1])) * 0.5 for a in x.initial_state))
        for x in net.stateful_layers
    }
    close(net.predict(xs, return_state=True), reference(net, xs, return_state=True), dtype)
    net.reset_state()
    close(net.predict(xs[1], return_state=True), reference(net, xs[1], return_state=True), dtype)


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kind",
    [
        "hard-sigmoid",
        "keras3",
        "onnx",
        "onnx-spelling",
        "peephole",
        "clip",
        "coupled",
        "projection",
        "everything",
    ],
)
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_every_cell_in_both_directions(rng, dtype, kind, direction):
    opts = options(rng, kind)
    width = P if "projection" in opts else H
    first = lstm(rng, "lstm", C, direction=direction, **opts)
    second = lstm(
        rng, "lstm2", width, output_mode="last", direction=direction, **options(rng, kind)
    )
    check(network(rng, [first, second], width), rng, dtype, outputs=(None, "lstm"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("last", ["sequence", "state", "step"])
def test_bidirectional(rng, dtype, merge, last):
    mode = "sequence" if last == "sequence" else "last"
    opts = options(rng, "peephole") if merge == "mul" else {}
    bi = BiLSTM(
        lstm(rng, "f", C, mode, **opts),
        lstm(rng, "b", C, mode, direction="reverse", **opts),
        merge_mode=merge,
        last="state" if last == "sequence" else last,
    )
    width = 2 * H if merge == "concat" else H
    layers = [bi] if mode == "last" else [bi, lstm(rng, "top", width, "last")]
    check(
        network(rng, layers, width if mode == "last" else H), rng, dtype, outputs=(None, "bilstm")
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["last", "sequence"])
def test_lstm_stack(rng, dtype, mode):
    """A stack of an LSTM, a BiLSTM and a projection LSTM: every layer's final h gathered
    ("last"), or the top's outputs followed by another LSTM ("sequence")."""
    bi = BiLSTM(lstm(rng, "f", H), lstm(rng, "b", H, direction="reverse"), name="bi")
    top = lstm(rng, "top", 2 * H, projection=rng.normal(size=(P, H)), **options(rng, "clip"))
    stack = LSTMStack([lstm(rng, "bottom", C), bi, top], output_mode=mode)
    layers = [stack] if mode == "last" else [stack, lstm(rng, "after", P, "last")]
    width = H + 2 * H + P if mode == "last" else H
    check(network(rng, layers, width), rng, dtype, outputs=(None, "lstm_stack"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_time_reversal_after_a_reverse_lstm(rng, dtype):
    """Keras's go_backwards with return_sequences: a reverse LSTM, then its outputs reversed
    into the order they were computed, then another layer."""
    layers = [
        lstm(rng, "lstm", C, direction="reverse", gate_activation="hard-sigmoid"),
        TimeReversal(),
        lstm(rng, "lstm2", H, "last"),
    ]
    check(network(rng, layers, H), rng, dtype, outputs=(None, "reversal"))


def test_a_layer_the_fast_path_does_not_know_falls_back(rng):
    first = lstm(rng, "lstm", C)
    middle = FullyConnected(rng.normal(size=(H, H)), rng.normal(size=H), name="mid")
    net = network(rng, [first, middle, lstm(rng, "lstm2", H, "last")], H)
    assert net.fast_engine() is None
    assert net.fast_engine(1) is not None  # up to the first LSTM it is covered
    xs = random_sequences(rng, [4, 6], C)
    close(net.predict(xs, return_state=True), reference(net, xs, return_state=True), np.float64)
