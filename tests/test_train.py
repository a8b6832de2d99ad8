"""Training: gradient checks (central differences and torch autograd), clipping, Adam, and a
full optimiser step against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from random_nets import random_network, random_sequences

from lstm_ref import Network, Padding
from lstm_ref.errors import InputError
from lstm_ref.padding import make_batches
from lstm_ref.train import (
    Adam,
    TrainingOptions,
    add_l2,
    clip_gradients,
    cross_entropy,
    glorot,
    learnables,
    loss_and_gradients,
    lstm_classifier,
    numerical_gradients,
    orthogonal,
    sort_by_length,
    train,
    unit_forget_gate,
)

C, H, K = 3, 4, 3
MATLAB = Padding.matlab()
LENGTHS = [5, 3, 4, 6]


def small_batch(rng, padding=MATLAB):
    seqs = random_sequences(rng, LENGTHS, C)
    return make_batches(seqs, padding)[0], rng.integers(0, K, size=len(LENGTHS))


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max()))


@pytest.mark.parametrize(
    ("padding", "activations"),
    [
        (MATLAB, {}),
        (Padding.matlab(direction="left", value=0.3), {}),
        (Padding.masked(), {}),
        (MATLAB, {"gate_activation": "hard-sigmoid", "state_activation": "softsign"}),
        (Padding.masked(), {"gate_activation": "hard-sigmoid-keras3"}),
    ],
)
def test_gradients_match_central_differences(rng, padding, activations):
    net = random_network(rng, C=C, H=H, K=K, normalization="zscore", **activations)
    batch, targets = small_batch(rng, padding)
    _, analytic, _ = loss_and_gradients(net, batch, targets)
    numeric = numerical_gradients(net, batch, targets)
    assert set(analytic) == set(numeric) == {"lstm/W", "lstm/R", "lstm/b", "fc/weights", "fc/bias"}
    for name in analytic:
        assert relative_error(analytic[name], numeric[name]) <= 1e-6, name


def torch_model(net: Network):
    """The same network in torch (float64), bias split unevenly over b_ih and b_hh."""
    lstm, fc = net.layer("lstm"), net.layer("fc")
    m = torch.nn.LSTM(C, H, batch_first=True).double()
    f = torch.nn.Linear(H, K).double()
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.from_numpy(lstm.params.W))
        m.weight_hh_l0.copy_(torch.from_numpy(lstm.params.R))
        m.bias_ih_l0.copy_(torch.from_numpy(lstm.params.b * 0.3))
        m.bias_hh_l0.copy_(torch.from_numpy(lstm.params.b * 0.7))
        f.weight.copy_(torch.from_numpy(fc.weights))
        f.bias.copy_(torch.from_numpy(fc.bias))
    return m, f


def torch_loss(net: Network, m, f, batch, targets, masked: bool):
    h0, c0 = (
        torch.from_numpy(a).expand(len(targets), H)[None].contiguous()
        for a in net.layer("lstm").initial_state
    )
    x = torch.from_numpy(batch.x)
    if masked:
        x = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.from_numpy(batch.lengths), batch_first=True, enforce_sorted=False
        )
    _, (h, _) = m(x, (h0, c0))
    return torch.nn.functional.cross_entropy(f(h[0]), torch.from_numpy(targets))


@pytest.mark.parametrize("padding", [MATLAB, Padding.masked()])
def test_gradients_match_torch_autograd(rng, padding):
    net = random_network(rng, C=C, H=H, K=K)
    batch, targets = small_batch(rng, padding)
    loss, grads, _ = loss_and_gradients(net, batch, targets)
    m, f = torch_model(net)
    tloss = torch_loss(net, m, f, batch, targets, padding.is_masked)
    tloss.backward()
    assert abs(loss - tloss.item()) <= 1e-12
    expected = {
        "lstm/W": m.weight_ih_l0.grad,
        "lstm/R": m.weight_hh_l0.grad,
        "lstm/b": m.bias_ih_l0.grad,
        "fc/weights": f.weight.grad,
        "fc/bias": f.bias.grad,
    }
    np.testing.assert_allclose(m.bias_hh_l0.grad.numpy(), expected["lstm/b"].numpy(), atol=1e-15)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g.numpy(), rtol=0, atol=1e-10, err_msg=name)


def test_cross_entropy_keeps_digits_of_a_tiny_loss():
    z = np.array([[30.0, 0.0, -2.0]] * 3)
    losses = cross_entropy(z, np.array([0, 1, 2]))
    assert losses[0] == pytest.approx(np.log1p(np.exp(-30.0) + np.exp(-32.0)), rel=1e-15)
    assert losses[0] > 0  # −log(p) computed from p would round to 0 here
    expected = torch.nn.functional.cross_entropy(
        torch.from_numpy(z), torch.tensor([0, 1, 2]), reduction="none"
    )
    np.testing.assert_allclose(losses[1:], expected.numpy()[1:], rtol=1e-14)


def test_softmax_backward_matches_torch(rng):
    net = random_network(rng)
    softmax = net.layer("softmax")
    x = torch.from_numpy(rng.normal(size=(3, 4))).requires_grad_()
    dy = rng.normal(size=(3, 4))
    (torch.softmax(x, -1) * torch.from_numpy(dy)).sum().backward()
    _, cache = softmax.forward(x.detach().numpy())
    dx, _ = softmax.backward(dy, cache)
    np.testing.assert_allclose(dx, x.grad.numpy(), atol=1e-14)


def test_clipping_methods_match_torch(rng):
    grads = {"a": rng.normal(size=(4, 3)) * 3, "b": rng.normal(size=5) * 0.1}
    tensors = {
        k: torch.nn.Parameter(torch.zeros(v.shape, dtype=torch.float64)) for k, v in grads.items()
    }

    def torch_clip(clip):
        for k, p in tensors.items():
            p.grad = torch.from_numpy(grads[k].copy())
        clip()
        return {k: p.grad.numpy() for k, p in tensors.items()}

    per_param = torch_clip(
        lambda: [torch.nn.utils.clip_grad_norm_(p, 1.0) for p in tensors.values()]
    )
    joint = torch_clip(lambda: torch.nn.utils.clip_grad_norm_(list(tensors.values()), 1.0))
    value = torch_clip(lambda: torch.nn.utils.clip_grad_value_(list(tensors.values()), 0.5))
    for method, threshold, expected in [
        ("l2norm", 1.0, per_param),
        ("global-l2norm", 1.0, joint),
        ("absolute-value", 0.5, value),
    ]:
        clipped = clip_gradients(grads, threshold, method)
        for k in grads:
            # torch divides by norm + 1e-6; MATLAB (and lstm_ref) scale to the threshold exactly
            np.testing.assert_allclose(clipped[k], expected[k], rtol=2e-6, err_msg=method)
    np.testing.assert_array_equal(clip_gradients(grads, 1.0)["b"], grads["b"])  # under threshold
    with pytest.raises(ValueError, match=r"\['l2norm', 'global-l2norm', 'absolute-value'\]"):
        clip_gradients(grads, 1.0, "norm")


def test_training_steps_match_torch_adam_with_l2_and_clipping(rng):
    """Three full steps — L2 on weights only, element-wise clipping, Adam — against torch."""
    net = random_network(rng, C=C, H=H, K=K)
    batch, targets = small_batch(rng)
    m, f = torch_model(net)
    tparams = {
        "lstm/W": m.weight_ih_l0,
        "lstm/R": m.weight_hh_l0,
        "fc/weights": f.weight,
        "fc/bias": f.bias,
    }
    with torch.no_grad():  # one bias, as in MATLAB: all of it in b_ih, b_hh frozen at 0
        m.bias_ih_l0.copy_(torch.from_numpy(net.layer("lstm").params.b))
        m.bias_hh_l0.zero_()
    m.bias_hh_l0.requires_grad_(False)
    tparams["lstm/b"] = m.bias_ih_l0
    opt = torch.optim.Adam(tparams.values(), lr=0.01)
    adam = Adam(learning_rate=0.01)
    params = learnables(net)
    for _ in range(3):
        _, grads, _ = loss_and_gradients(net, batch, targets)
        add_l2(net, grads, 1e-2)
        grads = clip_gradients(grads, 0.05, "absolute-value")
        adam.step(params, grads)

        opt.zero_grad()
        torch_loss(net, m, f, batch, targets, masked=False).backward()
        with torch.no_grad():
            for name in ("lstm/W", "lstm/R", "fc/weights"):
                tparams[name].grad += 1e-2 * tparams[name]
            torch.nn.utils.clip_grad_value_(tparams.values(), 0.05)
        opt.step()
    for name, p in tparams.items():
        np.testing.assert_allclose(
            params[name], p.detach().numpy(), rtol=0, atol=1e-10, err_msg=name
        )


def adam_with_temporaries(state: dict, params: dict, grads: dict, lr: float) -> None:
    """Adam as its equations read, one temporary per operation (lstm_ref's Adam before it
    updated in place, MATLAB's defaults): the oracle the in-place update equals bit for bit."""
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    state["t"] += 1
    for k, p in params.items():
        g = grads[k]
        m = state["m"][k] = beta1 * state["m"].get(k, 0) + (1 - beta1) * g
        v = state["v"][k] = beta2 * state["v"].get(k, 0) + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** state["t"])
        v_hat = v / (1 - beta2 ** state["t"])
        p -= lr * m_hat / (np.sqrt(v_hat) + eps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_in_place_equals_the_equations_with_temporaries_bit_for_bit(rng, dtype):
    """Several steps, new gradients each (magnitudes 1e-8 … 1e2, exact ±0), arrays of
    several shapes — two of one shape, which share Adam's scratch — and one parameter
    replaced by a copy between steps (its moments follow its name)."""
    shapes = {"W": (40, 12), "R": (40, 10), "b": (40,), "fc": (9, 10), "R2": (40, 10)}
    params = {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}
    expected = {k: p.copy() for k, p in params.items()}
    adam, state = Adam(learning_rate=0.01), {"m": {}, "v": {}, "t": 0}
    for step in range(6):
        grads = {
            k: (rng.normal(size=s) * 10.0 ** rng.integers(-8, 3, size=s)).astype(dtype)
            for k, s in shapes.items()
        }
        grads["b"][:5], grads["b"][5:10] = 0.0, -0.0
        if step == 3:
            params["W"] = params["W"].copy()
        adam.step(params, grads)
        adam_with_temporaries(state, expected, grads, lr=0.01)
        for k in shapes:
            for ours, theirs in ((params, expected), (adam.m, state["m"]), (adam.v, state["v"])):
                assert ours[k].dtype == dtype
                assert ours[k].tobytes() == theirs[k].tobytes(), (k, step)


def test_adam_refuses_gradients_and_parameters_that_do_not_fit(rng):
    params = {"W": rng.normal(size=(4, 3)), "b": np.zeros(4)}
    adam = Adam()
    grads = {k: np.ones_like(p) for k, p in params.items()}
    before = params["W"].copy()
    with pytest.raises(
        InputError, match=r"gradient of 'b' is \(3,\) float64; the parameter is \(4,\)"
    ):
        adam.step(params, {**grads, "b": np.ones(3)})
    with pytest.raises(InputError, match=r"gradient of 'W' is \(4, 3\) float32"):
        adam.step(params, {**grads, "W": grads["W"].astype(np.float32)})
    assert adam.t == 0  # nothing updated: every array is checked before any changes
    np.testing.assert_array_equal(params["W"], before)
    adam.step(params, grads)
    params["W"] = np.zeros((5, 3))  # the network changed shape: its moments no longer fit
    with pytest.raises(
        InputError,
        match=r"moments of 'W' are \(4, 3\) float64, but the parameter is now \(5, 3\).*new Adam",
    ):
        adam.step(params, {**grads, "W": np.ones((5, 3))})
    params["W"] = np.zeros((4, 3), np.float32)
    with pytest.raises(InputError, match=r"now \(4, 3\) float32"):
        adam.step(params, {**grads, "W": np.ones((4, 3), np.float32)})


def test_initializers_follow_matlab(rng):
    W = glorot(rng, (400, 12))
    assert np.abs(W).max() <= np.sqrt(6 / 412) and np.abs(W).max() > 0.9 * np.sqrt(6 / 412)
    R = orthogonal(rng, (400, 100))
    np.testing.assert_allclose(R.T @ R, np.eye(100), atol=1e-12)
    np.testing.assert_array_equal(unit_forget_gate(3), [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])


def learnable_task(rng, n):
    """Sequences whose class is the sign pattern of their feature means: learnable."""
    seqs, labels = [], []
    for _ in range(n):
        k = int(rng.integers(0, 3))
        T = int(rng.integers(3, 9))
        seqs.append(rng.normal(size=(T, C)) * 0.5 + np.eye(C)[k])
        labels.append(str(k))
    return seqs, labels


def test_training_learns_and_is_deterministic(rng):
    seqs, labels = sort_by_length(*learnable_task(rng, 60))
    options = TrainingOptions(max_epochs=15, padding=Padding.matlab(12), learning_rate=0.02)
    logs: list[str] = []
    nets = [lstm_classifier(np.random.default_rng(7), C, 8, ["0", "1", "2"]) for _ in range(2)]
    history = train(nets[0], seqs, labels, options, validation=(seqs, labels), log=logs.append)
    train(nets[1], seqs, labels, options, log=None)
    assert history[-1].loss < 0.5 * history[0].loss
    assert history[-1].validation_accuracy >= 0.9
    assert len(logs) == 1 + 3  # header, epochs 1, 10 and 15
    for a, b in zip(learnables(nets[0]).values(), learnables(nets[1]).values(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("learning_rate", "patience", "ended"),
    [
        (0.02, 50, "stopped at the epoch limit (6)"),
        (0.3, 1, "early stop after epoch 4: no lower validation loss for 1 epoch"),
        (0.2, 2, "early stop after epoch 4: no lower validation loss for 2 epochs"),
    ],
)
def test_the_log_says_why_training_ended_and_which_weights_it_kept(
    rng, learning_rate, patience, ended
):
    seqs, labels = sort_by_length(*learnable_task(rng, 30))
    validation = learnable_task(rng, 12)
    options = TrainingOptions(
        max_epochs=6, padding=Padding.matlab(12), learning_rate=learning_rate, patience=patience
    )
    net = lstm_classifier(np.random.default_rng(7), C, 4, ["0", "1", "2"])
    logs: list[str] = []
    history = train(net, seqs, labels, options, validation=validation, log=logs.append)
    losses = [r.validation_loss for r in history]
    best = int(np.argmin(losses))
    assert logs[-1] == (
        f"{ended}; kept the weights of epoch {best + 1}, whose validation loss "
        f"({losses[best]:.4f}) was the lowest"
    )


def test_training_rejects_bad_data_and_options(rng):
    net = lstm_classifier(rng, C, 4, ["a", "b"])
    x = [np.zeros((3, C)), np.ones((4, C))]
    with pytest.raises(ValueError, match=r"labels \['c'\] are not among the class names"):
        train(net, x, ["a", "c"], log=None)
    with pytest.raises(ValueError, match="one label per sequence: 2 sequences, 3 labels"):
        train(net, x, ["a", "b", "a"], log=None)
    with pytest.raises(ValueError, match=r"sequence 2: expected shape \(T, 3\); got \(4, 4\)"):
        train(net, [x[0], np.ones((4, 4))], ["a", "b"], log=None)
    with pytest.raises(ValueError, match="sequence 1: non-finite value NaN"):
        train(net, [np.full((3, C), np.nan), x[1]], ["a", "b"], log=None)
    for bad, match in [
        ({"max_epochs": 0}, "max_epochs must be an integer >= 1; got 0"),
        ({"max_epochs": True}, "max_epochs must be an integer >= 1; got True"),
        ({"learning_rate": -1.0}, "learning_rate must be positive"),
        ({"learning_rate": np.inf}, "learning_rate must be a finite number; got inf"),
        ({"padding": "matlab"}, "padding must be a lstm_ref.Padding"),
        (
            {"padding": Padding.matlab(sequence_length=5)},
            "training supports sequence_length 'longest' or 'shortest'",
        ),
        (
            {"gradient_threshold_method": "l1"},
            r"\['l2norm', 'global-l2norm', 'absolute-value'\]; got 'l1'",
        ),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainingOptions(**bad)
