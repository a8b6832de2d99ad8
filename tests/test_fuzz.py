"""Fuzzing every reader and the command line with damaged and hostile files.

Each case must either load or fail with one of lstm_ref's own errors (``LstmRefError``;
``FileNotFoundError`` for a missing file) — never another exception, never a NaN, never a
traceback from the CLI. Every run uses a fixed seed and a fresh one; the fresh seed is shown
in the session header (``fuzz seed``) and in the test id, and ``LSTM_REF_FUZZ_SEED=N`` replays it.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fuzz_seeds import FUZZ_SEEDS
from random_nets import random_network

from lstm_ref import LstmRefError, load_network, save_network
from lstm_ref.cli import main
from lstm_ref.formats import read_sequences
from lstm_ref.formats.safe_numpy import MAX_ARRAY_BYTES

CASES_PER_READER = 300


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A version 1.0 .npy header claiming ``shape`` — with no data behind it."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()


def zip_of(members: dict[str, bytes], stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    mode = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", mode) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def mutations(valid: bytes, rng: np.random.Generator, n: int) -> Iterator[bytes]:
    """Byte-level damage: truncations, flipped bytes, inserted and deleted runs, random junk."""
    yield b""
    yield rng.bytes(64)
    for _ in range(n):
        data = bytearray(valid)
        kind = rng.integers(4)
        if kind == 0:
            data = data[: rng.integers(len(data))]
        elif kind == 1:
            for _ in range(rng.integers(1, 8)):
                data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        elif kind == 2:
            at = int(rng.integers(len(data)))
            data[at:at] = rng.bytes(int(rng.integers(1, 32)))
        else:
            at = int(rng.integers(len(data)))
            del data[at : at + int(rng.integers(1, 64))]
        yield bytes(data)


def hostile_headers(arrays: dict[str, np.ndarray]) -> Iterator[bytes]:
    """Weight files whose header or members are well-formed zips but wrong inside."""
    header = json.loads(arrays["header"].tobytes())
    variants: list[object] = [
        [],
        None,
        3,
        "lstm_ref",
        {"format": "lstm_ref"},
        {**header, "format_version": 2},
        {**header, "layers": None},
        {**header, "layers": [None]},
        {**header, "layers": [{"type": "GRU", "config": {"name": "x"}, "arrays": []}]},
        {**header, "layers": [{**header["layers"][1], "config": {"name": "lstm", "bogus": 1}}]},
        {**header, "class_names": ["a", "a"]},
        {**header, "class_names": "abc"},
        {k: v for k, v in header.items() if k != "metadata"},
    ]
    for variant in variants:
        blob = np.frombuffer(json.dumps(variant).encode(), dtype=np.uint8)
        yield npz_bytes(**{**arrays, "header": blob})
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    yield npz_bytes(**{**arrays, "header": np.frombuffer(deep, dtype=np.uint8)})
    yield npz_bytes(**{**arrays, "header": np.frombuffer(b"\xff\xfe not json", dtype=np.uint8)})
    yield npz_bytes(**{k: v for k, v in arrays.items() if k != "lstm/R"})
    yield npz_bytes(**arrays, extra=np.zeros(3))
    members = {f"{k}.npy": _npy(v) for k, v in arrays.items()}
    yield zip_of({**members, "lstm/W.npy": npy_header((2**40,))})
    yield zip_of({**members, "lstm/W.npy": npy_header((4, 3), "|O")})
    yield zip_of({**members, "lstm/W.npy": npy_header((2, 2)) + b"\x00" * 8})
    yield zip_of({**members, "lstm/W.npy": b"\x00" * (MAX_ARRAY_BYTES // 1024)})


def _npy(a: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, a)
    return buffer.getvalue()


def run_cases(
    tmp_path: Path, suffix: str, cases: Iterator[bytes], read: Callable[[Path], object]
) -> tuple[int, list[str]]:
    """Feed every case to ``read``; (number of cases, the failures)."""
    failures, count = [], 0
    for k, data in enumerate(cases):
        path = tmp_path / f"case{k}{suffix}"
        path.write_bytes(data)
        count += 1
        try:
            read(path)
        except LstmRefError:
            pass
        except Exception as e:
            failures.append(f"case {k}: {type(e).__name__}: {e}"[:300])
        path.unlink()
    return count, failures


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory) -> tuple[bytes, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("valid") / "net.npz"
    save_network(random_network(np.random.default_rng(1)), path)
    with np.load(path) as npz:
        return path.read_bytes(), {k: npz[k] for k in npz.files}


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
def test_weight_files(tmp_path, weight_file, seed):
    valid, arrays = weight_file
    rng = np.random.default_rng(seed)
    cases = [*mutations(valid, rng, CASES_PER_READER), *hostile_headers(arrays)]
    count, failures = run_cases(tmp_path, ".npz", iter(cases), load_network)
    assert not failures, f"seed {seed}: {len(failures)} of {count} cases crashed:\n" + "\n".join(
        failures[:10]
    )


def sequence_files(rng: np.random.Generator) -> dict[str, bytes]:
    x = rng.normal(size=(6, 5))
    ts = "@problemName t\n@univariate false\n@dimensions 2\n@equalLength false\n"
    ts += "@classLabel true a b\n@data\n1.0,2.0,3.0:4.0,5.0,6.0:a\n0.5,0.25:7.0,8.0:b\n"
    return {
        ".npy": _npy(x),
        ".npz": npz_bytes(a=x, b=x[:3]),
        ".csv": "\n".join(",".join(f"{v:.6g}" for v in row) for row in x).encode(),
        ".ts": ts.encode(),
    }


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".ts"])
def test_sequence_files(tmp_path, seed, suffix):
    rng = np.random.default_rng(seed)
    valid = sequence_files(rng)[suffix]
    extra = [b"\xef\xbb\xbf" + valid, npy_header((2**40,)), zip_of({"a.npy": npy_header((9,))})]
    cases = [*mutations(valid, rng, CASES_PER_READER), *extra]
    count, failures = run_cases(tmp_path, suffix, iter(cases), read_sequences)
    assert not failures, f"seed {seed}: {len(failures)} of {count} cases crashed:\n" + "\n".join(
        failures[:10]
    )


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
def test_cli_gives_one_line_and_exit_2(tmp_path, capsys, weight_file, seed):
    rng = np.random.default_rng(seed)
    files = sequence_files(rng)
    cases = []
    for suffix, valid in files.items():
        cases += [(suffix, data) for data in mutations(valid, rng, 25)]
    cases += [(".npz", data) for data in mutations(weight_file[0], rng, 25)]
    crashed = []
    for k, (suffix, data) in enumerate(cases):
        path = tmp_path / f"case{k}{suffix}"
        path.write_bytes(data)
        argv = ["predict", str(path)] if k % 2 else ["layers", "--network", str(path)]
        try:
            code = main(argv)
        except Exception as e:
            crashed.append(f"{argv}: {type(e).__name__}: {e}"[:300])
            continue
        err = capsys.readouterr().err
        if code not in (0, 2) or (code == 2 and len(err.strip().splitlines()) != 1):
            crashed.append(f"{argv}: exit {code}, stderr {err!r}"[:300])
    assert not crashed, f"seed {seed}: {len(crashed)} of {len(cases)} cases:\n" + "\n".join(
        crashed[:10]
    )


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, bytes]:
    """A valid file of every importable framework format, written by lstm_ref's exporters."""
    import dataclasses
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    from lstm_ref import LSTMState, Network
    from lstm_ref.interop import save_model

    net = random_network(np.random.default_rng(2), C=3, H=4, K=2)
    lstm = net.layer("lstm")
    zero = LSTMState(np.zeros(4), np.zeros(4))  # what a state_dict or Keras file can hold
    net = Network([net.layers[0], dataclasses.replace(lstm, initial_state=zero), *net.layers[2:]])
    folder = tmp_path_factory.mktemp("models")
    files = {}
    with warnings.catch_warnings():  # Keras's own save warns about NumPy 2's __array__
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        for suffix in (".pt", ".onnx", ".h5", ".keras", ".mat"):
            save_model(net, folder / f"m{suffix}")
            files[suffix] = (folder / f"m{suffix}").read_bytes()
    return files


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("suffix", [".pt", ".onnx", ".h5", ".keras", ".mat"])
def test_framework_model_files(tmp_path, model_files, seed, suffix):
    from lstm_ref.interop import load_model

    rng = np.random.default_rng(seed)
    cases = mutations(model_files[suffix], rng, CASES_PER_READER // 6)
    count, failures = run_cases(tmp_path, suffix, cases, load_model)
    assert not failures, f"seed {seed}: {len(failures)} of {count} cases crashed:\n" + "\n".join(
        failures[:10]
    )
