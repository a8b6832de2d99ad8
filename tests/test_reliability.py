"""A reference never lies silently, never loses a file, never crashes on a bad one.

One test per defect class found by trying lstm_ref as a hostile user would; each would fail
without its check. (Corrupt files at scale: test_fuzz.py; invariants: test_properties.py.)
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from random_nets import random_network

from lstm_ref import InputError, Padding, load_network, save_network
from lstm_ref.cli import main
from lstm_ref.formats import read_sequences
from lstm_ref.train import Adam, Recipe, TrainingOptions, fit

TS_HEADER = "@univariate false\n@dimensions 2\n@equalLength false\n"


def ts_file(path: Path, name: str = "Toy", labels: str = "@classLabel true a b") -> Path:
    rows = [
        "1.0,2.0,3.0:4.0,5.0,6.0:a",
        "0.5,0.25,0.1:7.0,8.0,9.0:b",
        "1.5,2.5,3.5:4.5,5.5,6.5:a",
        "0.1,0.2,0.3:0.4,0.5,0.6:b",
    ]
    if "classLabel false" in labels or "targetLabel" in labels:
        rows = [r.rsplit(":", 1)[0] + (":1.5" if "targetLabel" in labels else "") for r in rows]
    path.write_text(f"@problemName {name}\n{TS_HEADER}{labels}\n@data\n" + "\n".join(rows) + "\n")
    return path


# ---------------------------------------------------------------- no silent loss of data
def test_csv_with_a_byte_order_mark_keeps_its_first_time_step(tmp_path):
    x = np.arange(12.0).reshape(4, 3)
    path = tmp_path / "s.csv"
    text = "\n".join(",".join(map(str, row)) for row in x)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    np.testing.assert_array_equal(read_sequences(path)[0], x)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1;2;3\n4;5;6\n", r"line 1: not comma-separated numbers: '1;2;3'"),
        ("a,b\n1,2\n\n3,x\n", r"line 4: not comma-separated numbers: '3,x'"),
        ("f1,2\n3,4\n", r"line 1: not comma-separated numbers"),  # '2' could be a number
        ("1,2\n3,4,5\n", r"line 2: 3 columns; the first line has 2"),
        ("t,x\n", "no data lines"),
    ],
)
def test_csv_never_drops_a_line_it_cannot_read(tmp_path, text, match):
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        read_sequences(path)


def test_csv_header_is_recognised_only_when_it_cannot_be_numbers(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("time,x\n1,2\n3,4\n")
    np.testing.assert_array_equal(read_sequences(path)[0], [[1, 2], [3, 4]])


def test_binary_file_where_text_is_expected(tmp_path):
    for suffix in (".csv", ".ts"):
        path = tmp_path / f"s{suffix}"
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
        with pytest.raises(InputError, match=r"not UTF-8 text .* binary file"):
            read_sequences(path)


# ------------------------------------------------------------- no wrong numbers, ever
def test_predict_refuses_input_that_overflows_instead_of_printing_nan(tmp_path, capsys):
    np.save(tmp_path / "huge.npy", np.full((5, 12), 1.7e308))
    assert main(["predict", str(tmp_path / "huge.npy")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "overflowed float64 on sequence 1 at time step 1" in err


def test_training_that_diverges_stops_and_saves_nothing(tmp_path, monkeypatch, capsys):
    step = Adam.step

    def poisoned(self, params, grads):
        step(self, params, grads)
        if self.t == 3:
            params["lstm/R"][0, 0] = np.nan

    monkeypatch.setattr(Adam, "step", poisoned)
    args = ["train", "--train-file", str(ts_file(tmp_path / "t.ts")), "--out", str(tmp_path / "o")]
    assert main([*args, "--epochs", "5", "--hidden", "3"]) == 2
    assert (
        "training diverged in epoch 3: ['lstm/R'] are no longer finite" in capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------- files where nobody asked
def test_a_ts_problem_name_cannot_write_outside_the_output_folder(tmp_path, capsys):
    train = ts_file(tmp_path / "t.ts", name="../../escaped /etc/passwd")
    out = tmp_path / "deep" / "o"
    assert main(["train", "--train-file", str(train), "--out", str(out), "--epochs", "1"]) == 0
    written = list(out.iterdir())
    assert [p.name for p in written] == ["escaped_etc_passwd.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "t.ts"]
    assert load_network(written[0]).class_names == ("a", "b")
    capsys.readouterr()


def test_a_folder_named_like_the_network_hides_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["walkthrough", "--out", "JapaneseVowelsNet"]) == 0
    assert main(["layers"]) == 0
    assert "LSTM with 100 hidden units" in capsys.readouterr().out
    assert (tmp_path / "JapaneseVowelsNet" / "lstm_activations.png").is_file()


def test_interrupted_training_exits_130_and_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("lstm_ref.train.recipe.fit", interrupted)
    out = tmp_path / "o"
    train = ts_file(tmp_path / "t.ts")
    assert main(["train", "--train-file", str(train), "--out", str(out)]) == 130
    assert "training interrupted; nothing was saved" in capsys.readouterr().err
    assert not out.exists()


def test_predict_into_a_closed_pipe_ends_quietly(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "many.npy", rng.normal(size=(3000, 7, 12)))
    run = subprocess.run(
        f"{sys.executable} -m lstm_ref.cli predict {tmp_path / 'many.npy'} --scores | head -n 2",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(run.stdout.splitlines()) == 2
    assert run.stderr == ""


# ------------------------------------------------------ garbage refused up front
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "units", "--threshold", "nan"], "threshold must be a finite number; got nan"),
        (["train", "--hidden", "1000000000"], "would take"),
    ],
)
def test_cli_refuses_garbage_in_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("@classLabel false", "no class labels (@classLabel true ...) to train on"),
        ("@targetLabel true", "regression (@targetLabel true) is not supported"),
    ],
)
def test_train_needs_class_labels(tmp_path, capsys, labels, message):
    train = ts_file(tmp_path / "t.ts", labels=labels)
    assert main(["train", "--train-file", str(train), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_test_file_must_match_the_training_file(tmp_path, capsys):
    train = ts_file(tmp_path / "t.ts")
    other = ts_file(tmp_path / "u.ts", labels="@classLabel true a c")
    other.write_text(other.read_text().replace(":b\n", ":c\n"))
    argv = ["train", "--train-file", str(train), "--test-file", str(other)]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "--test-file has classes ['c'] that --train-file does not declare" in (
        capsys.readouterr().err
    )


def test_sizes_are_refused_before_allocating(rng):
    net = random_network(rng)
    with pytest.raises(InputError, match=r"padded mini-batch of shape \(1, 1000000000000, 5\)"):
        net.predict(np.zeros((3, 5)), padding=Padding.matlab(sequence_length=10**12))
    with pytest.raises(InputError, match="an LSTM of 1000000000 hidden units"):
        fit([np.zeros((3, 2))] * 2, ["a", "b"], ["a", "b"], Recipe(hidden_size=10**9), log=None)
    with pytest.raises(InputError, match="one label per sequence: 2 sequences, 1 labels"):
        fit([np.zeros((3, 2))] * 2, ["a"], ["a", "b"], log=None)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (
            np.zeros((0, 5, 5)),
            InputError,
            r"at least one sequence; got a batch of shape \(0, 5, 5\)",
        ),
        (
            np.zeros((3, 5), dtype="m8[s]"),
            TypeError,
            "expected real numbers; got dtype timedelta64",
        ),
        (
            np.ma.masked_array(np.full((3, 5), np.nan), mask=True),
            TypeError,
            "masked arrays are not read",
        ),
    ],
)
def test_predict_refuses_what_it_cannot_compute(rng, x, error, match):
    with pytest.raises(error, match=match):
        random_network(rng).predict(x)


def test_options_are_checked_when_made():
    for bad, match in [
        ({"learning_rate": np.inf}, "learning_rate must be a finite number; got inf"),
        ({"learning_rate": np.nan}, "learning_rate must be a finite number; got nan"),
        ({"gradient_threshold": 0.0}, "gradient_threshold must be positive"),
    ]:
        with pytest.raises(InputError, match=match):
            TrainingOptions(**bad)


# ------------------------------------- the entry points added since the first sweep
def one_line_exit_2(argv, capsys, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"HiddenState": np.ones((8, 1))}, r"'HiddenState' must be 7 × 1; got shape \(8,( 1)?\)"),
        ({"Bias": np.ones((14, 2))}, r"'Bias' must be 28 × 1; got shape \(14, 2\)"),
        ({"InputWeights": np.ones((28, 5), bool)}, "'InputWeights' holds bool values"),
    ],
)
@pytest.mark.parametrize("version", ["5", "7.3"])
def test_matlab_files_are_never_truncated_flattened_or_cast(rng, tmp_path, change, match, version):
    import scipy.io

    from lstm_ref.interop import load_model
    from lstm_ref.interop.matlab import _write_v73

    net = random_network(rng)
    lstm, fc = net.layer("lstm"), net.layers[2]
    values = {
        "InputWeights": lstm.params.W,
        "RecurrentWeights": lstm.params.R,
        "Bias": lstm.params.b[:, None],
        "FcWeights": fc.weights,
        "FcBias": fc.bias[:, None],
        **change,
    }
    path = tmp_path / "m.mat"
    if version == "5":
        scipy.io.savemat(path, values)
    else:
        with open(path, "wb") as f:
            _write_v73(f, values, None)
        if "InputWeights" in change:  # MATLAB writes logical as uint8 marked 'logical'
            import h5py

            with h5py.File(path, "r+") as h5:
                del h5["InputWeights"]
                d = h5.create_dataset("InputWeights", data=np.ones((5, 28), np.uint8))
                d.attrs["MATLAB_class"] = np.bytes_("logical")
    with pytest.raises(InputError, match=match):
        load_model(path)


def test_estimator_score_and_parameters_are_never_broadcast_or_guessed():
    from lstm_ref.estimator import LSTMClassifier

    X, y = np.random.default_rng(0).normal(size=(8, 2, 5)), np.array([0, 1] * 4)
    clf = LSTMClassifier(hidden_size=3, max_epochs=1, patience=None).fit(X, y)
    for bad in (y[:1], y[:, None]):
        with pytest.raises(InputError, match="y must hold one label per sequence: 8 sequences"):
            clf.score(X, bad)
    for params, match in [
        ({"zscore": "no"}, "zscore must be True or False; got 'no'"),
        ({"random_state": -1}, "random_state must be an integer >= 0; got -1"),
        ({"validation_fraction": np.nan}, "validation_fraction must be a finite number"),
    ]:
        with pytest.raises(InputError, match=match):
            LSTMClassifier(**params).fit(X, y)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--validation-split", "-0.2"],
            "the validation fraction must lie strictly between 0 and 1",
        ),
        (["--validation-split", "nan"], "the validation fraction must be a finite number; got nan"),
        (["--seed", "-1"], "seed must be an integer >= 0; got -1"),
        ([], "the training labels must hold at least two classes; got 1 class: ['a']"),
    ],
)
def test_train_file_refuses_what_the_estimator_refuses(tmp_path, capsys, extra, message):
    train = ts_file(tmp_path / "t.ts")
    if not extra:  # every label one class
        train.write_text(train.read_text().replace(":b\n", ":a\n"))
    argv = ["train", "--train-file", str(train), "--epochs", "1", "--out", str(tmp_path / "o")]
    one_line_exit_2([*argv, *extra], capsys, message)
    assert not (tmp_path / "o").exists()


def test_seeds_and_generated_sizes_are_refused_up_front(tmp_path, capsys, rng):
    from lstm_ref.verify import generate_inputs

    one_line_exit_2(["train", "--seed", "-1", "--epochs", "1"], capsys, "seed must be an integer")
    model = tmp_path / "m.npz"
    save_network(random_network(rng), model)
    verify = ["verify", str(model), "--observed", str(tmp_path / "o.npz")]
    one_line_exit_2([*verify, "--seed", "-1"], capsys, "seed must be an integer >= 0; got -1")
    for option in (["--batch", str(10**9)], ["--length-range", f"1-{10**9}"]):
        one_line_exit_2([*verify, *option], capsys, "the generated inputs of shape")
    one_line_exit_2([*verify, "--length-range", "²-3"], capsys, "expected 'a-b'")
    with pytest.raises(InputError, match=r"generated inputs of shape \(1000000000, 8, 5\)"):
        generate_inputs(5, batch=10**9)
    with pytest.raises(InputError, match=r"generated inputs of shape \(4, 1000000000, 5\)"):
        generate_inputs(5, length_range=(1, 10**9))
    with pytest.raises(InputError, match=r"batch must be an integer >= 1; got 2\.0"):
        generate_inputs(5, batch=2.0)
    with pytest.raises(InputError, match=r"length_range must be a pair \(a, b\); got \(3,\)"):
        generate_inputs(5, length_range=(3,))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["heatmap", "--units", "²"], "--units: expected '1-10' or '3,7,12'"),
        (["heatmap", "--units", f"1-{10**12}"], "--units must lie in 1..100"),
        (["units", "--range", "²-3"], "--range must be 'a-b' with 1 <= a <= b"),
    ],
)
def test_unit_lists_and_ranges_take_ascii_digits_within_bounds(tmp_path, capsys, option, message):
    one_line_exit_2(["plot", *option, "--out", str(tmp_path)], capsys, message)


def test_wrong_objects_are_named_not_crashed_on(rng, tmp_path):
    from lstm_ref import InputTypeError, make_batches
    from lstm_ref.datasets.ts import parse_ts
    from lstm_ref.interop import save_model

    with pytest.raises(InputTypeError, match="the network to save must be a Network; got str"):
        save_network("x", tmp_path / "x.npz")
    with pytest.raises(InputTypeError, match="must be a Network; got NoneType"):
        save_model(None, tmp_path / "x.onnx")
    with pytest.raises(InputError, match=r"sequence 1: expected a \(T, C\) .* shape \(3,\)"):
        make_batches([np.zeros(3)])
    with pytest.raises(InputError, match=r"expected a non-empty list of .* got str"):
        make_batches("abc")
    with pytest.raises(InputTypeError, match=r"the text of a \.ts file must be a str"):
        parse_ts(None)
    net = random_network(rng)
    with pytest.raises(InputError, match=r"h and c must both be \(7,\) or \(N, 7\); got \(\)"):
        net.state = {"lstm": (np.float64(0), np.float64(0))}
    assert not list(tmp_path.iterdir())


def test_a_header_listing_no_arrays_names_what_the_layer_needs(rng, tmp_path):
    import json

    path = tmp_path / "net.npz"
    save_network(random_network(rng), path)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["header"].tobytes())
    header["layers"][1]["arrays"] = []
    arrays = {k: v for k, v in arrays.items() if not k.startswith("lstm/")}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=r"layer 'lstm' .* needs 'W', which its header entry"):
        load_network(path)


def test_training_on_huge_values_says_so_without_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match=r"the training data's std .* at feature [01]"):
            fit([np.full((3, 2), 1e300), np.ones((3, 2))], ["a", "b"], ["a", "b"], log=None)
    assert not caught, [str(w.message) for w in caught]


def test_an_npy_header_with_an_odd_escape_is_refused_without_a_warning(tmp_path):
    text = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': '\\q', }"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    header = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()
    path = tmp_path / "x.npy"
    path.write_bytes(header + bytes(16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match=r"x\.npy: not a valid \.npy header"):
            read_sequences(path)
    assert not caught, [str(w.message) for w in caught]


def _inf_at_first(a):
    a = a.copy()
    a.flat[0] = np.inf
    return a


@pytest.mark.parametrize(
    ("name", "change", "match"),
    [
        ("fc_W", _inf_at_first, r"a constant input holds NaN or Inf"),
        ("fc_b", lambda b: b.reshape(-1, 1), r"its bias C has shape \(2, 1\)"),  # one per row
    ],
)
def test_an_onnx_gemm_it_cannot_read_is_refused_without_a_warning(tmp_path, name, change, match):
    import onnx
    from model_files import exportable_network, save_model_quietly
    from onnx import numpy_helper

    from lstm_ref.interop import load_model

    path = tmp_path / "m.onnx"
    save_model_quietly(exportable_network(np.random.default_rng(0)), path)
    model = onnx.load(path)
    (tensor,) = (t for t in model.graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(tensor)), name))
    onnx.save(model, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match=r"node 'fc' \(Gemm.*" + match):
            load_model(path)
    assert not caught, [str(w.message) for w in caught]
