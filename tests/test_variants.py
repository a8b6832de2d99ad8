"""The engine's variants: reverse, bidirectional, stacked, projection — their backward passes
against torch autograd — and the length-aware reversal."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from torch_models import Classifier, distinct_gates, packed

from lstm_ref import (
    LSTM,
    FullyConnected,
    LSTMParams,
    Network,
    Padding,
    SequenceInput,
    Softmax,
    make_batches,
)
from lstm_ref.interop.torch import from_torch
from lstm_ref.lstm import reorder_gates
from lstm_ref.lstm_loop import reverse_in_time
from lstm_ref.train.loss import loss_and_gradients

C, H, K = 4, 5, 3
LENGTHS = [6, 3, 5, 2]


def test_reverse_in_time_keeps_padding_in_place():
    x = np.arange(2 * 5).reshape(2, 5)[..., None]
    y = reverse_in_time(x, np.array([5, 3]))
    assert y[..., 0].tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]
    np.testing.assert_array_equal(reverse_in_time(y, np.array([5, 3])), x)
    assert reverse_in_time(x, None)[..., 0].tolist() == [[4, 3, 2, 1, 0], [9, 8, 7, 6, 5]]


@pytest.mark.parametrize("order", ["".join(p) for p in itertools.permutations("ifgo")])
def test_reorder_gates_inverse_undoes_it(order):
    x = np.arange(4 * 3 * 2).reshape(12, 2)
    np.testing.assert_array_equal(reorder_gates(reorder_gates(x, order), order, inverse=True), x)
    assert (
        reorder_gates(x, order, inverse=True)[:3].tolist()
        == x[3 * "ifgo".index(order[0]) :][:3].tolist()
    )


def torch_gradients(model, seqs, targets):
    model.zero_grad()
    _, (h_n, _) = model.lstm(packed(seqs))
    last = torch.cat(list(h_n[-(2 if model.lstm.bidirectional else 1) :]), dim=1)
    loss = torch.nn.functional.cross_entropy(model.fc(last), torch.from_numpy(targets))
    loss.backward()
    return float(loss.detach()), {k: p.grad.numpy() for k, p in model.named_parameters()}


def as_torch_name(key: str) -> list[str]:
    """lstm_ref's 'lstm.l0/backward/b' -> torch's bias_ih_l0_reverse and bias_hh_l0_reverse."""
    layer, *rest = key.split("/")
    if layer == "fc":
        return [{"weights": "fc.weight", "bias": "fc.bias"}[rest[0]]]
    suffix = "_reverse" if rest[0] == "backward" else ""
    k = layer.split(".l")[1].split("_")[0]
    names = {"W": ["weight_ih"], "R": ["weight_hh"], "b": ["bias_ih", "bias_hh"]}
    names["projection"] = ["weight_hr"]
    return [f"lstm.{n}_l{k}{suffix}" for n in names[rest[-1]]]


@pytest.mark.parametrize(
    "options",
    [{}, {"bidirectional": True}, {"proj_size": 3}, {"num_layers": 2, "bidirectional": True}],
    ids=lambda o: ",".join(o) or "plain",
)
def test_backward_matches_torch_autograd(rng, options):
    model = distinct_gates(Classifier(C, H, K, **options).double(), seed=13)
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    targets = np.array([0, 2, 1, 2])
    net = from_torch(model)
    loss, grads, _ = loss_and_gradients(net, make_batches(seqs, Padding.masked())[0], targets)
    want_loss, want = torch_gradients(model, seqs, targets)
    assert abs(loss - want_loss) < 1e-12
    assert len(grads) == len(want) - sum(".bias_hh" in k for k in want)
    for key, g in grads.items():
        parts = key.split("/")
        if len(parts) == 2 and parts[0] != "fc":  # a one-direction layer: "lstm.l0/W"
            key = f"{parts[0]}/forward/{parts[1]}"
        for name in as_torch_name(key):
            np.testing.assert_allclose(g, want[name], rtol=0, atol=1e-12, err_msg=key)


def test_reverse_direction_backward_matches_torch(rng):
    """A lone reverse LSTM: the reverse half of a bidirectional torch LSTM, through 'last'."""
    module = distinct_gates(torch.nn.LSTM(C, H, bidirectional=True).double(), seed=2)
    rev = dataclasses.replace(from_torch(module).layers[1].bwd, output_mode="last")
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    net = Network([SequenceInput(C), rev])
    batch = make_batches(seqs, Padding.masked())[0]
    y, caches = net.forward(batch)
    dy = rng.normal(size=y.shape)
    dx, grads = rev.backward(dy, caches[1])
    x = [torch.from_numpy(s).requires_grad_() for s in seqs]
    module.zero_grad()
    _, (h_n, _) = module(torch.nn.utils.rnn.pack_sequence(x, enforce_sorted=False))
    (h_n[1] * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(y, h_n[1].detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads["W"], module.weight_ih_l0_reverse.grad, rtol=0, atol=1e-12)
    for b, T in enumerate(LENGTHS):
        np.testing.assert_allclose(dx[b, :T], x[b].grad.numpy(), rtol=0, atol=1e-12)
        assert not dx[b, T:].any()


VARIANT_OPTIONS = {
    "peephole-clip": {"peephole": True, "clip": 0.9},
    "input-forget-peephole": {"peephole": True, "input_forget": True},
    "output-activation": {
        "gate_activation": "HardSigmoid(alpha=0.3, beta=0.45)",
        "state_activation": "Softsign",
        "output_activation": "Elu(alpha=0.7)",
    },
    "projection-reverse": {"projection": True, "direction": "reverse", "peephole": True},
}


@pytest.mark.parametrize("name", list(VARIANT_OPTIONS))
def test_variant_backward_matches_central_differences(rng, name):
    """No framework trains peepholes, clip or a coupled gate: central differences check BPTT."""
    from lstm_ref.train.loss import numerical_gradients

    options = dict(VARIANT_OPTIONS[name])
    P = 2 if options.pop("projection", False) else None
    H_out = P or H
    if options.pop("peephole", False):
        options["peephole"] = rng.normal(size=(3, H)) * 0.5
    p = LSTMParams(
        rng.normal(size=(4 * H, C)) * 0.7,
        rng.normal(size=(4 * H, H_out)) * 0.5,
        rng.normal(size=4 * H) * 0.3,
    )
    lstm = LSTM(
        p,
        output_mode="last",
        projection=None if P is None else rng.normal(size=(P, H)),
        **options,
    )
    net = Network(
        [
            SequenceInput(C),
            lstm,
            FullyConnected(rng.normal(size=(K, H_out)), rng.normal(size=K)),
            Softmax(),
        ]
    )
    batch = make_batches([rng.normal(size=(T, C)) for T in (4, 2, 3)], Padding.masked())[0]
    targets = np.array([0, 2, 1])
    _, grads, _ = loss_and_gradients(net, batch, targets)
    numeric = numerical_gradients(net, batch, targets)
    assert grads.keys() == numeric.keys()
    for key, g in grads.items():
        np.testing.assert_allclose(g, numeric[key], rtol=1e-5, atol=1e-8, err_msg=key)


def test_float32_on_request(rng):
    model = distinct_gates(Classifier(C, H, K, bidirectional=True).double(), seed=4)
    net = from_torch(model, dtype=np.float32)
    assert net.dtype == np.float32
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    with torch.no_grad():
        want = model(packed(seqs)).numpy()
    out = net.predict(seqs)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-6)


def test_native_format_keeps_every_variant(rng, tmp_path):
    from lstm_ref import load_network, save_network
    from lstm_ref.layers import BiLSTM

    model = distinct_gates(Classifier(C, H, K, num_layers=2, bidirectional=True, proj_size=2), 6)
    bi = from_torch(model, class_names=["a", "b", "c"])
    p = LSTMParams(rng.normal(size=(4 * H, C)), rng.normal(size=(4 * H, H)), rng.normal(size=4 * H))
    onnx_like = Network(
        [
            SequenceInput(C),
            LSTM(
                p,
                output_mode="last",
                direction="reverse",
                peephole=rng.normal(size=(3, H)),
                clip=1.5,
                input_forget=True,
                gate_activation="HardSigmoid(alpha=0.3, beta=0.4)",
                output_activation="Softsign",
            ),
        ]
    )
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    for net in (bi, onnx_like):
        save_network(net, tmp_path / "net.npz")
        again = load_network(tmp_path / "net.npz")
        assert [type(x) for x in again.layers] == [type(x) for x in net.layers]
        np.testing.assert_array_equal(np.stack(again.predict(seqs)), np.stack(net.predict(seqs)))
    assert isinstance(again.layers[1], LSTM) and isinstance(bi.layers[1], BiLSTM)


def last_step_bilstm(module):
    """The BiLSTM of a one-layer bidirectional nn.LSTM, reading the output at the last step."""
    from lstm_ref.layers import BiLSTM

    bi = from_torch(module).layers[1]
    fwd, bwd = (dataclasses.replace(d, output_mode="last") for d in (bi.fwd, bi.bwd))
    return BiLSTM(fwd, bwd, name="bilstm", last="step")


def test_bilstm_last_step_matches_torch_output_at_the_last_step(rng):
    """output[:, -1] of a padded, unpacked batch (MATLAB's bilstm 'last' on its padded
    mini-batch), and each packed sequence's output at its own last step (masked)."""
    module = distinct_gates(torch.nn.LSTM(C, H, bidirectional=True, batch_first=True), 21).double()
    net = Network([SequenceInput(C), last_step_bilstm(module)])
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    x = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s) for s in seqs], batch_first=True)
    with torch.no_grad():
        unpacked, _ = module(x)
        out, _ = module(packed(seqs))
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    matlab = Padding.matlab(mini_batch_size=len(seqs))
    np.testing.assert_allclose(net.predict(seqs, padding=matlab), unpacked[:, -1], atol=1e-12)
    own_last = out[np.arange(len(seqs)), np.array(LENGTHS) - 1].numpy()
    np.testing.assert_allclose(net.predict(seqs), own_last, rtol=0, atol=1e-12)


def test_bilstm_last_step_backward_matches_torch(rng):
    module = distinct_gates(torch.nn.LSTM(C, H, bidirectional=True, batch_first=True), 22).double()
    layer = last_step_bilstm(module)
    x = rng.normal(size=(3, 5, C))
    y, cache = layer.forward(x)
    dy = rng.normal(size=y.shape)
    dx, grads = layer.backward(dy, cache)
    tx = torch.from_numpy(x).requires_grad_()
    out, _ = module(tx)
    (out[:, -1] * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(y, out[:, -1].detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=0, atol=1e-12)
    for key, name in (("forward/W", "weight_ih_l0"), ("backward/R", "weight_hh_l0_reverse")):
        np.testing.assert_allclose(grads[key], getattr(module, name).grad, rtol=0, atol=1e-12)


def test_astype_of_a_network_without_class_names():
    net = from_torch(torch.nn.LSTM(C, H, bidirectional=True))
    assert net.class_names == () and net.astype(np.float32).dtype == np.float32
