"""lstm_ref.explain: the numbers it prints are the library's (trace, BPTT), PyTorch autograd
agrees with them, the docs' embedded explanations are the current output, and bad
arguments get clear errors."""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from random_nets import random_lstm_params, random_network

from lstm_ref import (
    LSTM,
    FullyConnected,
    Gates,
    InputError,
    InputTypeError,
    LSTMState,
    Network,
    SequenceInput,
    Softmax,
    load_network,
    lstm_step,
)
from lstm_ref.cli import build_parser, main
from lstm_ref.datasets import load_japanese_vowels
from lstm_ref.explain import (
    backward_details,
    code_line,
    explain_backward,
    explain_step,
    step_details,
)
from lstm_ref.lstm import lstm_step_backward
from lstm_ref.padding import make_batches
from lstm_ref.train import loss_and_gradients

DOCS = Path(__file__).resolve().parent.parent / "docs" / "lstm-internals.md"
C, H, K = 5, 7, 4


@pytest.fixture(scope="module")
def pretrained() -> Network:
    return load_network("JapaneseVowelsNet")


@pytest.fixture(scope="module")
def test_data() -> tuple[list[np.ndarray], np.ndarray]:
    return load_japanese_vowels("test")


@pytest.fixture
def small(rng) -> tuple[Network, np.ndarray]:
    """A random z-scoring network with a non-zero initial state, and one sequence."""
    return random_network(rng, C=C, H=H, K=K, normalization="zscore"), rng.normal(size=(6, C))


def assert_matches_trace(net: Network, x: np.ndarray, step: int, unit: int, layer=None) -> None:
    """step_details equals the trace, and its terms are the unit's rows of W, R, b."""
    d = step_details(net, x, step, unit, layer)
    name = layer or net.stateful_layers[0].name
    lstm = net.layer(name)
    trace = net.trace(x, name)
    t, u = step - 1, unit - 1
    Hn = lstm.hidden_size
    if t == 0:
        h_prev, c_prev = (np.broadcast_to(s, (1, Hn))[0] for s in net.state[name])
    else:
        h_prev, c_prev = trace.h[t - 1], trace.c[t - 1]
    assert d.h_prev == pytest.approx(h_prev[u], abs=1e-15)
    assert d.c_prev == pytest.approx(c_prev[u], abs=1e-15)
    for k, gate in enumerate(d.gates):
        assert gate.name == "ifgo"[k]
        assert gate.row == k * Hn + u
        assert gate.input_term == pytest.approx(lstm.params.W[gate.row] @ d.x_seen, abs=1e-13)
        assert gate.recurrent_term == pytest.approx(lstm.params.R[gate.row] @ h_prev, abs=1e-13)
        assert gate.bias == lstm.params.b[gate.row]
        assert gate.value == pytest.approx(getattr(trace, gate.name)[t, u], abs=1e-12)
    assert d.c == pytest.approx(trace.c[t, u], abs=1e-12)
    assert d.h == pytest.approx(trace.h[t, u], abs=1e-12)
    assert d.max_diff <= 1e-12
    # one lstm_step from the state before, all units at once, agrees too
    ref = lstm_step(lstm.params, d.x_seen[None], LSTMState(h_prev[None], c_prev[None]), lstm.act)
    ours = [*(d.gate(name).value for name in "ifgo"), d.c, d.h]
    np.testing.assert_allclose([v[0, u] for v in ref], ours, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ forward
@pytest.mark.parametrize(("step", "unit"), [(1, 1), (1, 7), (3, 2), (6, 4), (6, 7)])
def test_step_numbers_equal_trace_random_network(small, step, unit):
    net, x = small
    assert_matches_trace(net, x, step, unit)


@pytest.mark.parametrize(("step", "unit"), [(1, 1), (5, 1), (10, 77), (19, 100)])
def test_step_numbers_equal_trace_pretrained(pretrained, test_data, step, unit):
    assert_matches_trace(pretrained, test_data[0][0], step, unit)


def test_step_one_uses_the_initial_state(small):
    net, x = small
    lstm = net.layer("lstm")
    d = step_details(net, x, 1, 3)
    assert (d.h_prev, d.c_prev) == (lstm.initial_state.h[2], lstm.initial_state.c[2])
    assert "h_0 and c_0, the layer's starting state" in explain_step(net, x, 1, 3)


def test_step_one_of_pretrained_starts_from_zeros(pretrained, test_data):
    d = step_details(pretrained, test_data[0][0], 1, 5)
    assert d.h_prev == d.c_prev == 0
    assert all(gate.recurrent_term == 0 for gate in d.gates)


def test_step_one_uses_an_assigned_state(small, rng):
    net, x = small
    state = LSTMState(rng.normal(size=H), rng.normal(size=H))
    net.state = {"lstm": state}
    assert_matches_trace(net, x, 1, 4)
    assert step_details(net, x, 1, 4).c_prev == state.c[3]


def test_input_is_z_scored(small):
    net, x = small
    norm = net.layers[0]
    d = step_details(net, x, 4, 2)
    np.testing.assert_array_equal(d.x_raw, x[3])
    np.testing.assert_allclose(d.x_seen, (x[3] - norm.mean) / norm.std, rtol=0, atol=1e-15)
    text = explain_step(net, x, 4, 2)
    assert "z-scores each feature: x̃_t = (x_t − mean) / std" in text


def number_after(text: str, pattern: str) -> float:
    """The last number on the line that matches ``pattern``."""
    line = next(line for line in text.splitlines() if re.search(pattern, line))
    return float(re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]\d+)?", line)[-1])


def test_printed_numbers_equal_trace(pretrained, test_data):
    x = test_data[0][0]
    trace = pretrained.trace(x)
    text = explain_step(pretrained, x, 10, 77)
    for name in "ifgo":
        printed = re.search(rf"^\s+{name} = (sigmoid|tanh)\(\S+\) = (\S+)", text, re.M)
        assert float(printed.group(2)) == pytest.approx(getattr(trace, name)[9, 76], rel=1e-5)
    # c_t and h_t close their equations (possibly broken over several lines)
    c_block = text[text.index("c_t = f·c_{t-1}") :]
    c_final = re.search(r"= (\S+)\n\s+code: h = ", c_block)
    assert float(c_final.group(1)) == pytest.approx(trace.c[9, 76], rel=1e-5)
    h_line = next(line for line in text.splitlines() if "h_t = o·tanh(c_t)" in line)
    assert float(h_line.split(" = ")[-1]) == pytest.approx(trace.h[9, 76], rel=1e-5)
    # the state line ends with c_{t-1}
    assert number_after(text, r"h_\{t-1\}\[77\] = ") == pytest.approx(trace.c[8, 76], rel=1e-5)
    assert re.search(r"^matches net\.trace: max \|diff\| = \S+ \(tolerance 1e-12\)$", text, re.M)


def test_h_prev_of_all_units_enters_through_r(pretrained, test_data):
    text = explain_step(pretrained, test_data[0][0], 5, 1)
    assert "h_{t-1} of ALL 100 units enters through R" in text
    for row in ("0", "100", "200", "300"):
        assert re.search(rf"^\s+[ifgo] \(\w+ \w+\)\s+{row}\s", text, re.M)


def test_quotes_are_the_current_lines_of_code(pretrained, test_data):
    x = test_data[0][0]
    text = explain_step(pretrained, x, 3, 2) + explain_backward(pretrained, x, "1", 3, 2)
    quoted = [line.split("code: ", 1)[1] for line in text.splitlines() if "code: " in line]
    assert len(quoted) == 7 + 10
    source = inspect.getsource(lstm_step) + inspect.getsource(lstm_step_backward)
    source_lines = {line.strip() for line in source.splitlines()}
    assert set(quoted) <= source_lines
    assert code_line(lstm_step, r"^c = ") == "c = f * prev.c + i * g  # (B, H) cell state"


def test_code_line_refuses_missing_or_ambiguous_lines():
    with pytest.raises(RuntimeError, match="found 0"):
        code_line(lstm_step, r"^no such line")
    with pytest.raises(RuntimeError, match="found 4"):
        code_line(lstm_step, r"sigma_\w\(a\[")  # the four gate lines
    # the docstring is not code: "i, f, g, o, c_t, h_t" appears only there
    with pytest.raises(RuntimeError, match="found 0"):
        code_line(lstm_step, r"c_t, h_t")


def test_disagreement_with_trace_raises(small, monkeypatch):
    net, x = small
    good = net.trace(x)
    bad = Gates(*(v.copy() for v in good))
    bad.f[2, 1] += 1e-9
    monkeypatch.setattr(net, "trace", lambda *args, **kwargs: bad)
    with pytest.raises(RuntimeError, match=r"disagrees with net\.trace: max \|diff\| = 1e-09"):
        explain_step(net, x, 3, 2)
    explain_step(net, x, 3, 3)  # another unit is still right


def test_other_activations_and_float32(rng):
    net = random_network(
        rng, C=C, H=H, K=K, gate_activation="hard-sigmoid", state_activation="softsign"
    )
    x = rng.normal(size=(5, C)) * 3
    for step, unit in [(1, 1), (5, 7)]:
        assert_matches_trace(net, x, step, unit)
    text = explain_step(net, x, 5, 7) + explain_backward(net, x, "class1", 5, 7)
    assert "σ_g = hard-sigmoid, σ_s = softsign" in text
    assert "da_g = dg·(1 − |g|)²" in text
    d32 = step_details(net.astype(np.float32), x, 5, 7)
    assert d32.tolerance == 1e-5 and d32.max_diff <= 1e-5


def test_stacked_layers(rng):
    net = Network(
        [
            SequenceInput(C),
            LSTM(random_lstm_params(rng, C, 6), name="lstm1"),
            LSTM(random_lstm_params(rng, 6, H), name="lstm2", output_mode="last"),
            FullyConnected(rng.normal(size=(3, H)), rng.normal(size=3)),
            Softmax(),
        ],
        class_names=["a", "b", "c"],
    )
    x = rng.normal(size=(5, C))
    assert_matches_trace(net, x, 4, 3, layer="lstm2")
    assert_matches_trace(net, x, 2, 6, layer="lstm1")
    d = step_details(net, x, 4, 3, layer="lstm2")
    np.testing.assert_allclose(d.x_seen, net.predict(x, outputs="lstm1")[3], atol=1e-15)
    assert "x̃_t is the output of layer 'lstm1' at step 4" in explain_step(net, x, 4, 3, "lstm2")
    # BPTT of the lower layer, through the upper LSTM and the FC layer
    b = backward_details(net, x, "b", 2, 4, layer="lstm1")
    _, grads, _ = loss_and_gradients(net, make_batches([x])[0], np.array([1]))
    assert b.db_total == pytest.approx(grads["lstm1/b"][3], rel=1e-12, abs=1e-18)
    assert b.relative_difference < 1e-6
    assert "Through layers ['lstm2', 'fc']" in explain_backward(net, x, "b", 2, 4, "lstm1")


# ----------------------------------------------------------------- backward
def torch_gradients(net: Network, x: np.ndarray, label: int):
    """dL/dh_t and dL/dc_t entering each step's backward, and dL/db, by torch autograd.

    The same network in torch float64: z-scored input, nn.LSTMCell stepped by hand
    (weight_ih = W, weight_hh = R, bias_ih = b, bias_hh = 0), nn.Linear, cross_entropy.
    A zero probe is added to h_t and c_t as each step hands them on, so the probes'
    gradients are exactly the dh and dc that step t's backward receives from later steps
    and the output (c_t's probe sits after the cell's own use of c_t in h_t = o·tanh(c_t)).
    """
    norm, lstm, fc = net.layers[0], net.layer("lstm"), net.layer("fc")
    cell = torch.nn.LSTMCell(lstm.input_size, lstm.hidden_size).double()
    linear = torch.nn.Linear(fc.input_size, fc.output_size).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(lstm.params.W))
        cell.weight_hh.copy_(torch.from_numpy(lstm.params.R))
        cell.bias_ih.copy_(torch.from_numpy(lstm.params.b))
        cell.bias_hh.zero_()
        linear.weight.copy_(torch.from_numpy(fc.weights))
        linear.bias.copy_(torch.from_numpy(fc.bias))
    xt = (torch.from_numpy(x) - torch.from_numpy(norm.mean)) / torch.from_numpy(norm.std)
    h, c = (torch.from_numpy(a)[None].clone() for a in lstm.initial_state)
    probes = []
    for t in range(len(x)):
        h, c = cell(xt[t : t + 1], (h, c))
        ph, pc = torch.zeros_like(h, requires_grad=True), torch.zeros_like(c, requires_grad=True)
        h, c = h + ph, c + pc
        probes.append((ph, pc))
    loss = torch.nn.functional.cross_entropy(linear(h), torch.tensor([label]))
    loss.backward()

    def grad(p: torch.Tensor) -> np.ndarray:
        return np.zeros(p.shape[1]) if p.grad is None else p.grad[0].numpy()

    dh = np.stack([grad(ph) for ph, _ in probes])
    dc = np.stack([grad(pc) for _, pc in probes])
    return loss.item(), dh, dc, cell.bias_ih.grad.numpy()


def assert_matches_torch(net: Network, x: np.ndarray, label: str, step: int, unit: int) -> None:
    b = backward_details(net, x, label, step, unit)
    loss, dh, dc, db = torch_gradients(net, x, net.class_names.index(label))
    u = unit - 1
    assert b.loss == pytest.approx(loss, rel=1e-12)
    assert b.dh == pytest.approx(dh[step - 1, u], rel=1e-10, abs=1e-16)
    assert b.dc_in == pytest.approx(dc[step - 1, u], rel=1e-10, abs=1e-16)
    assert abs(b.dh - dh[step - 1, u]) <= 1e-10 and abs(b.dc_in - dc[step - 1, u]) <= 1e-10
    for t, dh_t, dc_t, _ in b.carried:
        assert dh_t == pytest.approx(dh[t - 1, u], rel=1e-10, abs=1e-16)
        assert dc_t == pytest.approx(dc[t - 1, u], rel=1e-10, abs=1e-16)
    if step > 1:  # what the step sends back is what step − 1 receives
        assert b.dc_prev == pytest.approx(dc[step - 2, u], rel=1e-10, abs=1e-16)
        assert b.dh_prev == pytest.approx(dh[step - 2, u], rel=1e-10, abs=1e-16)
    row = b.forward.gates[0].row
    assert b.db_total == pytest.approx(db[row], rel=1e-10, abs=1e-16)


@pytest.mark.parametrize(("step", "unit"), [(1, 1), (3, 5), (6, 7)])
def test_backward_equals_torch_autograd_random_network(small, step, unit):
    net, x = small
    assert_matches_torch(net, x, "class2", step, unit)


@pytest.mark.parametrize(("step", "unit"), [(1, 3), (10, 77), (19, 100)])
def test_backward_equals_torch_autograd_pretrained(pretrained, test_data, step, unit):
    x_test, y_test = test_data
    assert_matches_torch(pretrained, x_test[0], str(y_test[0]), step, unit)
    assert_matches_torch(pretrained, x_test[0], "5", step, unit)  # a wrong label: large loss


def test_backward_step_lines_are_consistent(pretrained, test_data):
    x_test, y_test = test_data
    b = backward_details(pretrained, x_test[0], str(y_test[0]), 10, 77)
    i, f, g, o = (gate.value for gate in b.forward.gates)
    assert b.do == b.dh * b.forward.tanh_c
    assert b.dc == pytest.approx(b.dc_in + b.dh * o * (1 - b.forward.tanh_c**2), rel=1e-14)
    assert (b.di, b.df, b.dg, b.dc_prev) == (b.dc * g, b.dc * b.forward.c_prev, b.dc * i, b.dc * f)
    expected = [b.di * i * (1 - i), b.df * f * (1 - f), b.dg * (1 - g * g), b.do * o * (1 - o)]
    np.testing.assert_allclose(b.da, expected, rtol=1e-12)
    assert b.relative_difference < 1e-6
    assert b.carried[0][0] == 19 and b.carried[-1][0] == 10
    assert b.max_diff <= 1e-12


def test_backward_text(pretrained, test_data):
    x_test, y_test = test_data
    text = explain_backward(pretrained, x_test[0], str(y_test[0]), 10, 77)
    b = backward_details(pretrained, x_test[0], str(y_test[0]), 10, 77)
    assert number_after(text, r"L = −log p\['1'\]") == pytest.approx(b.loss, rel=1e-5)
    assert number_after(text, r"dL/dh_T\[77\] = ") == pytest.approx(b.d_output, rel=1e-5)
    assert number_after(text, r"dL/db\[76\] = ") == pytest.approx(b.db_total, rel=1e-5)
    assert number_after(text, r"central difference") == pytest.approx(b.db_numeric, rel=1e-5)
    assert number_after(text, r"^\s+da_i = ") == pytest.approx(b.da[0], rel=1e-5)
    assert re.search(r"^matches lstm_step_backward and LSTM\.backward: max \|diff\| = ", text, re.M)


# --------------------------------------------------------------------- docs
MARKER = re.compile(r"<!-- explain: (.*?) -->\n```text\n(.*?)\n```\n<!-- /explain -->", re.S)


def without_rounding_noise(text: str) -> str:
    """The text with the two rounding-level numbers (which vary with the BLAS) masked."""
    return re.sub(r"(max \|diff\| = |relative difference: )\S+", r"\1…", text)


def test_docs_blocks_are_the_current_output(pretrained, test_data):
    x_test, y_test = test_data
    text = DOCS.read_text(encoding="utf-8")
    blocks = MARKER.findall(text)
    assert text.count("<!-- explain:") == len(blocks) >= 2
    kinds = set()
    for args, block in blocks:
        a = build_parser().parse_args(["explain", *shlex.split(args)])
        assert a.network == "JapaneseVowelsNet"
        x, label = x_test[a.observation - 1], str(y_test[a.observation - 1])
        if a.backward:
            expected = explain_backward(pretrained, x, label, step=a.step, unit=a.unit)
        else:
            expected = explain_step(pretrained, x, step=a.step, unit=a.unit)
        assert without_rounding_noise(block) == without_rounding_noise(expected), args
        kinds.add(a.backward)
    assert kinds == {False, True}


# ---------------------------------------------------------------------- CLI
def test_cli_explain(pretrained, test_data, capsys):
    x_test, y_test = test_data
    assert main(["explain", "--step", "5", "--unit", "1"]) == 0
    out = capsys.readouterr().out
    assert out == explain_step(pretrained, x_test[0], 5, 1) + "\n"
    assert main(["explain", "--observation", "2", "--step", "3", "--unit", "9", "--backward"]) == 0
    out = capsys.readouterr().out
    forward = explain_step(pretrained, x_test[1], 3, 9)
    backward = explain_backward(pretrained, x_test[1], str(y_test[1]), 3, 9)
    assert out == f"{forward}\n{backward}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--unit", "101"], r"unit must be an integer in 1\.\.100 .*; got 101"),
        (["--step", "20"], r"step must be an integer in 1\.\.19 \(the sequence has 19 time steps"),
        (["--step", "0", "--backward"], r"step must be an integer in 1\.\.19"),
    ],
)
def test_cli_explain_bad_argument_is_one_clear_line(capsys, args, message):
    assert main(["explain", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstm-ref: error: ")
    assert re.search(message, lines[0])


# -------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"step": 0},
            r"step must be an integer in 1\.\.6 \(the sequence has 6 time steps\); got 0",
        ),
        ({"step": 7}, r"step must be an integer in 1\.\.6 .*; got 7"),
        ({"step": 2.0}, r"step must be an integer in 1\.\.6 .*; got 2\.0"),
        ({"step": True}, r"step must be an integer .*; got True"),
        ({"unit": 0}, r"unit must be an integer in 1\.\.7 \(layer 'lstm' has 7 hidden units\)"),
        ({"unit": 8}, r"unit must be an integer in 1\.\.7 .*; got 8"),
        ({"unit": "3"}, r"unit must be an integer in 1\.\.7 .*; got '3'"),
        ({"layer": "fc"}, r"'fc' is a Fully Connected layer, not an LSTM; LSTM layers: \['lstm'\]"),
        ({"layer": "nope"}, r"no part named 'nope'; the recurrent parts: \['lstm'\]"),
    ],
)
def test_bad_arguments_raise_clear_input_errors(small, kwargs, message):
    net, x = small
    args = {"step": 2, "unit": 3, **kwargs}
    with pytest.raises(InputError, match=message):
        explain_step(net, x, **args)
    with pytest.raises(InputError, match=message):
        explain_backward(net, x, "class0", **args)


def test_bad_network_raises(small):
    _, x = small
    with pytest.raises(InputTypeError, match="net must be a lstm_ref Network; got dict"):
        explain_step({}, x, 1, 1)


def test_numpy_integers_are_accepted(small):
    net, x = small
    assert explain_step(net, x, np.int64(2), np.int32(3)) == explain_step(net, x, 2, 3)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros(5), r"x must be one sequence, a 2-D array \(T, C\); got shape \(5,\)"),
        (np.zeros((2, 3, 5)), r"got shape \(2, 3, 5\)"),
        ([[0.0] * 5] * 3, r"got shape \(3, 5\)"),
        (np.zeros((4, 6)), r"expected shape \(T, 5\); got \(4, 6\)"),
    ],
)
def test_bad_sequence_raises(small, x, message):
    net, _ = small
    with pytest.raises(InputError, match=message):
        explain_step(net, x, 1, 1)


@pytest.mark.parametrize("label", ["class9", 1, None])
def test_bad_label_raises(small, label):
    net, x = small
    with pytest.raises(InputError, match=r"label must be one of the class names \['class0'"):
        explain_backward(net, x, label, 1, 1)


def test_backward_needs_a_softmax_classifier(rng):
    layers = [
        SequenceInput(C),
        LSTM(random_lstm_params(rng, C, H), output_mode="last"),
        FullyConnected(rng.normal(size=(K, H)), rng.normal(size=K)),
    ]
    net, x = Network(layers, class_names=["a", "b", "c", "d"]), rng.normal(size=(4, C))
    explain_step(net, x, 2, 2)  # the forward pass needs no softmax
    with pytest.raises(InputError, match="needs a network that ends in a Softmax layer"):
        explain_backward(net, x, "a", 2, 2)
    seq2seq = random_network(rng, C=C, H=H, K=K, output_mode="sequence")
    with pytest.raises(InputError, match="needs a sequence-to-label network"):
        explain_backward(seq2seq, x, "class0", 2, 2)
