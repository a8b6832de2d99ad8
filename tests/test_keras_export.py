"""Export to Keras, every kind of layer ``save_keras`` writes: the file (``.h5`` and
``.keras``) loaded by Keras 3 itself with ``keras.models.load_model``, its predictions on a
masked batch of mixed lengths equal to lstm_ref's, and the file read back by lstm_ref
holding the same arrays."""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported

import keras
import numpy as np
import pytest
from random_nets import random_lstm_params

from lstm_ref import Padding
from lstm_ref.interop import load_model
from lstm_ref.interop.keras_export import save_keras
from lstm_ref.layers import (
    LSTM,
    BiLSTM,
    FullyConnected,
    SequenceInput,
    Softmax,
    TimeReversal,
)
from lstm_ref.network import Network

# Keras 3.15's torch backend hands NumPy an __array__ without copy=; its .h5 save notes
# that the format is legacy: neither is lstm_ref's concern
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file:UserWarning"),
]
C, H, K = 4, 5, 3
LENGTHS = [6, 3, 7, 1, 4]


def lstm(rng, name, C=C, H=H, **options):
    return LSTM(random_lstm_params(rng, C, H), name=name, **options)


def bilstm(rng, name, merge_mode, output_mode="sequence"):
    return BiLSTM(
        lstm(rng, f"{name}_f", output_mode=output_mode),
        lstm(rng, f"{name}_b", output_mode=output_mode, direction="reverse"),
        name=name,
        merge_mode=merge_mode,
    )


def head(rng, width, softmax=True):
    fc = FullyConnected(rng.normal(size=(K, width)), rng.normal(size=K), name="head")
    return [fc, Softmax(name="probabilities")] if softmax else [fc]


def zscore(rng):
    return SequenceInput(
        C,
        normalization="zscore",
        mean=rng.normal(size=C),
        std=rng.uniform(0.5, 2.0, size=C),
        name="z",
    )


KINDS = {  # name -> the layers after the input
    "lstm-last-zscore": lambda rng: [
        zscore(rng),
        lstm(rng, "lstm", output_mode="last"),
        *head(rng, H),
    ],
    "lstm-sequence-zerocenter": lambda rng: [
        SequenceInput(C, normalization="zerocenter", mean=rng.normal(size=C)),
        lstm(rng, "lstm"),
        *head(rng, H, softmax=False),
    ],
    "stacked": lambda rng: [
        SequenceInput(C),
        lstm(rng, "first"),
        lstm(rng, "second", C=H, H=4, output_mode="last"),
        *head(rng, 4),
    ],
    **{
        f"bilstm-{mode}": (
            lambda rng, mode=mode: [
                SequenceInput(C),
                bilstm(rng, "bi", mode),
                lstm(rng, "top", C=2 * H if mode == "concat" else H, H=4, output_mode="last"),
                *head(rng, 4),
            ]
        )
        for mode in ("concat", "sum", "mul", "ave")
    },
    "bilstm-last": lambda rng: [
        SequenceInput(C),
        bilstm(rng, "bi", "concat", output_mode="last"),
        *head(rng, 2 * H),
    ],
    "go-backwards-last": lambda rng: [
        SequenceInput(C),
        lstm(rng, "back", output_mode="last", direction="reverse"),
        *head(rng, H),
    ],
    "go-backwards-sequence": lambda rng: [
        SequenceInput(C),
        lstm(rng, "back", direction="reverse"),
        TimeReversal(name="back_reversal"),
        *head(rng, H),
    ],
    "activations": lambda rng: [
        SequenceInput(C),
        lstm(rng, "hard", gate_activation="hard-sigmoid-keras3", state_activation="softsign"),
        lstm(rng, "relu", C=H, H=4, output_mode="last", state_activation="Relu"),
        *head(rng, 4),
    ],
    "softmax-on-the-lstm": lambda rng: [
        SequenceInput(C),
        lstm(rng, "lstm", H=K, output_mode="last"),
        Softmax(name="probabilities"),
    ],
}


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("kind", KINDS)
def test_keras_loads_the_export_and_predicts_the_same(tmp_path, kind, suffix):
    rng = np.random.default_rng(sorted(KINDS).index(kind))
    net = Network(KINDS[kind](rng)).astype(np.float32)
    seqs = [rng.normal(size=(T, C)).astype(np.float32) for T in LENGTHS]
    x = np.zeros((len(seqs), max(LENGTHS), C), np.float32)
    for b, s in enumerate(seqs):
        x[b, : len(s)] = s
    path = tmp_path / f"{kind}{suffix}"
    save_keras(net, path)

    model = keras.models.load_model(path)
    want = net.predict(x, lengths=LENGTHS, padding=Padding.keras())  # as Keras pads outputs
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=0, atol=1e-5)

    again = load_model(path, dtype=np.float32)
    assert [a.TYPE for a in again.layers] == [a.TYPE for a in net.layers]
    for a, b in zip(net.layers, again.layers, strict=True):
        assert b.arrays().keys() == a.arrays().keys()
        for key, array in a.arrays().items():
            np.testing.assert_array_equal(b.arrays()[key], array, err_msg=f"{a.name}/{key}")
    # the file read back has Keras's padding: compare each sequence's own steps; its arrays
    # are Keras's kernels transposed (F-ordered), so float32 sums may round another way
    own = Padding.masked()
    for got, expected in zip(
        again.predict(seqs, padding=own), net.predict(seqs, padding=own), strict=True
    ):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
