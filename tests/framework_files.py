"""Model files as their own tools write them, for the tests that run every command and every
conversion on them: a PyTorch state_dict (and the same model through torch.onnx.export, its
input batch first and time first), a Keras Sequential saved by Keras, a bidirectional
PyTorch LSTM, and lstm_ref's bundled network in its native and MATLAB forms.

Every model takes 12 features, as the Japanese Vowels data the commands default to.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

C = 12  # features, as the Japanese Vowels data

# what the frameworks' own code warns of while these files are written and read (NumPy 2's
# __array__ copy keyword; torch's deprecated TorchScript exporter), for a test module's marks
FRAMEWORK_WARNINGS = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*TorchScript:DeprecationWarning"),
]


def torch_files(folder: Path) -> dict[str, Path]:
    """A 2-layer classifier as a state_dict and as ONNX in both input layouts; a
    bidirectional one as a state_dict. float32, as PyTorch makes them."""
    import torch
    from torch_models import Classifier, distinct_gates

    two_layer = distinct_gates(Classifier(C, 5, 4, num_layers=2), seed=3).eval()
    bilstm = distinct_gates(Classifier(C, 4, 3, bidirectional=True), seed=4).eval()
    files = {"torch_2layer.pt": two_layer.state_dict(), "torch_bilstm.pt": bilstm.state_dict()}
    for name, state in files.items():
        torch.save(state, folder / name)
    for layout, batch_first in (("batch_first", True), ("time_first", False)):
        two_layer.lstm.batch_first = batch_first
        x = torch.randn(2, 6, C) if batch_first else torch.randn(6, 2, C)
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated: users use it
            warnings.simplefilter("ignore")
            torch.onnx.export(
                two_layer,
                (x,),
                str(folder / f"torch_2layer_{layout}.onnx"),
                dynamo=False,
                opset_version=17,
                input_names=["x"],
                output_names=["p"],
                dynamic_axes={"x": {0: "B", 1: "T"} if batch_first else {0: "T", 1: "B"}},
            )
    two_layer.lstm.batch_first = True
    return {name: folder / name for name in sorted(os.listdir(folder)) if name.startswith("torch")}


def keras_file(folder: Path) -> Path:
    """A Keras Sequential (LSTM 5 → Dense 4 softmax), every weight random, saved by Keras."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((None, C)),
            keras.layers.LSTM(5, name="lstm"),
            keras.layers.Dense(4, activation="softmax", name="fc"),
        ]
    )
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) * 0.5 for w in model.get_weights()])
    path = folder / "keras_sequential.keras"
    model.save(path)
    return path


def native_files(folder: Path) -> dict[str, Path]:
    """The bundled JapaneseVowelsNet as lstm_ref's .npz and as a MATLAB .mat."""
    from lstm_ref import load_network
    from lstm_ref.formats import save_network
    from lstm_ref.interop.matlab import save_matlab

    net = load_network("JapaneseVowelsNet")
    save_network(net, folder / "jv.npz")
    save_matlab(net, folder / "jv.mat")
    return {"jv.npz": folder / "jv.npz", "jv.mat": folder / "jv.mat"}


def all_files(folder: Path) -> dict[str, Path]:
    """Every file above, by name."""
    return {
        **native_files(folder),
        **torch_files(folder),
        "keras_sequential.keras": keras_file(folder),
    }
