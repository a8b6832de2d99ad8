"""verify on a two-layer nn.LSTM whose port holds a converter's bug in every layer or in the
first layer alone: diagnosed whichever outputs are observed — more outputs never lose it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_models import distinct_gates, packed

from lstm_ref.lstm import reorder_gates
from lstm_ref.verify import generate_inputs, verify
from lstm_ref.verify.report import text

C, H, K = 3, 4, 3
INPUTS = generate_inputs(C, seed=5, batch=4, length_range=(3, 6))
N = len(INPUTS.x)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    lstm = distinct_gates(torch.nn.LSTM(C, H, 2, batch_first=True), seed=7).eval()
    head = distinct_gates(torch.nn.Linear(H, K), seed=8).eval()
    path = tmp_path_factory.mktemp("layers") / "two.pt"
    state = {f"lstm.{k}": v for k, v in lstm.state_dict().items()}
    torch.save({**state, **{f"fc.{k}": v for k, v in head.state_dict().items()}}, path)
    g = torch.Generator().manual_seed(9)
    h_0, c_0 = (torch.randn(2, N, H, generator=g) * 0.5 for _ in range(2))
    return lstm, head, path, h_0, c_0


def planted(weights: dict, bug: str) -> dict:
    """One layer's tensors with ``bug``: ONNX's blocks read as i,f,g,o, or b_ih + b_hh
    folded into b_ih while b_hh kept its own (b_hh counted twice)."""
    if bug == "gate-order":
        return {
            k: torch.from_numpy(reorder_gates(v.numpy(), "iofg", inverse=True))
            for k, v in weights.items()
        }
    return {
        k: v + weights[k.replace("ih", "hh")] if "bias_ih" in k else v for k, v in weights.items()
    }


CAUSES = {"gate-order": "gate-order:iofg", "bias": "bias:bias_hh-added-twice"}


@pytest.mark.parametrize("bug", list(CAUSES))
@pytest.mark.parametrize("where", ["every layer", "layer 0"])
@pytest.mark.parametrize("seen", [("h_n", "c_n", "model"), ("model",)])
def test_a_bug_in_every_layer_or_one_is_found_whatever_is_observed(model, bug, where, seen):
    lstm, head, path, h_0, c_0 = model
    weights = dict(lstm.state_dict())
    layers = ["_l0", "_l1"] if where == "every layer" else ["_l0"]
    for suffix in layers:
        weights.update(planted({k: v for k, v in weights.items() if k.endswith(suffix)}, bug))
    port = torch.nn.LSTM(C, H, 2, batch_first=True).eval()
    port.load_state_dict(weights)
    with torch.no_grad():
        _, (h_n, c_n) = port(packed(INPUTS.sequences, torch.float32), (h_0, c_0))
        probs = head(h_n[-1]).softmax(1)
    outputs = {"h_n": h_n.numpy(), "c_n": c_n.numpy(), "model": probs.numpy()}
    state = {"h_0": h_0.numpy(), "c_0": c_0.numpy()}
    report = verify(
        path,
        INPUTS,
        observed={k: outputs[k] for k in seen},
        layout="torch-batch-first",
        initial_state=state,
        pairs=False,
    )
    key = CAUSES[bug] + ("" if where == "every layer" else "@lstm.l0")
    assert report.verdict == "cause" and [f.key for f in report.causes] == [key]
    assert ("in layer 'lstm.l0' only" in text(report)) == (where == "layer 0")
    assert np.isfinite(report.causes[0].max_abs)
