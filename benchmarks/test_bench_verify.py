"""verify's time on a 3-layer bidirectional LSTM (12 → 3 × BiLSTM 32 → 9, like
JapaneseVowelsNet's sizes), 8 sequences of lengths 7-19, from a non-zero initial state,
observed outputs computed by torch:

V1  a correct port: the comparison only ("match");
V2  one bug (the second layer's gate blocks in ONNX's order): every single cause tried;
V3  two bugs at once (the padded batch run unpacked, and the head reading ``output[:, -1]``):
    every single cause, then the pair search — what a user waits for at worst.

Each result is checked (verdict and causes) before it is timed and after, as in
``test_bench_lstm.py``. In quick mode (CI) each runs once, checked.
"""

from __future__ import annotations

import pytest
import torch
from test_bench_lstm import label

from lstm_ref.lstm import reorder_gates
from lstm_ref.verify import generate_inputs, verify

C, H, K, LAYERS = 12, 32, 9, 3
INPUTS = generate_inputs(C, seed=1, batch=8, length_range=(7, 19))


def bidirectional_classifier() -> tuple[torch.nn.LSTM, torch.nn.Linear]:
    """The LSTM (every gate block scaled apart, non-zero biases) and a head on h_n."""
    g = torch.Generator().manual_seed(0)
    lstm = torch.nn.LSTM(C, H, LAYERS, batch_first=True, bidirectional=True).eval()
    scale = torch.tensor([0.6, 0.9, 1.2, 0.5]).repeat_interleave(H)
    with torch.no_grad():
        for p in lstm.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 * scale.view(-1, *[1] * (p.dim() - 1)))
    head = torch.nn.Linear(2 * H, K).eval()
    return lstm, head


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The model's file, its torch modules, and a non-zero (h_0, c_0)."""
    lstm, head = bidirectional_classifier()
    path = tmp_path_factory.mktemp("verify") / "model.pt"
    state = {f"lstm.{k}": v for k, v in lstm.state_dict().items()}
    torch.save({**state, **{f"fc.{k}": v for k, v in head.state_dict().items()}}, path)
    g = torch.Generator().manual_seed(1)
    start = tuple(torch.randn(2 * LAYERS, len(INPUTS.x), H, generator=g) * 0.5 for _ in "hc")
    return path, lstm, head, start


def observed(lstm, head, start, reordered_layer=None, unpacked=False, last_step=False):
    """torch's probabilities and h_n for the port with the bugs asked for."""
    port = torch.nn.LSTM(C, H, LAYERS, batch_first=True, bidirectional=True).eval()
    weights = dict(lstm.state_dict())
    if reordered_layer is not None:
        for k in [k for k in weights if f"_l{reordered_layer}" in k]:
            weights[k] = torch.from_numpy(reorder_gates(weights[k].numpy(), "iofg", inverse=True))
    port.load_state_dict(weights)
    x = torch.from_numpy(INPUTS.x).float()
    with torch.no_grad():
        if unpacked:
            output, (h_n, _) = port(x, start)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                x, torch.as_tensor(INPUTS.lengths), batch_first=True, enforce_sorted=False
            )
            out, (h_n, _) = port(packed, start)
            output, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
        last = output[:, -1] if last_step else torch.cat([h_n[-2], h_n[-1]], dim=1)
        probs = head(last).softmax(dim=1)
    return {"model": probs.numpy(), "h_n": h_n.numpy()}


CASES = {  # case: (the port's bugs, the causes verify must name)
    "V1 a correct port": ({}, []),
    "V2 one bug": ({"reordered_layer": 1}, ["gate-order:iofg@lstm.l1"]),
    "V3 two bugs at once": (
        {"unpacked": True, "last_step": True},
        ["padding:matlab+bilstm-head:last-step"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_verify_3_layer_bidirectional(benchmark, model, case):
    path, lstm, head, start = model
    bugs, named = CASES[case]
    label(benchmark, f"verify: {case}", "lstm_ref", True)
    benchmark.group = f"verify, 3-layer BiLSTM {H}: {case}"
    seen = observed(lstm, head, start, **bugs)
    state = {"h_0": start[0].numpy(), "c_0": start[1].numpy()}

    def run():
        return verify(path, INPUTS, observed=seen, layout="torch-batch-first", initial_state=state)

    def check(report):
        assert [f.key for f in report.causes] == named
        assert report.verdict == ("cause" if named else "match")
        benchmark.extra_info["hypotheses"] = report.tried

    check(run())
    check(benchmark(run))
