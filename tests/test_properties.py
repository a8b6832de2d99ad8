"""Properties that must hold for every network and every input (hypothesis).

Each property is checked on generated random networks (different weights per gate, non-zero
biases and initial states) and generated batches of mixed lengths.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from random_nets import random_network, random_sequences

from lstm_ref import LSTMState, Network, Padding, load_network, save_network

C, H, K = 4, 5, 3
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2**32 - 1)
lengths = st.lists(st.integers(1, 9), min_size=1, max_size=6)
activations = st.sampled_from(
    [
        {},
        {"gate_activation": "hard-sigmoid", "state_activation": "softsign"},
        {"gate_activation": "hard-sigmoid-keras3"},
    ]
)
modes = st.sampled_from(["last", "sequence"])


def network(seed: int, mode: str = "last", **options) -> tuple[Network, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return random_network(rng, C=C, H=H, K=K, output_mode=mode, **options), rng


def assert_same_results(a, b, atol: float = 1e-12) -> None:
    if isinstance(a, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    else:
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=0, atol=atol)


@FAST
@given(seed=seeds, T=st.integers(1, 12), options=activations)
def test_stepwise_equals_full_sequence(seed, T, options):
    net, rng = network(seed, **options)
    x = rng.normal(size=(T, C))
    whole, whole_state = net.predict(x, outputs="lstm", return_state=True)
    for t in range(T):
        h, net.state = net.predict(x[t : t + 1], outputs="lstm", return_state=True)
    np.testing.assert_allclose(h, whole, rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.state["lstm"].c, whole_state["lstm"].c, rtol=0, atol=1e-12)


@FAST
@given(seed=seeds, sizes=lengths, mode=modes, batch=st.integers(1, 7))
def test_masked_batch_equals_each_sequence_alone(seed, sizes, mode, batch):
    net, rng = network(seed, mode)
    seqs = random_sequences(rng, sizes, C)
    together = net.predict(seqs, padding=Padding.masked(mini_batch_size=batch))
    assert_same_results(together, [net.predict(s) for s in seqs])


@FAST
@given(seed=seeds, sizes=lengths, extra=st.integers(0, 5), value=st.floats(-1e3, 1e3))
def test_padding_value_and_length_never_change_masked_results(seed, sizes, extra, value):
    net, rng = network(seed, "sequence")
    seqs = random_sequences(rng, sizes, C)
    padded = np.full((len(seqs), max(sizes) + extra, C), value)
    for k, s in enumerate(seqs):
        padded[k, : len(s)] = s
    assert_same_results(net.predict(padded, lengths=sizes), net.predict(seqs))


@FAST
@given(seed=seeds, sizes=lengths, data=st.data())
def test_order_is_preserved(seed, sizes, data):
    """Any permutation of the inputs permutes the outputs the same way (both paddings)."""
    net, rng = network(seed)
    seqs = random_sequences(rng, sizes, C)
    order = data.draw(st.permutations(range(len(seqs))))
    for padding in (Padding.masked(mini_batch_size=2), Padding.matlab(mini_batch_size=1)):
        scores = net.predict(seqs, padding=padding)
        shuffled = net.predict([seqs[k] for k in order], padding=padding)
        np.testing.assert_allclose(shuffled, scores[list(order)], rtol=0, atol=1e-12)


@FAST
@given(seed=seeds, sizes=lengths, mode=modes, options=activations)
def test_float32_agrees_with_float64(seed, sizes, mode, options):
    """Within 1e-4 absolute on outputs in [-1, 1] (probabilities, h): float32 rounding only."""
    net, rng = network(seed, mode, **options)
    seqs = random_sequences(rng, sizes, C)
    assert_same_results(net.astype(np.float32).predict(seqs), net.predict(seqs), atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, sizes=lengths, dtype=st.sampled_from([np.float32, np.float64]))
def test_save_then_load_gives_identical_outputs(tmp_path_factory, seed, sizes, dtype):
    """Bit-identical outputs; the current state is not saved (a loaded net starts afresh)."""
    net, rng = network(seed, normalization="zscore")
    net = net.astype(dtype)
    seqs = random_sequences(rng, sizes, C)
    net.state = {"lstm": LSTMState(rng.normal(size=H), rng.normal(size=H))}
    path = tmp_path_factory.mktemp("nets") / "net.npz"
    save_network(net, path)
    back = load_network(path)
    net.reset_state()
    np.testing.assert_array_equal(np.asarray(back.predict(seqs)), np.asarray(net.predict(seqs)))


@pytest.mark.parametrize(
    "options",
    [
        {"gate_activation": g, "state_activation": s}
        for g in ("sigmoid", "hard-sigmoid", "hard-sigmoid-keras3")
        for s in ("tanh", "softsign")
    ],
)
@settings(max_examples=20, deadline=None)
@given(
    seed=seeds,
    scale=st.sampled_from([1e4, -1e4, 5e-324, -5e-324, 1e-310, 0.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_extreme_finite_inputs_give_no_warning_and_no_nan(options, seed, scale, dtype):
    net, rng = network(seed, "sequence", **options)
    net = net.astype(dtype)
    x = scale * rng.choice([-1.0, 1.0], size=(6, C))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = net.predict(x)
        trace = net.trace(x)
    assert np.isfinite(y).all() and all(np.isfinite(v).all() for v in trace)
