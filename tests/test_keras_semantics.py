"""Keras's own semantics, against models Keras 3 builds fresh (torch backend), in float32 and
float64: Masking that skips steps anywhere in a sequence, Normalization's epsilon, Functional
models with initial states from inputs, TimeDistributed heads, one LSTM picked by name, and
no Keras warning reaching the user when lstm_ref saves a Keras file."""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported

import keras
import numpy as np
import pytest

from lstm_ref import InputError, LSTMState, Padding
from lstm_ref.interop import load_model, save_model
from lstm_ref.interop.keras import KerasInputs, from_keras, read_keras_inputs

# Keras 3.15's torch backend hands NumPy an __array__ without copy=; not lstm_ref's concern
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
C = 3
LENGTHS = [6, 4, 7, 3, 5]
# Keras 3.15 computes keras.ops.matmul in float32 even in a float64 model: its type promotion
# maps 64-bit types to 32-bit, as JAX does without x64 (keras/src/backend/common/dtypes.py,
# _lattice_result_type). Every Dense does, and so does the LSTM cell masked inputs go
# through; so a float64 model agrees to float32's rounding. Where Keras computes in float64
# (an unmasked LSTM runs torch's own LSTM, go_backwards and Bidirectional too) it is 1e-10:
# test_float64_where_keras_computes_in_float64.
TOLERANCE = {"float32": 1e-5, "float64": 1e-6}


@contextmanager
def floatx(dtype):
    """Keras layers made (and models run) inside compute in ``dtype``: floatx and the dtype
    policy Keras fixed from it when it made its first layer."""
    before = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(before[0])
        keras.config.set_dtype_policy(before[1])


def seeded(model, seed):
    """Every weight random, each gate block of a (·, 4u) recurrent array scaled differently,
    biases shifted: no gate permutation can hide."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        recurrent = isinstance(layer, keras.layers.LSTM | keras.layers.Bidirectional)
        weights = []
        for w in layer.get_weights():
            w = rng.normal(size=w.shape) * 0.5
            if recurrent and w.shape[-1] % 4 == 0:
                u = w.shape[-1] // 4
                w = w * np.repeat([0.6, 0.9, 1.2, 0.5], u) + (0.3 if w.ndim == 1 else 0)
            weights.append(w)
        if weights:
            layer.set_weights(weights)
    return model


def masked_batch(rng, dtype, mask_value=0.0):
    """A batch padded with ``mask_value`` to T = 7, with mask-valued steps at the start and
    in the middle of sequences (missing values filled with the mask value)."""
    x = np.full((len(LENGTHS), max(LENGTHS), C), mask_value, dtype)
    for n, T in enumerate(LENGTHS):
        x[n, :T] = rng.normal(size=(T, C))
    x[0, [0, 3]] = mask_value  # first step and one inside
    x[1, 1:3] = mask_value  # two inside
    x[2, :2] = mask_value  # the first two
    x[2, 5] = mask_value
    x[4, 4] = mask_value  # the last step: as if shorter
    return x


def lstm(units=4, **kw):
    return keras.layers.LSTM(units, **kw)


def bi(mode, **kw):
    return keras.layers.Bidirectional(lstm(3, return_sequences=True, **kw), merge_mode=mode)


MASKED_MODELS = {  # the layers after Masking; each ends in a per-step or final Dense
    "sequence": lambda: [lstm(return_sequences=True)],
    "last": lambda: [lstm()],
    "stacked": lambda: [lstm(return_sequences=True), lstm(3, return_sequences=True)],
    "stacked-last": lambda: [lstm(return_sequences=True), lstm(3)],
    "go-backwards-sequence": lambda: [lstm(go_backwards=True, return_sequences=True)],
    "go-backwards-last": lambda: [lstm(return_sequences=True), lstm(3, go_backwards=True)],
    "bidirectional-concat": lambda: [bi("concat")],
    "bidirectional-sum-stacked": lambda: [bi("sum"), lstm(3)],
    "bidirectional-mul-into-lstm": lambda: [bi("mul"), lstm(3, return_sequences=True)],
    "bidirectional-ave-last": lambda: [keras.layers.Bidirectional(lstm(3), merge_mode="ave")],
    "time-distributed": lambda: [
        lstm(return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(5)),
        lstm(3, return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(2)),
    ],
    "normalization": lambda: [
        keras.layers.Normalization(mean=[0.5, -1.0, 0.2], variance=[2.0, 0.3, 1.5]),
        lstm(return_sequences=True),
    ],
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", MASKED_MODELS)
def test_masking_skips_mask_valued_steps_anywhere(rng, tmp_path, name, dtype):
    """Keras skips a step whose features all equal mask_value wherever it is, carries the
    state over it and writes there what it writes; the imported network's own padding,
    Padding.keras, does the same, in a padded batch and on each sequence alone. Computing
    those steps (masking only past the lengths) would differ."""
    with floatx(dtype):  # Keras reads floatx when it runs the model, too
        stack = [keras.Input((None, C)), keras.layers.Masking(0.0), *MASKED_MODELS[name]()]
        model = seeded(keras.Sequential([*stack, keras.layers.Dense(2)]), seed=len(name))
        x = masked_batch(rng, dtype)
        want = model.predict(x, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    net = from_keras(path, dtype=dtype)
    assert net.padding == read_keras_inputs(path).padding == Padding.keras(mask_value=0.0)
    got = net.predict(x)  # the padded batch as the model takes it
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype])
    for n, T in enumerate(LENGTHS):  # one sequence alone: the same
        one = net.predict(x[n, :T])
        if one.ndim == 1:
            np.testing.assert_allclose(one, want[n], rtol=0, atol=TOLERANCE[dtype])
        else:  # a go_backwards sequence ends with its own steps, after the padding's zeros
            steps = slice(-T, None) if name == "go-backwards-sequence" else slice(T)
            np.testing.assert_allclose(one, want[n, steps], rtol=0, atol=TOLERANCE[dtype])
    computed = np.asarray(net.predict(x, lengths=LENGTHS, padding=Padding.keras(mask_value=None)))
    assert np.abs(computed - want).max() > 1e-3  # the masked steps matter


def test_masking_with_another_mask_value(rng, tmp_path):
    """Masking(-1.0): steps of -1s are skipped, steps of 0s are data."""
    stack = [keras.Input((None, C)), keras.layers.Masking(-1.0), lstm(return_sequences=True)]
    model = seeded(keras.Sequential([*stack, keras.layers.Dense(2)]), seed=3)
    x = masked_batch(rng, "float32", mask_value=-1.0)
    x[3, 1] = 0.0  # data
    path = tmp_path / "m.h5"
    model.save(path)
    net = load_model(path, class_names=["a", "b"])
    assert net.padding == read_keras_inputs(path).padding == Padding.keras(mask_value=-1.0)
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(net.predict(x), want, rtol=0, atol=1e-5)
    save_model(net, tmp_path / "m.npz")  # the padding travels in the native header
    again = load_model(tmp_path / "m.npz").astype(np.float32)
    assert again.padding == net.padding
    np.testing.assert_allclose(again.predict(x), want, rtol=0, atol=1e-5)
    data = net.predict(x, lengths=LENGTHS, padding=Padding.keras(mask_value=None))
    assert np.abs(data - want).max() > 1e-3  # computing the -1 steps as data differs


def test_without_masking_every_step_is_data(rng, tmp_path):
    """A model without Masking computes its zero steps: the network's padding is masked;
    Padding.keras() (mask_value 0.0 by default) would skip them, as Masking(0.0) would."""
    model = seeded(keras.Sequential([keras.Input((None, C)), lstm(), keras.layers.Dense(2)]), 5)
    x = masked_batch(rng, "float32")
    path = tmp_path / "m.keras"
    model.save(path)
    net = load_model(path)
    assert net.padding == read_keras_inputs(path).padding == Padding.masked()
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(net.predict(x), want, rtol=0, atol=1e-5)
    assert np.abs(net.predict(x, padding=Padding.keras()) - want).max() > 1e-3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalization_divides_by_at_least_epsilon(rng, tmp_path, dtype):
    """Keras 3: (x − mean) / max(sqrt(variance), 1e-7): a tiny and a zero variance."""
    variance = [1e-20, 0.0, 0.7]
    with floatx(dtype):
        norm = keras.layers.Normalization(mean=[0.1, -0.2, 0.3], variance=variance)
        model = keras.Sequential([keras.Input((None, C)), norm, lstm(), keras.layers.Dense(2)])
        model = seeded(model, seed=11)
        seqs = [rng.normal(size=(T, C)).astype(dtype) * 1e-6 for T in LENGTHS]
        wants = [model.predict(s[None], verbose=0)[0] for s in seqs]
    path = tmp_path / "n.keras"
    model.save(path)
    net = from_keras(path, dtype=dtype)
    divisor = np.maximum(np.sqrt(variance), 1e-7)
    np.testing.assert_allclose(net.layers[0].std, divisor, rtol=1e-7)
    for got, want in zip(net.predict(seqs), wants, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE[dtype])


def test_float64_where_keras_computes_in_float64(rng, tmp_path):
    """An unmasked float64 stack — LSTM, Bidirectional, go_backwards sequence — without a
    Dense (torch's LSTM inside Keras, no ops.matmul): 1e-10, each sequence of mixed lengths
    on its own."""
    with floatx("float64"):
        layers = [
            lstm(return_sequences=True),
            bi("sum"),
            lstm(3, return_sequences=True, go_backwards=True),
        ]
        model = seeded(keras.Sequential([keras.Input((None, C)), *layers]), seed=13)
        seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
        wants = [model.predict(s[None], verbose=0)[0] for s in seqs]
    model.save(tmp_path / "m.keras")
    net = from_keras(tmp_path / "m.keras")
    for got, want in zip(net.predict(seqs), wants, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


# ------------------------------------------------------------------ Functional models
def _initial_state_model(masked):
    """x → LSTM → LSTM → TimeDistributed(Dense), each LSTM's initial_state model inputs, the
    second's states also returned; under Masking each LSTM is handed the mask (mask=), and
    the second's output at leading masked steps is Keras's 0, not its initial h."""
    inp = keras.Input((None, C), name="x")
    starts = [
        keras.Input((units,), name=f"{k}{n}") for n, units in (("0", 4), ("1", 3)) for k in "hc"
    ]
    x, mask = inp, None
    if masked:
        x = keras.layers.Masking(0.0)(inp)
        mask = keras.ops.any(keras.ops.not_equal(inp, 0.0), axis=-1)
    y = lstm(return_sequences=True, name="first")(x, initial_state=starts[:2], mask=mask)
    second = lstm(3, return_sequences=True, return_state=True, name="second")
    y, h, c = second(y, initial_state=starts[2:], mask=mask)
    out = keras.layers.TimeDistributed(keras.layers.Dense(2, activation="softmax"), name="td")(y)
    return keras.Model([inp, *starts], [out, h, c])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("masked", "suffix"), [(False, ".keras"), (True, ".keras"), (True, ".h5")])
def test_initial_state_from_inputs(rng, tmp_path, masked, suffix, dtype):
    """The model inputs an LSTM's initial_state reads are its rows of Network.state."""
    N = len(LENGTHS)
    starts = [rng.normal(size=(N, units)).astype(dtype) for units in (4, 4, 3, 3)]
    x = masked_batch(rng, dtype) if masked else np.zeros((N, max(LENGTHS), C), dtype)
    if not masked:  # padded with zeros Keras computes: each row's own steps are compared
        for n, T in enumerate(LENGTHS):
            x[n, :T] = rng.normal(size=(T, C))
    with floatx(dtype):
        model = seeded(_initial_state_model(masked), seed=5)
        out, h, c = model.predict([x, *starts], verbose=0)
    path = tmp_path / f"f{suffix}"
    model.save(path)
    net = from_keras(path, dtype=dtype)
    inputs = read_keras_inputs(path)
    assert inputs.state_inputs == {"first": ["h0", "c0"], "second": ["h1", "c1"]}
    given = dict(zip(["h0", "c0", "h1", "c1"], starts, strict=True))
    net.state = {
        name: LSTMState(*(given[k] for k in keys)) for name, keys in inputs.state_inputs.items()
    }
    tol = TOLERANCE[dtype]
    if masked:
        got, state = net.predict(x, lengths=LENGTHS, padding=inputs.padding, return_state=True)
        np.testing.assert_allclose(got, out, rtol=0, atol=tol)
    else:
        got, state = net.predict([x[n, :T] for n, T in enumerate(LENGTHS)], return_state=True)
        for n, T in enumerate(LENGTHS):
            np.testing.assert_allclose(got[n], out[n, :T], rtol=0, atol=tol)
        full = [n for n, T in enumerate(LENGTHS) if T == x.shape[1]]  # Keras ran the others'
        h, c = h[full], c[full]  # padding as data, so only full rows end in the same state
        state = {k: LSTMState(s.h[full], s.c[full]) for k, s in state.items()}
    np.testing.assert_allclose(state["second"].h, h, rtol=0, atol=tol)
    np.testing.assert_allclose(state["second"].c, c, rtol=0, atol=tol)


def test_initial_state_refusals(tmp_path):
    """A layer Keras calls with initial states but no mask, under Masking, computes masked
    steps as data; an initial state computed by another layer is off the one chain."""
    inp, h0, c0 = keras.Input((None, C)), keras.Input((4,), name="h0"), keras.Input((4,))
    x = keras.layers.Masking(0.0)(inp)
    y = lstm(name="dec")(x, initial_state=[h0, c0])
    unmasked = keras.Model([inp, h0, c0], keras.layers.Dense(2)(y))
    unmasked.save(tmp_path / "u.keras")
    with pytest.raises(InputError, match=r"'dec' \(LSTM\): called with an initial_state and no m"):
        from_keras(tmp_path / "u.keras")
    encoder_decoder(tmp_path / "ed.keras")
    with pytest.raises(InputError, match=r"'decoder' \(LSTM\): its initial_state comes from lay"):
        from_keras(tmp_path / "ed.keras")


def encoder_decoder(path):
    """An encoder whose final states start a decoder on a second input; saved to ``path``."""
    src, tgt = keras.Input((None, C), name="src"), keras.Input((None, 2), name="tgt")
    _, h, c = lstm(5, return_state=True, name="encoder")(src)
    y = lstm(5, return_sequences=True, name="decoder")(tgt, initial_state=[h, c])
    model = seeded(keras.Model([src, tgt], keras.layers.Dense(3, name="head")(y)), seed=8)
    model.save(path)
    return model


def test_one_lstm_picked_by_name(rng, tmp_path):
    """An encoder–decoder is no chain; each LSTM imports alone by name, and the encoder's
    final state started as the decoder's state gives Keras's decoder outputs."""
    model = encoder_decoder(tmp_path / "ed.keras")
    src = rng.normal(size=(3, 6, C)).astype(np.float32)
    tgt = rng.normal(size=(3, 4, 2)).astype(np.float32)
    inside = keras.Model(model.inputs, model.get_layer("decoder").output)
    want = inside.predict([src, tgt], verbose=0)
    encoder = from_keras(tmp_path / "ed.keras", layer="encoder")
    decoder = from_keras(tmp_path / "ed.keras", layer="decoder")
    _, state = encoder.predict(list(src), return_state=True)
    decoder.state = {"decoder": state["encoder"]}
    np.testing.assert_allclose(np.stack(decoder.predict(list(tgt))), want, rtol=0, atol=1e-5)
    assert read_keras_inputs(tmp_path / "ed.keras") == KerasInputs(None, {})  # no chain: read
    with pytest.raises(InputError, match=r"'head' is a Dense; its LSTM layers: \['encoder', 'd"):
        from_keras(tmp_path / "ed.keras", layer="head")
    with pytest.raises(InputError, match=r"layer=<name>"):
        from_keras(tmp_path / "ed.keras")


def test_masking_refusals(tmp_path):
    """Masking after a computing layer; zero_output_for_mask zeros reaching the output."""
    norm = keras.layers.Normalization(mean=[0.0] * C, variance=[2.0] * C, name="norm")
    masking = keras.layers.Masking(name="masking")
    late = keras.Sequential([keras.Input((None, C)), norm, masking, lstm()])
    late.save(tmp_path / "late.keras")
    with pytest.raises(InputError, match=r"'masking' \(Masking\): after layer 'norm'"):
        from_keras(tmp_path / "late.keras")
    zeros = lstm(return_sequences=True, zero_output_for_mask=True, name="z")
    model = keras.Sequential([keras.Input((None, C)), keras.layers.Masking(), zeros])
    model.save(tmp_path / "z.keras")
    with pytest.raises(InputError, match=r"'z' \(LSTM\): zero_output_for_mask .* writes 0"):
        from_keras(tmp_path / "z.keras")
    none = keras.layers.Bidirectional(lstm(3), merge_mode=None, name="bi")
    inp = keras.Input((None, C))
    forward, backward = none(inp)
    keras.Model(inp, keras.layers.Concatenate()([forward, backward])).save(tmp_path / "n.keras")
    with pytest.raises(InputError, match=r"'bi' \(Bidirectional\): merge_mode None"):
        from_keras(tmp_path / "n.keras", layer="bi")


# ------------------------------------------------------------------ saving, quietly
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_saving_a_keras_file_says_nothing(tmp_path, caplog, suffix):
    """save_model to .keras/.h5 lets no Keras warning or log notice reach the user."""
    stack = [keras.Input((None, C)), keras.layers.Masking(), lstm(), keras.layers.Dense(2)]
    model = keras.Sequential(stack)
    model.save(tmp_path / "m.keras")
    net = from_keras(tmp_path / "m.keras")
    with warnings.catch_warnings(), caplog.at_level(logging.INFO):
        warnings.simplefilter("error")
        save_model(net, tmp_path / f"again{suffix}")
    assert not caplog.records


def test_mask_value_is_checked_and_honoured_everywhere(rng):
    """Only Keras's padding has a mask value; a sequence all mask is refused by name; the
    batches training makes refuse a masked step inside rather than compute it."""
    from lstm_ref.padding import make_batches

    with pytest.raises(InputError, match=r"mask_value is Keras's Masking .* padding 'onnx'"):
        Padding("onnx", mask_value=0.0)
    with pytest.raises(InputError, match=r"mask_value must be a finite number"):
        Padding.keras(mask_value=float("nan"))
    seqs = [rng.normal(size=(4, C)), np.zeros((2, C))]
    with pytest.raises(InputError, match=r"sequence 2: every step equals the mask value 0"):
        Padding.keras().skipped_steps(seqs)
    seqs[1][0] = 1.0  # one step of data, one masked
    assert [k.tolist() for k in Padding.keras().skipped_steps(seqs)] == [[False] * 4, [0, 1]]
    assert Padding.keras(mask_value=None).skipped_steps(seqs) is None
    with pytest.raises(InputError, match=r"a step whose features all equal the mask value 0 lie"):
        make_batches(seqs, Padding.keras())
    assert len(make_batches(seqs, Padding.keras(mask_value=None))) == 1


def test_exported_model_masks_as_padding_keras(rng, tmp_path):
    """A network exported to Keras (Masking(0.0) first) skips the same steps as
    Padding.keras(): zero steps at the start and inside, through a BiLSTM into an LSTM."""
    layers = [bi("sum"), lstm(3, return_sequences=True)]
    model = keras.Sequential([keras.Input((None, C)), *layers, keras.layers.Dense(2)])
    seeded(model, seed=17).save(tmp_path / "m.keras")
    net = from_keras(tmp_path / "m.keras")
    save_model(net, tmp_path / "exported.keras")
    exported = keras.models.load_model(tmp_path / "exported.keras")
    x = masked_batch(rng, "float32")
    got = net.predict(x, lengths=LENGTHS, padding=Padding.keras())
    np.testing.assert_allclose(got, exported.predict(x, verbose=0), rtol=0, atol=1e-5)


def test_cli_predict_computes_as_the_masked_model(rng, tmp_path, capsys):
    """``lstm-ref predict`` on the zero-padded batch a Masking model takes: its scores."""
    import json

    from lstm_ref.cli import main

    stack = [keras.Input((None, C)), keras.layers.Masking(0.0), lstm()]
    model = seeded(keras.Sequential([*stack, keras.layers.Dense(2, activation="softmax")]), 9)
    x = masked_batch(rng, "float32")
    path, data, out = tmp_path / "m.keras", tmp_path / "x.npy", tmp_path / "scores.json"
    model.save(path)
    np.save(data, x)
    command = ["predict", str(data), "--network", str(path), "--classes", "a,b", "--scores"]
    assert main([*command, "--output", str(out)]) == 0
    capsys.readouterr()
    want = model.predict(x, verbose=0)
    got = [[row["score_a"], row["score_b"]] for row in json.loads(out.read_text())]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert main([*command, "--padding", "masked", "--output", str(out)]) == 0  # steps as data
    got = [[row["score_a"], row["score_b"]] for row in json.loads(out.read_text())]
    assert np.abs(np.asarray(got) - want).max() > 1e-3
