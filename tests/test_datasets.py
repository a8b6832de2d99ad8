"""Tests of the ``.ts`` parser, the bundled Japanese Vowels data and its build script."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from lstm_ref.datasets import (
    TSDataset,
    TSFormatError,
    load_japanese_vowels,
    parse_ts,
    read_ts,
)
from lstm_ref.datasets import build_japanese_vowels as build_script
from lstm_ref.datasets.japanese_vowels import (
    CLASS_NAMES,
    bundle_sha256,
    provenance,
    read_bundle,
)

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

SPLITS = ("train", "test")
BUNDLE_DIR = files("lstm_ref.datasets") / "data"

MULTIVARIATE = """\
# A toy problem: 2 dimensions, lengths 3 and 2.
@problemName Toy
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b

@data
# comments and blank lines are allowed among the cases
1,2,3:4,5,6:b

0.5, -1e-3 :7,8.25:a
"""

HEADER = """\
@problemName Toy
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
"""  # cases start on line 9


# --------------------------------------------------------------------------- parser


def test_parse_multivariate_variable_length() -> None:
    dataset = parse_ts(MULTIVARIATE)
    assert isinstance(dataset, TSDataset)
    assert len(dataset.sequences) == 2
    np.testing.assert_array_equal(dataset.sequences[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(dataset.sequences[1], [[0.5, 7], [-0.001, 8.25]])
    assert all(s.dtype == np.float64 and s.flags.c_contiguous for s in dataset.sequences)
    np.testing.assert_array_equal(dataset.labels, ["b", "a"])
    assert dataset.labels.dtype.kind == "U"
    assert dataset.class_names == ("a", "b")
    assert dataset.problem_name == "Toy"
    assert dataset.metadata == {
        "problemName": "Toy",
        "timeStamps": "false",
        "missing": "false",
        "univariate": "false",
        "dimensions": "2",
        "equalLength": "false",
        "classLabel": "true a b",
    }


def test_parse_univariate_equal_length_without_labels() -> None:
    text = (
        "\ufeff@ProblemName\tUni\r\n@UNIVARIATE true\r\n@equalLength true\r\n"
        "@seriesLength 3\r\n@classLabel false\r\n@data\r\n1,2,3\r\n+4,5e1,.5\r\n"
    )
    dataset = parse_ts(text)
    np.testing.assert_array_equal(dataset.sequences[0], [[1], [2], [3]])
    np.testing.assert_array_equal(dataset.sequences[1], [[4], [50], [0.5]])
    assert dataset.labels.shape == (0,)
    assert dataset.class_names == ()
    assert dataset.problem_name == "Uni"
    assert dataset.metadata["univariate"] == "true"
    assert dataset.metadata["seriesLength"] == "3"


def test_parse_missing_values_become_nan() -> None:
    text = "@missing true\n@classLabel true x\n@data\n1,?,3:?,5,6:x\n"
    (sequence,) = parse_ts(text).sequences
    np.testing.assert_array_equal(sequence, [[1, np.nan], [np.nan, 5], [3, 6]])


def test_parse_regression_targets_are_kept_as_written() -> None:
    text = "@targetLabel true\n@data\n1,2:3,4:0.25\n5,6:7,8:-3\n"
    dataset = parse_ts(text)
    np.testing.assert_array_equal(dataset.labels, ["0.25", "-3"])
    assert dataset.labels.astype(float).tolist() == [0.25, -3.0]
    assert dataset.class_names == ()


def test_read_ts_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "toy.ts"
    path.write_text(MULTIVARIATE, encoding="utf-8")
    np.testing.assert_array_equal(read_ts(path).sequences[0], parse_ts(MULTIVARIATE).sequences[0])


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", None, "empty file"),
        ("# only a comment\n\n", None, "empty file"),
        ("@problemName Toy\n@classLabel false\n", None, "missing @data line"),
        ("@problemName Toy\n# note\n@foo 1\n@data\n1\n", 3, "unknown header @foo"),
        ("@problemName\n@data\n1\n", 1, "@problemName needs a value"),
        ("@data now\n1\n", 1, "@data takes no value, got 'now'"),
        ("@classLabel false a\n@data\n1\n", 1, "@classLabel false takes no labels"),
        ("@classLabel true a\n@targetLabel true\n@data\n", 2, "exclude each other"),
        ("@missing yes\n@data\n1\n", 1, "@missing expects true or false, got 'yes'"),
        ("@dimensions two\n@data\n1\n", 1, "@dimensions expects a positive integer, got 'two'"),
        ("@dimensions 1\n@Dimensions 1\n@data\n1\n", 2, "duplicate header @dimensions"),
        ("@classLabel true\n@data\n1:a\n", 1, "@classLabel true needs the list of class labels"),
        ("@classLabel true a a\n@data\n1:a\n", 1, "@classLabel declares a twice"),
        ("@timeStamps true\n@data\n(0,1)\n", 1, "(@timeStamps true) are not supported"),
        ("1,2,3\n@data\n", 1, "data line before @data"),
        ("@classLabel false\n@data\n", 2, "no cases after @data"),
        ("@univariate true\n@dimensions 2\n@data\n1\n", 2, "contradicts @dimensions 2"),
        (HEADER + "1,2:3,4:a\n@dimensions 2\n", 10, "header @dimensions after @data"),
        (HEADER + "1,2,3:4,5:a\n", 9, "dimension 2 has 2 values but dimension 1 has 3"),
        (HEADER + "1,2:3,4:a\n1,2:3,4:c\n", 10, "class label 'c' not declared in @classLabel"),
        (HEADER + "1,2:3,4:5,6:a\n", 9, "expected 2 dimensions, got 3"),
        (HEADER + "1,2:3,4:\n", 9, "empty label after the last ':'"),
        (HEADER + "1,2,3\n", 9, "no ':' between the values and the label"),
        (HEADER + "1,abc:3,4:a\n", 9, "dimension 1: could not parse 'abc' as a number"),
        (HEADER + "1,2:3,,4:a\n", 9, "dimension 2: could not parse '' as a number"),
        (HEADER + "1,2: :a\n", 9, "dimension 2 has no values"),
        (HEADER + "1,nan:3,4:a\n", 9, "could not parse 'nan' as a number"),
        (HEADER + "1,1e999:3,4:a\n", 9, "value '1e999' overflows float64"),
        (HEADER + "1,?:3,4:a\n", 9, "missing value '?' but @missing is not true"),
        ("@classLabel false\n@data\n1,2:3,4\n\n1,2\n", 5, "expected 2 dimensions (as on line 3)"),
        ("@equalLength true\n@data\n1,2\n1,2,3\n", 4, "differs from 2 on line 3"),
        ("@seriesLength 2\n@data\n1,2,3\n", 3, "series length 3 does not match @seriesLength 2"),
        ("@targetLabel true\n@data\n1,2:high\n", 3, "could not parse target 'high' as a number"),
    ],
)
def test_parse_errors_name_line_and_reason(text: str, line: int | None, reason: str) -> None:
    with pytest.raises(TSFormatError) as caught:
        parse_ts(text)
    assert caught.value.line == line
    assert reason in caught.value.reason
    expected_prefix = "" if line is None else f"line {line}: "
    assert str(caught.value) == expected_prefix + caught.value.reason


def test_parse_error_lists_the_declared_labels() -> None:
    with pytest.raises(TSFormatError, match=r"^line 9: .*\(declared: a b\)$"):
        parse_ts(HEADER + "1:2:z\n")


def test_ts_format_error_is_a_value_error() -> None:
    assert issubclass(TSFormatError, ValueError)


# ---------------------------------------------------------------------- bundled data


@pytest.mark.parametrize(
    ("split", "count", "min_length", "max_length", "class_counts"),
    [
        ("train", 270, 7, 26, [30] * 9),
        ("test", 370, 7, 29, [31, 35, 88, 44, 29, 24, 40, 50, 29]),
    ],
)
def test_bundled_split_matches_the_published_description(
    split: str, count: int, min_length: int, max_length: int, class_counts: list[int]
) -> None:
    sequences, labels = load_japanese_vowels(split)
    lengths = [len(sequence) for sequence in sequences]
    assert len(sequences) == labels.shape[0] == count
    assert (min(lengths), max(lengths)) == (min_length, max_length)
    assert all(s.dtype == np.float64 and s.shape[1] == 12 for s in sequences)
    assert labels.dtype == np.dtype("<U1")
    names, counts = np.unique(labels, return_counts=True)
    assert tuple(names) == CLASS_NAMES == tuple("123456789")
    assert counts.tolist() == class_counts


def test_first_test_sequence() -> None:
    sequences, labels = load_japanese_vowels("test")
    assert sequences[0].shape == (19, 12)
    np.testing.assert_array_equal(sequences[0][0, :3], [1.635533, 0.024848, 0.432087])
    assert labels[0] == "1"


def test_wrong_split_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'validation'"):
        load_japanese_vowels("validation")  # type: ignore[arg-type]


@pytest.mark.parametrize("split", SPLITS)
def test_stored_checksum_matches_a_recomputation(split: str) -> None:
    with np.load(io.BytesIO((BUNDLE_DIR / "japanese_vowels.npz").read_bytes())) as npz:
        arrays = {key: npz[key] for key in npz.files}
    assert sorted(arrays) == sorted(
        f"{s}_{part}" for s in SPLITS for part in ("values", "lengths", "labels")
    )
    values, lengths, labels = (
        arrays[f"{split}_{part}"] for part in ("values", "lengths", "labels")
    )
    assert (values.dtype, lengths.dtype, labels.dtype) == (np.float64, np.int64, np.dtype("<U1"))
    assert bundle_sha256(values, lengths, labels) == provenance()["splits"][split]["bundle_sha256"]


def test_corrupted_bundle_is_refused(tmp_path: Path) -> None:
    with np.load(io.BytesIO((BUNDLE_DIR / "japanese_vowels.npz").read_bytes())) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["train_values"][5, 3] += 1e-6
    np.savez_compressed(tmp_path / "japanese_vowels.npz", **arrays)
    (tmp_path / "japanese_vowels.json").write_bytes(
        (BUNDLE_DIR / "japanese_vowels.json").read_bytes()
    )
    with pytest.raises(RuntimeError, match="train split is corrupted"):
        read_bundle(tmp_path, "train")
    assert len(read_bundle(tmp_path, "test")[0]) == 370


def test_provenance_record() -> None:
    record = provenance()
    assert record["doi"] == "10.24432/C5NS47"
    assert record["license"]["name"] == "CC BY 4.0"
    assert "Kudo" in record["citation"] and "1103-1111" in record["citation"]
    assert record["source"]["distribution"] == "sktime"
    assert record["source"]["version"] == "1.2.0"
    assert record["source"]["files"]["test"]["sha256"] == (
        "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462"
    )
    assert record["source"]["files"]["train"]["sha256"] == (
        "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd"
    )
    assert record["build_command"].startswith("python -m lstm_ref.datasets.build_japanese_vowels")


# ------------------------------------------------------------- against the source files


@pytest.fixture(scope="module")
def ts_dir() -> Path:
    """Directory holding the source ``.ts`` files: $LSTM_REF_TS_DIR or an installed copy."""
    if os.environ.get("LSTM_REF_TS_DIR"):
        return Path(os.environ["LSTM_REF_TS_DIR"])
    found = build_script.find_installed_ts_directory()
    if found is None:
        pytest.skip(
            "source JapaneseVowels_{TRAIN,TEST}.ts not available: neither sktime nor aeon "
            "is installed and LSTM_REF_TS_DIR is not set"
        )
    return found[2]


@pytest.mark.parametrize("split", SPLITS)
def test_bundle_equals_the_parsed_source_file(ts_dir: Path, split: str) -> None:
    source = ts_dir / build_script.ts_file_name(split)
    assert (
        hashlib.sha256(source.read_bytes()).hexdigest()
        == provenance()["source"]["files"][split]["sha256"]
    )
    expected = read_ts(source)
    sequences, labels = load_japanese_vowels(split)
    assert len(sequences) == len(expected.sequences)
    assert all(np.array_equal(a, b) for a, b in zip(sequences, expected.sequences, strict=True))
    np.testing.assert_array_equal(labels, expected.labels)


def test_build_reproduces_the_bundle_from_a_directory(ts_dir: Path, tmp_path: Path) -> None:
    assert build_script.main(["--source", str(ts_dir), "--output-dir", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "japanese_vowels.json").read_text(encoding="utf-8"))
    bundled = provenance()
    assert record["splits"] == bundled["splits"]
    assert record["source"]["kind"] == "directory"
    assert (
        record["source"]["files"]["train"]["sha256"]
        == bundled["source"]["files"]["train"]["sha256"]
    )
    assert _npy_members(tmp_path / "japanese_vowels.npz") == _npy_members(
        BUNDLE_DIR / "japanese_vowels.npz"
    )
    for split in SPLITS:
        rebuilt, rebuilt_labels = read_bundle(tmp_path, split)
        sequences, labels = load_japanese_vowels(split)
        assert all(np.array_equal(a, b) for a, b in zip(rebuilt, sequences, strict=True))
        np.testing.assert_array_equal(rebuilt_labels, labels)


def _npy_members(npz: Traversable) -> dict[str, bytes]:
    """The uncompressed ``.npy`` files of an npz, independent of the zlib version."""
    with zipfile.ZipFile(io.BytesIO(npz.read_bytes())) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_build_from_a_wheel_is_deterministic(ts_dir: Path, tmp_path: Path) -> None:
    wheel = tmp_path / "sktime-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for split in SPLITS:
            name = build_script.ts_file_name(split)
            archive.write(ts_dir / name, f"sktime/datasets/data/JapaneseVowels/{name}")
    first = build_script.build(wheel, tmp_path / "first")
    second = build_script.build(wheel, tmp_path / "second")
    assert first == second
    assert first["source"]["wheel"] == wheel.name
    assert first["source"]["version"] == "1.2.0"
    assert first["build_command"].endswith("--source sktime-1.2.0-py3-none-any.whl")
    for name in ("japanese_vowels.npz", "japanese_vowels.json"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()


def test_build_rejects_a_wrong_source(tmp_path: Path) -> None:
    (tmp_path / "not-a-wheel.whl").write_bytes((BUNDLE_DIR / "japanese_vowels.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="neither a wheel"):
        build_script.build(tmp_path / "not-a-wheel.whl", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"JapaneseVowels_TRAIN\.ts not found"):
        build_script.build(tmp_path, tmp_path)


def test_build_checks_the_counts() -> None:
    too_short = parse_ts(
        "@classLabel true 1 2 3 4 5 6 7 8 9\n@data\n" + "1:2:3:4:5:6:7:8:9:10:11:12:1\n"
    )
    with pytest.raises(ValueError, match="train split: 1 sequences, expected 270"):
        build_script.check_split("train", too_short)


def test_sktimes_own_file_with_percent_comments_reads_as_sktime_reads_it():
    import sktime
    from sktime.datasets import load_from_tsfile_to_dataframe

    path = Path(sktime.__file__).parent / "datasets/data/UnitTest/UnitTest_TRAIN.ts"
    assert path.read_text().startswith("%")
    data = read_ts(path)
    frame, labels = load_from_tsfile_to_dataframe(str(path))
    assert len(data.sequences) == len(frame) == 20 and data.class_names == ("1", "2")
    assert list(data.labels) == list(labels)
    for ours, theirs in zip(data.sequences, frame.iloc[:, 0], strict=True):
        np.testing.assert_array_equal(ours[:, 0], theirs.to_numpy())
