"""The reference LSTM against PyTorch's nn.LSTM and nn.LSTMCell (the real framework)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from random_nets import random_lstm_params, random_network, random_sequences, random_state

from lstm_ref import GATE_NAMES, LSTMParams, LSTMState, Padding, lstm_forward, lstm_step
from lstm_ref.lstm import LSTMActivations, reorder_gates
from lstm_ref.lstm_loop import lstm_backward

C, H = 5, 7


def torch_lstm(p: LSTMParams, rng: np.random.Generator, dtype=torch.float64) -> torch.nn.LSTM:
    """nn.LSTM holding W, R and our one bias split into two different parts b_ih + b_hh."""
    m = torch.nn.LSTM(C, H, batch_first=True).to(dtype)
    b_hh = rng.normal(size=p.b.shape)
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.tensor(p.W))
        m.weight_hh_l0.copy_(torch.tensor(p.R))
        m.bias_ih_l0.copy_(torch.from_numpy(p.b - b_hh))
        m.bias_hh_l0.copy_(torch.from_numpy(b_hh))
    return m


def as_torch_state(s: LSTMState, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.from_numpy(np.ascontiguousarray(a))[None].to(dtype) for a in s)


def test_full_sequence_matches_nn_lstm(rng):
    p = random_lstm_params(rng, C, H)
    x = rng.normal(size=(4, 6, C))
    s0 = random_state(rng, 4, H)
    Y, final, trace = lstm_forward(p, x, s0)
    with torch.no_grad():
        ty, (th, tc) = torch_lstm(p, rng)(torch.from_numpy(x), as_torch_state(s0))
    np.testing.assert_allclose(Y, ty.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(final.h, th[0].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(final.c, tc[0].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(trace.h, Y)


def test_step_matches_nn_lstmcell_gate_by_gate(rng):
    p = random_lstm_params(rng, C, H)
    x = rng.normal(size=(3, C))
    prev = random_state(rng, 3, H)
    gates = lstm_step(p, x, prev)
    cell = torch.nn.LSTMCell(C, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(p.W))
        cell.weight_hh.copy_(torch.from_numpy(p.R))
        cell.bias_ih.copy_(torch.from_numpy(p.b))
        cell.bias_hh.zero_()
        h, c = cell(torch.from_numpy(x), tuple(torch.from_numpy(a) for a in prev))
        # PyTorch's documented gate equations, blocks i, f, g, o of the pre-activations
        a = torch.from_numpy(x) @ cell.weight_ih.T + torch.from_numpy(prev.h) @ cell.weight_hh.T
        a = a + cell.bias_ih
        ti, tf, tg, to = a.chunk(4, dim=1)
    np.testing.assert_allclose(gates.h, h.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(gates.c, c.numpy(), rtol=0, atol=1e-12)
    for ours, theirs in [
        (gates.i, torch.sigmoid(ti)),
        (gates.f, torch.sigmoid(tf)),
        (gates.g, torch.tanh(tg)),
        (gates.o, torch.sigmoid(to)),
    ]:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-12)


def test_masked_batch_matches_packed_sequence(rng):
    p = random_lstm_params(rng, C, H)
    lengths = np.array([6, 3, 5, 4])
    x = rng.normal(size=(4, 6, C))
    s0 = random_state(rng, 4, H)
    Y, final, _ = lstm_forward(p, x, s0, lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    with torch.no_grad():
        ty, (th, tc) = torch_lstm(p, rng)(packed, as_torch_state(s0))
    ty, _ = torch.nn.utils.rnn.pad_packed_sequence(ty, batch_first=True, total_length=6)
    np.testing.assert_allclose(Y, ty.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(final.h, th[0].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(final.c, tc[0].numpy(), rtol=0, atol=1e-12)


def test_float32_matches_torch_float32(rng):
    p = random_lstm_params(rng, C, H, dtype=np.float32)
    x = rng.normal(size=(2, 5, C)).astype(np.float32)
    s0 = random_state(rng, 2, H, dtype=np.float32)
    Y, final, _ = lstm_forward(p, x, s0)
    assert Y.dtype == np.float32 and final.c.dtype == np.float32
    p64 = LSTMParams(*(w.astype(np.float64) for w in p))
    with torch.no_grad():
        ty, (_, tc) = torch_lstm(p64, rng).float()(
            torch.from_numpy(x), as_torch_state(s0, torch.float32)
        )
    np.testing.assert_allclose(Y, ty.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(final.c, tc[0].numpy(), rtol=0, atol=1e-5)


def test_every_gate_permutation_is_detected(rng):
    """Swapping any gate blocks of W, R, b must break agreement with PyTorch."""
    p = random_lstm_params(rng, C, H)
    x = rng.normal(size=(2, 4, C))
    s0 = random_state(rng, 2, H)
    with torch.no_grad():
        ty, _ = torch_lstm(p, rng)(torch.from_numpy(x), as_torch_state(s0))
    for perm in itertools.permutations(range(4)):
        if perm == (0, 1, 2, 3):
            continue
        rows = np.concatenate([np.arange(k * H, (k + 1) * H) for k in perm])
        Y, _, _ = lstm_forward(LSTMParams(p.W[rows], p.R[rows], p.b[rows]), x, s0)
        assert np.abs(Y - ty.numpy()).max() > 1e-3, f"blind to gate permutation {perm}"


def test_reorder_gates_brings_any_block_order_to_ifgo(rng):
    """torch's blocks written in each of the 24 orders (ONNX's i, o, f, c among them) and
    reordered back give torch's outputs; the wrong order does not."""
    p = random_lstm_params(rng, C, H)
    x = rng.normal(size=(2, 5, C))
    s0 = random_state(rng, 2, H)
    with torch.no_grad():
        ty, _ = torch_lstm(p, rng)(torch.from_numpy(x), as_torch_state(s0))
    blocks = {name: k for k, name in enumerate(GATE_NAMES)}
    for order in itertools.permutations(GATE_NAMES):
        rows = np.concatenate([np.arange(blocks[g] * H, (blocks[g] + 1) * H) for g in order])
        W, R, b = p.W[rows], p.R[rows], p.b[rows]  # as a framework with this order stores them
        fixed = LSTMParams(*(reorder_gates(a, order) for a in (W, R, b)))
        Y, _, _ = lstm_forward(fixed, x, s0)
        np.testing.assert_allclose(Y, ty.numpy(), rtol=0, atol=1e-12, err_msg=str(order))
        if order != GATE_NAMES:
            assert np.abs(lstm_forward(LSTMParams(W, R, b), x, s0)[0] - ty.numpy()).max() > 1e-3
    np.testing.assert_array_equal(
        reorder_gates(p.W.T, "iofg", axis=1), reorder_gates(p.W, "iofg").T
    )
    with pytest.raises(ValueError, match="order must name each gate"):
        reorder_gates(p.W, "iffo")
    with pytest.raises(ValueError, match="four gate blocks"):
        reorder_gates(p.W[:-1], "ifgo")


def test_bptt_keeps_every_steps_gradients(rng):
    """The per-step record of lstm_backward adds up to its totals and chains step to step."""
    p = random_lstm_params(rng, C, H)
    x = rng.normal(size=(3, 6, C))
    s0 = random_state(rng, 3, H)
    Y, _, trace = lstm_forward(p, x, s0)
    dY, d_final = rng.normal(size=Y.shape), LSTMState(*(rng.normal(size=(3, H)) for _ in "hc"))
    dx, grads, d0, steps = lstm_backward(p, x, s0, trace, dY, d_final, keep_steps=True)
    assert lstm_backward(p, x, s0, trace, dY, d_final)[3] is None
    np.testing.assert_allclose(steps.da.sum(axis=(0, 1)), grads.b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(steps.dh[:, :-1], steps.dh_prev[:, 1:] + dY[:, :-1], atol=1e-12)
    np.testing.assert_allclose(steps.dc[:, :-1], steps.dc_prev[:, 1:], atol=1e-12)
    np.testing.assert_array_equal(steps.dh[:, -1], d_final.h + dY[:, -1])
    np.testing.assert_array_equal(d0.h, steps.dh_prev[:, 0])
    np.testing.assert_allclose(dx, np.einsum("btr,rc->btc", steps.da, p.W), atol=1e-12)


def test_network_masked_predict_matches_torch_model(rng):
    """Sequence input → LSTM (last) → FC → softmax over mixed lengths, against torch."""
    net = random_network(rng, C=C, H=H, K=4, normalization="zscore")
    seqs = random_sequences(rng, [5, 3, 8, 4], C)
    probs = net.predict(seqs, padding=Padding.masked(mini_batch_size=3))
    lstm = net.layer("lstm")
    fc = net.layer("fc")
    m = torch_lstm(lstm.params, rng)
    norm = net.layers[0]
    with torch.no_grad():
        for seq, row in zip(seqs, probs, strict=True):
            xt = torch.from_numpy((seq - norm.mean) / norm.std)[None]
            s0 = as_torch_state(LSTMState(*(a[None] for a in lstm.initial_state)))
            _, (h, _) = m(xt, s0)
            logits = h[0] @ torch.from_numpy(fc.weights).T + torch.from_numpy(fc.bias)
            np.testing.assert_allclose(
                row, torch.softmax(logits[0], -1).numpy(), rtol=0, atol=1e-12
            )


@pytest.mark.parametrize(
    ("gate", "state", "torch_gate", "torch_state"),
    [
        ("hard-sigmoid", "tanh", lambda a: torch.clamp(0.2 * a + 0.5, 0, 1), torch.tanh),
        ("hard-sigmoid-keras3", "tanh", torch.nn.functional.hardsigmoid, torch.tanh),
        ("sigmoid", "softsign", torch.sigmoid, torch.nn.functional.softsign),
    ],
)
def test_other_activations_match_torch_ops(rng, gate, state, torch_gate, torch_state):
    p = random_lstm_params(rng, C, H)
    x = rng.normal(size=(2, 4, C)) * 2
    s0 = random_state(rng, 2, H)
    Y, _, _ = lstm_forward(p, x, s0, act=LSTMActivations.from_names(gate, state))
    W, R, b = (torch.from_numpy(a) for a in p)
    h, c = (torch.from_numpy(a) for a in s0)
    for t in range(x.shape[1]):
        ti, tf, tg, to = (torch.from_numpy(x[:, t]) @ W.T + h @ R.T + b).chunk(4, dim=1)
        c = torch_gate(tf) * c + torch_gate(ti) * torch_state(tg)
        h = torch_gate(to) * torch_state(c)
        np.testing.assert_allclose(Y[:, t], h.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("gate", ["sigmoid", "hard-sigmoid", "hard-sigmoid-keras3"])
@pytest.mark.parametrize("state", ["tanh", "softsign"])
def test_huge_inputs_stay_finite_without_warnings(rng, gate, state):
    """Magnitude 1e4 must neither overflow nor warn (warnings are errors in this suite)."""
    p = random_lstm_params(rng, C, H)
    x = rng.choice([-1e4, 1e4], size=(2, 5, C))
    Y, final, _ = lstm_forward(
        p, x, random_state(rng, 2, H), act=LSTMActivations.from_names(gate, state)
    )
    assert np.isfinite(Y).all() and np.isfinite(final.c).all()
    assert np.abs(Y).max() <= 1
