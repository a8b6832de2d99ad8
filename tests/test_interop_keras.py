"""Keras in and out: models made fresh by Keras 3 (torch backend), saved as .keras and legacy
.h5, read without Keras; padded batches with Masking; outputs against model.predict."""

from __future__ import annotations

import json
import os

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported

import h5py
import keras
import numpy as np
import pytest

from lstm_ref import InputError
from lstm_ref.interop import load_model
from lstm_ref.interop.keras import from_keras, save_keras
from lstm_ref.layers import BiLSTM

# Keras 3.15's torch backend hands NumPy an __array__ without copy=; not lstm_ref's concern
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
C = 4
LENGTHS = [6, 3, 5, 1]


def distinct_gates(model: keras.Model, seed: int) -> keras.Model:
    """Every weight random, each gate block of a (·, 4u) array scaled differently, biases
    shifted: no gate permutation can hide."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = []
        for w in layer.get_weights():
            w = rng.normal(size=w.shape) * 0.5
            if w.shape[-1] % 4 == 0 and isinstance(
                layer, keras.layers.LSTM | keras.layers.Bidirectional
            ):
                u = w.shape[-1] // 4
                w = w * np.repeat([0.6, 0.9, 1.2, 0.5], u) + (0.3 if w.ndim == 1 else 0)
            weights.append(w)
        layer.set_weights(weights)
    return model


def padded(rng, lengths=LENGTHS):
    seqs = [rng.normal(size=(T, C)).astype(np.float32) for T in lengths]
    x = np.zeros((len(seqs), max(lengths), C), np.float32)
    for b, s in enumerate(seqs):
        x[b, : len(s)] = s
    return seqs, x


def lstm(units=5, **kw):
    return keras.layers.LSTM(units, **kw)


MODELS = {
    "lstm-last": lambda: [lstm()],
    "stacked": lambda: [lstm(return_sequences=True), lstm(3)],
    "hard-sigmoid-softsign": lambda: [
        lstm(recurrent_activation="hard_sigmoid", activation="softsign")
    ],
    "go-backwards": lambda: [lstm(go_backwards=True)],
    "no-bias-relu": lambda: [lstm(use_bias=False, activation="relu")],
    **{
        f"bidirectional-{m}": (
            lambda m=m: [
                keras.layers.Bidirectional(lstm(3, return_sequences=True), merge_mode=m),
                lstm(4),
            ]
        )
        for m in ("concat", "sum", "mul", "ave")
    },
    "bidirectional-last": lambda: [keras.layers.Bidirectional(lstm(3))],
}


def build(layers, masking=True, head=True):
    stack = [keras.Input((None, C))]
    stack += [keras.layers.Masking(0.0)] if masking else []
    stack += layers
    stack += [keras.layers.Dense(3, activation="softmax")] if head else []
    return keras.Sequential(stack)


CASES = [(name, ".keras") for name in MODELS]
CASES += [(name, ".h5") for name in ("stacked", "bidirectional-concat", "hard-sigmoid-softsign")]


@pytest.mark.parametrize(("name", "suffix"), CASES)
def test_models_match_keras_predict(rng, tmp_path, name, suffix):
    model = distinct_gates(build(MODELS[name]()), seed=len(name))
    seqs, x = padded(rng)
    want = model.predict(x, verbose=0)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    net = load_model(path)
    np.testing.assert_allclose(net.predict(seqs), want, rtol=0, atol=1e-5)


def test_functional_model_sequence_output_and_names(rng, tmp_path):
    """A Functional model whose layer names differ from its weight keys; per-step Dense."""
    inp = keras.Input((None, C))
    x = keras.layers.Masking(0.0)(inp)
    x = keras.layers.Bidirectional(lstm(3, return_sequences=True), merge_mode="sum")(x)
    x = lstm(5, return_sequences=True, name="my_lstm")(x)
    out = keras.layers.Dense(2)(x)
    model = distinct_gates(keras.Model(inp, out), seed=5)
    seqs, x = padded(rng)
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "f.keras")
    net = from_keras(tmp_path / "f.keras")
    assert isinstance(net.layers[1], BiLSTM) and net.layers[2].name == "my_lstm"
    for got, row, T in zip(net.predict(seqs), want, LENGTHS, strict=True):
        np.testing.assert_allclose(got, row[:T], rtol=0, atol=1e-5)


def test_hard_sigmoid_follows_the_writers_version(rng, tmp_path):
    """The same legacy file read as Keras 2 wrote it: 0.2x + 0.5, not Keras 3's x/6 + 0.5."""
    model = distinct_gates(build([lstm(recurrent_activation="hard_sigmoid")]), seed=2)
    path = tmp_path / "old.h5"
    model.save(path)
    assert from_keras(path).layers[1].gate_activation == "hard-sigmoid-keras3"
    with h5py.File(path, "r+") as f:
        f.attrs["keras_version"] = "2.2.4"
    assert from_keras(path).layers[1].gate_activation == "hard-sigmoid"


def test_export_loads_in_keras_and_round_trips_exactly(rng, tmp_path):
    model = distinct_gates(
        build(
            [keras.layers.Bidirectional(lstm(3, return_sequences=True), merge_mode="ave"), lstm(4)]
        ),
        seed=8,
    )
    net = load_model(_saved(model, tmp_path / "a.keras"))
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"exported{suffix}"
        save_keras(net, path)
        again = load_model(path)
        for a, b in zip(net.layers, again.layers, strict=True):
            assert a.arrays().keys() == b.arrays().keys()
            for k, v in a.arrays().items():
                np.testing.assert_array_equal(v, b.arrays()[k], err_msg=f"{a.name}/{k}")
        seqs, x = padded(rng)
        reloaded = keras.models.load_model(path)
        np.testing.assert_allclose(reloaded.predict(x, verbose=0), net.predict(seqs), atol=1e-5)


def test_shipped_network_to_keras_with_its_normalisation(tmp_path):
    """JapaneseVowelsNet (z-scored input) → .keras (Normalization) → back, exactly."""
    import lstm_ref
    from lstm_ref.datasets import load_japanese_vowels

    jv = lstm_ref.load_network("JapaneseVowelsNet")
    save_keras(jv, tmp_path / "jv.keras")
    again = load_model(tmp_path / "jv.keras")
    for a, b in zip(jv.layers, again.layers, strict=True):
        for k, v in a.arrays().items():
            np.testing.assert_array_equal(v, b.arrays()[k], err_msg=f"{a.name}/{k}")
    seqs = load_japanese_vowels("test")[0][:6]
    x = np.zeros((len(seqs), max(map(len, seqs)), 12))
    for b, s in enumerate(seqs):
        x[b, : len(s)] = s
    keras_probs = keras.models.load_model(tmp_path / "jv.keras").predict(x, verbose=0)
    np.testing.assert_allclose(keras_probs, jv.predict(seqs), rtol=0, atol=1e-7)


def _saved(model, path):
    model.save(path)
    return path


def test_bad_files_are_refused(rng, tmp_path):
    gru = build([keras.layers.GRU(3)])
    with pytest.raises(InputError, match=r"g\.keras: layer 'gru' \(GRU\): not supported"):
        load_model(_saved(gru, tmp_path / "g.keras"))
    seq_back = build([lstm(go_backwards=True, return_sequences=True)], head=False)
    with pytest.raises(InputError, match="go_backwards with return_sequences"):
        load_model(_saved(seq_back, tmp_path / "b.keras"))
    state = tmp_path / "state.h5"
    one = lstm()
    _saved(build([one]), state)
    with h5py.File(state, "r+") as f:
        group = f["model_weights"][one.name]
        bias = next(str(n) for n in group.attrs["weight_names"] if "bias" in str(n))
        del group[bias]
        group[bias] = np.zeros(7)
    with pytest.raises(InputError, match=rf"state\.h5: layer '{one.name}' \(LSTM\): bias \(7,\)"):
        load_model(state)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match=r"junk\.keras: not a Keras model file"):
        load_model(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(InputError, match=r"other\.h5: an HDF5 file without a Keras model_config"):
        load_model(other)


def test_legacy_cudnnlstm_weights(rng, tmp_path):
    """A Keras 2 CuDNNLSTM file, its arrays packed from a fresh Keras 3 LSTM the way the
    legacy layer stores them (each gate's kernel block row-major as cuDNN reads it, the bias
    as two halves), against that LSTM's own outputs."""
    model = distinct_gates(build([lstm(5)], masking=False), seed=12)
    kernel, recurrent, bias = model.layers[0].get_weights()
    C, u = kernel.shape[0], recurrent.shape[0]
    cudnn_kernel = np.concatenate(
        [kernel[:, k * u : (k + 1) * u].T.reshape(C, u) for k in range(4)], axis=1
    )
    cudnn_recurrent = np.concatenate(
        [recurrent[:, k * u : (k + 1) * u].T for k in range(4)], axis=1
    )
    half = rng.normal(size=bias.shape)
    cudnn_bias = np.concatenate([half, bias - half])
    dense_kernel, dense_bias = model.layers[1].get_weights()
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential_1",
            "layers": [
                {
                    "class_name": "CuDNNLSTM",
                    "config": {
                        "name": "cu_dnnlstm_1",
                        "units": u,
                        "batch_input_shape": [None, None, C],
                    },
                },
                {
                    "class_name": "Dense",
                    "config": {"name": "dense_1", "units": 3, "activation": "softmax"},
                },
            ],
        },
    }
    path = tmp_path / "cudnn.h5"
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.2.4"
        f.attrs["model_config"] = json.dumps(config)
        weights = f.create_group("model_weights")
        for name, arrays in (
            (
                "cu_dnnlstm_1",
                {
                    "kernel:0": cudnn_kernel,
                    "recurrent_kernel:0": cudnn_recurrent,
                    "bias:0": cudnn_bias,
                },
            ),
            ("dense_1", {"kernel:0": dense_kernel, "bias:0": dense_bias}),
        ):
            group = weights.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{k}".encode() for k in arrays]
            for k, a in arrays.items():
                group[f"{name}/{k}"] = a
    _, x = padded(rng, [5, 5, 5])
    np.testing.assert_allclose(
        load_model(path).predict(list(x)), model.predict(x, verbose=0), rtol=0, atol=1e-5
    )
