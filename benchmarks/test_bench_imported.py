"""Networks lstm_ref imports, on its fast path, beside the tool that made them, in one run.

I  The bundled JapaneseVowelsNet written to ONNX (``to_onnx``) and imported (``from_onnx``)
   against the native network: one sequence (B) and the 370 test sequences (C), float32
   (onnxruntime on the same network: ``test_bench_fast.py``).
T  Models made by torch (``nn.LSTM`` + ``nn.Linear`` on the final h, weights scaled per
   gate): 2 layers, bidirectional, and with a projection (``proj_size``), imported with
   ``from_torch``: lstm_ref ``classify`` (masked) against torch's packed sequences.
K  A Keras LSTM with hard-sigmoid gates (``recurrent_activation="hard_sigmoid"``, Keras 3's
   x/6 + ½) saved as ``.keras`` and imported with ``from_keras``: the fast path against
   lstm_ref's reference path (torch and onnxruntime have no such cell).

Every entry is checked against the float64 reference of the same network before it is
timed (1e-4 in float32), as in ``test_bench_lstm.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from bench_common import ATOL
from test_bench_lstm import checked, label
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from lstm_ref.interop.onnx import from_onnx
from lstm_ref.interop.onnx_export import to_onnx
from lstm_ref.interop.torch import from_torch

F32 = "float32"
I_B = pytest.mark.benchmark(group="I ONNX-imported JapaneseVowelsNet, B, float32")
I_C = pytest.mark.benchmark(group="I ONNX-imported JapaneseVowelsNet, C, float32")


@pytest.fixture(scope="module")
def imported(nets):
    """The bundled network written to ONNX by ``to_onnx`` and read back by ``from_onnx``
    (ONNX's spellings of the activations, its gate order and its bias pair), float32."""
    return from_onnx(to_onnx(nets["float64"]), dtype=np.float32)


def reference_path(net, *args):
    """What the readable reference computes (the fast path switched off for this call)."""
    saved, net.fast_engine = net.fast_engine, lambda upto=None: None
    try:
        return net.predict(*args)
    finally:
        net.fast_engine = saved


@I_B
@pytest.mark.parametrize("which", ["native", "onnx"])
def test_i_one_sequence(benchmark, which, nets, imported, test_sequences):
    net = nets[F32] if which == "native" else imported
    label(benchmark, f"lstm_ref predict ({which} network)", "lstm_ref", which == "native")
    x = test_sequences[F32][0]
    checked(benchmark, net.predict, x, nets["float64"].predict(x.astype(np.float64)), F32)


@I_C
@pytest.mark.parametrize("which", ["native", "onnx"])
def test_i_all_sequences(benchmark, which, nets, imported, test_sequences, reference_scores):
    net = nets[F32] if which == "native" else imported
    label(benchmark, f"lstm_ref predict ({which} network)", "lstm_ref", which == "native")
    checked(benchmark, net.predict, test_sequences[F32], reference_scores, F32)


# ------------------------------------------------------------- T: models torch made
def torch_made(kind: str) -> torch.nn.Module:
    """nn.LSTM (12 → 100; 2 layers, bidirectional or proj_size 50) + nn.Linear (→ 9) on the
    final h, softmax; every gate block scaled differently, biases shifted."""
    options = {"2-layer": {"num_layers": 2}, "bidirectional": {"bidirectional": True}}
    options["projection"] = {"proj_size": 50}
    torch.manual_seed(7)
    lstm = torch.nn.LSTM(12, 100, batch_first=True, **options[kind])
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if "weight_hr" not in name:
                scale = torch.tensor([0.6, 0.9, 1.2, 0.5]).repeat_interleave(100)
                p.mul_(scale.view(-1, *([1] * (p.dim() - 1))))
            if "bias" in name:
                p.add_(torch.linspace(-0.5, 0.5, p.shape[0]))
    D = 2 if kind == "bidirectional" else 1
    fc = torch.nn.Linear(D * (50 if kind == "projection" else 100), 9)
    model = torch.nn.ModuleDict({"lstm": lstm, "fc": fc}).eval().requires_grad_(False)
    return model


def torch_packed(model: torch.nn.Module, xs: list[np.ndarray]) -> torch.Tensor:
    """Class probabilities from the packed sequences (any order of lengths)."""
    lengths = torch.tensor([len(x) for x in xs])
    padded = pad_sequence([torch.from_numpy(x) for x in xs], batch_first=True)
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    _, (h_n, _) = model["lstm"](packed)
    last = torch.cat(list(h_n[-2:]), 1) if model["lstm"].bidirectional else h_n[-1]
    return model["fc"](last).softmax(1)


@pytest.mark.parametrize("kind", ["2-layer", "bidirectional", "projection"])
@pytest.mark.parametrize("who", ["lstm_ref", "torch"])
def test_t_torch_made(benchmark, kind, who, test_sequences):
    benchmark.group = f"T torch-made {kind} LSTM, C, float32"
    model = torch_made(kind)
    want = from_torch(model.state_dict()).predict(test_sequences["float64"])
    xs = test_sequences[F32]
    if who == "torch":
        label(benchmark, "torch packed + final h + Linear + softmax", "torch")
        with torch.no_grad():
            checked(benchmark, lambda s: torch_packed(model, s), xs, want, F32)
        return
    net = from_torch(model.state_dict(), dtype=np.float32)
    assert net.fast_engine() is not None
    label(benchmark, "lstm_ref predict (masked)", "lstm_ref", True)
    checked(benchmark, net.predict, xs, want, F32)


# ------------------------------------------------------- K: a Keras hard-sigmoid LSTM
@pytest.fixture(scope="module")
def keras_net(tmp_path_factory):
    """A Keras 3 model — Input (None, 12), LSTM(100, hard_sigmoid), Dense(9, softmax) —
    saved as .keras by Keras and imported; float64 and float32."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from lstm_ref.interop.keras import from_keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((None, 12)),
            keras.layers.LSTM(100, recurrent_activation="hard_sigmoid", bias_initializer="normal"),
            keras.layers.Dense(9, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("keras") / "hard_sigmoid.keras"
    model.save(path)
    return {d: from_keras(path, dtype=d) for d in ("float64", F32)}


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # keras, torch
@pytest.mark.benchmark(group="K Keras hard-sigmoid LSTM, C, float32")
@pytest.mark.parametrize("path", ["fast", "reference"])
def test_k_keras_hard_sigmoid(benchmark, path, keras_net, test_sequences):
    want = reference_path(keras_net["float64"], test_sequences["float64"])
    net, xs = keras_net[F32], test_sequences[F32]
    label(benchmark, f"lstm_ref predict ({path} path)", "lstm_ref", path == "reference")
    assert net.fast_engine() is not None
    run = net.predict if path == "fast" else lambda s: reference_path(net, s)
    checked(benchmark, run, xs, want, F32)
    np.testing.assert_allclose(net.predict(xs), want, 0, ATOL[F32])
