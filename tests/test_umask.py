"""Every kind of file lstm_ref writes gets the mode a plain ``open(path, "w")`` would give it.

A new file: 0o666 less the umask (0o644 under umask 022, 0o600 under 077); a replaced file
keeps its mode. Writes stay atomic (no temporary file left behind).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

from lstm_ref import Network, Padding, load_network
from lstm_ref.cli import main
from lstm_ref.formats import save_network
from lstm_ref.formats.writes import write_text_atomically
from lstm_ref.interop import save_model
from lstm_ref.interop.matlab import save_matlab
from lstm_ref.layers import SequenceInput
from lstm_ref.scale.files import write_scores
from lstm_ref.scale.score import _check_manifest

NET = load_network("JapaneseVowelsNet")
# Keras 3's torch backend converting float64 variables when saving (as in test_interop_keras)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def written_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_every_kind_of_file_gets_the_mode_open_would_give(tmp_path, umask):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    out.mkdir()
    seqs = np.random.default_rng(0).normal(size=(3, 5, 12))
    np.save(tmp_path / "x.npy", seqs)
    # networks, in every format
    save_network(NET, out / "net.npz")
    for suffix in (".onnx", ".keras", ".h5"):
        save_model(NET, out / f"net{suffix}")
    bare = Network([SequenceInput(12), *NET.layers[1:]])  # nn.LSTM has no z-score input
    save_model(bare, out / "net.pt")
    save_matlab(NET, out / "net_v73.mat", version="7.3")
    save_model(NET, out / "net_v5.mat")
    # figures
    assert main(["plot", "heatmap", "--out", str(out / "figs"), "--svg"]) == 0
    # predictions
    for suffix in (".csv", ".json"):
        args = ["predict", str(tmp_path / "x.npy"), "--output", str(out / f"pred{suffix}")]
        assert main(args) == 0
    # Dask score files: a shard's scores and the folder's manifest
    labels, scores = NET.classify(list(seqs))
    write_scores(out / "shard.csv", "shard.npy", ["a", "b", "c"], labels, scores, NET.class_names)
    _check_manifest(out, "JapaneseVowelsNet", "0" * 64, Padding.masked(), "TC")
    # verify's outputs
    assert (
        main(
            [
                "verify",
                str(out / "net.onnx"),
                "--run-framework",
                "--save-inputs",
                str(out / "inputs.npz"),
                "--json",
                str(out / "report.json"),
                "--save-outputs",
                str(out / "outputs.json"),
            ]
        )
        == 0
    )
    # a trained network and its model card
    assert main(["train", "--epochs", "1", "--out", str(out / "trained")]) == 0

    files = written_files(out)
    names = {p.name for p in files}
    expected = {"net.npz", "net.onnx", "net.keras", "net.h5", "net.pt", "net_v5.mat"}
    expected |= {"net_v73.mat", "heatmap_observation1.png", "heatmap_observation1.svg"}
    expected |= {"pred.csv", "pred.json", "shard.csv", "inputs.npz", "report.json"}
    expected |= {"outputs.json", "JapaneseVowelsNet.npz", "MODEL_CARD.md"}
    assert expected <= names
    assert not [p for p in files if p.name.endswith(".tmp")]
    assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o666 & ~umask) for p in files}


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "notes.txt"
    path.write_text("old")
    path.chmod(0o640)
    write_text_atomically(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o640
