"""The native weight format: exact round trip, no pickle, clear errors; every write names the
user's path when its folder is wrong."""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest
from random_nets import random_network

from lstm_ref import Network, load_network, read_header, save_network
from lstm_ref.cli import main
from lstm_ref.datasets import read_ts
from lstm_ref.formats import read_sequence_file
from lstm_ref.formats.safe_numpy import read_npy, read_npz, read_text
from lstm_ref.formats.writes import write_text_atomically
from lstm_ref.layers import ClassificationOutput


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_is_exact(rng, tmp_path, dtype):
    net = random_network(rng, normalization="zscore", gate_activation="hard-sigmoid").astype(dtype)
    net = Network([*net.layers, ClassificationOutput(net.class_names)])
    path = tmp_path / "net.npz"
    save_network(net, path, metadata={"note": "test"})
    back = load_network(path)
    assert back.summary() == net.summary()
    assert back.class_names == net.class_names
    for a, b in zip(net.layers, back.layers, strict=True):
        assert type(a) is type(b) and a.config() == b.config()
        for k, v in a.arrays().items():
            assert b.arrays()[k].dtype == v.dtype
            np.testing.assert_array_equal(b.arrays()[k], v)
    x = rng.normal(size=(6, 5))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    assert read_header(path)["metadata"] == {"note": "test"}


def test_file_holds_no_object_arrays(rng, tmp_path):
    path = tmp_path / "net.npz"
    save_network(random_network(rng), path)
    with np.load(path, allow_pickle=False) as npz:
        for name in npz.files:
            assert npz[name].dtype != object
        header = json.loads(npz["header"].tobytes())
    assert header["format"] == "lstm_ref" and header["format_version"] == 1
    assert [spec["type"] for spec in header["layers"]] == [
        "SequenceInput",
        "LSTM",
        "FullyConnected",
        "Softmax",
    ]


def test_bad_files_give_clear_errors(rng, tmp_path):
    not_zip = tmp_path / "x.npz"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match=r"x\.npz: not a zip archive, not an \.npz archive"):
        load_network(not_zip)
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match=r"single \.npy array"):
        load_network(npy)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(ValueError, match="no 'header' entry"):
        load_network(other)
    with pytest.raises(FileNotFoundError, match="no bundled network of that name"):
        load_network("NoSuchNet")


def test_missing_and_misshapen_arrays_are_named(rng, tmp_path):
    path = tmp_path / "net.npz"
    save_network(random_network(rng), path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    del arrays["lstm/R"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match=r"layer 'lstm' lacks array\(s\) \['R'\]"):
        load_network(tmp_path / "missing.npz")
    arrays["lstm/R"] = np.zeros((7, 7))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"R must have shape \(4H, H\)"):
        load_network(tmp_path / "bad.npz")


def test_pickled_payload_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, header=np.array([{"format": "lstm_ref"}], dtype=object))
    with pytest.raises(ValueError, match="holds object values; only plain numeric arrays"):
        load_network(path)
    assert zipfile.is_zipfile(path)


def test_bundled_network_loads_from_a_source_checkout(monkeypatch):
    """Without the installed lstm_ref.weights package, the checkout's weights/ folder serves."""
    from lstm_ref.formats import native

    installed = load_network("JapaneseVowelsNet")
    monkeypatch.setattr(native, "PRETRAINED_PACKAGE", "lstm_ref.not_installed")
    assert str(native.bundled_weights()).endswith("weights")
    assert native.pretrained_names() == ["JapaneseVowelsNet"]
    checkout = load_network("JapaneseVowelsNet")
    for a, b in zip(installed.layers, checkout.layers, strict=True):
        for k, v in a.arrays().items():
            np.testing.assert_array_equal(b.arrays()[k], v)


def test_a_folder_never_hides_a_bundled_network(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "JapaneseVowelsNet").mkdir()
    assert load_network("JapaneseVowelsNet").class_names == tuple("123456789")


def test_a_failed_save_leaves_the_old_file_whole(rng, tmp_path, monkeypatch):
    path = tmp_path / "net.npz"
    net = random_network(rng)
    save_network(net, path)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_network(random_network(rng), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]  # no temporary file left
    np.testing.assert_array_equal(
        load_network(path).predict(np.ones((3, 5))), net.predict(np.ones((3, 5)))
    )


def test_read_header_reads_only_the_header(rng, tmp_path):
    """read_header leaves the arrays unread: a damaged weight array stops load_network,
    with the file and the array named, but not read_header."""
    path = tmp_path / "net.npz"
    save_network(random_network(rng), path, metadata={"note": "kept"})
    damaged = tmp_path / "damaged.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for member in src.infolist():
            data = src.read(member)
            dst.writestr(member, data if member.filename == "header.npy" else b"not npy")
    assert read_header(damaged)["metadata"] == {"note": "kept"}
    with pytest.raises(ValueError, match=r"damaged\.npz: array 'lstm/"):
        load_network(damaged)


@pytest.mark.parametrize("suffix", [".npz", ".mat", ".onnx"])
def test_writing_into_a_missing_folder_names_that_folder(tmp_path, suffix, capsys):
    pytest.importorskip({".mat": "scipy", ".onnx": "onnx"}.get(suffix, "numpy"))
    folder = tmp_path / "missing"
    assert main(["convert", "JapaneseVowelsNet", str(folder / f"net{suffix}")]) == 2
    assert capsys.readouterr().err == f"lstm-ref: error: {folder}: no such folder\n"


def test_a_write_names_the_users_path_never_the_temporary(tmp_path):
    afile = tmp_path / "a.txt"
    write_text_atomically(afile, "a")
    with pytest.raises(NotADirectoryError, match=re.escape(f"{afile}: not a folder")):
        write_text_atomically(afile / "b.txt", "b")
    with pytest.raises(IsADirectoryError, match=re.escape(f"{tmp_path}: a folder, not a file")):
        write_text_atomically(tmp_path, "b")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left


@pytest.mark.parametrize("read", [read_npy, read_npz, read_text, read_ts, read_sequence_file])
def test_a_missing_file_or_a_folder_is_one_plain_line(tmp_path, read):
    for name, error, reason in [
        ("nothere.ts", FileNotFoundError, "no such file"),
        ("folder.npz", IsADirectoryError, "a folder, not a file"),
    ]:
        (tmp_path / "folder.npz").mkdir(exist_ok=True)
        with pytest.raises(error) as raised:
            read(tmp_path / name)
        assert str(raised.value) == f"{tmp_path / name}: {reason}"  # no "[Errno 2] …: '…'"
