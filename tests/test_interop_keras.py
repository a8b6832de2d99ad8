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

from lstm_ref import InputError, Padding
from lstm_ref.interop import load_model
from lstm_ref.interop.keras import from_keras
from lstm_ref.interop.keras_export import save_keras
from lstm_ref.layers import LSTM, BiLSTM, SequenceInput
from lstm_ref.lstm import LSTMParams
from lstm_ref.network import Network

# Keras 3.15's torch backend hands NumPy an __array__ without copy=; not lstm_ref's concern
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
C = 4
LENGTHS = [6, 3, 5, 1]


MASKED = Padding.masked()


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
    # the model's Masking is the network's padding: one (N, T, K) batch, padded as Keras pads
    np.testing.assert_allclose(net.predict(seqs), want, rtol=0, atol=1e-5)
    for got, row, T in zip(net.predict(seqs, padding=MASKED), want, LENGTHS, strict=True):
        np.testing.assert_allclose(got, row[:T], rtol=0, atol=1e-5)  # each sequence's own steps


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


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_shipped_network_to_keras_with_its_normalisation(tmp_path, suffix):
    """JapaneseVowelsNet (z-scored input) → .keras/.h5 (Normalization) → back, exactly, with
    its class names; Keras loads the file and predicts the same."""
    import lstm_ref
    from lstm_ref.datasets import load_japanese_vowels

    jv = lstm_ref.load_network("JapaneseVowelsNet")
    path = tmp_path / f"jv{suffix}"
    save_keras(jv, path)
    again = load_model(path)
    for a, b in zip(jv.layers, again.layers, strict=True):
        for k, v in a.arrays().items():
            np.testing.assert_array_equal(v, b.arrays()[k], err_msg=f"{a.name}/{k}")
    assert len(jv.class_names) == 9 and again.class_names == jv.class_names
    seqs = load_japanese_vowels("test")[0][:6]
    labels, _ = again.classify(seqs)
    assert list(labels) == list(jv.classify(seqs)[0]) and set(labels) <= set(jv.class_names)
    x = np.zeros((len(seqs), max(map(len, seqs)), 12))
    for b, s in enumerate(seqs):
        x[b, : len(s)] = s
    model = keras.models.load_model(path)
    np.testing.assert_allclose(model.predict(x, verbose=0), jv.predict(seqs), rtol=0, atol=1e-7)


def test_class_names_a_file_holds_must_be_a_list_of_names(tmp_path):
    import lstm_ref

    path = tmp_path / "jv.h5"
    save_keras(lstm_ref.load_network("JapaneseVowelsNet"), path)
    with h5py.File(path, "r+") as f:
        f.attrs["class_names"] = json.dumps({"a": 1})
    with pytest.raises(InputError, match=r"jv\.h5: 'class_names' must be a JSON list of names"):
        load_model(path)


def _saved(model, path):
    model.save(path)
    return path


def test_bad_files_are_refused(rng, tmp_path):
    gru = build([keras.layers.GRU(3)])
    with pytest.raises(InputError, match=r"g\.keras: layer 'gru' \(GRU\): not supported"):
        load_model(_saved(gru, tmp_path / "g.keras"))
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


# ------------------------------------------------------------------ return_state
def _masked_input():
    inp = keras.Input((None, C))
    return inp, keras.layers.Masking(0.0)(inp)


def _state_dense_on_h(go_backwards=False):
    inp, x = _masked_input()
    _, h, c = lstm(5, return_state=True, return_sequences=True, go_backwards=go_backwards)(x)
    y = keras.layers.Dense(3, activation="softmax", name="head")(h)
    return keras.Model(inp, [y, h, c]), lambda y, s: [y, s["lstm"].h, s["lstm"].c]


def _state_dense_on_out():
    inp, x = _masked_input()
    out, _, _ = lstm(5, return_state=True)(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(out)), lambda y, s: [y]


def _state_stacked_h():
    inp, x = _masked_input()
    x = lstm(4, return_sequences=True, name="first")(x)
    _, h, _ = lstm(5, return_state=True, name="second")(x)
    y = keras.layers.Dense(3)(h)
    return keras.Model(inp, [h, y]), lambda y, s: [s["second"].h, y]


def _state_bidirectional():
    inp, x = _masked_input()
    out, hf, cf, hb, cb = keras.layers.Bidirectional(lstm(3, return_state=True), name="bi")(x)
    y = keras.layers.Dense(3, activation="softmax")(out)

    def split(y, s):
        h, c = s["bi"]
        return [y, h[:, :3], c[:, :3], h[:, 3:], c[:, 3:]]

    return keras.Model(inp, [y, hf, cf, hb, cb]), split


def _state_sequential():
    model = keras.Sequential(
        [keras.Input((None, C)), keras.layers.Masking(0.0), lstm(5, return_state=True)]
    )
    return model, lambda y, s: [y, s["lstm"].h, s["lstm"].c]


STATE_MODELS = {
    "dense-on-h": _state_dense_on_h,
    "go-backwards-dense-on-h": lambda: _state_dense_on_h(go_backwards=True),
    "dense-on-out": _state_dense_on_out,
    "stacked-h-as-output": _state_stacked_h,
    "bidirectional-states": _state_bidirectional,
    "sequential-states": _state_sequential,
}


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("name", STATE_MODELS)
def test_return_state_models_match_keras(rng, tmp_path, name, suffix):
    """States read by the head become the LSTM's 'last' output (h at each sequence's last
    step); states among the model's outputs are predict(..., return_state=True)'s."""
    keras.utils.clear_session()  # the layer names the mappings use
    model, ours = STATE_MODELS[name]()
    model = distinct_gates(model, seed=len(name))
    seqs, x = padded(rng)
    want = model.predict(x, verbose=0)
    want = list(want) if isinstance(want, list | tuple) else [want]
    net = load_model(_saved(model, tmp_path / f"m{suffix}"))
    got = ours(*net.predict(seqs, return_state=True))
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=f"output {k}")


def test_unrepresentable_states_are_refused(tmp_path):
    inp, x = _masked_input()
    _, _, c = lstm(5, return_state=True, name="lstm")(x)
    cell = keras.Model(inp, keras.layers.Dense(3)(c))
    with pytest.raises(InputError, match=r"c\.keras: layer 'lstm' \(LSTM\): its cell state c"):
        load_model(_saved(cell, tmp_path / "c.keras"))
    inp, x = _masked_input()
    _, hf, _, _, _ = keras.layers.Bidirectional(lstm(3, return_state=True), name="bi")(x)
    half = keras.Model(inp, keras.layers.Dense(3)(hf))
    with pytest.raises(InputError, match=r"'bi' \(Bidirectional\): its output 1 \(a state"):
        load_model(_saved(half, tmp_path / "half.h5"))
    inp, x = _masked_input()
    out = lstm(5, name="lstm")(x)
    two = keras.Model(
        inp, [keras.layers.Dense(3, name="a")(out), keras.layers.Dense(2, name="b")(out)]
    )
    with pytest.raises(InputError, match=r"two\.keras: layer 'lstm' feeds \['a', 'b'\]"):
        load_model(_saved(two, tmp_path / "two.keras"))
    inp, x = _masked_input()
    out, h, c = lstm(5, return_state=True, return_sequences=True)(x)
    both = keras.Model(inp, [keras.layers.Dense(3)(h), out])
    with pytest.raises(InputError, match=r"expected one output \(and return_state's states\)"):
        load_model(_saved(both, tmp_path / "both.keras"))
    inp, x = _masked_input()
    zeros = keras.Model(inp, lstm(5, zero_output_for_mask=True, name="lstm")(x))
    with pytest.raises(InputError, match=r"'lstm' \(LSTM\): zero_output_for_mask under Masking"):
        load_model(_saved(zeros, tmp_path / "zeros.keras"))


# ------------------------------------------------------------ go_backwards sequences
def test_go_backwards_sequence_under_masking(rng, tmp_path):
    """Keras writes a go_backwards sequence in processing order: a sequence of n steps in a
    batch of T holds zeros at its first T - n steps (its padding, processed first), then its
    outputs from step n - 1 back to step 0. The imported network's own padding (the model's
    Masking) returns that batch; masked padding returns each sequence's n outputs."""
    model = distinct_gates(
        build([lstm(5, go_backwards=True, return_sequences=True)], head=False), seed=21
    )
    model.add(keras.layers.Dense(3, activation="softmax"))  # per step
    seqs, x = padded(rng)
    want = model.predict(x, verbose=0)
    T = x.shape[1]
    of_zeros = keras.ops.convert_to_numpy(model.layers[-1](np.zeros((1, 5), np.float32)))
    for suffix in (".keras", ".h5"):
        net = load_model(_saved(model, tmp_path / f"b{suffix}"))
        assert [layer.TYPE for layer in net.layers][1:3] == ["LSTM", "Time Reversal"]
        np.testing.assert_allclose(net.predict(seqs), want, rtol=0, atol=1e-6)
        for got, row, n in zip(net.predict(seqs, padding=MASKED), want, LENGTHS, strict=True):
            np.testing.assert_allclose(got, row[T - n :], rtol=0, atol=1e-6)
            np.testing.assert_allclose(row[: T - n], np.repeat(of_zeros, T - n, 0), atol=1e-7)


GO_BACKWARDS = {  # unmasked: every row of the batch is data
    "alone": lambda: [lstm(5, go_backwards=True, return_sequences=True)],
    "stacked": lambda: [lstm(5, go_backwards=True, return_sequences=True), lstm(3)],
    "stacked-both-ways": lambda: [
        lstm(5, go_backwards=True, return_sequences=True),
        lstm(4, go_backwards=True, return_sequences=True),
        lstm(3, return_sequences=True),
    ],
    "into-bidirectional": lambda: [
        lstm(5, go_backwards=True, return_sequences=True),
        keras.layers.Bidirectional(lstm(3, return_sequences=True), merge_mode="sum"),
    ],
}


@pytest.mark.parametrize("name", GO_BACKWARDS)
def test_go_backwards_sequences_unmasked(rng, tmp_path, name):
    model = distinct_gates(build(GO_BACKWARDS[name](), masking=False, head=False), seed=3)
    model.add(keras.layers.Dense(3, activation="softmax"))
    _, x = padded(rng, [5, 5, 5])
    want = model.predict(x, verbose=0)
    for suffix in (".keras", ".h5"):
        net = load_model(_saved(model, tmp_path / f"m{suffix}"))
        np.testing.assert_allclose(np.stack(net.predict(list(x))), want, rtol=0, atol=1e-6)
    seqs, _ = padded(rng)  # mixed lengths: each as Keras computes it alone
    for got, s in zip(net.predict(seqs), seqs, strict=True):
        np.testing.assert_allclose(got, model.predict(s[None], verbose=0)[0], rtol=0, atol=1e-6)


def test_go_backwards_sequence_refusals(tmp_path):
    """Under Masking the next LSTM reads Keras's unreversed mask; a Bidirectional whose
    forward layer goes backwards has no BiLSTM."""
    stacked = build([lstm(5, go_backwards=True, return_sequences=True, name="back"), lstm(3)])
    with pytest.raises(InputError, match=r"'back' \(LSTM\): go_backwards with return_seq.*Mask"):
        load_model(_saved(stacked, tmp_path / "s.keras"))
    upside_down = keras.layers.Bidirectional(
        lstm(3, go_backwards=True, return_sequences=True),
        backward_layer=lstm(3, return_sequences=True),
        name="bi",
    )
    with pytest.raises(InputError, match=r"'bi' \(Bidirectional\): its forward layer has go_b"):
        load_model(_saved(build([upside_down]), tmp_path / "u.keras"))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_bidirectional_reads_its_own_backward_layer(rng, tmp_path, suffix):
    """A Bidirectional given a backward_layer (here softsign, the forward tanh)."""
    both = keras.layers.Bidirectional(
        lstm(3, return_sequences=True),
        backward_layer=lstm(3, go_backwards=True, return_sequences=True, activation="softsign"),
    )
    model = distinct_gates(build([both, lstm(4)]), seed=4)
    seqs, x = padded(rng)
    want = model.predict(x, verbose=0)
    net = load_model(_saved(model, tmp_path / f"m{suffix}"))
    np.testing.assert_allclose(net.predict(seqs), want, rtol=0, atol=1e-6)


def test_go_backwards_sequence_exports(rng, tmp_path):
    """LSTM → TimeReversal exports as go_backwards (round trip exact); the native format
    keeps the TimeReversal; exporters without one refuse it by name."""
    from lstm_ref.formats import load_network
    from lstm_ref.interop import save_model

    model = distinct_gates(
        build([lstm(5, go_backwards=True, return_sequences=True, name="back")], head=False), 7
    )
    model.add(keras.layers.Dense(3, activation="softmax"))
    net = load_model(_saved(model, tmp_path / "m.keras"))
    seqs, _ = padded(rng)
    for path in (tmp_path / "again.keras", tmp_path / "again.h5", tmp_path / "again.npz"):
        save_model(net, path)
        again = load_model(path) if path.suffix != ".npz" else load_network(path)
        assert [x.TYPE for x in again.layers] == [x.TYPE for x in net.layers]
        for a, b in zip(net.layers, again.layers, strict=True):
            for k, v in a.arrays().items():
                np.testing.assert_array_equal(v, b.arrays()[k], err_msg=f"{a.name}/{k}")
        for got, want in zip(again.predict(seqs), net.predict(seqs), strict=True):
            np.testing.assert_array_equal(got, want)
    for suffix in (".onnx", ".pt", ".mat"):
        with pytest.raises(InputError, match=r"back_reversal.*Time Reversal|Time Reversal\W"):
            save_model(net, tmp_path / f"out{suffix}")
    back, reversal = net.layers[1:3]
    params = LSTMParams(*(rng.normal(size=shape) for shape in ((8, 5), (8, 2), (8,))))
    stacked = Network([SequenceInput(C), back, reversal, LSTM(params, output_mode="last")])
    with pytest.raises(InputError, match=r"'back_reversal': a go_backwards sequence feeding"):
        save_keras(stacked, tmp_path / "stacked.keras")
    with pytest.raises(InputError, match=r"'back': a reverse sequence has no Keras LSTM"):
        save_keras(Network([SequenceInput(C), back]), tmp_path / "alone.keras")


def test_gradients_through_the_time_reversal(rng, tmp_path):
    """BPTT through LSTM → TimeReversal → LSTM (masked padding) by central differences."""
    from lstm_ref.padding import make_batches
    from lstm_ref.train.loss import loss_and_gradients, numerical_gradients

    model = build([lstm(3, go_backwards=True, return_sequences=True), lstm(3)], masking=False)
    net = load_model(_saved(distinct_gates(model, seed=9), tmp_path / "m.keras"))
    seqs, _ = padded(rng)
    batch = make_batches([s.astype(np.float64) for s in seqs])[0]
    targets = rng.integers(0, 3, size=len(seqs))
    _, analytic, _ = loss_and_gradients(net, batch, targets)
    numeric = numerical_gradients(net, batch, targets)
    assert set(analytic) == set(numeric)
    for name, g in analytic.items():
        np.testing.assert_allclose(g, numeric[name], rtol=0, atol=1e-7 * np.abs(g).max())


def test_go_backwards_sequence_padded_as_keras_writes_it(rng, tmp_path):
    """Padding.keras(): the whole padded batch as Keras returns it, zeros first."""
    from lstm_ref import Padding

    model = distinct_gates(
        build([lstm(5, go_backwards=True, return_sequences=True)], head=False), seed=22
    )
    model.add(keras.layers.Dense(3))
    _, x = padded(rng)
    net = load_model(_saved(model, tmp_path / "m.keras"))
    got = net.predict(x, lengths=LENGTHS, padding=Padding.keras())
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=0, atol=1e-6)
