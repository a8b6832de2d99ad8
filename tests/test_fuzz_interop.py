"""Fuzzing the importers and exporters with well-formed but hostile model files, random
networks and hostile paths, and ``lstm-ref convert`` with damaged files.

(Byte-level damage of every importer's files — truncations, flipped bits — is
test_fuzz.py's.) Each case is judged by :mod:`fuzz_cases`: a valid one must load and compute
finite outputs — equal to the original's where the change cannot matter — an invalid one
must raise an ``LstmRefError``; no warning escapes; nothing outside the output folder is
written. A fixed seed and a fresh one run each time (``LSTM_REF_FUZZ_SEED=N`` replays).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fuzz_cases import finite, judge, judge_cli, report, snapshot
from fuzz_seeds import FUZZ_SEEDS
from model_files import MODEL_SUFFIXES, exportable_network, save_model_quietly
from random_nets import random_lstm_params

from lstm_ref import LSTM, FullyConnected, LSTMState, Network, SequenceInput, Softmax
from lstm_ref.layers import BiLSTM

Array = np.ndarray
STRUCTURE_CASES = 40  # per format and seed
EXPORT_CASES = 30  # per seed


def outputs(net: Network, rng_seed: int = 7) -> Array:
    rng = np.random.default_rng(rng_seed)
    x = [rng.normal(size=(T, net.input_size)) for T in (3, 5)]
    return np.asarray(net.predict(x))  # (2, K): an imported network may name no classes


def same_outputs(expected: Array, tol: float = 1e-5) -> Callable[[object], str | None]:
    def check(net: object) -> str | None:
        got = outputs(net)  # type: ignore[arg-type]
        if not np.isfinite(got).all():
            return "non-finite outputs"
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=tol, atol=tol):
            return f"outputs differ from the original's: {np.abs(got - expected).max()}"
        return None

    return check


def finite_outputs(net: object) -> str | None:
    return finite(outputs(net))  # type: ignore[arg-type]


# ------------------------------------------------ well-formed, hostile model files
@dataclass(frozen=True)
class Format:
    """One importer's file as named float arrays: how to read and rewrite them, which may be
    left out, and which dtype changes it must refuse (None: its own rule, either way)."""

    suffix: str
    read: Callable[[Path], dict[str, Array]]
    write: Callable[[Path, Path, dict[str, Array]], None]  # (template, out, arrays)
    optional: frozenset[str] = frozenset()
    extra_valid: bool | None = False
    dtypes: tuple[tuple[str, bool | None], ...] = (
        ("float32", True),
        ("int32", None),
        ("bool", False),
        ("complex128", False),
    )
    vectors_any_orientation: bool = False  # MATLAB: n × 1, 1 × n and (n,) are one vector
    broadcastable: frozenset[str] = frozenset()  # one value stands for all (ONNX Gemm's C)
    expanded: frozenset[str] = frozenset()  # broadcast to their shape by the graph (Expand)


def _mat_read(path: Path) -> dict[str, Array]:
    import scipy.io

    raw = scipy.io.loadmat(path)
    return {k: v for k, v in raw.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"}


def _mat_write(template: Path, out: Path, arrays: dict[str, Array]) -> None:
    import scipy.io

    text = {k: v for k, v in scipy.io.loadmat(template).items() if k.endswith("Function")}
    scipy.io.savemat(out, {**text, "OutputMode": "last", **arrays})


def _pt_read(path: Path) -> dict[str, Array]:
    import torch

    return {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}


def _pt_write(template: Path, out: Path, arrays: dict[str, Array]) -> None:
    import torch

    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, out)


def _h5_read(path: Path) -> dict[str, Array]:
    import h5py

    found: dict[str, Array] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: found.update({n: o[()]}) if hasattr(o, "shape") else None)
    return found


def _h5_write(template: Path, out: Path, arrays: dict[str, Array]) -> None:
    import h5py

    shutil.copyfile(template, out)
    with h5py.File(out, "r+") as f:
        for name in _h5_read(template):
            del f[name]
        for name, a in arrays.items():
            f.create_dataset(name, data=a)


def _onnx_read(path: Path) -> dict[str, Array]:
    import onnx
    from onnx import numpy_helper

    tensors = onnx.load(path).graph.initializer
    return {t.name: numpy_helper.to_array(t) for t in tensors if t.data_type == 1}  # float


def _onnx_write(template: Path, out: Path, arrays: dict[str, Array]) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(template)
    kept = [t for t in model.graph.initializer if t.data_type != 1]
    del model.graph.initializer[:]
    model.graph.initializer.extend(
        kept + [numpy_helper.from_array(a, k) for k, a in arrays.items()]
    )
    onnx.save(model, out)


def _npz_read(path: Path) -> dict[str, Array]:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files if k != "header"}


def _npz_write(template: Path, out: Path, arrays: dict[str, Array]) -> None:
    with np.load(template) as npz:
        header = npz["header"]
    np.savez(out, header=header, **arrays)


FORMATS = {
    ".mat": Format(
        ".mat",
        _mat_read,
        _mat_write,
        optional=frozenset({"HiddenState", "CellState"}),  # zero in these networks
        vectors_any_orientation=True,
    ),
    ".pt": Format(
        ".pt",
        _pt_read,
        _pt_write,
        optional=frozenset({"lstm.bias_ih_l0", "lstm.bias_hh_l0", "fc.bias"}),  # bias=False
        dtypes=(("float32", True), ("int32", None), ("bool", False), ("complex64", False)),
    ),
    ".h5": Format(".h5", _h5_read, _h5_write, extra_valid=None),  # weight_names lists the arrays
    ".onnx": Format(  # the LSTM's B and Gemm's C are optional, C broadcast; dtypes: see below
        ".onnx",
        _onnx_read,
        _onnx_write,
        optional=frozenset({"fc_b", "lstm_B"}),
        extra_valid=None,
        dtypes=(),
        broadcastable=frozenset({"fc_b"}),
        expanded=frozenset({"lstm_h0", "lstm_c0"}),  # (1, 1, H) expanded to (1, B, H)
    ),
    ".npz": Format(".npz", _npz_read, _npz_write, dtypes=(("bool", False), ("complex128", False))),
}
# ONNX initializers' dtypes (int32, bool, complex) are the ONNX importer's own suite's.


def hostile_arrays(
    fmt: Format, arrays: dict[str, Array], rng: np.random.Generator
) -> tuple[str, dict[str, Array], bool | None, bool]:
    """(what was done, the changed arrays, valid?, must the outputs stay the same?)"""
    names = sorted(arrays)
    name = names[rng.integers(len(names))]
    a = arrays[name]
    changed = dict(arrays)
    kind = rng.integers(7)
    if kind == 0:  # one value more or fewer
        flat = a.reshape(-1)
        changed[name] = flat[:-1] if flat.size > 1 and rng.integers(2) else np.append(flat, 0.5)
        broadcast = changed[name].size == 1 and name in fmt.broadcastable
        return f"{name} resized", changed, None if broadcast else False, False
    if kind == 1 and a.ndim >= 2 and a.shape[-1] != a.shape[-2]:
        changed[name] = np.swapaxes(a, -1, -2)
        vector = fmt.vectors_any_orientation and 1 in a.shape[-2:]
        return f"{name} transposed", changed, True if vector else False, bool(vector)
    if kind == 2:
        bad = a.astype(np.float64)
        bad.flat[rng.integers(bad.size)] = [np.nan, np.inf, -np.inf][rng.integers(3)]
        changed[name] = bad.astype(a.dtype)
        return f"{name} non-finite", changed, False, False
    if kind == 3 and fmt.dtypes:
        dtype, valid = fmt.dtypes[rng.integers(len(fmt.dtypes))]
        changed[name] = (a * 3).astype(dtype) if dtype != "float32" else a.astype(dtype)
        return f"{name} as {dtype}", changed, valid, dtype == "float32"
    if kind == 4:
        del changed[name]
        optional = name in fmt.optional
        return f"{name} left out", changed, None if optional else False, False
    if kind == 5:
        changed[name.rsplit("/", 1)[0] + "/stray" if "/" in name else "Stray"] = a.copy()
        return "a stray array", changed, fmt.extra_valid, fmt.extra_valid is not False
    changed[name] = a.reshape(-1) if a.ndim > 1 else a.reshape(-1, 1)
    vector = fmt.vectors_any_orientation and 1 in (a.shape or (1,))
    same = vector or (name in fmt.expanded and a.ndim > 1)  # (H,) expands as (1, 1, H) does
    return f"{name} reshaped", changed, True if same else False, bool(same)


@pytest.fixture(scope="module")
def model_templates(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("templates")
    net = exportable_network(np.random.default_rng(3))
    paths = {}
    for suffix in FORMATS:
        paths[suffix] = folder / f"m{suffix}"
        save_model_quietly(net, paths[suffix])
    return paths


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("suffix", list(FORMATS))
def test_hostile_model_files(tmp_path, model_templates, seed, suffix):
    from lstm_ref.interop import load_model

    rng = np.random.default_rng([seed, list(FORMATS).index(suffix)])
    fmt, template = FORMATS[suffix], model_templates[suffix]
    original, expected = fmt.read(template), outputs(load_model(template))
    failures = []
    for k in range(STRUCTURE_CASES):
        what, arrays, valid, same = hostile_arrays(fmt, original, rng)
        path = tmp_path / f"case{k}{suffix}"
        fmt.write(template, path, arrays)
        check = same_outputs(expected) if same else finite_outputs
        problem = judge(lambda p=path: load_model(p), valid, check)
        if problem:
            failures.append(f"{what} (valid={valid}): {problem}")
        path.unlink()
    assert not failures, report(seed, STRUCTURE_CASES, failures)


# ----------------------------------------------------- exporters: random networks
def random_exportable(rng: np.random.Generator) -> Network:
    """A small network with random options, some of which a given format cannot hold."""
    C, H, K = (int(v) for v in rng.integers([1, 1, 2], [4, 5, 4]))
    state = LSTMState(rng.normal(size=H) * rng.integers(2), rng.normal(size=H) * rng.integers(2))

    def lstm(name: str, direction: str) -> LSTM:
        options: dict[str, object] = {}
        if rng.random() < 0.2:
            options["gate_activation"] = "hard-sigmoid"
        if rng.random() < 0.2:
            options["state_activation"] = "softsign"
        if rng.random() < 0.1:
            options["peephole"] = rng.normal(size=(3, H))
        if rng.random() < 0.1:
            options["clip"] = 2.0
        return LSTM(
            random_lstm_params(rng, C, H),
            name=name,
            output_mode="last",
            initial_state=state,
            direction=direction,  # type: ignore[arg-type]
            **options,  # type: ignore[arg-type]
        )

    normalization = ["none", "zerocenter", "zscore"][rng.integers(3)]
    norm = {"mean": rng.normal(size=C), "std": rng.uniform(0.5, 2, size=C)}
    norm = {k: v for k, v in norm.items() if normalization == "zscore" or k == "mean"}
    recurrent = lstm("lstm", ["forward", "reverse"][rng.integers(2)])
    width = H
    if rng.random() < 0.2:
        recurrent, width = BiLSTM(lstm("f", "forward"), lstm("b", "reverse"), name="bilstm"), 2 * H
    return Network(
        [
            SequenceInput(
                C, normalization=normalization, **(norm if normalization != "none" else {})
            ),  # type: ignore[arg-type]
            recurrent,
            FullyConnected(rng.normal(size=(K, width)), rng.normal(size=K)),
            Softmax(),
        ],
        class_names=[f"c{k}" for k in range(K)],
    )


@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
def test_exporters_write_what_reads_back_or_refuse(tmp_path, model_templates, seed):
    """Every export either reads back computing the same outputs (ONNX and Keras store
    float32) or is refused, leaving no file."""
    from lstm_ref.interop import load_model, save_model

    rng = np.random.default_rng(seed)
    suffixes = [*MODEL_SUFFIXES, ".npz"]
    failures = []
    for k in range(EXPORT_CASES):
        net, suffix = random_exportable(rng), suffixes[rng.integers(len(suffixes))]
        out = tmp_path / f"case{k}"
        out.mkdir()
        path = out / f"m{suffix}"
        expected = outputs(net)

        def export(net=net, path=path):
            save_model(net, path)
            return load_model(path)

        problem = judge(export, None, same_outputs(expected, 1e-4))
        written = sorted(p.name for p in out.iterdir())
        if problem is None and written not in ([], [path.name]):
            problem = f"left {written}"
        if problem:
            failures.append(f"{[x.TYPE for x in net.layers]} to {suffix}: {problem}")
        shutil.rmtree(out)
    for target in ["x.txt", "x", "sub", ".pt"]:  # no exporter, no suffix, a folder
        (tmp_path / "sub").mkdir(exist_ok=True)
        problem = judge(lambda t=target: save_model(net, tmp_path / t), False)
        if problem:
            failures.append(f"to {target!r}: {problem}")
    assert not failures, report(seed, EXPORT_CASES + 4, failures)


# ------------------------------------------------------------------ lstm-ref convert
@pytest.mark.parametrize("seed", FUZZ_SEEDS, ids=lambda s: f"seed{s}")
def test_convert_exits_0_or_2_with_one_line(tmp_path, capsys, monkeypatch, model_templates, seed):
    from test_fuzz import mutations

    rng = np.random.default_rng(seed)
    monkeypatch.chdir(tmp_path)
    inputs = tmp_path / "in"
    inputs.mkdir()
    cases: list[tuple[Path, bool | None]] = []
    for suffix, template in model_templates.items():
        cases.append((template, True))
        for j, data in enumerate(mutations(template.read_bytes(), rng, 4)):
            path = inputs / f"{suffix[1:]}{j}{suffix}"
            path.write_bytes(data)
            cases.append((path, None))
    cases += [(inputs / "missing.pt", False), (inputs, False)]
    targets = ["m.pt", "m.onnx", "m.mat", "m.npz", "m.keras", "m.txt", "nowhere/m.pt"]
    before = snapshot(tmp_path)
    failures = []
    out = tmp_path / "out"
    for source, valid in cases:
        out.mkdir()
        target = targets[rng.integers(len(targets))]
        ok_target = (
            target.endswith((".pt", ".onnx", ".mat", ".npz", ".keras")) and "/" not in target
        )
        argv = ["convert", str(source), str(out / target)]
        problem = judge_cli(argv, valid and ok_target if valid is not None else None, capsys)
        if problem is None and not ok_target and any(out.iterdir()):
            problem = f"{argv}: wrote {sorted(p.name for p in out.iterdir())}"
        if problem:
            failures.append(problem)
        shutil.rmtree(out)
    assert snapshot(tmp_path) == before, "files outside the output folder changed"
    assert not failures, report(seed, len(cases), failures)
