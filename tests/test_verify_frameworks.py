"""verify on models as torch, torch.onnx.export and Keras write them: the semantics the
framework ran taken from the file (a Keras model without Masking computes over the
padding), a logits head checked against a state_dict's classifier (and the reverse), the
framework's own obstacles (a fixed input shape, a file Keras cannot reload) as one line,
and a strict JSON report when a reference value is exactly 0."""

from __future__ import annotations

import json
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import numpy as np
import pytest
import torch
from torch_models import distinct_gates, packed

from lstm_ref.cli import main
from lstm_ref.errors import InputError
from lstm_ref.verify import generate_inputs, verify
from lstm_ref.verify.report import dumps

C, H, K = 3, 5, 4
INPUTS = generate_inputs(C, seed=7, batch=4, length_range=(3, 7))  # lengths mixed
KERAS_WARNING = "ignore:__array__ implementation:DeprecationWarning"


class Logits(torch.nn.Module):
    """An LSTM and a linear head on h_n returning the logits: no softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(C, H, batch_first=True)
        self.fc = torch.nn.Linear(H, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(x)
        return self.fc(h_n[-1])


def export(model: torch.nn.Module, path, dynamic: bool = True):
    """torch.onnx.export as users call it: batch and steps dynamic, or fixed at (2, 5)."""
    with warnings.catch_warnings():  # the exporter's notes on batch_first and dynamic axes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(2, 5, C),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["X"],
            output_names=["Y"],
            dynamic_axes={"X": {0: "N", 1: "T"}, "Y": {0: "N"}} if dynamic else None,
        )
    return path


@pytest.fixture(scope="module")
def logits(tmp_path_factory):
    """The logits model as a state_dict and as its ONNX export, dynamic and fixed."""
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("logits")
    model = distinct_gates(Logits(), seed=5).eval()
    torch.save(model.state_dict(), folder / "model.pt")
    export(model, folder / "dynamic.onnx")
    export(model, folder / "fixed.onnx", dynamic=False)
    return folder


def keras_model(path, *, masking=True, softmax=False, seed=3):
    """A Keras LSTM → Dense classifier, every weight random (biases non-zero), saved."""
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [
            keras.Input((None, C)),
            *([keras.layers.Masking(0.0)] if masking else []),
            keras.layers.LSTM(H),
            keras.layers.Dense(K, activation="softmax" if softmax else None),
        ]
    )
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) * 0.6 for w in model.get_weights()])
    model.save(path)
    return path


# ------------------------------------------------------------------- the semantics it ran
@pytest.mark.filterwarnings(KERAS_WARNING)
def test_keras_without_masking_matches_itself_over_the_padding(tmp_path):
    path = keras_model(tmp_path / "nomask.keras", masking=False)
    report = verify(path, INPUTS, run=True)
    assert report.verdict == "match" and report.semantics == "matlab"
    assert main(["verify", str(path), "--run-framework", "--length-range", "3-7"]) == 0


@pytest.mark.filterwarnings(KERAS_WARNING)
def test_a_port_that_dropped_masking_is_not_passed(tmp_path, capsys):
    """The reference's padding semantics is the model's (Masking), not the port's: the same
    weights without Masking compute over the padding, named as that cause, exit 1."""
    reference = keras_model(tmp_path / "masked.keras")
    port = keras_model(tmp_path / "nomask.keras", masking=False)
    report = verify(reference, INPUTS, run=port)
    assert report.semantics == "keras" and not report.passed
    assert [f.key for f in report.causes] == ["padding:matlab"]
    assert main(["verify", str(reference), "--run-framework", str(port)]) == 1
    assert "[padding:matlab]" in capsys.readouterr().out
    explicit = verify(reference, INPUTS, run=port, semantics="matlab")  # --padding overrides
    assert explicit.verdict == "match"


# ------------------------------------------------------------------- logits or probabilities
def test_logits_port_against_a_state_dicts_classifier_names_the_softmax(logits):
    """The .pt import appends a softmax the torch model lacks; its export returns logits."""
    full = generate_inputs(C, seed=7, length_range=(6, 6))  # no padding: ONNX has no lengths
    report = verify(logits / "model.pt", full, run=logits / "dynamic.onnx")
    assert report.verdict == "cause"
    assert [f.key for f in report.causes] == ["head:softmax"]
    assert report.causes[0].max_abs < 1e-6


@pytest.mark.filterwarnings(KERAS_WARNING)
def test_probabilities_port_against_a_logits_reference_names_the_softmax(tmp_path):
    """The same Keras weights, the reference's head linear, the port's with softmax."""
    reference = keras_model(tmp_path / "logits.keras")
    port = keras_model(tmp_path / "probs.keras", softmax=True)
    assert verify(reference, INPUTS, run=True).verdict == "match"
    report = verify(reference, INPUTS, run=port)
    assert [f.key for f in report.causes] == ["head:no-softmax"]
    # and the other way round: the reference's softmax, the port's logits
    assert [f.key for f in verify(port, INPUTS, run=reference).causes] == ["head:softmax"]


# ------------------------------------------------------------------- the model options
def test_model_options_reach_the_model_and_the_port(tmp_path, capsys):
    """A checkpoint holding more than the LSTM and its head, read with --prefix and --head
    as MODEL and as the port run in torch; a bare nn.LSTM's ONNX export, its outputs Y,
    Y_h, Y_c chosen with --graph-output."""
    pytest.importorskip("onnxruntime")
    modules = torch.nn.ModuleDict(
        {
            "embed": torch.nn.Embedding(10, C),
            "rnn": distinct_gates(torch.nn.LSTM(C, H, batch_first=True), seed=11),
            "fc": distinct_gates(torch.nn.Linear(H, K), seed=12),
        }
    )
    tagger = tmp_path / "tagger.pt"
    torch.save({"model": modules.state_dict(), "epoch": 3}, tagger)
    picked = ["--prefix", "rnn", "--head", "fc"]
    assert main(["verify", str(tagger), "--run-framework", *picked]) == 0
    assert main(["convert", str(tagger), str(tmp_path / "tagger.npz"), *picked]) == 0
    capsys.readouterr()
    port = ["verify", str(tmp_path / "tagger.npz"), "--run-framework", str(tagger), *picked]
    assert main(port) == 0
    assert main([*port, "--no-softmax"]) == 1  # the port run returning logits
    assert "[head:softmax]" in capsys.readouterr().out
    np.savez(tmp_path / "out.npz", output=np.zeros((4, K)))
    observed = ["verify", str(tmp_path / "tagger.npz"), "--observed", str(tmp_path / "out.npz")]
    assert main([*observed, *picked]) == 2  # no PyTorch file to take them
    assert "applies to none of" in capsys.readouterr().err

    bare = export(modules["rnn"], tmp_path / "rnn.onnx")  # outputs Y, Y_h, Y_c
    assert main(["verify", str(bare), "--run-framework"]) == 2
    assert "choose one" in capsys.readouterr().err
    names = [o.name for o in pytest.importorskip("onnx").load(bare).graph.output]
    for name in names[:2]:  # Y (batch first, as the module), Y_h
        assert main(["verify", str(bare), "--run-framework", "--graph-output", name]) == 0


# ------------------------------------------------------------------- a declared precision
def test_float16_rounding_passes_when_the_precision_is_declared(tmp_path, capsys):
    """A torch port computing in float16: only its rounding apart. Declared with
    --precision float16 it passes (exit 0); not declared, it fails saying what to pass."""
    lstm = distinct_gates(torch.nn.LSTM(C, H, batch_first=True), seed=16).eval()
    fc = distinct_gates(torch.nn.Linear(H, K), seed=17).eval()
    state = {f"lstm.{k}": v for k, v in lstm.state_dict().items()}
    torch.save({**state, **{f"fc.{k}": v for k, v in fc.state_dict().items()}}, tmp_path / "m.pt")
    with torch.no_grad():
        _, (h_n, c_n) = lstm.half()(packed(INPUTS.sequences, torch.float16))
        probs = fc.half()(h_n[-1]).float().softmax(-1).half()
    outputs = {"h_n": h_n.numpy(), "c_n": c_n.numpy(), "model": probs.numpy()}  # float16
    np.savez(tmp_path / "out.npz", **outputs)
    np.savez(tmp_path / "in.npz", x=INPUTS.x, lengths=INPUTS.lengths)
    command = ["verify", str(tmp_path / "m.pt"), "--inputs", str(tmp_path / "in.npz")]
    command += ["--observed", str(tmp_path / "out.npz"), "--layout", "torch-batch-first"]
    assert main([*command, "--json", str(tmp_path / "r.json")]) == 1
    assert "pass --precision float16 if the port computes in float16" in capsys.readouterr().out
    assert main([*command, "--precision", "float16", "--json", str(tmp_path / "r.json")]) == 0
    assert "PASSED within float16 rounding" in capsys.readouterr().out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "rounding" and data["passed"] and data["precision_declared"]
    assert not any(c["passed"] for c in data["comparisons"])


# ------------------------------------------------------------------- a graph's state inputs
class StateIn(torch.nn.Module):
    """A classifier taking its (h0, c0) as inputs, exported so: graph inputs x, h0, c0."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = distinct_gates(torch.nn.LSTM(C, H, batch_first=True), seed=13)
        self.fc = distinct_gates(torch.nn.Linear(H, K), seed=14)

    def forward(self, x, h0, c0):
        return self.fc(self.lstm(x, (h0, c0))[1][0][-1]).softmax(-1)


def test_an_onnx_graph_with_state_inputs_is_fed_the_initial_state(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    model = StateIn().eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    graph = tmp_path / "m_h0.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(2, 5, C), torch.zeros(1, 2, H), torch.zeros(1, 2, H)),
            str(graph),
            dynamo=False,
            input_names=["x", "h0", "c0"],
            dynamic_axes={"x": {0: "N", 1: "T"}, "h0": {1: "N"}, "c0": {1: "N"}},
        )
    rng = np.random.default_rng(15)
    h_0, c_0 = (rng.normal(size=(1, len(INPUTS.x), H)) * 0.5 for _ in range(2))
    np.savez(tmp_path / "s.npz", h_0=h_0, c_0=c_0)
    state = ["--initial-state", str(tmp_path / "s.npz"), "--layout", "torch"]
    assert main(["verify", str(graph), "--run-framework", *state, "--length-range", "3-7"]) == 0
    full = ["--length-range", "5-5"]  # no padding: the export has no sequence_lens
    assert (
        main(["verify", str(tmp_path / "m.pt"), "--run-framework", str(graph), *state, *full]) == 0
    )
    capsys.readouterr()
    by_graph_names = {"h0": h_0, "c0": c_0}  # the graph's own input names, any layout
    assert verify(graph, INPUTS, run=True, initial_state=by_graph_names).passed
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    zeros = np.zeros((1, len(INPUTS.x), H), np.float32)
    (dropped,) = session.run(None, {"x": INPUTS.x.astype(np.float32), "h0": zeros, "c0": zeros})
    report = verify(graph, INPUTS, observed={"output": dropped}, initial_state=by_graph_names)
    assert [f.key for f in report.causes] == ["state:zeros"]


# ------------------------------------------------------------------- the framework's obstacles
def test_a_fixed_shape_onnx_export_is_one_line_naming_its_shape(logits, capsys):
    with pytest.raises(InputError, match=r"fixed shape \[2, 5, 3\] \(a batch of 2 and 5 steps\)"):
        verify(logits / "model.pt", INPUTS, run=logits / "fixed.onnx")
    command = ["verify", str(logits / "model.pt"), "--run-framework", str(logits / "fixed.onnx")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--batch 2 --length-range 5-5" in err
    fitting = generate_inputs(C, seed=7, batch=2, length_range=(5, 5))
    report = verify(logits / "model.pt", fitting, run=logits / "fixed.onnx")
    assert [f.key for f in report.causes] == ["head:softmax"]  # it runs: its logits


@pytest.mark.filterwarnings(KERAS_WARNING)
def test_a_keras_model_of_fixed_length_is_one_line_naming_its_steps(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    x = keras.Input((7, C))  # a functional model checks its Input's shape
    model = keras.Model(x, keras.layers.Dense(K)(keras.layers.LSTM(H)(x)))
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) * 0.6 for w in model.get_weights()])
    path = tmp_path / "seven.keras"
    model.save(path)
    eight = generate_inputs(C, seed=7, batch=4, length_range=(3, 8))
    assert eight.x.shape[1] == 8
    with pytest.raises(InputError, match=r"fixed shape \[None, 7, 3\] \(7 steps\)"):
        verify(path, eight, run=True)
    assert main(["verify", str(path), "--run-framework", "--length-range", "3-8"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--length-range 7-7" in err
    assert verify(path, INPUTS, run=True).verdict == "match"  # padded to 7 steps
    called = keras.Sequential([keras.layers.LSTM(H), keras.layers.Dense(K)])
    called(np.zeros((1, 4, C), np.float32))  # built by a call: it declares (1, 4, C) ...
    called.save(tmp_path / "called.keras")
    assert verify(tmp_path / "called.keras", eight, run=True).verdict == "match"  # ... runs any


@pytest.mark.filterwarnings(KERAS_WARNING)
@pytest.mark.filterwarnings("ignore::UserWarning")  # Keras's note that .h5 is legacy
def test_an_h5_keras_cannot_reload_is_one_line(tmp_path, capsys):
    """A functional Masking → Bidirectional model saved as .h5: Keras 3 writes the mask's
    NotEqual op, then cannot deserialise it."""
    keras = pytest.importorskip("keras")
    x = keras.Input((None, C))
    y = keras.layers.Bidirectional(keras.layers.LSTM(H), merge_mode="sum")(
        keras.layers.Masking(0.0)(x)
    )
    model = keras.Model(x, keras.layers.Dense(K, activation="softmax")(y))
    model.save(tmp_path / "bi.keras")
    model.save(tmp_path / "bi.h5")
    try:
        keras.models.load_model(tmp_path / "bi.h5", compile=False)
    except ValueError:
        reloads = False
    else:
        reloads = True
    command = ["verify", str(tmp_path / "bi.keras"), "--run-framework", str(tmp_path / "bi.h5")]
    if reloads:  # a Keras that reads it back: the port matches
        assert main(command) == 0
        return
    with pytest.raises(InputError, match=r"Keras cannot load this file back \(Unknown layer"):
        verify(tmp_path / "bi.keras", INPUTS, run=tmp_path / "bi.h5")
    assert main(command) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ------------------------------------------------------------------- strict JSON
def test_an_exact_zero_reference_writes_null_not_infinity(tmp_path):
    """An LSTM with every weight 0 outputs exactly 0 (g = tanh 0): a port that does not
    has an infinite relative error, written as null."""
    lstm = torch.nn.LSTM(C, H, batch_first=True)
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
    torch.save(lstm.state_dict(), tmp_path / "zero.pt")
    steps = verify(tmp_path / "zero.pt", INPUTS, run=True).arrays["torch"]["output"]
    assert not steps.any()
    steps[0, 1, 2] = 0.5
    report = verify(tmp_path / "zero.pt", INPUTS, observed={"output": steps})
    assert report.comparisons[0].max_rel == np.inf

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    written = json.loads(dumps(report), parse_constant=refuse)
    assert written["comparisons"][0]["max_rel"] is None
