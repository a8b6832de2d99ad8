"""The network: MATLAB's layer table, stateful stepping, padding semantics, classify."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest
from random_nets import random_lstm_params, random_network, random_sequences

from lstm_ref import (
    LSTM,
    FullyConnected,
    InputError,
    LSTMState,
    Network,
    Padding,
    SequenceInput,
    Softmax,
)
from lstm_ref.explain import explain_step
from lstm_ref.layers import BiLSTM, ClassificationOutput, InputCache, Layer

TOL = {np.float64: 1e-12, np.float32: 1e-5}

SEED_TABLE = """\
  4x1 Layer array with layers:

     1   'sequenceinput'   Sequence Input    Sequence input with 12 dimensions
     2   'lstm'            LSTM              LSTM with 100 hidden units
     3   'fc'              Fully Connected   9 fully connected layer
     4   'softmax'         Softmax           softmax"""


def test_summary_prints_matlab_layer_table(rng):
    net = random_network(rng, C=12, H=100, K=9)
    assert net.summary() == SEED_TABLE


def test_summary_of_five_layer_network_with_classification_output(rng):
    net = random_network(rng, C=12, H=100, K=9)
    names = tuple("123456789")
    net5 = Network([*net.layers, ClassificationOutput(names)])
    lines = net5.summary().splitlines()
    assert lines[0] == "  5x1 Layer array with layers:"
    assert lines[-1] == (
        "     5   'classoutput'     Classification Output   "
        "crossentropyex with '1' and 8 other classes"
    )
    assert lines[2].startswith("     1   'sequenceinput'   Sequence Input          ")


def test_stepping_with_carried_state_equals_one_call(rng):
    net = random_network(rng, output_mode="last")
    x = rng.normal(size=(9, 5))
    whole, whole_state = net.predict(x, outputs="lstm", return_state=True)
    lstm_seq = dataclasses.replace(net.layer("lstm"), output_mode="sequence")
    sequence_net = Network([net.layers[0], lstm_seq])
    activations = []
    for t in range(len(x)):
        h, state = net.predict(x[t : t + 1], outputs="lstm", return_state=True)
        net.state = state
        activations.append(h)
    np.testing.assert_allclose(activations[-1], whole, rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.state["lstm"].c, whole_state["lstm"].c, rtol=0, atol=1e-12)
    # every h_t of the stepped loop equals the full-sequence output at t
    all_h = sequence_net.predict(x, outputs="lstm")
    np.testing.assert_allclose(np.array(activations), all_h, rtol=0, atol=1e-12)
    net.reset_state()
    np.testing.assert_array_equal(net.state["lstm"].h, net.layer("lstm").initial_state.h)


def test_chunks_with_carried_state_equal_one_call(rng):
    net = random_network(rng, output_mode="sequence")
    x = rng.normal(size=(10, 5))
    whole = net.predict(x, outputs="lstm")
    parts = []
    for chunk in (x[:3], x[3:7], x[7:]):
        y, net.state = net.predict(chunk, outputs="lstm", return_state=True)
        parts.append(y)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-12)


def test_state_read_out_is_a_copy(rng):
    net = random_network(rng)
    h0 = net.layer("lstm").initial_state.h.copy()
    net.state["lstm"].h[:] = 5
    net.initial_state()["lstm"].h[:] = 5
    net.reset_state()
    np.testing.assert_array_equal(net.layer("lstm").initial_state.h, h0)
    np.testing.assert_array_equal(net.state["lstm"].h, h0)


def test_predict_does_not_change_state_unless_assigned(rng):
    net = random_network(rng)
    x = rng.normal(size=(4, 5))
    first = net.predict(x)
    net.predict(x, return_state=True)
    np.testing.assert_array_equal(net.predict(x), first)


def test_batch_state_rows_are_per_sequence(rng):
    net = random_network(rng, output_mode="last")
    seqs = random_sequences(rng, [4, 6, 5], 5)
    _, state = net.predict(seqs, outputs="lstm", return_state=True)
    assert state["lstm"].h.shape == (3, 7)
    net.state = state
    nxt = random_sequences(rng, [2, 3, 2], 5)
    batched = net.predict(nxt, outputs="lstm")
    for k in range(3):
        net.state = {"lstm": LSTMState(state["lstm"].h[k], state["lstm"].c[k])}
        np.testing.assert_allclose(batched[k], net.predict(nxt[k], outputs="lstm"), atol=1e-12)
    net.state = state
    with pytest.raises(
        ValueError, match=r"holds 3 rows \(layer .*one per sequence, but 2 sequences came"
    ):
        net.predict(nxt[:2])


def test_matlab_right_padding_reads_padded_last_step(rng):
    net = random_network(rng, output_mode="last")
    seqs = random_sequences(rng, [8, 3, 5], 5)
    matlab = net.predict(seqs, outputs="lstm", padding=Padding.matlab())
    masked = net.predict(seqs, outputs="lstm")
    np.testing.assert_allclose(matlab[0], masked[0], atol=1e-12)  # the longest: no padding
    for k in (1, 2):
        assert np.abs(matlab[k] - masked[k]).max() > 1e-3
        zeros_after = np.vstack([seqs[k], np.zeros((8 - len(seqs[k]), 5))])
        np.testing.assert_allclose(matlab[k], net.predict(zeros_after, outputs="lstm"), atol=1e-12)


def test_matlab_padding_depends_on_mini_batch(rng):
    net = random_network(rng)
    seqs = random_sequences(rng, [8, 3, 5, 6], 5)
    one_batch = net.predict(seqs, padding=Padding.matlab())
    pairs = net.predict(seqs, padding=Padding.matlab(mini_batch_size=2))
    singles = net.predict(seqs, padding=Padding.matlab(mini_batch_size=1))
    np.testing.assert_allclose(singles, net.predict(seqs), atol=1e-12)
    np.testing.assert_allclose(
        pairs[2:], net.predict(seqs[2:], padding=Padding.matlab()), atol=1e-12
    )
    assert np.abs(one_batch[2] - pairs[2]).max() > 1e-6  # 5 padded to 8 vs to 6


def test_matlab_left_padding_and_padding_value(rng):
    net = random_network(rng, output_mode="sequence")
    seqs = random_sequences(rng, [6, 2], 5)
    out = net.predict(seqs, outputs="lstm", padding=Padding.matlab(direction="left", value=0.5))
    lead = np.vstack([np.full((4, 5), 0.5), seqs[1]])
    np.testing.assert_allclose(out[1], net.predict(lead, outputs="lstm")[4:], atol=1e-12)
    assert out[1].shape == (2, 7)


def test_matlab_shortest_truncates_every_sequence(rng):
    net = random_network(rng, output_mode="sequence")
    seqs = random_sequences(rng, [6, 3, 4], 5)
    out = net.predict(seqs, outputs="lstm", padding=Padding.matlab(sequence_length="shortest"))
    assert [o.shape[0] for o in out] == [3, 3, 3]
    np.testing.assert_allclose(out[0], net.predict(seqs[0][:3], outputs="lstm"), atol=1e-12)


def test_matlab_numeric_sequence_length_pads_to_whole_chunks(rng):
    """SequenceLength 3 on lengths 7, 3, 5: pad to 9 steps, run 3 chunks, state carried."""
    net = random_network(rng, output_mode="last")
    seqs = random_sequences(rng, [7, 3, 5], 5)
    padded = np.zeros((3, 9, 5))
    for k, s in enumerate(seqs):
        padded[k, : len(s)] = s
    for start in range(0, 9, 3):  # each chunk a separate call, the state carried
        h, net.state = net.predict(padded[:, start : start + 3], outputs="lstm", return_state=True)
    net.reset_state()
    chunked = net.predict(seqs, outputs="lstm", padding=Padding.matlab(sequence_length=3))
    np.testing.assert_allclose(chunked, h, rtol=0, atol=1e-12)
    assert np.abs(chunked[0] - net.predict(seqs, outputs="lstm")[0]).max() > 1e-6  # ≠ 7 steps
    np.testing.assert_array_equal(
        net.predict(seqs, padding=Padding.matlab(sequence_length=7)),
        net.predict(seqs, padding=Padding.matlab()),
    )


def test_matlab_left_truncation_keeps_the_last_steps(rng):
    net = random_network(rng, output_mode="sequence")
    seqs = random_sequences(rng, [6, 3, 4], 5)
    out = net.predict(
        seqs, outputs="lstm", padding=Padding.matlab(sequence_length="shortest", direction="left")
    )
    for k, s in enumerate(seqs):
        np.testing.assert_allclose(out[k], net.predict(s[-3:], outputs="lstm"), atol=1e-12)


def test_matlab_left_padding_last_output_reads_real_final_step(rng):
    net = random_network(rng, output_mode="last")
    seqs = random_sequences(rng, [6, 2, 4], 5)
    left = net.predict(seqs, outputs="lstm", padding=Padding.matlab(direction="left"))
    for k, s in enumerate(seqs):
        lead = np.vstack([np.zeros((6 - len(s), 5)), s])
        np.testing.assert_allclose(left[k], net.predict(lead, outputs="lstm"), atol=1e-12)


def test_padded_array_with_lengths_equals_list(rng):
    net = random_network(rng)
    seqs = random_sequences(rng, [4, 6, 2], 5)
    padded = np.zeros((3, 6, 5))
    for k, s in enumerate(seqs):
        padded[k, : len(s)] = s
    np.testing.assert_array_equal(
        net.predict(padded, lengths=[4, 6, 2]),
        net.predict(seqs),
    )


def test_matlab_layout_features_by_time(rng):
    net = random_network(rng)
    x = rng.normal(size=(7, 5))
    np.testing.assert_array_equal(net.predict(x.T, layout="CT"), net.predict(x))
    np.testing.assert_array_equal(net.predict([x.T], layout="CT"), net.predict([x]))


def test_classify_returns_labels_and_scores(rng):
    net = random_network(rng)
    seqs = random_sequences(rng, [4, 6, 5], 5)
    labels, scores = net.classify(seqs)
    assert scores.shape == (3, 4)
    np.testing.assert_allclose(scores.sum(axis=1), 1, atol=1e-12)
    assert list(labels) == [f"class{k}" for k in scores.argmax(axis=1)]
    label, score = net.classify(seqs[0])
    assert isinstance(label, str) and score.shape == (4,)


def test_trace_names_every_gate_and_matches_outputs(rng):
    net = random_network(rng, output_mode="sequence")
    x = rng.normal(size=(6, 5))
    tr = net.trace(x)
    assert tr._fields == ("i", "f", "g", "o", "c", "h")
    assert all(v.shape == (6, 7) for v in tr)
    np.testing.assert_allclose(tr.h, net.predict(x, outputs="lstm"), rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.h, tr.o * np.tanh(tr.c), atol=1e-15)
    np.testing.assert_allclose(tr.c[1:], tr.f[1:] * tr.c[:-1] + tr.i[1:] * tr.g[1:], atol=1e-15)


def test_float32_on_request(rng):
    net = random_network(rng)
    x = rng.normal(size=(6, 5))
    net32 = net.astype(np.float32)
    y32 = net32.predict(x)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, net.predict(x), atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_astype_keeps_an_assigned_state(rng, dtype):
    net = random_network(rng, normalization="zscore")
    firsts, rests = random_sequences(rng, [3, 4]), random_sequences(rng, [4, 2])
    whole = net.predict([np.concatenate(pair) for pair in zip(firsts, rests, strict=True)])
    _, rows = net.predict(firsts, return_state=True)  # (2, H): one row per sequence
    net.state = rows
    cast = net.astype(dtype)
    assert cast.state["lstm"].h.dtype == dtype and cast.state["lstm"].h.shape == (2, 7)
    np.testing.assert_allclose(cast.predict(rests), whole, rtol=0, atol=TOL[dtype])
    net.reset_state()
    _, one = net.predict(firsts[0], return_state=True)  # (H,): for every sequence
    net.state = one
    np.testing.assert_allclose(net.astype(dtype).predict(rests[0]), whole[0], atol=TOL[dtype])


def test_astype_refuses_a_state_the_dtype_cannot_hold(rng):
    net = random_network(rng)
    net.state = {"lstm": (np.full(7, 1e300), np.zeros(7))}
    with pytest.raises(InputError, match="'lstm'"):
        net.astype(np.float32)


def test_zscore_normalisation_applies_before_lstm(rng):
    net = random_network(rng, normalization="zscore")
    x = rng.normal(size=(5, 5))
    norm = net.layers[0]
    plain = Network([SequenceInput(5), *net.layers[1:]], net.class_names)
    np.testing.assert_allclose(
        net.predict(x), plain.predict((x - norm.mean) / norm.std), atol=1e-12
    )


def test_stacked_lstms_compose(rng):
    p1, p2 = random_lstm_params(rng, 5, 6), random_lstm_params(rng, 6, 7)
    net = Network(
        [
            SequenceInput(5),
            LSTM(p1, name="lstm1"),
            LSTM(p2, name="lstm2", output_mode="last"),
            FullyConnected(rng.normal(size=(3, 7)), rng.normal(size=3)),
            Softmax(),
        ],
        class_names=tuple("abc"),
    )
    x = rng.normal(size=(5, 5))
    first = net.predict(x, outputs="lstm1")
    second = Network([SequenceInput(6), net.layers[2]]).predict(first)
    np.testing.assert_allclose(net.predict(x, outputs="lstm2"), second, atol=1e-12)
    assert set(net.state) == {"lstm1", "lstm2"}


def test_default_padding_never_depends_on_batching(rng):
    """The default (masked) equals each sequence alone, whatever the mini-batch size."""
    net = random_network(rng, output_mode="sequence")
    seqs = random_sequences(rng, [8, 3, 5, 6, 1], 5)
    alone = [net.predict(s) for s in seqs]
    for size in (1, 2, 128):
        batched = net.predict(seqs, padding=Padding.masked(mini_batch_size=size))
        for a, b in zip(alone, batched, strict=True):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)


@dataclasses.dataclass(eq=False)
class Doubling(Layer):
    """A layer the network has never heard of: y = 2x, one output per input."""

    name: str = "double"
    TYPE: ClassVar[str] = "Doubling"

    def description(self) -> str:
        return "y = 2x"

    def forward(self, x, lengths=None, state=None):
        return 2 * x, InputCache(x)

    def backward(self, dy, cache):
        return 2 * dy, {}


def test_network_walks_any_layer_that_follows_the_contract(rng):
    """No branch on the kind of a layer: a new layer slots in between LSTM and FC."""
    net = random_network(rng)
    lstm, fc = net.layer("lstm"), net.layer("fc")
    doubled = Network([net.layers[0], lstm, Doubling(), *net.layers[2:]], net.class_names)
    scaled_fc = FullyConnected(2 * fc.weights, fc.bias)
    plain = Network([net.layers[0], lstm, scaled_fc, net.layers[3]], net.class_names)
    x = random_sequences(rng, [6, 4], 5)
    np.testing.assert_allclose(doubled.predict(x), plain.predict(x), rtol=0, atol=1e-12)
    assert doubled.width("double") == 7 and set(doubled.state) == {"lstm"}
    assert "   3   'double'          Doubling          y = 2x" in doubled.summary()
    with pytest.raises(ValueError, match="layer 'double' is a Doubling layer, not an LSTM"):
        doubled.trace(x[0], layer="double")


def test_an_edited_returned_state_is_checked_and_assigned(rng):
    """Replacing one entry of a state predict returned, then assigning it, goes through the
    state checks (it is no longer the state that was issued)."""
    net = random_network(rng)
    _, state = net.predict(rng.normal(size=(4, 5)), outputs="lstm", return_state=True)
    state["lstm"] = LSTMState(np.zeros(7), np.zeros(7))
    net.state = state
    np.testing.assert_array_equal(net.state["lstm"].h, np.zeros(7))
    state["lstm"] = LSTMState(np.zeros(6), np.zeros(6))
    with pytest.raises(ValueError, match=r"h and c must both be \(7,\)"):
        net.state = state


def test_recurrent_layer_names_the_lstm_layers(rng):
    """One home for "the LSTM layer" of trace, explain, plots and the walkthrough: the first
    recurrent layer by default, a named one checked, and errors that list the choices."""
    fwd = LSTM(random_lstm_params(rng, 3, 4), output_mode="sequence", name="fwd")
    bwd = LSTM(
        random_lstm_params(rng, 3, 4), output_mode="sequence", name="bwd", direction="reverse"
    )
    bi = BiLSTM(fwd, bwd, name="bi")
    second = LSTM(random_lstm_params(rng, 8, 5), output_mode="last", name="second")
    fc = FullyConnected(rng.normal(size=(2, 5)), rng.normal(size=2), name="fc")
    net = Network([SequenceInput(3), bi, second, fc])
    x = random_sequences(rng, [4], 3)[0]
    assert net.recurrent_layer() is bi and net.recurrent_layer("second") is second
    both = r"LSTM layers: \['bi', 'second'\]"
    with pytest.raises(ValueError, match=rf"'fc' is a Fully Connected layer, not an LSTM; {both}"):
        net.recurrent_layer("fc")
    with pytest.raises(ValueError, match=rf"no layer named 'nope'; {both}"):
        net.trace(x, "nope")
    with pytest.raises(ValueError, match="explain follows one LSTM's equations; layer 'bi' is a"):
        explain_step(net, x, 2, 1)
    assert "second" in explain_step(net, x, 2, 1, layer="second")
    lone = Network([SequenceInput(3), FullyConnected(rng.normal(size=(2, 3)), np.zeros(2))])
    with pytest.raises(ValueError, match="the network has no LSTM layer"):
        lone.recurrent_layer()
