"""The command line on a user's own network and data, as a newcomer uses it."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from random_nets import random_network

from lstm_ref import __version__, load_network, save_network
from lstm_ref.cli import main
from lstm_ref.datasets import read_ts

SKTIME_DATA = "sktime/datasets/data"


@pytest.fixture
def six_feature_net(tmp_path, rng):
    """A network for 6 features (like BasicMotions), saved as a user's weight file."""
    path = tmp_path / "mine.npz"
    save_network(random_network(rng, C=6, H=8, K=4, output_mode="last"), path)
    return path


@pytest.fixture
def basic_motions():
    import sktime

    folder = __import__("pathlib").Path(sktime.__file__).parent / "datasets/data/BasicMotions"
    return folder / "BasicMotions_TRAIN.ts", folder / "BasicMotions_TEST.ts"


def test_version_bare_command_and_python_m(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"lstm-ref {__version__}"
    assert main([]) == 0
    assert "usage: lstm-ref" in capsys.readouterr().out
    run = subprocess.run(
        [sys.executable, "-m", "lstm_ref", "layers"], capture_output=True, text=True, check=True
    )
    assert "LSTM with 100 hidden units" in run.stdout


def test_every_subcommand_has_a_description_and_shows_defaults(capsys):
    for command in ("walkthrough", "layers", "predict", "train", "plot", "explain"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert text.count("\n\n") >= 2, command  # usage, a description paragraph, options
        assert re.search(r"\(default:\s+JapaneseVowelsNet\)", text) or command == "train", command


def test_malformed_command_line_is_one_line(capsys):
    assert main(["predict", "x.npy", "--mini-batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --mini-batch-size: expected an integer >= 1; got '0'" in err


def test_plot_explain_walkthrough_on_your_network_and_data(tmp_path, six_feature_net, capsys):
    rng = np.random.default_rng(3)
    data = tmp_path / "seqs.npz"
    np.savez(data, walk=rng.normal(size=(9, 6)), run=rng.normal(size=(5, 6)))
    common = ["--network", str(six_feature_net), "--data", str(data)]
    for kind in ("sequence", "heatmap", "gates", "saturation"):
        assert main(["plot", kind, *common, "--units", "1-8", "--out", str(tmp_path)]) == 0
    assert main(["explain", *common, "--observation", "2", "--step", "5", "--unit", "8"]) == 0
    assert "time step 5 of 5" in capsys.readouterr().out
    assert main(["explain", *common, "--backward"]) == 2
    assert "--backward needs the true class: a labelled .ts file or --label" in (
        capsys.readouterr().err
    )
    assert main(["explain", *common, "--backward", "--label", "class1"]) == 0
    out = tmp_path / "walk"
    assert main(["walkthrough", *common, "--units", "4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "9 time steps × 6 features" in text and "Test accuracy" not in text
    assert sorted(p.name for p in out.iterdir()) == ["lstm_activations.png", "test_observation.png"]
    assert main(["plot", "heatmap", "--network", str(six_feature_net)]) == 2  # JV data: 12
    assert "expected shape (T, 6); got (19, 12)" in capsys.readouterr().err


def test_predict_shows_true_labels_accuracy_and_writes_csv_and_json(tmp_path, capsys):
    x, y = read_ts_head(tmp_path)
    out_csv, out_json = tmp_path / "p.csv", tmp_path / "p.json"
    assert main(["predict", str(x), "--scores", "--output", str(out_csv)]) == 0
    captured = capsys.readouterr()
    header, *rows = [line.split("\t") for line in captured.out.splitlines()]
    assert header[:4] == ["sequence", "class", "score", "true"]
    assert [r[3] for r in rows] == y
    net = load_network("JapaneseVowelsNet")
    data = read_ts(x)
    labels, scores = net.classify(data.sequences)
    accuracy = np.mean(labels == np.asarray(y))
    assert captured.err == f"accuracy {accuracy:.4f} ({len(y)} sequences)\n"
    with open(out_csv, newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == header and len(table) == len(y) + 1
    np.testing.assert_allclose(np.array([r[4:] for r in table[1:]], float), scores, atol=1e-12)
    assert main(["predict", str(x), "--output", str(out_json)]) == 0
    records = json.loads(out_json.read_text())
    assert [r["class"] for r in records] == list(labels) and records[0]["true"] == y[0]
    assert main(["predict", str(x), "--output", str(tmp_path / "p.txt")]) == 2


def read_ts_head(tmp_path):
    """The first 12 Japanese Vowels test sequences as a labelled .ts file."""
    from lstm_ref.datasets import load_japanese_vowels

    x, y = load_japanese_vowels("test")
    head = "@problemName JV12\n@univariate false\n@dimensions 12\n@equalLength false\n"
    head += "@classLabel true 1 2 3 4 5 6 7 8 9\n@data\n"
    body = "".join(
        ":".join(",".join(map(str, c.tolist())) for c in x[k].T) + f":{y[k]}\n" for k in range(12)
    )
    path = tmp_path / "jv12.ts"
    path.write_text(head + body)
    return path, [str(v) for v in y[:12]]


def test_train_on_your_data_holds_out_validation_and_stops_early(tmp_path, capsys, basic_motions):
    train, test = basic_motions
    argv = ["train", "--train-file", str(train), "--test-file", str(test), "--out", str(tmp_path)]
    assert main([*argv, "--epochs", "12", "--patience", "3", "--hidden", "8"]) == 0
    out = capsys.readouterr().out
    assert "val. loss  val. acc." in out
    lines = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert all(len(cells) == 6 for cells in lines)  # the validation columns are filled
    assert "; kept the weights of epoch" in out
    assert "test accuracy" in out
    net = load_network(tmp_path / "BasicMotions.npz")
    assert net.layer("lstm").hidden_size == 8 and len(net.class_names) == 4


def test_train_refuses_to_replace_a_network_without_overwrite(tmp_path, capsys):
    from test_reliability import ts_file

    out = tmp_path / "o"
    out.mkdir()
    (out / "MODEL_CARD.md").write_text("the shipped card")
    assert main(["train", "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MODEL_CARD.md" in err and "--overwrite" in err
    assert (out / "MODEL_CARD.md").read_text() == "the shipped card"
    assert not (out / "JapaneseVowelsNet.npz").exists()

    argv = ["train", "--train-file", str(ts_file(tmp_path / "t.ts")), "--out", str(out)]
    assert main([*argv, "--epochs", "1"]) == 0
    before = (out / "Toy.npz").read_bytes()
    assert main([*argv, "--epochs", "2"]) == 2
    assert "Toy.npz: pass --overwrite" in capsys.readouterr().err
    assert (out / "Toy.npz").read_bytes() == before
    assert main([*argv, "--epochs", "2", "--overwrite"]) == 0
    assert (out / "Toy.npz").read_bytes() != before
