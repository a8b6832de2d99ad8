"""``lstm-ref convert`` between every source a user brings and every format lstm_ref writes.

Sources: the bundled network; a PyTorch 2-layer classifier as a state_dict and through
torch.onnx.export (input batch first and time first); a Keras Sequential; a bidirectional
PyTorch classifier; a Keras Bidirectional summing its directions — each as its tool wrote
it. Targets: .npz, .onnx, .pt, .keras, .mat.
Each pair converts and computes the same outputs when read back (float64 to 1e-10;
float32, and anything through ONNX, which stores float32, to 1e-5) with the class names kept
where the format holds them (a .pt written back holds the same tensors as its source), or is
refused with exit status 2 and one line naming what the target cannot express — the
table of refusals in docs/INTEROP.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from framework_files import FRAMEWORK_WARNINGS, C, keras_file, torch_files

from lstm_ref.cli import main
from lstm_ref.interop import load_model

pytestmark = FRAMEWORK_WARNINGS
pytest.importorskip("torch")
pytest.importorskip("keras")
pytest.importorskip("onnx")
pytest.importorskip("scipy")

SOURCES = [
    "JapaneseVowelsNet",
    "torch_2layer.pt",
    "torch_2layer_batch_first.onnx",
    "torch_2layer_time_first.onnx",
    "keras_sequential.keras",
    "torch_bilstm.pt",
    "keras_bidirectional_sum.keras",
]
TARGETS = [".npz", ".onnx", ".pt", ".keras", ".mat"]
KEEP_CLASS_NAMES = {".npz", ".onnx", ".keras", ".mat"}  # the formats with a place for them

# what a target cannot express, as the one line of the refusal says it
REFUSED = {
    ("JapaneseVowelsNet", ".pt"): "normalises its input (zscore), which an nn.LSTM cannot hold",
    ("torch_2layer.pt", ".mat"): "a MATLAB learnables file holds sequence input → one LSTM",
    ("torch_bilstm.pt", ".mat"): "MATLAB's bilstmLayer concatenates the directions and its "
    "'last' is the output at the last step",
    **{
        (f"torch_2layer_{layout}.onnx", ".mat"): "a MATLAB learnables file holds sequence input"
        for layout in ("batch_first", "time_first")
    },
    ("keras_bidirectional_sum.keras", ".onnx"): "ONNX concatenates the directions; merge 'sum'",
    ("keras_bidirectional_sum.keras", ".pt"): "nn.LSTM concatenates the two directions",
    ("keras_bidirectional_sum.keras", ".mat"): "MATLAB's bilstmLayer concatenates the directions",
}


def pairs():
    for source in SOURCES:
        for target in TARGETS:
            yield pytest.param(source, target, id=f"{source}-to-{target[1:]}")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    files = {name: str(path) for name, path in torch_files(folder).items()}
    files["keras_sequential.keras"] = str(keras_file(folder))
    files["keras_bidirectional_sum.keras"] = str(keras_bidirectional_sum(folder))
    files["JapaneseVowelsNet"] = "JapaneseVowelsNet"
    return files


@pytest.fixture(scope="module")
def sequences():
    rng = np.random.default_rng(7)
    return [rng.normal(size=(T, C)) for T in (3, 7, 5, 4)]


@pytest.mark.parametrize(("source", "target"), list(pairs()))
def test_convert(sources, sequences, source, target, tmp_path, capsys):
    out = tmp_path / f"converted{target}"
    names = class_names(source)
    classes = ["--classes", ",".join(names)] if names else []
    status = main(["convert", sources[source], str(out), *classes])
    err = capsys.readouterr().err
    if (source, target) in REFUSED:
        assert status == 2 and err.count("\n") == 1 and REFUSED[source, target] in err, err
        assert not out.exists()
        return
    assert status == 0, err
    original = load_model(sources[source], class_names=names)
    back = load_model(out)
    float32 = target == ".onnx" or np.float32 in (back.dtype, original.dtype)
    np.testing.assert_allclose(
        back.predict(sequences),
        original.predict(sequences),
        rtol=0,
        atol=1e-5 if float32 else 1e-10,
    )
    if target in KEEP_CLASS_NAMES:
        assert back.class_names == original.class_names
    if source.endswith(".pt") and target == ".pt":  # the file comes back as it was
        import torch

        was, now = (torch.load(f, weights_only=True) for f in (sources[source], out))
        assert list(now) == list(was)
        for key, tensor in was.items():
            assert now[key].dtype == tensor.dtype and torch.equal(now[key], tensor), key


def keras_bidirectional_sum(folder):
    """Masking → Bidirectional(LSTM 3, merge_mode="sum") → Dense 4 softmax, saved by Keras."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((None, C)),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(keras.layers.LSTM(3), merge_mode="sum", name="bi"),
            keras.layers.Dense(4, activation="softmax", name="fc"),
        ]
    )
    rng = np.random.default_rng(6)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) * 0.5 for w in model.get_weights()])
    path = folder / "keras_bidirectional_sum.keras"
    model.save(path)
    return path


def class_names(source: str) -> list[str] | None:
    """What a user gives with --classes: names for a source's unnamed outputs (as many as
    model_files makes), None for the bundled network, which has its own."""
    if source == "JapaneseVowelsNet":
        return None
    return ["yes", "no", "maybe"] if "bilstm" in source else ["a", "b", "c", "d"]


def test_each_format_extra_pins_what_the_tests_run():
    import configparser
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    extras = {k: set(v.split()) for k, v in config["options.extras_require"].items()}
    formats = ("torch", "onnx", "keras", "matlab")
    assert all(extras[name] <= extras["test"] for name in formats)
    assert extras["interop"] == set().union(*(extras[name] for name in formats))
    readme = (root / "README.md").read_text()
    assert all(f"[{name}]" in readme for name in (*formats, "interop"))
