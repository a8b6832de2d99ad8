"""Each framework's padding as a Padding value: ``Padding.pytorch()``, ``.onnx()`` and
``.keras()`` return per-step outputs of a padded batch exactly as that framework does —
checked against torch (packed, then padded back, then Linear), onnxruntime (``sequence_lens``,
then MatMul + Add + Softmax) and Keras 3 (Masking, then Dense), run on the same weights."""

from __future__ import annotations

import os

import numpy as np
import pytest
from random_nets import random_lstm_params, random_sequences

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
from lstm_ref.layers import BiLSTM

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

C, H, K = 5, 6, 4
LENGTHS = [7, 3, 9, 5]  # mixed; the batch is padded to T = 10, past the longest


def sequence_network(rng, *, bidirectional=False, initial_state=True, normalization=True):
    """Sequence input → LSTM (or BiLSTM) with per-step output → FC → softmax."""

    def lstm(direction="forward", name="lstm"):
        start = LSTMState(rng.uniform(-0.5, 0.5, H), rng.normal(size=H)) if initial_state else None
        params = random_lstm_params(rng, C, H)
        return LSTM(
            params, output_mode="sequence", initial_state=start, direction=direction, name=name
        )

    layer = lstm()
    if bidirectional:
        layer = BiLSTM(lstm(name="fwd"), lstm("reverse", "bwd"), name="bilstm")
    norm = {"mean": rng.normal(size=C), "std": rng.uniform(0.5, 2.0, C)} if normalization else {}
    width = 2 * H if bidirectional else H
    return Network(
        [
            SequenceInput(C, normalization="zscore" if normalization else "none", **norm),
            layer,
            FullyConnected(rng.normal(size=(K, width)), rng.normal(size=K)),
            Softmax(),
        ]
    )


@pytest.fixture
def batch(rng):
    """A padded batch (N, T, C), zero past each length (Keras's Masking reads the zeros)."""
    seqs = random_sequences(rng, LENGTHS, C)
    x = np.zeros((len(seqs), max(LENGTHS) + 1, C))
    for n, s in enumerate(seqs):
        x[n, : len(s)] = s
    return x, np.array(LENGTHS)


def test_pytorch_packed_then_padded_then_linear(rng, batch):
    import torch

    net = sequence_network(rng, bidirectional=True)
    x, lengths = batch
    norm, bilstm, fc = net.layers[:3]
    module = torch.nn.LSTM(C, H, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for one, suffix in ((bilstm.fwd, ""), (bilstm.bwd, "_reverse")):
            W, R, b = (torch.from_numpy(a) for a in one.params)
            getattr(module, f"weight_ih_l0{suffix}").copy_(W)
            getattr(module, f"weight_hh_l0{suffix}").copy_(R)
            getattr(module, f"bias_ih_l0{suffix}").copy_(b)
            getattr(module, f"bias_hh_l0{suffix}").zero_()
        start = [
            torch.from_numpy(
                np.stack([getattr(d.initial_state, k) for d in (bilstm.fwd, bilstm.bwd)])
            )
            .unsqueeze(1)
            .repeat(1, len(x), 1)
            for k in ("h", "c")
        ]  # (2, N, H) each
        z = torch.from_numpy((x - norm.mean) / norm.std)
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            z, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
        )
        out, _ = module(packed, tuple(start))
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=x.shape[1]
        )
        want = y.numpy() @ fc.weights.T + fc.bias
    want = np.exp(want - want.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)  # softmax of Linear(0) = of the bias past each length
    got = net.predict(x, lengths=lengths, padding=Padding.pytorch())
    assert got.shape == (len(x), x.shape[1], K)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    lstm_out = net.predict(x, "bilstm", lengths=lengths, padding=Padding.pytorch())
    np.testing.assert_allclose(lstm_out, y.numpy(), rtol=0, atol=1e-12)
    assert not lstm_out[0, LENGTHS[0] :].any()  # zero past the length, as pad_packed_sequence


def test_onnx_sequence_lens_through_the_exported_head(rng, batch):
    import onnxruntime as ort

    from lstm_ref.interop.onnx_export import to_onnx

    net = sequence_network(rng).astype(np.float32)
    x, lengths = batch
    session = ort.InferenceSession(to_onnx(net).SerializeToString())
    feeds = {
        "X": x.transpose(1, 0, 2).astype(np.float32),
        "sequence_lens": lengths.astype(np.int32),
    }
    (want,) = session.run(None, feeds)  # (T, N, K): softmax(Y W + b), Y 0 past each length
    got = net.predict(x, lengths=lengths, padding=Padding.onnx())
    np.testing.assert_allclose(got, want.transpose(1, 0, 2), rtol=0, atol=1e-6)
    # past a length the head sees 0: the softmax of the bias, as onnxruntime computes it
    np.testing.assert_allclose(got[1, LENGTHS[1] :], np.broadcast_to(got[1, -1], (7, K)))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("bidirectional", [False, True])
def test_keras_masking_repeats_the_last_output(rng, batch, bidirectional):
    """Keras's Masking: an LSTM repeats its previous output at masked steps (the Dense after
    it computes on the repeat); a Bidirectional with return_sequences writes 0 there."""
    from lstm_ref.interop.keras_export import to_keras

    net = sequence_network(rng, bidirectional=bidirectional, initial_state=False).astype(np.float32)
    x, lengths = batch
    want = to_keras(net).predict(x.astype(np.float32), verbose=0)
    got = net.predict(x, lengths=lengths, padding=Padding.keras())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    past = got[1, LENGTHS[1] :]
    if bidirectional:  # Dense(0): the softmax of the bias
        bias = np.exp(net.layers[2].bias - net.layers[2].bias.max())
        np.testing.assert_allclose(past, np.broadcast_to(bias / bias.sum(), past.shape), atol=1e-6)
    else:  # the last valid step's output, repeated
        np.testing.assert_array_equal(past, np.broadcast_to(got[1, LENGTHS[1] - 1], past.shape))


def test_masked_kinds_compute_alike_and_differ_only_past_the_lengths(rng, batch):
    net = sequence_network(rng)
    x, lengths = batch
    # Padding.masked(): each sequence's own steps
    trimmed, want_state = net.predict(x, lengths=lengths, return_state=True)
    for padding in (Padding.pytorch(2), Padding.onnx(), Padding.keras(3)):
        assert padding.is_masked
        padded, state = net.predict(x, lengths=lengths, padding=padding, return_state=True)
        for n, y in enumerate(trimmed):
            np.testing.assert_allclose(padded[n, : LENGTHS[n]], y, rtol=0, atol=1e-14)
        np.testing.assert_allclose(state["lstm"].h, want_state["lstm"].h, rtol=0, atol=1e-14)
    last = net.predict(x[:1, :4], padding=Padding.keras())  # one padded row of 4 steps
    assert last.shape == (1, 4, K)
    one = net.predict(x[0, :4], padding=Padding.keras())  # one sequence: its own steps
    np.testing.assert_array_equal(one, last[0])


def test_a_last_output_is_the_same_under_every_masked_kind(rng, batch):
    net = sequence_network(rng)
    net.layers[1].output_mode = "last"
    x, lengths = batch
    want = net.predict(x, lengths=lengths)
    for padding in (Padding.pytorch(), Padding.onnx(), Padding.keras()):
        np.testing.assert_array_equal(net.predict(x, lengths=lengths, padding=padding), want)


def test_framework_kinds_take_no_matlab_options():
    with pytest.raises(InputError, match="apply to MATLAB's padding only"):
        Padding("keras", 4, "shortest")
    with pytest.raises(InputError, match="padding kind must be one of"):
        Padding("tensorflow")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="returns no padded batch"):
        Padding.masked().pad_outputs([np.zeros((2, 3))], 3, None)
