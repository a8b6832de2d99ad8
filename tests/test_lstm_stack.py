"""LSTMStack: a head on every layer's final state of a multi-layer nn.LSTM.

minGPT's import test: a real torch model — nn.LSTM(num_layers=L) and an nn.Linear on
h_n.permute(1, 0, 2).reshape(B, -1) — with random weights different per gate, non-zero
biases, non-zero (h_0, c_0), mixed lengths (packed sequences); the same weights in both,
equal outputs, equal gradients."""

from __future__ import annotations

import dataclasses
import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import numpy as np
import pytest
import torch
from test_fast import reference
from torch_models import EveryLayerHead, distinct_gates, packed, torch_states

from lstm_ref import InputError, InputTypeError, LSTMParams, LSTMState, Network
from lstm_ref.formats import load_network, save_network
from lstm_ref.interop import save_model
from lstm_ref.interop.torch import from_torch, to_state_dict
from lstm_ref.layers import (
    LSTM,
    BiLSTM,
    FullyConnected,
    LSTMStack,
    SequenceInput,
    Softmax,
    layer_from_arrays,
)
from lstm_ref.padding import Padding, make_batches
from lstm_ref.train import TrainingOptions, train
from lstm_ref.train.loss import central_difference, loss_and_gradients, numerical_gradients

C, H, K = 3, 4, 3
LENGTHS = [5, 3, 6, 1]
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


CASES = {
    "2-layer-last-two": {"num_layers": 2, "read": "last-two"},
    "3-layer-time-major": {"num_layers": 3, "batch_first": False},
    "2-layer-bidirectional": {"num_layers": 2, "bidirectional": True, "read": "cat-list"},
    "2-layer-bidirectional-projection": {
        "num_layers": 2,
        "bidirectional": True,
        "proj_size": 2,
        "batch_first": False,
    },
}


def model(case: str, dtype=torch.float64, seed: int = 5) -> EveryLayerHead:
    return distinct_gates(EveryLayerHead(C, H, K, **CASES[case]).to(dtype), seed=seed).eval()


def torch_run(module, seqs, dtype, state):
    """The module on ``seqs`` packed as its batch_first reads a padded batch."""
    x = packed(seqs, dtype)
    if not module.lstm.batch_first:  # the same PackedSequence, packed from (T, B, C)
        padded = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s).to(dtype) for s in seqs])
        lengths = torch.tensor([len(s) for s in seqs])
        x = torch.nn.utils.rnn.pack_padded_sequence(padded, lengths, enforce_sorted=False)
    return module(x, state)


def joint(per_layer: list[LSTMState]) -> LSTMState:
    """Each layer's (B, ·) state rows concatenated in layer order: the stack's state."""
    return LSTMState(*(np.concatenate(each, axis=1) for each in zip(*per_layer, strict=True)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", CASES)
def test_head_on_every_layer_h_n_imports_and_matches(rng, case, dtype):
    module = model(case, dtype)
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    (h0, c0), per_layer = torch_states(rng, module.lstm, len(seqs), dtype)
    with torch.no_grad():
        want = torch_run(module, seqs, dtype, (h0, c0)).numpy()
        _, (h_n, c_n) = module.lstm(packed(seqs, dtype), (h0, c0))
    net = from_torch(module, softmax=False)
    assert [type(x) for x in net.layers] == [SequenceInput, LSTMStack, FullyConnected]
    stack = net.layers[1]
    names = [f"lstm.l{k}" for k in range(module.lstm.num_layers)]
    assert stack.name == "lstm" and [x.name for x in stack.layers] == names
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    assert net.dtype == np_dtype and net.fast_engine() is not None
    # torch's (L·D, B, H) → lstm_ref's rows (B, L·D·H), layer by layer, forward first
    start = LSTMState(*(a.permute(1, 0, 2).reshape(len(seqs), -1).numpy() for a in (h0, c0)))
    np.testing.assert_array_equal(start.h, joint(per_layer).h.astype(start.h.dtype))
    net.state = {"lstm": start}
    xs = [s.astype(np_dtype) for s in seqs]
    got, final = net.predict(xs, return_state=True)
    tol = TOL[dtype]
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    for mine, theirs in zip(final["lstm"], (h_n, c_n), strict=True):
        theirs = theirs.permute(1, 0, 2).reshape(len(seqs), -1).numpy()
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=tol)
    slow, slow_final = reference(net, xs, return_state=True)  # the fast path switched off
    np.testing.assert_allclose(slow, got, rtol=0, atol=tol)
    np.testing.assert_allclose(slow_final["lstm"].c, final["lstm"].c, rtol=0, atol=tol)


def test_a_head_on_the_top_layer_keeps_its_meaning():
    """D·H_out inputs: the top layer's h_n (the documented classifier), no stack."""
    module = torch.nn.LSTM(C, H, num_layers=2, bidirectional=True)
    state = {f"lstm.{k}": v for k, v in module.state_dict().items()}
    state |= {"fc.weight": torch.ones(K, 2 * H), "fc.bias": torch.zeros(K)}
    assert [x.TYPE for x in from_torch(state).layers[1:3]] == ["BiLSTM", "BiLSTM"]
    state["fc.weight"] = torch.ones(K, 3 * H)  # neither the top's nor every layer's
    with pytest.raises(InputError, match="expects 12 inputs but the layer before it gives 8"):
        from_torch(state)
    state["fc.weight"] = torch.ones(K, 4 * H)
    with pytest.raises(InputError, match="reads every layer's h_n"):
        from_torch(state, last="step")


def test_gradients_equal_torch_autograd(rng):
    """dL/d(every tensor) and dL/dx of sum(G ⊙ head(stack)) from non-zero states, mixed
    lengths, a bidirectional projection stack, against torch's autograd."""
    module = model("2-layer-bidirectional-projection")
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    (h0, c0), per_layer = torch_states(rng, module.lstm, len(seqs))
    xs = torch.nn.utils.rnn.pad_sequence(
        [torch.from_numpy(s) for s in seqs], batch_first=True
    ).requires_grad_()
    lengths = torch.tensor(LENGTHS)
    x = torch.nn.utils.rnn.pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)
    out = module(x, (h0, c0))
    G = rng.normal(size=out.shape)
    (out * torch.from_numpy(G)).sum().backward()

    net = from_torch(module, softmax=False)
    stack, fc = net.layers[1], net.layers[2]
    y, cache = stack.forward(xs.detach().numpy(), np.array(LENGTHS), joint(per_layer))
    z, fc_cache = fc.forward(y)
    np.testing.assert_allclose(z, out.detach().numpy(), rtol=0, atol=1e-12)
    d, fc_grads = fc.backward(G, fc_cache)
    dx, grads = stack.backward(d, cache)
    np.testing.assert_allclose(dx, xs.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fc_grads["weights"], module.fc.weight.grad, rtol=0, atol=1e-12)
    tensors = dict(module.lstm.named_parameters())
    assert len(grads) == 4 * 4  # W, R, b, projection of 2 layers × 2 directions
    for key, g in grads.items():
        layer, direction, what = key.split("/")
        suffix = layer.removeprefix("lstm.l") + ("_reverse" if direction == "backward" else "")
        name = {"W": "weight_ih", "R": "weight_hh", "b": "bias_ih", "projection": "weight_hr"}
        np.testing.assert_allclose(
            g, tensors[f"{name[what]}_l{suffix}"].grad.numpy(), rtol=0, atol=1e-12, err_msg=key
        )


def random_lstm(rng, name, C_in, width=H, **options) -> LSTM:
    """An LSTM with different random weights per gate, a non-zero bias and state."""
    P = options["projection"].shape[0] if "projection" in options else width
    params = LSTMParams(
        rng.normal(size=(4 * width, C_in)) * np.repeat([0.6, 0.9, 1.2, 0.5], width)[:, None],
        rng.normal(size=(4 * width, P)) * 0.5,
        rng.normal(size=4 * width),
    )
    start = LSTMState(rng.uniform(-0.5, 0.5, P), rng.normal(size=width))
    return LSTM(params, name=name, initial_state=start, **options)


def stack_of_every_kind(rng, output_mode="last") -> LSTMStack:
    """A reverse projection LSTM, a BiLSTM with a projection, a forward LSTM."""
    bottom = random_lstm(rng, "bottom", C, direction="reverse", projection=rng.normal(size=(2, H)))
    bi = BiLSTM(
        random_lstm(rng, "f", 2, projection=rng.normal(size=(3, H))),
        random_lstm(rng, "b", 2, direction="reverse"),
        name="bi",
    )
    return LSTMStack([bottom, bi, random_lstm(rng, "top", 3 + H, width=3)], output_mode=output_mode)


@pytest.mark.parametrize("output_mode", ["last", "sequence"])
def test_backward_equals_central_differences_with_an_empty_row(rng, output_mode):
    """Each final h's gradient placed where that h was output — a forward direction's last
    step, a reverse one's first, a projection's h too; a row of no steps ends in its
    initial state, which no learnable reaches."""
    stack = stack_of_every_kind(rng, output_mode)
    x = rng.normal(size=(4, 5, C))
    lengths = np.array([5, 0, 2, 4])
    start = LSTMState(*(rng.normal(size=(4, w)) for w in stack.state_widths))
    y, cache = stack.forward(x, lengths, start)
    G = rng.normal(size=y.shape)
    dx, grads = stack.backward(G, cache)

    def loss() -> float:
        return float(np.sum(stack.forward(x, lengths, start)[0] * G))

    eps = 1e-6
    for key, p in stack.learnables().items():
        for index in list(np.ndindex(p.shape))[::3]:
            numeric = central_difference(loss, p, index, eps)
            assert grads[key][index] == pytest.approx(numeric, abs=1e-7), key
    for index in list(np.ndindex(x.shape))[::4]:
        assert dx[index] == pytest.approx(central_difference(loss, x, index, eps), abs=1e-7)
    assert not dx[1].any()  # the empty row's input is never read


def test_training_gradients_equal_central_differences(rng):
    """The network's loss (SequenceInput → stack → FC → softmax) through train.loss."""
    stack = stack_of_every_kind(rng)
    W = stack.output_width(C)
    fc = FullyConnected(rng.normal(size=(2, W)), rng.normal(size=2))
    net = Network([SequenceInput(C), stack, fc, Softmax()])
    batch = make_batches([rng.normal(size=(T, C)) for T in (4, 2, 3)])[0]
    targets = np.array([1, 0, 1])
    _, grads, _ = loss_and_gradients(net, batch, targets)
    numeric = numerical_gradients(net, batch, targets)
    assert grads.keys() == numeric.keys() and "lstm_stack/bi/forward/projection" in grads
    for key in grads:
        np.testing.assert_allclose(grads[key], numeric[key], rtol=0, atol=1e-7, err_msg=key)


def test_weight_file_round_trip(rng, tmp_path):
    stack = stack_of_every_kind(rng)
    fc = FullyConnected(rng.normal(size=(K, stack.output_width(C))), rng.normal(size=K))
    net = Network([SequenceInput(C), stack, fc, Softmax()], class_names=["a", "b", "c"])
    save_network(net, tmp_path / "stack.npz")
    back = load_network(tmp_path / "stack.npz")
    assert back.digest() == net.digest() and back.summary() == net.summary()
    assert "LSTMStack" in net.summary() and "every layer's final h" in net.summary()
    xs = [rng.normal(size=(T, C)) for T in LENGTHS]
    np.testing.assert_array_equal(back.predict(xs), net.predict(xs))
    for key, a in net.layers[1].arrays().items():
        np.testing.assert_array_equal(back.layers[1].arrays()[key], a)
    changed = dataclasses.replace(stack, output_mode="sequence")
    assert (
        Network([SequenceInput(C), changed]).digest() != Network([SequenceInput(C), stack]).digest()
    )
    rebuilt = layer_from_arrays("LSTMStack", stack.config(), stack.arrays())
    assert rebuilt.config() == stack.config()
    with pytest.raises(InputError, match=r"arrays \['stray/W'\] belong to none of its layers"):
        layer_from_arrays("LSTMStack", stack.config(), {**stack.arrays(), "stray/W": fc.bias})


def test_trace_and_state_widths(rng):
    """The trace shows every layer's units side by side (a projection's h narrower); the
    state is every layer's; a state of the wrong width is named."""
    stack = stack_of_every_kind(rng)
    net = Network([SequenceInput(C), stack])
    x = rng.normal(size=(7, C))
    whole, final = net.predict(x, return_state=True)
    assert final["lstm_stack"].h.shape == (2 + 3 + H + 3,) == whole.shape
    assert final["lstm_stack"].c.shape == (H + 2 * H + 3,)
    gates = net.trace(x)
    assert gates.c.shape == (7, H + 2 * H + 3) and gates.h.shape == (7, 2 + 3 + H + 3)
    with pytest.raises(InputError, match="state of 'lstm_stack'"):
        net.state = {"lstm_stack": (np.zeros(5), np.zeros(5))}


def test_a_forward_stack_carries_its_state(rng):
    """A sequence split in two, the state assigned back between, gives the whole one's."""
    stack = LSTMStack([random_lstm(rng, "a", C), random_lstm(rng, "b", H)])
    net = Network([SequenceInput(C), stack])
    x = rng.normal(size=(6, C))
    whole, final = net.predict(x, return_state=True)
    _, middle = net.predict(x[:2], return_state=True)
    net.state = middle
    second, end = net.predict(x[2:], return_state=True)
    np.testing.assert_allclose(second, whole, rtol=0, atol=1e-14)
    np.testing.assert_allclose(end["lstm_stack"].c, final["lstm_stack"].c, rtol=0, atol=1e-14)


def bad_stacks(rng):
    a, b = random_lstm(rng, "a", C), random_lstm(rng, "b", H)
    return {
        "a layer's own last": (
            lambda: LSTMStack([a, dataclasses.replace(b, output_mode="last")]),
            InputError,
            "layer 'b' must have output_mode 'sequence'",
        ),
        "sizes that do not chain": (
            lambda: LSTMStack([a, random_lstm(rng, "c", H + 1)]),
            InputError,
            "layer 'c' expects 5 inputs but the layer before it gives 4",
        ),
        "one name twice": (
            lambda: LSTMStack([a, dataclasses.replace(b, name="a")]),
            InputError,
            "distinct names",
        ),
        "no layers": (lambda: LSTMStack([]), InputError, "non-empty list"),
        "another kind": (
            lambda: LSTMStack([a, FullyConnected(np.ones((2, H)), np.ones(2))]),
            InputTypeError,
            "item 1 must be an LSTM or BiLSTM layer; got FullyConnected",
        ),
        "two dtypes": (
            lambda: LSTMStack([a, b.astype(np.float32)]),
            InputError,
            "one dtype",
        ),
        "a summed BiLSTM read at its state": (
            lambda: LSTMStack(
                [a, BiLSTM(b, dataclasses.replace(b, direction="reverse"), merge_mode="sum")]
            ),
            InputError,
            "BiLSTM 'bilstm' must have merge_mode 'concat'",
        ),
    }


@pytest.mark.parametrize(
    "what",
    [
        "a layer's own last",
        "sizes that do not chain",
        "one name twice",
        "no layers",
        "another kind",
        "two dtypes",
        "a summed BiLSTM read at its state",
    ],
)
def test_bad_stacks_are_refused_clearly(rng, what):
    make, error, message = bad_stacks(rng)[what]
    with pytest.raises(error, match=message):
        make()


def test_torch_export_writes_the_every_layer_head_back(rng, tmp_path):
    """to_state_dict loads into the module with a head on every layer's h_n, and computes
    what the network does; from_torch reads it back the same."""
    module = model("2-layer-bidirectional")
    net = from_torch(module.state_dict(), softmax=False)
    state = to_state_dict(net)
    assert {k: v.shape for k, v in state.items()} == {
        k: v.shape for k, v in module.state_dict().items()
    }
    fresh = EveryLayerHead(C, H, K, **CASES["2-layer-bidirectional"]).double()
    fresh.load_state_dict(state)
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    with torch.no_grad():
        want = fresh(packed(seqs)).numpy()
    np.testing.assert_allclose(net.predict(seqs), want, rtol=0, atol=1e-12)
    assert from_torch(state, softmax=False).digest() == net.digest()


@pytest.mark.parametrize(
    "suffix, message",
    [
        (".onnx", "layer 'lstm' (LSTMStack) has no ONNX export: "),
        (".keras", "layer 'lstm' (LSTMStack) has no Keras export: "),
        (".mat", "layer 'lstm' (LSTMStack) has no MATLAB export: "),
    ],
)
def test_exporters_without_a_stack_refuse_it(tmp_path, suffix, message):
    net = from_torch(model("2-layer-last-two").state_dict())
    with pytest.raises(InputError, match=re.escape(message)):
        save_model(net, tmp_path / f"model{suffix}")
    assert not (tmp_path / f"model{suffix}").exists()


def test_torch_export_refuses_a_stack_beside_other_layers(rng):
    stack = LSTMStack([random_lstm(rng, "a", C), random_lstm(rng, "b", H)], output_mode="sequence")
    net = Network([SequenceInput(C), stack, random_lstm(rng, "after", H)])
    message = "layer 'lstm_stack' (LSTMStack) is exported as the one nn.LSTM; the network has other"
    with pytest.raises(InputError, match=re.escape(message)):
        to_state_dict(net)


def test_training_changes_every_layer_and_the_fast_path_follows(rng):
    """Adam with L2 on a stack's layers (keys under their names); the compiled snapshot sees
    the in-place updates, and a layer replaced in the stack's list."""
    stack = stack_of_every_kind(rng)
    fc = FullyConnected(rng.normal(size=(2, stack.output_width(C))), rng.normal(size=2))
    net = Network([SequenceInput(C), stack, fc, Softmax()], class_names=["x", "y"])
    seqs = [rng.normal(size=(T, C)) for T in (4, 2, 5, 3)]
    labels = ["x", "y", "y", "x"]
    before = {k: v.copy() for k, v in stack.learnables().items()}
    net.predict(seqs)  # compiled
    options = TrainingOptions(max_epochs=3, padding=Padding.masked(2), l2_regularization=0.01)
    records = train(net, seqs, labels, options, log=None)
    assert records[-1].loss < records[0].loss
    assert all(not np.array_equal(before[k], v) for k, v in stack.learnables().items())
    np.testing.assert_allclose(net.predict(seqs), reference(net, seqs), rtol=0, atol=1e-12)
    stack.layers[2] = random_lstm(rng, "top", 3 + H, width=3)  # in place: recompiled
    np.testing.assert_allclose(net.predict(seqs), reference(net, seqs), rtol=0, atol=1e-12)
