"""Every documented way of changing a weight is seen by the next call of the fast path.

The fast path computes from a snapshot of the weights (folded, reordered, scaled). It checks
on every call, by identity, that the layers still hold the attributes it read, and it makes
the arrays it folded read-only (lstm_ref.fast.watch): an in-place edit needs the array made
writeable first, and a writeable folded array is compared with its snapshot on every call.
"""

from __future__ import annotations

import numpy as np
import pytest
from random_nets import random_lstm_params, random_network, random_sequences
from test_fast import close, reference

import lstm_ref
from lstm_ref import LSTMParams, Network, Padding
from lstm_ref.fast import seal, writeable
from lstm_ref.train import Adam, TrainingOptions, learnables, train


def weights(net: Network) -> dict[str, np.ndarray]:
    norm, lstm = net.layer("sequenceinput"), net.layer("lstm")
    return {"mean": norm.mean, "std": norm.std, **lstm.params._asdict()}


def both_paths_see(net: Network, xs: list[np.ndarray], dtype) -> None:
    """A batch and the one-step loop both equal the reference with the current weights."""
    close(net.predict(xs), reference(net, xs), dtype)
    want = reference(net, xs[0][:1], "lstm", return_state=True)
    close(net.predict(xs[0][:1], "lstm", return_state=True), want, dtype)


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def setup(rng, request):
    dtype = request.param
    net = random_network(rng, normalization="zscore").astype(dtype)
    xs = [x.astype(dtype) for x in random_sequences(rng, [4, 6, 3])]
    both_paths_see(net, xs, dtype)  # compiled: the folded arrays are now read-only
    return net, xs, dtype


def edits():
    """name -> (index, new value) of one in-place edit each."""
    return {
        "W": ((9, 1), -0.7),
        "R": ((3, 2), 0.5),
        "b": ((5,), 0.3),
        "mean": ((1,), 1.5),
        "std": ((4,), 0.25),
    }


@pytest.mark.parametrize("name", ["W", "R", "b", "mean", "std"])
def test_an_in_place_edit_needs_the_array_writeable_and_is_then_seen(setup, name):
    net, xs, dtype = setup
    a = weights(net)[name]
    index, value = edits()[name]
    with pytest.raises(ValueError, match="read-only"):  # never computed stale: refused
        a[index] = value
    a.flags.writeable = True
    a[index] = value
    both_paths_see(net, xs, dtype)  # two snapshots (outputs "lstm" and the last layer)
    assert not a.flags.writeable  # the recompilation sealed it again


def test_a_network_sharing_the_layers_sees_an_edit_the_other_compiled(setup):
    net, xs, dtype = setup
    twin = Network(net.layers, net.class_names)
    close(twin.predict(xs), reference(twin, xs), dtype)
    writeable(net.layer("lstm").params.R)[0, 0] += 1.0
    close(net.predict(xs), reference(net, xs), dtype)  # net recompiles, R sealed again
    close(twin.predict(xs), reference(twin, xs), dtype)  # twin hears of the sealing


def test_edits_between_steps_of_the_matlab_style_loop_are_seen(setup):
    net, xs, dtype = setup
    x = np.concatenate(xs)
    for t, (name, (index, value)) in enumerate(edits().items()):
        writeable(weights(net)[name])[index] = value
        want = reference(net, x[t : t + 1], "lstm", return_state=True)
        got = net.predict(x[t : t + 1], "lstm", return_state=True)
        close(got, want, dtype)
        net.state = got[1]


def test_new_arrays_parameters_and_layers_are_seen(rng, setup):
    net, xs, dtype = setup
    norm, lstm = net.layer("sequenceinput"), net.layer("lstm")
    H, C = lstm.hidden_size, lstm.input_size
    lstm.params = LSTMParams(*(p.astype(dtype) for p in random_lstm_params(rng, C, H)))
    both_paths_see(net, xs, dtype)
    norm.mean = norm.mean + 0.5
    both_paths_see(net, xs, dtype)
    setattr(norm, "std", norm.std * 2)  # noqa: B010 (the way a user may write it)
    both_paths_see(net, xs, dtype)
    other = random_network(rng, normalization="zscore").astype(dtype)
    net.layers[1] = other.layer("lstm")
    both_paths_see(net, xs, dtype)
    close(net.astype(np.float64).predict(xs), reference(net.astype(np.float64), xs), np.float64)


def test_training_and_adam_are_seen(rng, setup):
    net, xs, dtype = setup
    labels = [net.class_names[k % len(net.class_names)] for k in range(len(xs))]
    options = TrainingOptions(
        max_epochs=1, learning_rate=0.05, padding=Padding.masked(mini_batch_size=2)
    )
    train(net, xs, labels, options, log=None)
    both_paths_see(net, xs, dtype)
    params = learnables(net)
    Adam(0.05).step(params, {k: np.ones_like(p) for k, p in params.items()})
    both_paths_see(net, xs, dtype)


def test_views_of_a_callers_array_are_sealed_with_it(rng):
    net = random_network(rng, normalization="zscore")
    lstm = net.layer("lstm")
    W, R, b = lstm.params
    big = np.concatenate([W, np.ones((1, W.shape[1]))])  # the caller's array …
    lstm.params = LSTMParams(big[: len(W)], R, b)  # … of which W is a view
    xs = random_sequences(rng, [5, 2])
    close(net.predict(xs), reference(net, xs), np.float64)
    assert not big.flags.writeable  # writing through the caller's array is refused too
    writeable(lstm.params.W)  # the chain, owner first
    big[0, 0] += 1.0
    close(net.predict(xs), reference(net, xs), np.float64)


def test_memory_no_ndarray_owns_is_compared_on_every_call(rng):
    net = random_network(rng, normalization="zscore")
    lstm = net.layer("lstm")
    W, R, b = lstm.params
    buffer = bytearray(W.tobytes())  # writable memory that cannot be made read-only
    lstm.params = LSTMParams(np.frombuffer(buffer).reshape(W.shape), R, b)
    xs = random_sequences(rng, [5, 2])
    close(net.predict(xs), reference(net, xs), np.float64)
    buffer[:8] = np.float64(3.0).tobytes()  # W[0, 0], written without NumPy
    close(net.predict(xs, padding=Padding.masked()), reference(net, xs), np.float64)


def test_a_loaded_network_is_sealed_not_compared_on_every_call():
    """The shipped network's arrays own their memory: once compiled, nothing can write into
    them unseen, so no call compares them."""
    net = lstm_ref.load_network("JapaneseVowelsNet")
    net.predict(np.zeros((3, 12)))
    for a in weights(net).values():
        assert not a.flags.writeable
        assert seal(a)  # nothing but NumPy owns the memory
