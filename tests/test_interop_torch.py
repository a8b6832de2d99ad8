"""PyTorch in and out: nn.LSTM (every option), nn.LSTMCell, a classifier head, .pt files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from random_nets import random_lstm_params
from torch_models import Classifier, assert_matches_nn_lstm, distinct_gates, packed

from lstm_ref import FullyConnected, InputError, InputTypeError, Network
from lstm_ref.interop import load_model
from lstm_ref.interop.torch import from_torch, save_torch, to_state_dict, torch_lstm_options
from lstm_ref.layers import LSTM, BiLSTM, TimeReversal

C, H = 4, 5
LENGTHS = [6, 3, 5, 1]


OPTIONS = [
    {},
    {"num_layers": 2},
    {"bidirectional": True},
    {"proj_size": 3},
    {"num_layers": 2, "bidirectional": True, "proj_size": 2},
    {"bias": False, "num_layers": 2},
    {"batch_first": True, "bidirectional": True},
    {"dropout": 0.3, "num_layers": 2},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_nn_lstm_packed_mixed_lengths(rng, options):
    module = distinct_gates(torch.nn.LSTM(C, H, **options).double(), seed=len(str(options)))
    module.eval()
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    assert_matches_nn_lstm(from_torch(module), module, seqs, rng, atol=1e-12)


def test_reverse_direction_sees_each_sequence_from_its_own_end(rng):
    """h_n of the reverse direction is output[0, H:], after the sequence's first step."""
    module = distinct_gates(torch.nn.LSTM(C, H, bidirectional=True).double(), seed=3)
    net = from_torch(module)
    x = rng.normal(size=(4, C))
    with torch.no_grad():
        out, (h_n, _) = module(torch.from_numpy(x)[:, None])
    y = net.predict(x, outputs=net.layers[-1].name)
    np.testing.assert_allclose(y[0, H:], h_n[1, 0].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(y, out[:, 0].numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "options", [{}, {"bidirectional": True, "num_layers": 2}, {"proj_size": 2}], ids=str
)
def test_classifier_head_float64_and_float32(rng, options):
    model = distinct_gates(Classifier(C, H, 3, **options).double(), seed=7)
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    net = from_torch(model.state_dict(), class_names=["a", "b", "c"])
    with torch.no_grad():
        want = model(packed(seqs)).numpy()
        want32 = model.float()(packed(seqs, torch.float32)).numpy()
    assert isinstance(net.layers[-3], type(net.layers[1]))
    np.testing.assert_allclose(net.predict(seqs), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.astype(np.float32).predict(seqs), want32, rtol=0, atol=1e-6)
    assert net.classify(seqs)[0].tolist() == [["a", "b", "c"][k] for k in want.argmax(1)]


def test_lstm_cell(rng):
    cell = distinct_gates(torch.nn.LSTMCell(C, H).double(), seed=11)
    x = rng.normal(size=(3, C))
    h0, c0 = rng.normal(size=(3, H)), rng.normal(size=(3, H))
    with torch.no_grad():
        h, c = cell(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    net = from_torch(cell)
    net.state = {net.layers[1].name: (h0, c0)}
    y, final = net.predict(x[:, None], outputs=net.layers[1].name, return_state=True)
    np.testing.assert_allclose(np.stack(y)[:, 0], h.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(final[net.layers[1].name].c, c.numpy(), rtol=0, atol=1e-12)


def test_export_loads_into_nn_lstm_and_round_trips_exactly(rng, tmp_path):
    model = distinct_gates(Classifier(C, H, 3, num_layers=2, bidirectional=True).double(), 5)
    net = from_torch(model)
    options = torch_lstm_options(net)
    assert options == {
        "input_size": C,
        "hidden_size": H,
        "num_layers": 2,
        "bidirectional": True,
        "proj_size": 0,
        "batch_first": True,
    }
    path = tmp_path / "model.pt"
    save_torch(net, path)
    fresh = Classifier(C, H, 3, num_layers=2, bidirectional=True).double()
    fresh.load_state_dict(torch.load(path, weights_only=True))
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    with torch.no_grad():
        np.testing.assert_allclose(
            fresh(packed(seqs)).numpy(), model(packed(seqs)).numpy(), rtol=0, atol=1e-12
        )
    again = load_model(path)
    for a, b in zip(net.layers, again.layers, strict=True):
        for (ka, va), (kb, vb) in zip(a.arrays().items(), b.arrays().items(), strict=True):
            assert ka == kb
            np.testing.assert_array_equal(va, vb)
    assert isinstance(again.layers[1], BiLSTM)
    assert set(to_state_dict(net)) == set(model.state_dict())


def test_bad_files_are_refused(tmp_path):
    module = torch.nn.LSTM(C, H)
    pickled = tmp_path / "module.pt"
    torch.save(module, pickled)
    with pytest.raises(InputError, match=r"module\.pt: not a PyTorch weights file.*state_dict"):
        load_model(pickled)
    truncated = tmp_path / "cut.pth"
    torch.save(module.state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(InputError, match=r"cut\.pth: not a PyTorch weights file"):
        load_model(truncated)
    gru = tmp_path / "gru.pt"
    torch.save(torch.nn.GRU(C, H).state_dict(), gru)
    with pytest.raises(InputError, match=r"gru\.pt: layer 'l0'.* an nn\.GRU, not an nn\.LSTM"):
        load_model(gru)
    extra = tmp_path / "extra.pt"
    torch.save({**module.state_dict(), "attn.in_proj_weight": torch.zeros(3, 3)}, extra)
    beside = r"extra\.pt: modules 'attn' beside the LSTM '' \(LSTM, 1 layer, C=4, H=5\); pass"
    with pytest.raises(InputError, match=beside):
        load_model(extra)
    bad = dict(module.state_dict())
    bad["bias_hh_l0"] = torch.zeros(7)
    with pytest.raises(InputError, match=r"state_dict: layer 'l0': bias_hh is \(7,\)"):
        from_torch(bad)


def test_export_refuses_what_nn_lstm_cannot_hold(rng):
    net = from_torch(distinct_gates(torch.nn.LSTM(C, H).double(), 1))
    lstm = net.layers[1]
    peep = Network([net.layers[0], type(lstm)(lstm.params, peephole=np.ones((3, H)))])
    with pytest.raises(InputError, match=r"nn\.LSTM has sigmoid gates and tanh only"):
        to_state_dict(peep)
    fc = FullyConnected(rng.normal(size=(3, H)), np.zeros(3), name="fc1")
    two_heads = Network(
        [*net.layers, fc, FullyConnected(rng.normal(size=(2, 3)), np.zeros(2), name="fc2")]
    )
    with pytest.raises(InputError, match=r"the exported head is one nn\.Linear; the network has"):
        to_state_dict(two_heads)
    reversal = Network(
        [net.layers[0], dataclasses.replace(lstm, output_mode="sequence"), TimeReversal()]
    )
    with pytest.raises(
        InputError, match=r"layer 'reversal' \(Time Reversal\) has no nn\.LSTM export"
    ):
        to_state_dict(reversal)
    params = random_lstm_params(rng, H, 4)._replace(R=rng.normal(size=(16, 2)))  # (4H, P)
    projected = LSTM(params, projection=rng.normal(size=(2, 4)), name="p")
    both_ways = BiLSTM(
        LSTM(random_lstm_params(rng, 2, 3), name="f"),
        LSTM(random_lstm_params(rng, 2, 3), name="b", direction="reverse"),
    )
    for layers, found in (
        ([projected], "layer 'p': hidden_size 4, proj_size 2, 1 direction"),
        (
            [projected, both_ways],
            "layer 'p': hidden_size 4, proj_size 2, 1 direction; "
            "layer 'bilstm': hidden_size 3, 2 directions",
        ),
    ):
        sizes = Network([net.layers[0], dataclasses.replace(lstm, output_mode="sequence"), *layers])
        with pytest.raises(
            InputError,
            match=r"share one hidden_size, proj_size and number of directions; got layer "
            rf"'{lstm.name}': hidden_size 5, 1 direction; {found}$",
        ):
            to_state_dict(sizes)


class LastStepHead(torch.nn.Module):
    """The tutorials' classifier: nn.Linear on ``output[:, -1]``, returning logits."""

    def __init__(self, num_layers=2, bidirectional=True):
        super().__init__()
        self.lstm = torch.nn.LSTM(C, H, num_layers, batch_first=True, bidirectional=bidirectional)
        self.fc = torch.nn.Linear((2 if bidirectional else 1) * H, 3)

    def forward(self, x):
        output, _ = self.lstm(x)
        return self.fc(output[:, -1])


def test_logits_model_imported_without_softmax(rng, tmp_path):
    model = distinct_gates(LastStepHead(1, bidirectional=False).double(), seed=13)
    path = tmp_path / "logits.pt"
    torch.save(model.state_dict(), path)
    x = rng.normal(size=(3, 6, C))
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    net = load_model(path, softmax=False)
    assert isinstance(net.layers[-1], FullyConnected)
    np.testing.assert_allclose(net.predict(x), logits.numpy(), rtol=0, atol=1e-12)
    probabilities = logits.softmax(dim=1).numpy()
    np.testing.assert_allclose(load_model(path).predict(x), probabilities, rtol=0, atol=1e-12)
    with pytest.raises(InputTypeError, match=r"softmax must be True or False; got 'no'"):
        from_torch(model, softmax="no")


def test_bidirectional_head_on_the_last_step_output(rng, tmp_path):
    """``last="step"`` is torch's ``fc(output[:, -1])``: on a batch of one length, and on
    each sequence of mixed lengths alone (a padded batch's ``output[:, -1]`` reads padding)."""
    model = distinct_gates(LastStepHead().double(), seed=17)
    path = tmp_path / "bi.pt"
    torch.save(model.state_dict(), path)
    net = load_model(path, softmax=False, last="step")
    x = rng.normal(size=(3, 5, C))
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net.predict(x), want, rtol=0, atol=1e-12)
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    with torch.no_grad():
        each = np.concatenate([model(torch.from_numpy(s)[None]).numpy() for s in seqs])
    np.testing.assert_allclose(net.predict(seqs), each, rtol=0, atol=1e-12)
    assert np.abs(load_model(path, softmax=False).predict(x) - want).max() > 1e-2  # h_n's head
    with pytest.raises(InputError, match=r"last must be one of \['state', 'step'\]; got 'end'"):
        from_torch(model, last="end")
    with pytest.raises(InputError, match=r"last='step' says what a head reads; there is no head"):
        from_torch(model.lstm, last="step")


def test_cli_model_options_say_no_softmax_and_last_step(rng, tmp_path, capsys):
    from lstm_ref.cli import main

    model = distinct_gates(LastStepHead().double(), seed=19)
    path, x_file = tmp_path / "bi.pt", tmp_path / "x.npy"
    torch.save(model.state_dict(), path)
    x = rng.normal(size=(2, 4, C))
    np.save(x_file, x)
    out = tmp_path / "bi.npz"
    assert main(["convert", str(path), str(out), "--no-softmax", "--last", "step"]) == 0
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(load_model(out).predict(x), want, rtol=0, atol=1e-12)
    assert main(["layers", "--network", str(path), "--no-softmax"]) == 0
    assert "Softmax" not in capsys.readouterr().out
    assert main(["layers", "--network", str(out), "--last", "step"]) == 2
    assert ".npz files take no option last" in capsys.readouterr().err
