"""The false-diagnosis rate of verify over random correct ports the other frameworks run:
torch models exported by torch.onnx.export and run by onnxruntime, and Keras models saved
by Keras and run by Keras — each through verify's ``run=``, so the observed outputs are the
framework's own, under the padding semantics that run computes."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import numpy as np
import pytest
import torch
from torch_models import Classifier, distinct_gates

from lstm_ref.verify import Inputs, verify

C = 3
KERAS_WARNING = "ignore:__array__ implementation:DeprecationWarning"


def random_inputs(rng: np.random.Generator) -> Inputs:
    """1–5 sequences of 3–7 steps, mixed lengths (the first full), zero past each length."""
    n, steps = int(rng.integers(1, 6)), int(rng.integers(3, 8))
    lengths = rng.integers(1, steps + 1, size=n)
    lengths[0] = steps
    x = rng.normal(size=(n, steps, C)) * (np.arange(steps)[None, :, None] < lengths[:, None, None])
    return Inputs(x, lengths, "random")


def tally(verdicts: list[str]) -> dict[str, int]:
    return {v: verdicts.count(v) for v in sorted(set(verdicts))}


def test_no_false_diagnosis_over_correct_onnx_exports(tmp_path):
    """80 random torch classifiers — one or two layers, one or two directions, time or batch
    first, every gate different — exported by torch.onnx.export (TorchScript, no
    sequence_lens, so onnxruntime computes over the padding from zeros), the reference their
    state_dict (told the padding is data: packed, it would name the lost lengths) or the
    exported graph itself: each 'match' (tolerance 1e-5) or 'rounding' (tolerance 0), never
    a cause."""
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(21)
    verdicts, semantics, references = [], set(), []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: torch's thread pool only waits on a busy machine
    for k in range(80):
        layers, bidirectional, batch_first = int(rng.integers(1, 3)), bool(k % 2), bool(k % 3)
        width, classes = int(rng.integers(2, 6)), int(rng.integers(2, 5))
        model = Classifier(C, width, classes, num_layers=layers, bidirectional=bidirectional)
        distinct_gates(model, seed=k).eval()
        model.lstm.batch_first = batch_first
        torch.save(model.state_dict(), tmp_path / f"{k}.pt")
        axes = {0: "N", 1: "T"} if batch_first else {0: "T", 1: "N"}
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated: users use it
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.randn(2, 4, C),),
                str(tmp_path / f"{k}.onnx"),
                dynamo=False,
                opset_version=17,
                input_names=["X"],
                output_names=["P"],
                dynamic_axes={"X": axes, "P": {0: "N"}},
            )
        reference = tmp_path / f"{k}{'.onnx' if rng.integers(2) else '.pt'}"
        references.append(reference.suffix)
        tolerance = 1e-5 if k % 4 else 0.0
        report = verify(
            reference,
            random_inputs(rng),
            run=tmp_path / f"{k}.onnx",
            semantics="matlab" if reference.suffix == ".pt" else None,  # the graph's own
            atol=tolerance,
            rtol=tolerance,
        )
        verdicts.append(report.verdict)
        semantics.add(report.semantics)
    torch.set_num_threads(threads)
    counts = tally(verdicts)
    assert set(counts) <= {"match", "rounding"}, counts  # the false-diagnosis rate is 0
    assert counts.get("rounding", 0) >= 10 and counts["match"] >= 50
    assert semantics == {"matlab"}
    assert min(references.count(".onnx"), references.count(".pt")) >= 30


@pytest.mark.filterwarnings(KERAS_WARNING)
def test_no_false_diagnosis_over_correct_keras_models(tmp_path):
    """40 random Keras Sequentials — with and without Masking, one or two LSTM layers, the
    last one Bidirectional or not, a Dense head with or without softmax, every weight random
    — saved as .keras and run by Keras (from its own zero state), the reference the same
    file: each 'match' (tolerance 1e-5) or 'rounding' (tolerance 0), never a cause."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(22)
    verdicts, semantics, bidirectional = [], [], 0
    for k in range(40):
        layers, masking, width = int(rng.integers(1, 3)), bool(k % 2), int(rng.integers(2, 6))
        stack = [keras.layers.LSTM(width, return_sequences=i < layers - 1) for i in range(layers)]
        if rng.integers(2):
            stack[-1] = keras.layers.Bidirectional(stack[-1])
            bidirectional += 1
        model = keras.Sequential(
            [
                keras.Input((None, C)),
                *([keras.layers.Masking(0.0)] if masking else []),
                *stack,
                keras.layers.Dense(3, activation="softmax" if k % 3 else None),
            ]
        )
        weights = model.get_weights()
        model.set_weights([rng.normal(size=w.shape).astype(w.dtype) * 0.6 for w in weights])
        model.save(tmp_path / f"{k}.keras")
        tolerance = 1e-5 if k % 4 else 0.0
        report = verify(
            tmp_path / f"{k}.keras", random_inputs(rng), run=True, atol=tolerance, rtol=tolerance
        )
        verdicts.append(report.verdict)
        semantics.append(report.semantics)
    counts = tally(verdicts)
    assert set(counts) <= {"match", "rounding"}, counts  # the false-diagnosis rate is 0
    assert counts.get("rounding", 0) >= 5 and counts["match"] >= 20
    assert semantics.count("keras") == 20 == semantics.count("matlab") and 15 <= bidirectional <= 25
