"""Fuzzing ``verify`` and ``lstm-ref verify`` with random and hostile arguments, observed
outputs of the wrong structure and damaged input files.

Every argument is drawn from a pool of (value, valid?) pairs; a case is valid when all its
arguments are, and is judged by :mod:`fuzz_cases`: a valid case gives a report whose every
statistic is finite (and which the text and JSON writers render), an invalid one raises an
``LstmRefError`` or exits 2 with one line. (Observed values and tolerances that are NaN,
infinite or complex are verify's own suite's.) A fixed seed and a fresh one run each time.
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pytest
from fuzz_cases import draw, finite, judge, judge_cli, pick, report, snapshot
from fuzz_seeds import FUZZ_SEEDS
from random_nets import random_network
from test_fuzz import mutations

from lstm_ref import save_network

CASES = 60  # per seed, API and command line each
C, H, K = 3, 4, 2

SEEDS = [
    (0, True),
    (7, True),
    (2**40, True),
    (-1, False),
    (1.5, False),
    (True, False),
    ("3", False),
]
BATCHES = [(1, True), (4, True), (np.int64(3), True), (0, False), (2.0, False), (10**9, False)]
LENGTHS = [
    ((3, 8), True),
    ((1, 1), True),
    ([2, 5], True),
    ((5, 3), False),
    ((0, 3), False),
    ((1, 10**9), False),
    ((3,), False),
    ("3-8", False),
    ((1.0, 3), False),
]
SCALES = [(1.0, True), (0.01, True), (100, True), (0, False), (-1.0, False), ("1", False)]
SEMANTICS = [(None, True), ("masked", True), ("matlab", True), ("keras", True), ("pad", False)]


def observed_outputs(rng: np.random.Generator, N: int) -> tuple[dict[str, object], bool]:
    """Observed outputs for a batch of N: the right names and shapes (random values), or
    (a third of the time) not."""
    kind = rng.integers(2) if rng.integers(3) else rng.integers(2, 6)
    if kind == 0:
        return {"output": rng.uniform(size=(N, K))}, True
    if kind == 1:
        return {"output": rng.uniform(size=(N, K)), "lstm": rng.normal(size=(N, H))}, True
    if kind == 2:
        return {"output": rng.uniform(size=(N + 1, K))}, False
    if kind == 3:
        return {"lstm2": rng.normal(size=(N, H))}, False
    if kind == 4:
        return {}, False
    return {"output": rng.uniform(size=(N, K)).T.copy()}, N == K


def report_problem(result: object) -> str | None:
    """A check: no statistic of the report is NaN (a relative error is infinite where the
    reference is exactly 0: a saturated gate), and it renders as text and JSON."""
    from lstm_ref.verify.report import dumps, text

    for comparison in result.comparisons:  # type: ignore[attr-defined]
        numbers = [v for v in dataclasses.asdict(comparison).values() if isinstance(v, float)]
        if any(math.isnan(v) for v in numbers):
            return f"NaN statistics in {comparison}"
    text(result)  # type: ignore[arg-type]
    dumps(result)  # type: ignore[arg-type]
    return finite(list(result.rounding.values()))  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
def test_verify_api(seed):
    from lstm_ref.verify import verify

    rng = np.random.default_rng([seed, 1])
    net = random_network(rng, C=C, H=H, K=K)
    failures = []
    for _ in range(CASES):
        choices = draw((SEEDS, BATCHES, LENGTHS, SCALES, SEMANTICS), rng)
        (s, _), (batch, _), (lengths, _), (scale, _), (semantics, _) = choices
        N = int(batch) if isinstance(batch, int | np.integer) and 0 < batch < 100 else 4
        observed, fits = observed_outputs(rng, N)
        valid = fits and all(ok for _, ok in choices)

        def call(s=s, batch=batch, lengths=lengths, scale=scale, sem=semantics, obs=observed):
            kwargs = dict(seed=s, batch=batch, length_range=lengths, scale=scale)
            return verify(net, observed=obs, semantics=sem, **kwargs)

        problem = judge(call, valid, report_problem)
        if problem:
            failures.append(f"{[v for v, _ in choices]}, {sorted(observed)}: {problem}")
    assert not failures, report(seed, CASES, failures)


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
def test_verify_command(tmp_path, capsys, monkeypatch, seed):
    rng = np.random.default_rng([seed, 2])
    given = tmp_path / "given"
    given.mkdir()
    model = given / "m.npz"
    save_network(random_network(rng, C=C, H=H, K=K), model)
    x = rng.normal(size=(3, 5, C))
    files = {  # (file, valid?) for --inputs: None is a damaged file, either way
        "x.npz": (npz(x=x, lengths=np.array([5, 2, 4])), True),
        "x.npy": (npz(x=x)[:0] or b"", False),
        "bad.npz": (npz(x=x, lengths=np.array([5, 9, 4])), False),
        "wide.npz": (npz(x=rng.normal(size=(3, 5, C + 1))), False),
    }
    for name, (data, _) in files.items():
        (given / name).write_bytes(data)
    damaged = list(mutations(files["x.npz"][0], rng, CASES // 4))
    for k, data in enumerate(damaged):
        (given / f"damaged{k}.npz").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    before = snapshot(given)
    failures = []
    for k in range(CASES):
        argv, valid = ["verify", str(model)], True
        if k < len(damaged):
            argv += ["--inputs", str(given / f"damaged{k}.npz")]
            valid, N = None, 3
        elif rng.integers(3) == 0:
            name = list(files)[rng.integers(len(files))]
            argv += ["--inputs", str(given / name)]
            valid, N = files[name][1], 3
        else:
            options = {
                "--seed": [("0", True), ("5", True), ("-1", False), ("x", False)],
                "--batch": [("2", True), ("0", False), ("1000000000", False), ("²", False)],
                "--length-range": [("3-8", True), ("8-3", False), ("1-1000000000", False)],
                "--scale": [("0.5", True), ("nan", False), ("-1", False)],
            }
            N = 4
            for option, (value, ok) in zip(options, draw(list(options.values()), rng), strict=True):
                argv += [option, value]
                valid &= ok
                N = int(value) if option == "--batch" and ok else N
        observed, fits = observed_outputs(rng, N)
        (out / "observed.npz").write_bytes(npz(**observed))  # type: ignore[arg-type]
        argv += ["--observed", str(out / "observed.npz")]
        rare = rng.integers(4) > 0  # mostly valid, so that the others decide
        json, json_ok = pick([(None, True), ("r.json", True), ("r.txt", False)], rng, rare or None)
        argv += ["--json", json] if json else []
        padding, padding_ok = pick(
            [(None, True), ("matlab", True), ("bogus", False)], rng, rare or None
        )
        argv += ["--padding", padding] if padding else []
        if valid is not None:
            valid = valid and fits and json_ok and padding_ok
        problem = judge_cli(argv, valid, capsys, ok=(0, 1))
        if problem:
            failures.append(problem)
    assert snapshot(given) == before, "verify changed a file outside its output folder"
    assert {p.name for p in out.iterdir()} <= {"observed.npz", "r.json"}
    assert {p.name for p in tmp_path.iterdir()} == {"given", "out"}
    assert not failures, report(seed, CASES, failures)


def test_damaged_inputs_file_is_named(tmp_path, capsys):
    path = Path(tmp_path / "x.npz")
    path.write_bytes(b"PK\x03\x04 not really")
    model = tmp_path / "m.npz"
    save_network(random_network(np.random.default_rng(0), C=C, H=H, K=K), model)
    argv = ["verify", str(model), "--inputs", str(path), "--observed", str(path)]
    assert judge_cli(argv, False, capsys) is None
