"""The shipped JapaneseVowelsNet: real, reproducible, as reported, installable."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from test_network import SEED_TABLE

from lstm_ref import Padding, load_network, read_header
from lstm_ref.datasets import load_japanese_vowels
from lstm_ref.train import Recipe, evaluate
from lstm_ref.train.japanese_vowels import japanese_vowels_net

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = resources.files("lstm_ref.weights") / "JapaneseVowelsNet.npz"


@pytest.fixture(scope="module")
def net():
    return load_network("JapaneseVowelsNet")


@pytest.fixture(scope="module")
def header():
    with resources.as_file(WEIGHTS) as path:
        return read_header(path)


def test_layer_table_is_the_seeds(net):
    assert net.summary() == SEED_TABLE
    assert net.class_names == tuple("123456789")
    assert net.layer("lstm").output_mode == "last"
    assert net.dtype == np.float64


def test_reaches_reported_accuracy(net, header):
    x_test, y_test = load_japanese_vowels("test")
    evaluation = evaluate(net, x_test, list(y_test))
    assert evaluation.accuracy >= 0.95
    assert evaluation.accuracy == header["metadata"]["test_accuracy"]
    assert evaluation.matlab_accuracy == header["metadata"]["test_accuracy_matlab_batches"]
    default = header["metadata"]["test_accuracy_matlab_defaults"]
    assert evaluation.matlab_default_accuracy == default < evaluation.accuracy - 0.05
    assert evaluation.confusion.sum() == 370
    assert evaluation.confusion.sum(axis=1).tolist() == [31, 35, 88, 44, 29, 24, 40, 50, 29]


def test_model_card_is_true(net, header):
    card = (ROOT / "weights" / "MODEL_CARD.md").read_text()
    meta = header["metadata"]
    assert f"**{meta['test_accuracy']:.4f}**" in card
    assert f"| {meta['test_accuracy_matlab_batches']:.4f} |" in card
    assert f"| {meta['test_accuracy_matlab_defaults']:.4f} |" in card
    assert net.digest() == meta["weights_sha256"]
    assert f"`{meta['weights_sha256']}`" in card
    x_test, y_test = load_japanese_vowels("test")
    assert evaluate(net, x_test, list(y_test)).confusion_table() in card
    assert net.summary() in card
    for split, digest in meta["data_sha256"].items():
        assert digest in card, split


def test_retraining_reproduces_the_shipped_weights(net, header):
    recipe = header["metadata"]["recipe"]
    assert recipe["seed"] == Recipe().seed and recipe["options"]["max_epochs"] == 60
    again, _, evaluation, _ = japanese_vowels_net(Recipe(), log=None)
    for a, b in zip(net.layers, again.layers, strict=True):
        for name, value in a.arrays().items():
            np.testing.assert_allclose(b.arrays()[name], value, rtol=0, atol=1e-9, err_msg=name)
    x_test, _ = load_japanese_vowels("test")
    np.testing.assert_array_equal(again.classify(x_test)[0], net.classify(x_test)[0])
    assert evaluation.accuracy == header["metadata"]["test_accuracy"]


def test_walkthrough_sequence_is_matlabs_xtest1(net):
    x_test, y_test = load_japanese_vowels("test")
    assert x_test[0].shape == (19, 12)
    np.testing.assert_array_equal(x_test[0][0, :3], [1.635533, 0.024848, 0.432087])
    assert net.classify(x_test[0])[0] == y_test[0] == "1"


def test_plain_wheel_install_loads_by_name_outside_the_repo(tmp_path):
    """Build the wheel as `pip install .` would, install it into a folder, import from there."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path,
            ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("lstm_ref-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lstm_ref/weights/JapaneseVowelsNet.npz" in names
    assert "lstm_ref/datasets/data/japanese_vowels.npz" in names
    assert "lstm_ref/py.typed" in names
    packages = {str(p.relative_to(ROOT)) for p in (ROOT / "lstm_ref").rglob("__init__.py")}
    assert not packages - set(names), sorted(packages - set(names))  # every subpackage ships
    assert "lstm_ref/train/model_card.md" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import lstm_ref, lstm_ref.datasets as d; "
        "net = lstm_ref.load_network('JapaneseVowelsNet'); "
        "x, y = d.load_japanese_vowels('test'); "
        "print(lstm_ref.__file__); print(net.classify(x[0])[0], len(x))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert Path(out[0]).is_relative_to(site)
    assert out[1] == "1 370"


def test_classify_with_defaults_equals_each_sequence_alone(net):
    """Masked padding is the default: batching never changes a score; MATLAB's is one
    argument away and scores lower on this network."""
    x_test, y_test = load_japanese_vowels("test")
    _, batched = net.classify(x_test)
    alone = np.array([net.classify(x)[1] for x in x_test])
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-12)
    labels, _ = net.classify(x_test, padding=Padding.matlab(mini_batch_size=128))
    assert np.mean(labels == y_test) == pytest.approx(0.8595, abs=1e-4)


def test_sdist_holds_what_the_tests_need(tmp_path):
    """Tests run from an unpacked sdist: every file of tests/, docs/, weights/, benchmarks/
    and the CI script are in it, and its metadata carries an SPDX licence expression."""
    import tarfile

    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", tmp_path, ROOT],
        check=True,
        capture_output=True,
    )
    (sdist,) = tmp_path.glob("lstm_ref-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        info = tar.extractfile(next(n for n in tar.getnames() if n.endswith("/PKG-INFO")))
        metadata = info.read().decode() if info else ""
    needed = {
        str(p.relative_to(ROOT))
        for folder in ("tests", "docs", "weights", "benchmarks")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".hypothesis" not in p.parts
    }
    assert not needed - names, sorted(needed - names)
    assert ".ci/run" in names and "README.md" in names
    assert "License-Expression: MIT" in metadata
