"""``lstm-ref predict`` on the files users hand it: an error names the sequence as the table
does, and a zero-padded batch comes with its lengths (verify's inputs format) or a note."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from random_nets import random_network

import lstm_ref
from lstm_ref import Network, Padding, load_network, save_network
from lstm_ref.cli import main
from lstm_ref.datasets import load_japanese_vowels
from lstm_ref.verify.inputs import read_inputs


@pytest.fixture(scope="module")
def sequences():
    """Five Japanese Vowels test sequences of mixed lengths (T_n, 12)."""
    seqs = list(load_japanese_vowels("test")[0][:5])
    assert len({len(s) for s in seqs}) > 2
    return seqs


def padded(seqs):
    """The sequences zero-padded on the right into x (N, T, C), and their lengths (N,)."""
    lengths = np.array([len(s) for s in seqs])
    x = np.zeros((len(seqs), lengths.max(), seqs[0].shape[1]))
    for row, s in zip(x, seqs, strict=True):
        row[: len(s)] = s
    return x, lengths


def table(out: str):
    """predict's table: the names, the classes and the scores (one column per class)."""
    rows = [line.split("\t") for line in out.splitlines()[1:]]
    return [r[0] for r in rows], [r[1] for r in rows], np.array([r[3:] for r in rows], float)


def test_an_npz_error_names_the_array(tmp_path, sequences, capsys):
    path = tmp_path / "s.npz"
    np.savez(path, a=sequences[0], b=sequences[1][:4, :11], c=sequences[2])
    assert main(["predict", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"lstm-ref: error: {path}: array 'b': expected shape (T, 12); got (4, 11)\n"
    )
    batch = tmp_path / "x.npy"  # any other file numbers its sequences from 1, as its table
    x = np.stack([s[:4] for s in sequences])
    x[1, 2, 5] = np.nan
    np.save(batch, x)
    assert main(["predict", str(batch)]) == 2
    assert f"{batch}: sequence 2: non-finite value NaN" in capsys.readouterr().err


def test_a_padded_batch_with_lengths_is_each_sequence_alone(tmp_path, sequences, capsys):
    x, lengths = padded(sequences)
    path = tmp_path / "in.npz"
    np.savez(path, x=x, lengths=lengths)
    assert main(["predict", str(path), "--scores"]) == 0
    names, labels, scores = table(capsys.readouterr().out)
    expected_labels, expected_scores = load_network("JapaneseVowelsNet").classify(sequences)
    assert names == ["1", "2", "3", "4", "5"] and labels == list(expected_labels)
    np.testing.assert_allclose(scores, expected_scores, atol=5e-5)  # the table's 4 decimals
    for read, own in zip(read_inputs(path, 12).sequences, sequences, strict=True):
        np.testing.assert_array_equal(read, own)  # the file verify reads, the same sequences

    np.save(tmp_path / "x.npy", x)  # without lengths: the padding is data, and predict says so
    assert main(["predict", str(tmp_path / "x.npy"), "--scores"]) == 0
    printed = capsys.readouterr()
    assert printed.err == (
        "note: sequences ending in all-zero time steps: 4 of 5 (up to "
        f"{x.shape[1] - lengths.min()} steps), read as data; if they are padding, give each "
        "sequence's length: an .npz with x (N, T, C) and lengths (N,)\n"
    )
    assert np.abs(table(printed.out)[2] - scores).max() > 1e-3  # what the note is about


@pytest.mark.parametrize(
    ("arrays", "argv", "message"),
    [
        ({"lengths": [3, 9]}, [], "lengths must lie in 1..7 (the padded length); got [3, 9]"),
        ({"lengths": [3, 0]}, [], "lengths must lie in 1..7 (the padded length); got [3, 0]"),
        ({"lengths": [3]}, [], "lengths must be 2 integers, one per sequence"),
        ({"lengths": [3.5, 2]}, [], "lengths must be 2 integers, one per sequence"),
        ({"lengths": [3, 2], "y": [1, 2]}, [], "holds 'x' (N, T, C) and 'lengths' (N,), nothing"),
        ({"lengths": [3, 2]}, ["--layout", "CT"], "x is (N, T, C), time × features; got --layout"),
    ],
)
def test_a_padded_batch_is_checked(tmp_path, arrays, argv, message, capsys):
    path = tmp_path / "in.npz"
    np.savez(path, x=np.ones((2, 7, 12)), **arrays)
    assert main(["predict", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lstm-ref: error: {path}: ") and message in err
    assert len(err.splitlines()) == 1


def test_sequences_of_data_get_no_note(tmp_path, sequences, capsys):
    np.save(tmp_path / "x.npy", np.stack([s[:7] for s in sequences]))
    assert main(["predict", str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().err == ""


def test_no_note_when_keras_masking_skips_the_zero_steps(tmp_path, sequences, capsys):
    net = random_network(np.random.default_rng(5), C=12, H=4)
    save_network(Network(net.layers, net.class_names, Padding.keras()), tmp_path / "k.npz")
    x, _ = padded(sequences)
    np.save(tmp_path / "x.npy", x)
    network = ["--network", str(tmp_path / "k.npz")]
    assert main(["predict", str(tmp_path / "x.npy"), *network]) == 0
    assert capsys.readouterr().err == ""
    assert main(["predict", str(tmp_path / "x.npy"), *network, "--padding", "masked"]) == 0
    assert capsys.readouterr().err.startswith(
        "note: sequences ending in all-zero time steps: 4 of 5"
    )


def test_output_into_a_missing_folder_is_refused_before_the_work(tmp_path, sequences, capsys):
    np.savez(tmp_path / "s.npz", *sequences)
    output = tmp_path / "missing" / "table.csv"
    assert main(["predict", str(tmp_path / "s.npz"), "--output", str(output)]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""  # no table: refused before classifying
    assert printed.err == f"lstm-ref: error: {output.parent}: no such folder\n"


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras saving
def test_a_model_with_an_output_per_step_gets_a_row_per_real_step(tmp_path, capsys):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((None, 6)),
            keras.layers.Masking(0.0),
            keras.layers.LSTM(5, return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(3, activation="softmax")),
        ]
    )
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])
    model.save(tmp_path / "tagger.keras")
    lengths = np.array([5, 2, 4])
    x = np.zeros((3, 5, 6), np.float32)
    for row, n in zip(x, lengths, strict=True):
        row[:n] = rng.normal(size=(n, 6))
    np.savez(tmp_path / "in.npz", x=x, lengths=lengths)
    expected = [model(x[k : k + 1, :n]).detach().numpy()[0] for k, n in enumerate(lengths)]
    network = ["--network", str(tmp_path / "tagger.keras"), "--classes", "a,b,c", "--scores"]
    for padding in ([], ["--padding", "masked"]):  # Keras's padded (N, T, K), and a list
        out = tmp_path / "table.json"
        assert (
            main(["predict", str(tmp_path / "in.npz"), *network, *padding, "--output", str(out)])
            == 0
        )
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split("\t") == [
            "sequence",
            "step",
            "class",
            "score",
            "score_a",
            "score_b",
            "score_c",
        ]
        records = json.loads(out.read_text())
        assert [line.split("\t")[:2] for line in lines[1:]] == [
            [r["sequence"], str(r["step"])] for r in records
        ]
        assert [(r["sequence"], r["step"]) for r in records] == [
            (str(k), t) for k, n in enumerate(lengths, 1) for t in range(1, n + 1)
        ]  # one row per real step, counted from 1
        scores = np.array([[r["score_a"], r["score_b"], r["score_c"]] for r in records])
        np.testing.assert_allclose(scores, np.concatenate(expected), atol=1e-5)
        assert [r["class"] for r in records] == list(np.array(["a", "b", "c"])[scores.argmax(1)])
        assert [r["score"] for r in records] == list(scores.max(1))


def test_labelled_sequences_on_a_model_labelling_steps_get_no_accuracy(tmp_path, capsys):
    net = random_network(np.random.default_rng(3), C=1, H=4, K=2, output_mode="sequence")
    save_network(net, tmp_path / "tagger.npz")
    lines = ["@problemName Steps", "@univariate true", "@classLabel true class0 class1", "@data"]
    lines += ["0.5,-1.0,0.25:class0", "1.0,2.0:class1"]
    (tmp_path / "s.ts").write_text("\n".join(lines) + "\n")
    assert main(["predict", str(tmp_path / "s.ts"), "--network", str(tmp_path / "tagger.npz")]) == 0
    printed = capsys.readouterr()
    rows = [line.split("\t") for line in printed.out.splitlines()]
    assert rows[0] == ["sequence", "step", "class", "score", "true"]
    assert [r[:2] + r[4:] for r in rows[1:]] == [
        ["1", "1", "class0"],
        ["1", "2", "class0"],
        ["1", "3", "class0"],
        ["2", "1", "class1"],
        ["2", "2", "class1"],
    ]
    expected = net.predict([np.array([[0.5], [-1.0], [0.25]]), np.array([[1.0], [2.0]])])
    labels = np.array(net.class_names)[np.concatenate(expected).argmax(1)]
    assert [r[2] for r in rows[1:]] == list(labels)
    assert (
        printed.err == "note: the file labels sequences and the model labels steps: no accuracy\n"
    )


def test_a_padded_batch_without_lengths_is_read_as_data_with_a_note(tmp_path, sequences, capsys):
    x, _ = padded(sequences)
    np.savez(tmp_path / "x.npz", x=x)  # verify's inputs file without lengths
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(tmp_path / "x.npz"), "--scores"]) == 0
    from_npz = capsys.readouterr()
    assert main(["predict", str(tmp_path / "x.npy"), "--scores"]) == 0
    assert capsys.readouterr() == from_npz  # the same table and the same note as an .npy batch
    assert from_npz.err.startswith("note: sequences ending in all-zero time steps: 4 of 5")
    expected = load_network("JapaneseVowelsNet").predict(list(x))
    np.testing.assert_allclose(table(from_npz.out)[2], expected, atol=5e-5)
    for read, row in zip(read_inputs(tmp_path / "x.npz", 12).sequences, x, strict=True):
        np.testing.assert_array_equal(read, row)  # verify reads the same sequences
    assert main(["predict", str(tmp_path / "x.npz"), "--layout", "CT"]) == 2
    assert "x is (N, T, C), time × features; got --layout CT" in capsys.readouterr().err


def test_a_reader_that_went_away_loses_no_output_file(tmp_path, sequences):
    np.savez(tmp_path / "s.npz", *sequences)
    read, write = os.pipe()
    os.close(read)  # `lstm-ref predict ... | true`: every write to stdout fails
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a user's buffering
    argv = ["predict", str(tmp_path / "s.npz"), "--output", str(tmp_path / "t.json")]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lstm_ref", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            env=env,
            cwd=Path(lstm_ref.__file__).parents[1],
            check=False,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, b"")  # quiet, as a Unix tool on SIGPIPE
    names = [r["sequence"] for r in json.loads((tmp_path / "t.json").read_text())]
    assert names == [f"arr_{k}" for k in range(5)]


def test_the_accuracy_of_one_labelled_sequence_counts_one_sequence(tmp_path, capsys):
    net = random_network(np.random.default_rng(3), C=1, H=4, K=2)
    save_network(net, tmp_path / "net.npz")
    label = net.classify(np.array([[0.5], [-1.0], [0.25]]))[0]
    lines = ["@problemName One", "@univariate true", "@classLabel true class0 class1", "@data"]
    (tmp_path / "s.ts").write_text("\n".join([*lines, f"0.5,-1.0,0.25:{label}"]) + "\n")
    assert main(["predict", str(tmp_path / "s.ts"), "--network", str(tmp_path / "net.npz")]) == 0
    assert capsys.readouterr().err == "accuracy 1.0000 (1 sequence)\n"


def test_note_counts_one_sequence_and_one_step_in_the_singular(tmp_path, sequences, capsys):
    x = np.concatenate([sequences[0][:5], np.zeros((1, 12))])  # one sequence, one zero step
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().err.startswith(
        "note: sequences ending in all-zero time steps: 1 of 1 (up to 1 step), read as data"
    )
