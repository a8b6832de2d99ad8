"""A recurrent layer's parts by name — a BiLSTM's direction, an LSTMStack's layer — for plots,
explain and the walkthrough: each part's trace, explanation and figure measured against
PyTorch's nn.LSTM on the same weights, from non-zero initial states."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_ref import InputError, LSTMState, Network
from lstm_ref.cli import main
from lstm_ref.explain import explain_backward, explain_step, step_details
from lstm_ref.parts import part_names, recurrent_part
from lstm_ref.walkthrough import run_walkthrough

torch = pytest.importorskip("torch")
from torch_models import Classifier, EveryLayerHead, distinct_gates, torch_states  # noqa: E402

from lstm_ref.interop.torch import from_torch  # noqa: E402

C, H, K, T = 4, 5, 3, 6
TOL = 1e-12


def run_torch(module, x, start):
    """nn.LSTM on one sequence (T, C): every step's top-layer output (T, D·H), h_n, c_n."""
    with torch.no_grad():
        out, (h_n, c_n) = module(torch.from_numpy(x)[None], start)
    return out[0].numpy(), h_n[:, 0].numpy(), c_n[:, 0].numpy()


def close(a, b) -> None:
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


@pytest.mark.parametrize("stacked", [False, True])
def test_each_part_traces_what_nn_lstm_computes(rng, stacked):
    kind = EveryLayerHead if stacked else Classifier
    model = distinct_gates(kind(C, H, K, num_layers=2, bidirectional=True).double(), 3).eval()
    net = from_torch(model)
    start, per_layer = torch_states(rng, model.lstm, 1)
    if stacked:  # one LSTMStack "lstm": its layers' states side by side
        net.state = {
            "lstm": LSTMState(*(np.concatenate(s, axis=-1) for s in zip(*per_layer, strict=True)))
        }
        names = ["lstm/lstm.l0", "lstm/lstm.l1"]
    else:  # a BiLSTM per layer
        net.state = {f"lstm.l{k}": s for k, s in enumerate(per_layer)}
        names = ["lstm.l0", "lstm.l1"]
    assert part_names(net) == [
        *(["lstm"] if stacked else []),
        *(f"{n}{d}" for n in names for d in ("", "/forward", "/backward")),
    ]
    x = rng.normal(size=(T, C))
    out, h_n, c_n = run_torch(model.lstm, x, start)
    for layer, name in enumerate(names):
        forward = recurrent_part(net, f"{name}/forward").trace(net, x)
        reverse = recurrent_part(net, f"{name}/backward").trace(net, x)
        both = recurrent_part(net, name).trace(net, x)
        assert forward.h.shape == reverse.h.shape == (T, H) and both.i.shape == (T, 2 * H)
        close(both.h, np.concatenate([forward.h, reverse.h], axis=1))
        close([forward.h[-1], forward.c[-1]], [h_n[2 * layer], c_n[2 * layer]])
        close([reverse.h[0], reverse.c[0]], [h_n[2 * layer + 1], c_n[2 * layer + 1]])
    close(np.concatenate([forward.h, reverse.h], axis=1), out)  # the top layer, every step
    assert recurrent_part(net, f"{names[1]}/backward").describe() == (
        f"layer '{names[1]}/backward' (reverse: time runs backwards)"
    )
    assert recurrent_part(net, names[0]).describe() == (
        f"layer '{names[0]}' (BiLSTM: units 1-5 forward, 6-10 reverse)"
    )
    if stacked:
        assert recurrent_part(net).describe() == (
            "layer 'lstm' (LSTMStack: units 1-5 lstm.l0 forward, 6-10 lstm.l0 reverse, "
            "11-15 lstm.l1 forward, 16-20 lstm.l1 reverse)"
        )
    for wrong in [f"{names[0]}/reverse", "lstm.l2/forward"]:
        with pytest.raises(InputError, match=f"no part named '{wrong}'; the recurrent parts: "):
            recurrent_part(net, wrong)


@pytest.fixture
def bilstm(rng):
    """A BiLSTM classifier from nn.LSTM, from a non-zero state; one sequence; torch's run."""
    model = distinct_gates(Classifier(C, H, K, bidirectional=True).double(), 4).eval()
    net = Network(from_torch(model).layers, class_names=["a", "b", "c"])
    start, per_layer = torch_states(rng, model.lstm, 1)
    net.state = {"lstm.l0": per_layer[0]}
    x = rng.normal(size=(T, C))
    return net, x, start, run_torch(model.lstm, x, start)[0], model


def test_explain_a_reverse_direction_steps_back_in_time(bilstm):
    net, x, (h0, _), out, _ = bilstm
    u = 2
    for t in range(1, T + 1):
        d = step_details(net, x, step=t, unit=u, layer="lstm.l0/backward")
        assert d.reverse and d.layer == "lstm.l0/backward"
        close(d.h, out[t - 1, H + u - 1])  # the reverse half of torch's output at step t
        h_prev = out[t, H + u - 1] if t < T else h0[1, 0, u - 1].item()  # step t+1 came first
        close(d.h_prev, h_prev)
        ahead = step_details(net, x, step=t, unit=u, layer="lstm.l0/forward")
        assert not ahead.reverse
        close(ahead.h, out[t - 1, u - 1])
        close(ahead.h_prev, out[t - 2, u - 1] if t > 1 else h0[0, 0, u - 1].item())
    text = explain_step(net, x, step=3, unit=u, layer="lstm.l0/backward")
    assert "A reverse direction: time runs backwards. It reads the sequence from step 6" in text
    assert "2. The state entering step 3: h and c as step 4 left them" in text
    assert "h_0 and c_0" in explain_step(net, x, step=T, unit=u, layer="lstm.l0/backward")


def test_explain_names_the_directions_it_can_follow(bilstm):
    net, x, *_ = bilstm
    with pytest.raises(InputError, match=r"'lstm.l0' is a BiLSTM layer: .*'lstm.l0/backward'"):
        explain_step(net, x, 1, 1)
    with pytest.raises(InputError, match="follows a forward LSTM layer of the network's own"):
        explain_backward(net, x, "a", 1, 1, layer="lstm.l0/backward")


def test_walkthrough_of_one_direction(bilstm, tmp_path):
    net, x, _, _, model = bilstm
    state = net.state
    lines: list[str] = []
    result = run_walkthrough(
        tmp_path, network=net, sequences=[x], layer="lstm.l0/forward", log=lines.append
    )
    assert result.activations.shape == (H, T) and result.reverse_diff is None
    assert result.max_abs_diff <= TOL
    out = run_torch(model.lstm, x, None)[0]  # the walkthrough starts from the initial states
    close(result.activations, out[:, :H].T)
    assert ">> lstm.l0/forward: units 1-5 of layer 'lstm.l0'" in lines
    close(net.state["lstm.l0"].h, state["lstm.l0"].h)  # the caller's network untouched


@pytest.fixture
def files(tmp_path):
    model = distinct_gates(Classifier(C, H, K, bidirectional=True).double(), 4).eval()
    torch.save(model.state_dict(), tmp_path / "bi.pt")
    x = np.random.default_rng(2).normal(size=(T, C))
    np.save(tmp_path / "x.npy", x)
    out = run_torch(model.lstm, x, None)[0]
    return ["--network", str(tmp_path / "bi.pt"), "--data", str(tmp_path / "x.npy")], out


def test_cli_plot_draws_and_names_the_layer_asked_for(files, tmp_path, monkeypatch, capsys):
    from lstm_ref.viz import plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi: drawn.append((fig, path)))
    options, out = files
    args = ["plot", "gates", *options, "--layer", "lstm.l0/backward", "--units", "1-2"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    fig, path = drawn[-1]
    assert path.name == "gates_observation1_lstm.l0-backward.png"
    title = "LSTM gates and states\nlayer 'lstm.l0/backward' (reverse: time runs backwards)"
    assert fig._suptitle.get_text() == title
    h_panel = fig.axes[5]
    assert [line.get_label() for line in h_panel.lines[:2]] == ["unit 1", "unit 2"]
    close(np.stack([line.get_ydata() for line in h_panel.lines[:2]], 1), out[:, H : H + 2])
    assert main(["plot", "heatmap", *options, "--out", str(tmp_path)]) == 0
    fig, path = drawn[-1]
    assert path.name == "heatmap_observation1.png"
    heading = "LSTM Activations\nlayer 'lstm.l0' (BiLSTM: units 1-5 forward, 6-10 reverse)"
    assert fig.axes[0].get_title() == heading


def test_cli_explain_and_walkthrough_take_a_layer(files, tmp_path, capsys):
    options, _ = files
    args = ["explain", *options, "--layer", "lstm.l0/backward", "--step", "2"]
    assert main(args) == 0
    assert "time runs backwards" in capsys.readouterr().out
    args = ["walkthrough", *options, "--layer", "lstm.l0/backward", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "as it must be: layer 'lstm.l0' (BiLSTM) has a reverse" in capsys.readouterr().out
    assert main(["plot", "heatmap", *options, "--layer", "fc"]) == 2
    assert "layer 'fc' is a Fully Connected layer" in capsys.readouterr().err
