"""verify: models made by torch, onnxruntime and Keras with one planted porting bug each; the
observed outputs come from the framework running the broken model, and verify must name the
bug — a correct model must match with no diagnosis, float32 noise must be called rounding."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
import warnings
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import numpy as np
import pytest
import torch
from torch_models import Classifier, EveryLayerHead, distinct_gates, packed

from lstm_ref import Network
from lstm_ref.cli import main
from lstm_ref.errors import InputError
from lstm_ref.interop import load_model, save_model
from lstm_ref.layers import LSTM, SequenceInput
from lstm_ref.lstm import GATE_NAMES, LSTMParams, gate_rows, reorder_gates
from lstm_ref.verify import generate_inputs, verify
from lstm_ref.verify.causes import causes
from lstm_ref.verify.compare import compare
from lstm_ref.verify.report import dumps, text

C, H, K = 3, 5, 4
INPUTS = generate_inputs(C, seed=7, batch=4, length_range=(3, 8))  # lengths mixed


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("verify")


@pytest.fixture(scope="module")
def state():
    """A float32 torch classifier, every gate block scaled differently, non-zero biases."""
    return distinct_gates(Classifier(C, H, K), seed=3).eval().state_dict()


@pytest.fixture(scope="module")
def reference(folder, state):
    torch.save(state, folder / "ref.pt")
    return folder / "ref.pt"


def port(folder, state, name, change):
    """A copy of the state_dict with ``change`` applied to its LSTM tensors, saved."""
    broken = {k: v.clone() for k, v in state.items()}
    for key in [k for k in broken if k.startswith("lstm.")]:
        broken[key] = torch.from_numpy(np.ascontiguousarray(change(key, broken[key].numpy())))
    torch.save(broken, folder / f"{name}.pt")
    return folder / f"{name}.pt"


def blocks_transposed(a):
    return np.concatenate([a[gate_rows(g, H)].T for g in GATE_NAMES])


def forget_plus_one(key, a):
    if "bias_ih" in key:
        a = a.copy()
        a[gate_rows("f", H)] += 1
    return a


PLANTED = {  # port name: (how the LSTM tensors are broken, the cause verify must name)
    "onnx-read-as-ifgo": (lambda k, a: reorder_gates(a, "iofg", inverse=True), "gate-order:iofg"),
    "onnx-reorder-inverted": (lambda k, a: reorder_gates(a, "iofg"), "gate-order:igof"),
    "tf1-ijfo": (lambda k, a: reorder_gates(a, "igfo", inverse=True), "gate-order:igfo"),
    "bias-dropped": (lambda k, a: 0 * a if "bias" in k else a, "bias:dropped"),
    "bias-hh-dropped": (lambda k, a: 0 * a if "bias_hh" in k else a, "bias:bias_ih-only"),
    "forget-bias": (forget_plus_one, "forget-bias:+1"),
    "kernels-reshaped": (
        lambda k, a: a.T.reshape(a.shape) if "weight" in k else a,
        "reshaped-kernels",
    ),
    "recurrent-transposed": (
        lambda k, a: blocks_transposed(a) if "weight_hh" in k else a,
        "transposed:R",
    ),
}


def test_the_known_causes():
    keys = [c.key for c in causes()]
    orders = [k for k in keys if k.startswith("gate-order:")]
    assert len(orders) == len(set(orders)) == 23 and "gate-order:ifgo" not in orders
    assert orders[:4] == [
        "gate-order:iofg",
        "gate-order:igof",
        "gate-order:igfo",
        "gate-order:ifog",
    ]
    assert len(keys) == len(set(keys))


def test_an_element_fails_only_beyond_both_tolerances():
    ref = np.array([[1.0, 100.0, 0.0, 1.0]])
    obs = np.array([[1.5, 100.5, 1e-9, np.nan]])
    c = compare("y", obs, ref, np.ones(1, bool), atol=1e-3, rtol=1e-2)
    # 1.5: abs 0.5 and rel 0.5 fail; 100.5: rel 0.005 passes; 1e-9: abs passes; NaN fails
    assert c.failed == 2 and c.compared == 4 and np.isnan(c.max_abs)
    c = compare("y", obs[:, :3], ref[:, :3], np.ones(1, bool), atol=1e-3, rtol=1e-2)
    assert c.max_abs == 0.5 and np.isinf(c.max_rel) and c.failed == 1  # 1e-9 against 0
    assert sum(n for *_, n in c.histogram) == 3 and c.histogram[-1][1] == 1.0


def test_per_layer_outputs_are_compared_too(folder, state, reference):
    """The port's h_n beside its probabilities: both outputs, one cause for both."""
    change, cause = PLANTED["tf1-ijfo"]
    path = port(folder, state, "tf1-ijfo", change)
    model = Classifier(C, H, K)
    model.load_state_dict(torch.load(path))
    inputs = packed(INPUTS.sequences, torch.float32)
    with torch.no_grad():
        _, (h_n, _) = model.lstm(inputs)
        probs = model.fc(h_n[-1]).softmax(dim=1)
    observed = {"output": probs.numpy(), "lstm.l0": h_n[-1].numpy()}
    report = verify(reference, INPUTS, observed=observed)
    assert [c.name for c in report.comparisons] == ["output", "lstm.l0"]
    assert not any(c.passed for c in report.comparisons)
    assert [f.key for f in report.causes] == [cause]


def test_correct_torch_model_matches(reference):
    report = verify(reference, INPUTS, run=True)
    assert report.passed and report.verdict == "match"
    assert report.causes == [] and report.divergence is None
    assert report.comparisons[0].observed_dtype == "float32"


def test_float32_noise_is_rounding_not_a_bug(reference):
    report = verify(reference, INPUTS, run=True, atol=1e-12, rtol=1e-12)
    assert not report.passed and report.verdict == "rounding"
    assert report.causes == [] and 0 < report.comparisons[0].max_abs < 1e-6
    assert "float32 rounding" in text(report)


@pytest.mark.parametrize("name", PLANTED)
def test_planted_torch_bug_is_named(folder, state, reference, name):
    change, cause = PLANTED[name]
    report = verify(reference, INPUTS, run=port(folder, state, name, change))
    assert not report.passed and report.verdict == "cause"
    assert [f.key for f in report.causes] == [cause]
    assert report.divergence is not None and report.divergence.gates is not None


def test_doubled_bias_from_a_one_bias_model(folder, state):
    """The reference holds one bias b (lstm_ref's file); the port wrote b to both b_ih, b_hh."""
    torch.save(state, folder / "one.pt")
    net = load_model(folder / "one.pt")
    save_model(net, folder / "one.npz")
    b = net.layers[1].params.b.astype(np.float32)
    report = verify(
        folder / "one.npz",
        INPUTS,
        run=port(folder, state, "twice", lambda k, a: b if "bias" in k else a),
    )
    assert [f.key for f in report.causes] == ["bias:doubled"]


def test_square_input_blocks_transposed(folder):
    """With C = H each input gate block is square: the port transposed them."""
    lstm = distinct_gates(torch.nn.LSTM(H, H), seed=8).eval()
    torch.save(lstm.state_dict(), folder / "square.pt")
    broken = {k: v.clone() for k, v in lstm.state_dict().items()}
    broken["weight_ih_l0"] = torch.from_numpy(blocks_transposed(broken["weight_ih_l0"].numpy()))
    torch.save(broken, folder / "square-port.pt")
    inputs = generate_inputs(H, seed=2)
    report = verify(folder / "square.pt", inputs, run=folder / "square-port.pt")
    assert [f.key for f in report.causes] == ["transposed:W"]
    assert report.divergence is not None and report.divergence.step == 0  # at the first step


def torch_on_padding(state, x):
    """The torch classifier run on a padded batch without packing: padding is data."""
    model = Classifier(C, H, K)
    model.load_state_dict(state)
    with torch.no_grad():
        return model(torch.from_numpy(x).float()).numpy()


def test_padding_as_data_from_supplied_outputs(state, reference):
    observed = {"output": torch_on_padding(state, INPUTS.x)}
    report = verify(reference, INPUTS, observed=observed)
    assert [f.key for f in report.causes] == ["padding:matlab"]


def test_left_padding_from_supplied_outputs(state, reference):
    left = np.zeros_like(INPUTS.x)
    for b, seq in enumerate(INPUTS.sequences):
        left[b, len(left[b]) - len(seq) :] = seq
    report = verify(reference, INPUTS, observed={"output": torch_on_padding(state, left)})
    assert [f.key for f in report.causes] == ["padding:matlab-left"]


def test_reverse_outputs_in_processing_order(folder):
    """A reverse LSTM ported as a forward nn.LSTM on each sequence flipped, the outputs never
    flipped back (Keras go_backwards' order)."""
    lstm = distinct_gates(torch.nn.LSTM(C, H, bidirectional=True), seed=5).eval()
    torch.save(lstm.state_dict(), folder / "bi.pt")
    forward = torch.nn.LSTM(C, H).eval()
    forward.load_state_dict(
        {k.replace("_reverse", ""): v for k, v in lstm.state_dict().items() if "_reverse" in k}
    )
    observed = np.zeros((len(INPUTS.x), INPUTS.x.shape[1], 2 * H), np.float32)
    with torch.no_grad():
        for b, seq in enumerate(INPUTS.sequences):
            both, _ = lstm(torch.from_numpy(seq).float())
            backwards, _ = forward(torch.from_numpy(seq[::-1].copy()).float())
            observed[b, : len(seq), :H] = both[:, :H].numpy()
            observed[b, : len(seq), H:] = backwards.numpy()
    report = verify(folder / "bi.pt", INPUTS, observed={"output": observed})
    assert [f.key for f in report.causes] == ["reverse-output-order"]
    d = report.divergence
    assert d is not None and d.step is not None and d.gates is not None


def test_unknown_cause_is_not_a_false_diagnosis(reference):
    y = torch_on_padding_free(reference)
    y = y + np.random.default_rng(0).normal(scale=0.01, size=y.shape)
    report = verify(reference, INPUTS, observed={"output": y})
    assert report.verdict == "unknown" and report.causes == []
    assert report.nearest and not any(f.reproduces for f in report.nearest)
    assert "no known porting bug" in text(report)


def torch_on_padding_free(path):
    from lstm_ref.verify.frameworks import run_torch

    zeros = np.zeros((1, len(INPUTS.x), H), np.float32)
    return run_torch(path, INPUTS.x, INPUTS.lengths, lambda: (zeros, zeros), {})[0]["output"]


# ---------------------------------------------------------------------------- ONNX
def test_onnx_port_with_wrong_gate_order(folder, reference):
    pytest.importorskip("onnxruntime")
    net = load_model(reference)
    save_model(net, folder / "ok.onnx")
    assert verify(reference, INPUTS, run=folder / "ok.onnx").verdict == "match"
    wrong = load_model(reference)
    for layer in wrong.stateful_layers:  # undo the exporter's reorder: it writes i,f,g,o
        layer.params = type(layer.params)(*(reorder_gates(a, "iofg") for a in layer.params))
    save_model(wrong, folder / "wrong.onnx")
    report = verify(reference, INPUTS, run=folder / "wrong.onnx")
    assert [f.key for f in report.causes] == ["gate-order:igof"]


def test_a_missing_framework_is_named(folder, reference, monkeypatch):
    save_model(load_model(reference), folder / "ok.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(InputError, match=r"needs the Python package 'onnxruntime'.*--observed"):
        verify(reference, INPUTS, run=folder / "ok.onnx")


def test_torch_onnx_export_lost_the_lengths(folder, state, reference):
    """torch.onnx.export of the batch-first classifier has no sequence_lens: onnxruntime runs
    the LSTM over the padding. Run as it is, the export is faithful under that semantics;
    expected to stop each sequence at its length, the lost lengths are named."""
    pytest.importorskip("onnxruntime")
    model = Classifier(C, H, K).eval()
    model.load_state_dict(state)
    with warnings.catch_warnings():  # the exporter's notes on batch_first and dynamic axes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(2, 6, C),),
            str(folder / "exported.onnx"),
            dynamo=False,
            opset_version=17,
            input_names=["X"],
            output_names=["P"],
            dynamic_axes={"X": {0: "N", 1: "T"}, "P": {0: "N"}},
        )
    report = verify(reference, INPUTS, run=folder / "exported.onnx")  # the model's: masked
    assert report.semantics == "masked" and [f.key for f in report.causes] == ["padding:matlab"]
    faithful = verify(reference, INPUTS, run=folder / "exported.onnx", semantics="matlab")
    assert faithful.verdict == "match"
    itself = verify(folder / "exported.onnx", INPUTS, run=True)  # the file is the model
    assert itself.verdict == "match" and itself.semantics == "matlab"
    full = generate_inputs(C, seed=7, length_range=(6, 6))  # no padding: nothing lost
    assert verify(reference, full, run=folder / "exported.onnx").verdict == "match"


def test_onnx_port_that_dropped_the_recurrent_bias(folder, reference):
    """ONNX's B = Wb ‖ Rb, both non-zero in the model; the port's graph has Rb = 0."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import numpy_helper

    save_model(load_model(reference), folder / "two.onnx")
    model = onnx.load(folder / "two.onnx")
    B = next(t for t in model.graph.initializer if t.name == "lstm.l0_B")
    Wb, Rb = np.split(numpy_helper.to_array(B), 2, axis=-1)
    shift = np.linspace(-0.4, 0.4, Wb.shape[-1], dtype=np.float32)
    B.CopyFrom(numpy_helper.from_array(np.concatenate([Wb - shift, Rb + shift], -1), B.name))
    onnx.save(model, folder / "two.onnx")
    B.CopyFrom(numpy_helper.from_array(np.concatenate([Wb - shift, 0 * Rb], -1), B.name))
    onnx.save(model, folder / "wb-only.onnx")
    assert verify(folder / "two.onnx", INPUTS, run=True).verdict == "match"
    report = verify(folder / "two.onnx", INPUTS, run=folder / "wb-only.onnx")
    assert [f.key for f in report.causes] == ["bias:Wb-only"]


# --------------------------------------------------------------------------- Keras
def keras_model(folder, name, recurrent="sigmoid", sequences=False):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(11)
    model = keras.Sequential(
        [
            keras.Input((None, C)),
            keras.layers.Masking(0.0),
            keras.layers.LSTM(H, recurrent_activation=recurrent, return_sequences=sequences),
        ]
    )
    layer = model.layers[-1]
    weights = [
        rng.normal(size=w.shape) * np.repeat([0.6, 0.9, 1.2, 0.5], H) for w in layer.get_weights()
    ]
    weights[-1] = weights[-1] + 0.3
    layer.set_weights(weights)
    model.save(folder / f"{name}.keras")
    return folder / f"{name}.keras"


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_hard_sigmoid_of_the_other_version(folder):
    path = keras_model(folder, "hard", recurrent="hard_sigmoid")
    net = load_model(path)  # Keras 3: x/6 + 0.5
    assert net.layers[-1].gate_activation == "hard-sigmoid-keras3"
    assert verify(path, INPUTS, run=True).verdict == "match"
    # the reference as Keras <= 2.15 computed it: 0.2x + 0.5
    old = Network([*net.layers[:-1], replace(net.layers[-1], gate_activation="hard-sigmoid")])
    report = verify(old, INPUTS, run=path)
    assert [f.key for f in report.causes] == ["gate-activation:hard-sigmoid-keras3"]


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_mask_repeats_where_zeros_were_assumed(folder):
    path = keras_model(folder, "seq", sequences=True)
    assert verify(path, INPUTS, run=True).verdict == "match"  # default semantics: keras
    report = verify(path, INPUTS, run=True, semantics="masked")
    assert [f.key for f in report.causes] == ["padding:keras"]


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_go_backwards_returns_processing_order(folder):
    """The reference: a reverse LSTM, outputs in time order (ONNX, PyTorch); the port: Keras's
    go_backwards with the same weights, which returns them in processing order — without
    Masking, over the whole padded axis, the padding computed as data."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(12)
    scale = np.repeat([0.6, 0.9, 1.2, 0.5], H)
    W, R = rng.normal(size=(4 * H, C)) * scale[:, None], rng.normal(size=(4 * H, H)) * 0.5
    b = rng.normal(size=4 * H) * scale
    lstm = LSTM(LSTMParams(W, R, b), direction="reverse")
    save_model(Network([SequenceInput(C), lstm]), folder / "reverse.npz")
    model = keras.Sequential(
        [keras.Input((None, C)), keras.layers.LSTM(H, go_backwards=True, return_sequences=True)]
    )
    model.layers[-1].set_weights([W.T, R.T, b])
    model.save(folder / "backwards.keras")
    report = verify(folder / "reverse.npz", INPUTS, run=folder / "backwards.keras")
    assert report.semantics == "masked"  # the model's; the port, without Masking, pads as data
    assert [f.key for f in report.causes] == ["padding:matlab+reverse-output-order"]
    as_data = verify(
        folder / "reverse.npz", INPUTS, run=folder / "backwards.keras", semantics="matlab"
    )
    assert [f.key for f in as_data.causes] == ["reverse-output-order"]


# ------------------------------------------------------------- no framework, the CLI
def test_cli_with_supplied_outputs_needs_no_framework(folder, state, reference, capsys):
    np.savez(folder / "in.npz", x=INPUTS.x, lengths=INPUTS.lengths)
    np.savez(folder / "out.npz", output=torch_on_padding(state, INPUTS.x))
    net = load_model(reference)
    save_model(net, folder / "ref.npz")  # lstm_ref's own format: no torch to read it
    args = ["verify", str(folder / "ref.npz"), "--inputs", str(folder / "in.npz")]
    status = main([*args, "--observed", str(folder / "out.npz"), "--json", str(folder / "r.json")])
    assert status == 1
    out = capsys.readouterr().out
    assert "padding semantics 'matlab'" in out and "minimum tolerance to pass" in out
    data = json.loads((folder / "r.json").read_text())
    assert data["schema"] == "lstm_ref.verify/1" and data["verdict"] == "cause"
    assert data["causes"][0]["key"] == "padding:matlab" and data["passed"] is False
    assert set(data["comparisons"][0]) >= {"max_abs", "max_rel", "failed", "histogram"}
    good = folder / "good.npz"
    np.savez(good, output=torch_on_padding_free(reference))
    assert main([*args, "--observed", str(good)]) == 0
    assert main([*args, "--observed", str(good), "--run-framework"]) == 2
    assert main([*args]) == 2
    for bad in ("nan", "inf", "-1e-5"):  # a tolerance that certifies anything, or nothing
        assert main([*args, "--observed", str(good), "--atol", bad]) == 2
    assert "finite number >= 0" in capsys.readouterr().err
    saved = folder / "saved.npz"
    scaled = ["--scale", "3", "--save-inputs", str(saved)]
    assert main(["verify", str(reference), "--run-framework", *scaled]) == 0
    with np.load(saved) as inputs:
        assert inputs["x"].shape == (4, 8, C) and inputs["lengths"].tolist() == [8, 6, 6, 3]
        assert 2 < inputs["x"][0].std() < 4  # the first sequence has no padding
    assert main(["verify", str(folder / "ref.npz"), "--run-framework"]) == 2
    assert "no framework runs .npz files" in capsys.readouterr().err
    np.savez(folder / "bad.npz", nothing=np.zeros(3))
    assert main([*args, "--observed", str(folder / "bad.npz")]) == 2
    assert "is none of lstm_ref's: 'output', a layer of the model" in capsys.readouterr().err
    torch_names = ["--layout", "torch", "--observed", str(folder / "bad.npz")]
    assert main([*args, *torch_names]) == 2
    assert "none of torch's output, h_n, c_n, model, or lstm_ref's" in capsys.readouterr().err
    np.savez(folder / "state.npz", h0=np.zeros((1, 4, H)))
    state = ["--initial-state", str(folder / "state.npz"), "--layout", "torch"]
    assert main([*args, "--observed", str(good), *state]) == 2
    assert "unknown initial state 'h0' in layout 'torch'; expected h_0, c_0, or" in (
        capsys.readouterr().err
    )


def test_outputs_in_polygraphy_format(folder, reference):
    path = folder / "outputs.json"
    assert main(["verify", str(reference), "--run-framework", "--save-outputs", str(path)]) == 0
    runs = json.loads(path.read_text())
    assert runs["polygraphy_class"] == "RunResults"
    arrays = {}
    for runner, (iteration,) in runs["lst"]:
        assert iteration["polygraphy_class"] == "IterationResult"
        payload = iteration["outputs"]["output"]["values"]["array"]
        arrays[runner] = np.load(io.BytesIO(base64.b64decode(payload)), allow_pickle=False)
    assert set(arrays) == {"lstm_ref", "torch"} and arrays["torch"].dtype == np.float32
    assert np.abs(arrays["lstm_ref"] - arrays["torch"]).max() < 1e-6


def test_polygraphy_itself_reads_the_outputs(folder, reference):
    polygraphy = pytest.importorskip("polygraphy.comparator")  # not a dependency of lstm_ref
    path = folder / "for_polygraphy.json"
    assert main(["verify", str(reference), "--run-framework", "--save-outputs", str(path)]) == 0
    loaded = polygraphy.RunResults.load(str(path))
    assert [name for name, _ in loaded] == ["lstm_ref", "torch"]
    assert loaded["torch"][0]["output"].shape == (4, K)


def test_json_report_is_strict_json(reference):
    report = verify(reference, INPUTS, run=True, atol=1e-12, rtol=1e-12)
    data = json.loads(dumps(report))
    assert data["verdict"] == "rounding" and data["rounding"]["output"] > 0


ROUNDING_LEVEL = re.compile(r"\b\d\.\d{3}e-(0[7-9]|[1-9]\d)\b")  # below 1e-6: rounding noise


def test_readme_report_is_what_the_command_prints(tmp_path, monkeypatch, capsys):
    """The README's worked verification, run in a folder, then its command line: the text
    printed is the README's — each part between its '...' lines, in order — but for the digits
    of numbers at the float32 rounding level (below 1e-6), which depend on the BLAS kernel:
    those must be there, at that level."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Verifying a port") :]
    code = section[section.index("```python\n") + 10 :]
    code = code[: code.index("```")].replace("Path(tempfile.mkdtemp())", "Path('.')")
    start = section.index("```\nverify model.pt") + 4
    printed = section[start : section.index("```", start)]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    capsys.readouterr()
    command = ["--inputs", "in.npz", "--initial-state", "start.npz"]
    command += ["--layout", "torch-batch-first", "--observed", "port.npz"]
    assert main(["verify", "model.pt", *command]) == 1
    out = capsys.readouterr().out
    assert len(ROUNDING_LEVEL.findall(printed)) == 2  # the rounding, the causes' error
    out = ROUNDING_LEVEL.sub("<rounding>", out)
    parts = ROUNDING_LEVEL.sub("<rounding>", printed).split("...\n")
    assert len(parts) >= 3 and out.startswith(parts[0]) and out.endswith(parts[-1])
    position = 0
    for part in parts:  # each part is printed, in order
        position = out.index(part, position) + len(part)


# ------------------------------------------------------------ a head on every layer's h_n
@pytest.fixture(scope="module")
def stacked(folder):
    """A float32 2-layer bidirectional nn.LSTM whose head reads every layer's h_n (an
    LSTMStack in lstm_ref), its state_dict saved, and a non-zero (h_0, c_0) for INPUTS."""
    model = distinct_gates(EveryLayerHead(C, H, K, 2, bidirectional=True), seed=11).eval()
    torch.save(model.state_dict(), folder / "stacked.pt")
    g = np.random.default_rng(4)
    start = {k: g.uniform(-0.5, 0.5, (4, len(INPUTS.sequences), H)) for k in ("h_0", "c_0")}
    return model, folder / "stacked.pt", start


def test_a_correct_stack_port_matches(stacked):
    """Run in torch from the same non-zero (h_0, c_0), and its h_n observed beside."""
    model, path, start = stacked
    report = verify(path, INPUTS, run=True, layout="torch", initial_state=start)
    assert report.passed and report.verdict == "match" and report.initial_state == "non-zero"
    h_0, c_0 = (torch.from_numpy(start[k]).float() for k in ("h_0", "c_0"))
    with torch.no_grad():
        _, (h_n, _) = model.lstm(packed(INPUTS.sequences, torch.float32), (h_0, c_0))
    observed = {"h_n": h_n.numpy()}
    report = verify(path, INPUTS, observed=observed, layout="torch", initial_state=start)
    assert report.passed and [c.name for c in report.comparisons] == ["h_n"]


@pytest.mark.parametrize("name", ["tf1-ijfo", "bias-dropped"])
def test_a_planted_bug_in_every_stacked_layer_is_named(folder, stacked, name):
    model, path, start = stacked
    change, cause = PLANTED[name]
    broken = port(folder, model.state_dict(), f"stacked-{name}", change)
    report = verify(path, INPUTS, run=broken, layout="torch", initial_state=start)
    assert not report.passed and report.verdict == "cause"
    assert [f.key for f in report.causes] == [cause]
    divergence = report.divergence  # traced through the stack, every layer's units
    assert divergence is not None and divergence.layer == "lstm" and divergence.gates is not None


def test_one_layer_names_are_refused_on_a_stack(stacked):
    _, path, _ = stacked
    N = len(INPUTS.sequences)
    with pytest.raises(InputError, match="'lstm' is a stack of LSTM layers, which onnx's names"):
        verify(path, INPUTS, observed={"Y_h": np.zeros((2, N, H))}, layout="onnx")
