"""Fuzzing the estimator, ``lstm-ref train --train-file`` and the scoring of shards with
random and hostile arguments, data and files.

Every argument is drawn from a pool of (value, valid?) pairs (all valid, or one hostile); a
case is judged by :mod:`fuzz_cases`: a valid one must train or score and give finite
probabilities, an invalid one must raise an ``LstmRefError`` or exit 2 with one line; no
warning escapes; nothing outside the output folder is written. (Scoring through a real Dask
cluster, bad shards included, is test_scale.py's: here each shard goes through what a
worker runs on it, ``score_file``.) A fixed seed and a fresh one run each time.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzz_cases import draw, finite, judge, judge_cli, pick, recorded_warnings, report, snapshot
from fuzz_seeds import FUZZ_SEEDS
from random_nets import random_network
from test_fuzz import mutations, sequence_files

from lstm_ref import load_network
from lstm_ref.cli import main
from lstm_ref.estimator import LSTMClassifier

NAN = float("nan")
ESTIMATOR_CASES = 50  # per seed
TRAIN_CASES = 30
SHARD_CASES = 40  # per shard format

PARAMETERS = {
    "hidden_size": [(2, True), (np.int64(3), True), (0, False), (2.5, False), (True, False)],
    "max_epochs": [(1, True), (2, True), (0, False), (None, False)],
    "learning_rate": [(1e-2, True), (NAN, False), (float("inf"), False), ("0.1", False)],
    "batch_size": [(4, True), (1, True), (0, False), (1.5, False)],
    "patience": [(None, True), (1, True), (0, False), (-1, False)],
    "validation_fraction": [(0.2, True), (0.5, True), (0.0, False), (1.0, False), (NAN, False)],
    "zscore": [(True, True), (False, True), ("no", False), (1, False), (None, False)],
    "random_state": [(0, True), (12, True), (-1, False), (1.5, False)],
    "layout": [("CT", True), ("TC", True), ("NTC", False), (None, False)],
}


def data(rng: np.random.Generator, layout: str, valid: bool) -> tuple[object, bool]:
    """Eight sequences of two features, in one of the accepted layouts — or not."""
    lengths = rng.integers(3, 7, size=8)
    seqs = [rng.normal(size=(T, 2)) for T in lengths]  # (T, C) each
    oriented = [s if layout == "TC" else s.T for s in seqs]
    padded = rng.normal(size=(8, 5, 2))
    accepted = [
        (np.stack([s.T for s in padded]) if layout == "CT" else padded, True),
        (oriented, True),
        (rng.normal(size=(8, 6)), True),  # univariate (N, T)
        ([s[:, 0] for s in seqs], True),  # univariate series of their own lengths
    ]
    nan = [s.copy() for s in oriented]
    nan[3].flat[2] = NAN
    refused = [
        (rng.normal(size=8), False),
        ([], False),
        (nan, False),
        (padded.astype(complex), False),
        (np.array([["a"] * 5] * 8), False),
        (rng.normal(size=(8, 2, 2, 5)), False),
        ([oriented[0], rng.normal(size=(4, 3))], False),
        (None, False),
    ]
    return pick(accepted if valid else refused, rng)


def labels(rng: np.random.Generator, valid: bool) -> tuple[object, bool]:
    """Eight labels of two or three classes — or not."""
    return pick(
        [
            (np.array([0, 1] * 4), True),
            (["a", "b", "c", "a", "b", "c", "a", "b"], True),
            (np.array([2.0, 5.0] * 4), True),
            (np.zeros(8, int), False),
            (np.array([0, 1] * 3), False),
            (np.array([0, 1] * 4)[:, None], False),
            (None, False),
            (np.linspace(0, 1, 8), False),
        ],
        rng,
        valid,
    )


def fitted_problem(clf: LSTMClassifier, X: object, y: object) -> str | None:
    """A check: probabilities finite, each row summing to 1, labels of ``classes_``, a score
    in [0, 1] — and a label array that is not one per sequence refused, never broadcast."""
    proba = clf.predict_proba(X)
    if finite(proba) or not np.allclose(proba.sum(axis=1), 1):
        return f"probabilities {proba}"
    if not set(clf.predict(X)) <= set(clf.classes_) or not 0 <= clf.score(X, y) <= 1:
        return "labels or score out of range"
    problem = judge(lambda: clf.score(X, np.asarray(y)[:1]), False)
    return problem and f"score(X, y[:1]): {problem}"


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
def test_estimator(seed):
    rng = np.random.default_rng([seed, 3])
    failures = []
    for _ in range(ESTIMATOR_CASES):
        hostile = rng.integers(6)  # 0, 1, 2: the data, the labels or a parameter; else none
        pools = list(PARAMETERS.values())
        choices = dict(zip(PARAMETERS, draw(pools, rng, hostile == 2), strict=True))
        params = {k: v for k, (v, _) in choices.items()}
        layout = params["layout"] if params["layout"] in ("CT", "TC") else "CT"
        (X, x_ok), (y, y_ok) = data(rng, layout, hostile != 0), labels(rng, hostile != 1)
        valid = x_ok and y_ok and all(ok for _, ok in choices.values())

        def fit(params=params, X=X, y=y):
            return LSTMClassifier(**params).fit(X, y)

        problem = judge(fit, valid, lambda clf, X=X, y=y: fitted_problem(clf, X, y))
        if problem:
            failures.append(f"{params}, X {type(X).__name__}, y {y!r}: {problem}"[:400])
    assert not failures, report(seed, ESTIMATOR_CASES, failures)


# ---------------------------------------------------------- lstm-ref train --train-file
def ts_text(rows: list[tuple[str, str]], classes: str = "a b", name: str = "Toy") -> str:
    header = f"@problemName {name}\n@univariate false\n@dimensions 2\n@equalLength false\n"
    body = "\n".join(f"{series}:{label}" for series, label in rows)
    return f"{header}@classLabel true {classes}\n@data\n{body}\n"


def ts_rows(rng: np.random.Generator, labels: str) -> list[tuple[str, str]]:
    rows = []
    for label in labels:
        T = int(rng.integers(3, 6))
        dims = [",".join(f"{v:.3f}" for v in rng.normal(size=T)) for _ in range(2)]
        rows.append((":".join(dims), label))
    return rows


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
def test_train_file_command(tmp_path, capsys, monkeypatch, seed):
    rng = np.random.default_rng([seed, 4])
    given = tmp_path / "given"
    given.mkdir()
    good = ts_text(ts_rows(rng, "ababab"))
    files = {
        "good.ts": (good, True),
        "one_class.ts": (ts_text(ts_rows(rng, "aaaa")), False),
        "unlabelled.ts": (good.replace("@classLabel true a b", "@classLabel false"), False),
        "undeclared.ts": (ts_text(ts_rows(rng, "abcab")), False),  # c is not declared
        "empty.ts": ("", False),
    }
    for name, (text, _) in files.items():
        (given / name).write_text(text)
    damaged = list(mutations(good.encode(), rng, 4))
    for k, data in enumerate(damaged):
        (given / f"damaged{k}.ts").write_bytes(data)
    tests = {
        None: True,
        "good.ts": True,
        "undeclared.ts": False,  # classes the training file does not declare
        "missing.ts": False,
    }
    options = {
        "--validation-split": [("0.3", True), ("-0.2", False), ("nan", False), ("1", False)],
        "--seed": [("0", True), ("3", True), ("-1", False), ("1.5", False)],
        "--epochs": [("1", True), ("2", True), ("0", False)],
        "--hidden": [("2", True), ("0", False), ("1000000000", False)],
        "--batch-size": [("2", True), ("0", False)],
        "--lr": [("0.01", True), ("inf", False)],
    }
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    before = snapshot(given)
    failures = []
    for k in range(TRAIN_CASES):
        hostile = rng.integers(6)  # 0, 1, 2: the file, an option or the test file; else none
        if k < len(damaged):
            train, valid = f"damaged{k}.ts", None
        else:
            train, valid = pick([(n, ok) for n, (_, ok) in files.items()], rng, hostile != 0)
        argv = ["train", "--train-file", str(given / train), "--out", str(out)]
        drawn = draw(list(options.values()), rng, hostile == 1)
        for option, (value, ok) in zip(options, drawn, strict=True):
            argv += [option, value]
            valid = valid and ok if valid is not None else None
        test, test_ok = pick(list(tests.items()), rng, hostile != 2)
        if test is not None:
            argv += ["--test-file", str(given / test)]
            valid = valid and test_ok if valid is not None else None
        problem = judge_cli(argv, valid, capsys)
        written = sorted(p.name for p in out.iterdir()) if out.exists() else []
        if problem is None and written:
            net = load_network(out / written[0])  # finite: every layer's arrays are checked
            problem = finite(net.predict(np.ones((3, 2))))
        elif problem is None and valid:
            problem = f"{argv}: nothing written"
        if problem:
            failures.append(problem)
        if out.exists():
            for p in out.iterdir():
                p.unlink()
    assert snapshot(given) == before, "train changed a file outside its output folder"
    assert {p.name for p in tmp_path.iterdir()} <= {"given", "out"}, "train wrote elsewhere"
    assert not failures, report(seed, TRAIN_CASES, failures)


# --------------------------------------------------------------------------- shards
@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".ts"])
def test_shards(tmp_path, seed, suffix):
    """Each damaged shard is scored (probabilities finite, one row per sequence, summing to
    1) or refused without a scores file — what a worker reports as a bad shard."""
    from lstm_ref import Padding
    from lstm_ref.scale.files import read_scores
    from lstm_ref.scale.worker import score_file

    rng = np.random.default_rng([seed, 5])
    valid = sequence_files(rng)[suffix]
    net = random_network(rng, C=2 if suffix == ".ts" else 5, H=3, K=3)
    padding = Padding.matlab(mini_batch_size=2) if rng.integers(2) else Padding.masked()
    failures = []
    for k, data in enumerate(mutations(valid, rng, SHARD_CASES)):
        shard, scores = tmp_path / f"shard{k}{suffix}", tmp_path / f"shard{k}{suffix}.csv"
        shard.write_bytes(data)

        def scored(shard=shard, scores=scores):
            count = score_file(shard, scores, net, padding=padding)
            return count, read_scores(scores)

        def check(result):
            count, read = result
            sums = read.scores.sum(axis=1)
            if finite(read.scores) or len(read.names) != count or not np.allclose(sums, 1):
                return f"scores {read.scores}"
            return None

        problem = judge(scored, None, check)
        if problem:
            failures.append(f"case {k}: {problem}")
        for p in (shard, scores):
            p.unlink(missing_ok=True)
    assert not list(tmp_path.iterdir()), "temporary files left behind"
    assert not failures, report(seed, SHARD_CASES + 2, failures)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "{given}", "--network", "{given}/none.npz", "--out", "{out}"], "no model file"),
        (["score", "{given}", "--out", "{given}"], "holds shards"),
        (["score", "{given}", "--out", "{out}", "--workers", "0"], "expected an integer >= 1"),
        (["score", "{given}/none*.npz", "--out", "{out}"], "no shard"),
    ],
)
def test_score_command_refuses_before_any_work(tmp_path, capsys, argv, message):
    given = tmp_path / "given"
    given.mkdir()
    (given / "a.npy").write_bytes(sequence_files(np.random.default_rng(0))[".npy"])
    argv = [a.format(given=given, out=tmp_path / "out") for a in argv]
    capsys.readouterr()
    with recorded_warnings():
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
