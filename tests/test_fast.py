"""The fast path (lstm_ref.fast) equals the reference for every option it covers, and the
network falls back to the reference for the rest."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from random_nets import random_lstm_params, random_network, random_sequences

from lstm_ref import LSTM, FullyConnected, InputError, LSTMState, Network, Padding, SequenceInput
from lstm_ref.fast import FastNetwork

TOL = {np.float64: 1e-12, np.float32: 1e-5}
PADDINGS = [
    Padding.masked(),
    Padding.masked(mini_batch_size=2),
    Padding.matlab(mini_batch_size=3),
    Padding.matlab(mini_batch_size=2, direction="left", value=0.5),
    Padding.matlab(mini_batch_size=4, sequence_length="shortest"),
    Padding.matlab(mini_batch_size=3, sequence_length=4, direction="left"),
]


def reference(net: Network, *args, **kwargs):
    """What the reference path returns (the fast path switched off for this call)."""
    saved, net.fast_engine = net.fast_engine, lambda upto=None: None  # type: ignore[method-assign]
    try:
        return net.predict(*args, **kwargs)
    finally:
        net.fast_engine = saved  # type: ignore[method-assign]


def close(a, b, dtype) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            close(list(a[k]), list(b[k]), dtype)
        return
    if isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            close(x, y, dtype)
        return
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype])


def stacked(rng, C=5, H=(6, 4), K=3, output_mode="last", normalization="zscore") -> Network:
    net = random_network(rng, C, H[0], K, "sequence", normalization)
    second = LSTM(
        random_lstm_params(rng, H[0], H[1]),
        name="lstm2",
        output_mode=output_mode,
        initial_state=LSTMState(rng.uniform(-0.5, 0.5, H[1]), rng.normal(size=H[1])),
    )
    fc = FullyConnected(rng.normal(size=(K, H[1])), rng.normal(size=K))
    return Network([net.layers[0], net.layers[1], second, fc, net.layers[3]], net.class_names)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("output_mode", ["last", "sequence"])
@pytest.mark.parametrize("normalization", ["none", "zerocenter", "zscore"])
def test_fast_equals_reference(rng, dtype, padding, output_mode, normalization):
    net = random_network(rng, output_mode=output_mode, normalization=normalization).astype(dtype)
    assert net.fast_engine() is not None
    xs = random_sequences(rng, [3, 7, 5, 9, 3, 4, 8])
    for outputs in (None, "lstm", "fc"):
        got = net.predict(xs, outputs, padding=padding, return_state=True)
        close(got, reference(net, xs, outputs, padding=padding, return_state=True), dtype)
    one = net.predict(xs[3], "lstm", return_state=True)
    close(one, reference(net, xs[3], "lstm", return_state=True), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("padding", PADDINGS[:4], ids=str)
@pytest.mark.parametrize("output_mode", ["last", "sequence"])
def test_stacked_lstms_and_per_row_states(rng, dtype, padding, output_mode):
    net = stacked(rng, output_mode=output_mode).astype(dtype)
    xs = random_sequences(rng, [6, 3, 9, 4])
    net.state = {
        "lstm": LSTMState(rng.normal(size=(4, 6)), rng.normal(size=(4, 6))),
        "lstm2": LSTMState(rng.normal(size=(4, 4)), rng.normal(size=(4, 4))),
    }
    for outputs in (None, "lstm", "lstm2"):
        got = net.predict(xs, outputs, padding=padding, return_state=True)
        close(got, reference(net, xs, outputs, padding=padding, return_state=True), dtype)


def test_a_padded_batch_with_lengths_and_classify(rng):
    net = random_network(rng, normalization="zscore")
    X = rng.normal(size=(5, 8, 5))
    lengths = [8, 3, 5, 1, 6]
    close(net.predict(X, lengths=lengths), reference(net, X, lengths=lengths), np.float64)
    labels, scores = net.classify(list(X))
    close(scores, reference(net, list(X)), np.float64)
    assert list(labels) == [net.class_names[k] for k in scores.argmax(axis=1)]


@pytest.mark.parametrize(
    "x, message",
    [
        (np.array([[0.0, np.nan, 0, 0, 0]]), "non-finite value NaN at time step 1, feature 2"),
        (np.array([[0.0, 0, 0, -np.inf, 0]]), "non-finite value -inf at time step 1, feature 4"),
        (np.full((2, 5), 3e38), "'sequenceinput' overflowed"),
    ],
)
def test_the_one_sequence_path_refuses_what_the_reference_refuses(rng, x, message):
    net = random_network(rng, normalization="zscore").astype(np.float32)
    net.layer("sequenceinput").std[:] = 0.5
    with pytest.raises(InputError, match=message) as fast:
        net.predict(x.astype(np.float32), "lstm", return_state=True)
    with pytest.raises(InputError) as ref:
        reference(net, x.astype(np.float32), "lstm", return_state=True)
    assert str(fast.value) == str(ref.value)


def test_one_sequence_from_a_one_row_state_and_a_later_layer_kept(rng):
    net = stacked(rng, output_mode="sequence")
    net.state = {
        "lstm": LSTMState(rng.normal(size=(1, 6)), rng.normal(size=(1, 6))),
        "lstm2": LSTMState(rng.normal(size=(1, 4)), rng.normal(size=(1, 4))),
    }
    x = rng.normal(size=(4, 5))
    got = net.predict(x, "lstm", return_state=True)
    close(got, reference(net, x, "lstm", return_state=True), np.float64)
    assert got[1]["lstm2"].h.shape == (4,)
    y, state = net.predict(x, return_state=True)
    close((y, state), reference(net, x, return_state=True), np.float64)
    y[:] = 9.0  # the output and the returned state are the caller's own arrays
    state["lstm2"].h[:] = 9.0
    close(net.predict(x, return_state=True), reference(net, x, return_state=True), np.float64)


def test_overflow_falls_back_to_the_reference_error(rng):
    net = random_network(rng, normalization="zscore").astype(np.float32)
    net.layer("sequenceinput").std[:] = 0.5
    x = np.full((3, 5), 3e38)
    with pytest.raises(InputError, match="'sequenceinput' overflowed") as fast:
        net.predict(x)
    with pytest.raises(InputError) as ref:
        reference(net, x)
    assert str(fast.value) == str(ref.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("outputs", ["lstm", None])
def test_matlab_style_loop_and_stepper_equal_the_reference_step_by_step(rng, dtype, outputs):
    net = stacked(rng, output_mode="sequence").astype(dtype)
    xs = rng.normal(size=(12, 5))
    layer = outputs or net.layers[-1].name
    want = reference(net, xs, layer)  # from the initial state, all steps at once
    stepper = net.stepper(outputs)
    for t, x in enumerate(xs):
        h, state = net.predict(x[None], outputs=outputs, return_state=True)
        net.state = state
        np.testing.assert_allclose(h[0], want[t], rtol=0, atol=TOL[dtype])
        np.testing.assert_allclose(stepper.step(x), want[t], rtol=0, atol=TOL[dtype])
    close(stepper.state, {k: net.state[k] for k in stepper.state}, dtype)
    stepper.reset()
    np.testing.assert_allclose(stepper.run(xs[:5]), want[:5], rtol=0, atol=TOL[dtype])
    np.testing.assert_allclose(stepper.run(xs[5:]), want[5:], rtol=0, atol=TOL[dtype])


def test_the_returned_state_is_copied_when_assigned(rng):
    net = random_network(rng, output_mode="sequence")
    _, state = net.predict(rng.normal(size=(1, 5)), "lstm", return_state=True)
    net.state = state
    state["lstm"].h[:] = 7.0
    assert not np.any(net.state["lstm"].h == 7.0)
    state["lstm"].c[0] = np.inf
    with pytest.raises(InputError):
        net.state = state


def test_stepper_checks_its_input(rng):
    net = random_network(rng, normalization="zscore").astype(np.float32)
    stepper = net.stepper("lstm")
    for bad, error in [(np.ones(4), "shape"), (np.array([np.nan] * 5), "non-finite")]:
        with pytest.raises(InputError, match=error):
            stepper.step(bad)
    with pytest.raises(InputError, match="overflow"):
        stepper.step(np.full(5, 1e300))
    np.testing.assert_allclose(
        stepper.step(np.arange(5.0)), reference(net, np.arange(5.0)[None], "lstm"), atol=1e-5
    )


def test_stepper_of_an_uncovered_network_uses_the_reference(rng):
    net = random_network(rng, output_mode="sequence", state_activation="softsign")
    xs = rng.normal(size=(4, 5))
    stepper = net.stepper("lstm")
    steps = np.stack([stepper.step(x) for x in xs])
    np.testing.assert_allclose(steps, net.predict(xs, "lstm"), rtol=0, atol=1e-12)


def test_stepper_of_a_network_without_class_names(rng):
    net = Network(random_network(rng).layers)  # no ClassificationOutput, no names
    assert net.class_names == ()
    x = rng.normal(size=5)
    np.testing.assert_allclose(net.stepper().step(x), net.predict(x[None]), rtol=0, atol=1e-12)


def test_compile_refuses_what_it_does_not_cover(rng):
    net = random_network(rng)
    assert FastNetwork.compile(net.layers[:1]) is None  # no LSTM
    assert FastNetwork.compile([net.layers[1]]) is None  # no input layer
    assert FastNetwork.compile([SequenceInput(5), net.layers[2]]) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("normalization", ["none", "zscore"])
def test_fast_training_gradients_equal_the_reference(rng, dtype, normalization):
    from lstm_ref import make_batches
    from lstm_ref.train.fast import fast_loss_and_gradients
    from lstm_ref.train.loss import loss_and_gradients

    net = random_network(rng, normalization=normalization).astype(dtype)
    xs = [x.astype(dtype) for x in random_sequences(rng, [3, 7, 5, 6])]
    targets = np.array([0, 3, 1, 2])
    for padding in (Padding.matlab(mini_batch_size=4), Padding.matlab(direction="left")):
        batch = make_batches(xs, padding)[0]
        fast = fast_loss_and_gradients(net, batch, targets)
        assert fast is not None
        loss, grads, probs = loss_and_gradients(net, batch, targets)
        tol = {np.float64: 1e-12, np.float32: 1e-5}[dtype]
        assert abs(fast[0] - loss) <= tol
        assert fast[1].keys() == grads.keys()
        for name, g in grads.items():
            np.testing.assert_allclose(fast[1][name], g, rtol=0, atol=tol, err_msg=name)
        np.testing.assert_allclose(fast[2], probs, rtol=0, atol=tol)
    masked = make_batches(xs, Padding.masked())[0]
    assert fast_loss_and_gradients(net, masked, targets) is None  # the reference's
    seq_net = random_network(rng, output_mode="sequence")
    assert fast_loss_and_gradients(seq_net, make_batches(xs, Padding.matlab())[0], targets) is None


def same_training_step(a, b) -> None:
    """Two results of fast_loss_and_gradients, equal bit for bit."""
    assert a[0] == b[0] and a[1].keys() == b[1].keys()
    for name in a[1]:
        assert a[1][name].tobytes() == b[1][name].tobytes(), name
    assert a[2].tobytes() == b[2].tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_training_buffers_kept_between_calls_change_no_result(rng, dtype, monkeypatch):
    """The buffers kept from call to call — grown for a longer batch, reused for a shorter
    one, one set per batch shape — give every call what fresh buffers give, bit for bit, and
    no call overwrites what an earlier one returned."""
    from lstm_ref import make_batches
    from lstm_ref.train import fast

    net = random_network(rng, normalization="zscore").astype(dtype)
    xs = [x.astype(dtype) for x in random_sequences(rng, [3, 7, 5, 6, 4, 9, 2])]
    targets = rng.integers(0, 4, size=len(xs))
    batches = make_batches(xs, Padding.matlab(mini_batch_size=3))  # (B, T): (3, 7), (3, 9), (1, 2)
    batches.append(make_batches(xs[:3], Padding.matlab(direction="left", value=0.5))[0])

    def step(batch):
        return fast.fast_loss_and_gradients(net, batch, targets[batch.rows])

    expected = []
    for batch in batches:
        monkeypatch.setattr(fast, "_kept", {})  # fresh buffers
        expected.append(step(batch))
    monkeypatch.setattr(fast, "_kept", {})
    order = [0, 1, 0, 2, 3, 1, 2, 0]
    results = [step(batches[k]) for k in order]
    for k, got in zip(order, results, strict=True):
        same_training_step(got, expected[k])
    assert set(fast._kept) == {(B, 5, 7, np.dtype(dtype)) for B in (3, 1)}


def test_fast_training_keeps_buffers_for_a_few_shapes_and_bytes(monkeypatch):
    from lstm_ref.train import fast

    monkeypatch.setattr(fast, "_kept", {})
    monkeypatch.setattr(fast, "KEPT_SHAPES", 2)
    shapes = [(B, 3, 4, np.dtype(np.float64)) for B in (1, 2, 3)]
    for shape in shapes:
        fast.keep_buffers(shape, fast.take_buffers(shape, 5))
    assert list(fast._kept) == shapes[1:]  # the least recently used went first
    taken = fast.take_buffers(shapes[1], 5)
    assert fast.take_buffers(shapes[1], 5) is not taken  # in use: another call makes its own
    assert fast.take_buffers(shapes[2], 6).capacity == 6  # too few steps kept: new ones
    assert not fast._kept
    monkeypatch.setattr(fast, "KEPT_BYTES", taken.nbytes - 1)
    fast.keep_buffers(shapes[1], taken)
    assert not fast._kept  # more memory than allowed: not kept


def test_batch_scores_do_not_depend_on_the_number_of_blas_threads():
    """lstm-ref score's workers run one BLAS thread and must match classify exactly."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from lstm_ref import load_network
    from lstm_ref.datasets import load_japanese_vowels

    net = load_network("JapaneseVowelsNet")
    xs = list(load_japanese_vowels("test")[0][:100])
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        one = net.classify(xs)[1]
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        two = net.classify(xs)[1]
    np.testing.assert_array_equal(one, two)


@pytest.mark.filterwarnings("default")  # recorded here, not raised: none may reach the user
@pytest.mark.parametrize("big", [1e300, -1e200, 1e20])
def test_huge_inputs_warn_nothing_and_give_the_references_answer(rng, big):
    """Values the dtype holds but whose squares overflow: float64 computes them (as the
    reference does, without a word); float32 refuses what it cannot hold, by name."""
    net = random_network(rng, normalization="zscore")
    x = np.full((5, 5), big)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, scores = net.classify(x)
        close(scores, reference(net, x), np.float64)
        y = net.stepper().step(x[0])
        close(y, reference(net, x[:1]), np.float64)
        small = net.astype(np.float32)
        if abs(big) > float(np.finfo(np.float32).max):
            with pytest.raises(InputError, match=r"overflows float32|non-finite value -inf"):
                small.classify(x)
        else:
            close(
                small.classify(x.astype(np.float32))[1],
                reference(small, x.astype(np.float32)),
                np.float32,
            )
    assert [str(w.message) for w in caught] == []
