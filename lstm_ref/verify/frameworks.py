"""Observed outputs from a model's own framework: torch (``.pt``), onnxruntime (``.onnx``),
Keras (``.keras``, ``.h5``), each imported only when asked for.

Every runner takes the padded batch ``x`` (N, T, C), float64, with ``lengths`` (N,), and
returns ``{"output": y}``: (N, K) or (N, T, W), batch first, in the model's own dtype.

- torch: the state_dict is loaded into the ``nn.LSTM`` (and ``nn.Linear`` head) its shapes
  describe, run on packed sequences; the head reads ``h_n`` and applies softmax (the
  classifier of :mod:`lstm_ref.interop.torch`); without a head, the padded outputs.
- onnxruntime: the graph's first input gets X (T, N, C) (time first, as ONNX's LSTM) — or
  (N, T, C) when the graph transposes it to time first — an integer second input
  ``sequence_lens``; a (T, N, ·) or (T, D, N, H) first output is brought to (N, T, ·).
- Keras: ``model.predict`` on the zero-padded batch (a ``Masking`` layer in the model sees
  the padding; without one the padding is data).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError

Array = np.ndarray


def run_torch(path: Path, x: Array, lengths: Array) -> dict[str, Array]:
    import torch

    from ..interop.torch import from_torch, load_state_dict, torch_lstm_options

    state = load_state_dict(path)
    first = next((k for k in state if "weight_ih_l0" in k), None)
    if first is None:
        raise InputError(f"{path}: no nn.LSTM tensors to run")
    prefix = first[: first.index("weight_ih_l0")]
    lstm = torch.nn.LSTM(**torch_lstm_options(from_torch(state)))  # the file read once
    dtype = state[first].dtype
    lstm.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    head = {k: v for k, v in state.items() if not k.startswith(prefix)}
    lstm = lstm.to(dtype).eval()
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x).to(dtype),
        torch.as_tensor(lengths),
        batch_first=True,
        enforce_sorted=False,
    )
    with torch.no_grad():
        out, (h_n, _) = lstm(packed)
        if not head:
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(
                out, batch_first=True, total_length=x.shape[1]
            )
            return {"output": y.numpy()}
        D = 2 if lstm.bidirectional else 1
        last = torch.cat(list(h_n[-D:]), dim=1)
        weight = next(v for k, v in head.items() if k.endswith("weight"))
        bias = next(v for k, v in head.items() if k.endswith("bias"))
        return {"output": (last @ weight.T + bias).softmax(dim=1).numpy()}


def run_onnx(path: Path, x: Array, lengths: Array) -> dict[str, Array]:
    import onnxruntime as ort  # type: ignore[import-untyped]

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    X = x if _batch_first(path, inputs[0].name) else x.transpose(1, 0, 2)
    feeds = {inputs[0].name: np.ascontiguousarray(X, dtype=np.float32)}
    for extra in inputs[1:]:
        if "int" not in extra.type:
            raise InputError(f"{path}: input {extra.name!r} ({extra.type}) is not sequence_lens")
        feeds[extra.name] = lengths.astype(np.int32 if "int32" in extra.type else np.int64)
    y = session.run(None, feeds)[0]
    if y.ndim == 4:  # (T, D, N, H) → (N, T, D·H)
        y = y.transpose(2, 0, 1, 3).reshape(y.shape[2], y.shape[0], -1)
    elif y.ndim == 3:  # (T, N, K) → (N, T, K)
        y = y.transpose(1, 0, 2)
    return {"output": y}


def _batch_first(path: Path, name: str) -> bool:
    """Whether the graph takes X batch first: its first use (but for reading its Shape) is a
    Transpose to time first (torch.onnx.export of a ``batch_first`` module)."""
    import onnx

    uses = (n for n in onnx.load(path).graph.node if name in n.input and n.op_type != "Shape")
    first = next(uses, None)
    if first is None or first.op_type != "Transpose":
        return False
    perm = next((list(a.ints) for a in first.attribute if a.name == "perm"), None)
    return perm == [1, 0, 2]


def run_keras(path: Path, x: Array, lengths: Array) -> dict[str, Array]:
    import keras  # type: ignore[import-untyped]

    model = keras.models.load_model(path, compile=False)
    return {"output": np.asarray(model.predict(x.astype(np.float32), verbose=0))}


RUNNERS: dict[str, tuple[str, Callable[[Path, Array, Array], dict[str, Array]]]] = {
    ".pt": ("torch", run_torch),
    ".pth": ("torch", run_torch),
    ".onnx": ("onnxruntime", run_onnx),
    ".keras": ("keras", run_keras),
    ".h5": ("keras", run_keras),
    ".hdf5": ("keras", run_keras),
}


def run_framework(path: Path, x: Array, lengths: Array) -> tuple[str, dict[str, Array]]:
    """The framework's name and its outputs for the model file ``path``."""
    suffix = path.suffix.lower()
    if suffix not in RUNNERS:
        raise InputError(
            f"{path}: no framework runs {suffix or 'suffix-less'} files here; expected one of "
            f"{sorted(RUNNERS)} (or give the outputs with --observed)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no model file {str(path)!r}")
    name, run = RUNNERS[suffix]
    try:
        return name, run(path, x, lengths)
    except ModuleNotFoundError as e:
        hint = " (Keras's default backend; set KERAS_BACKEND=torch or jax)" * (
            e.name == "tensorflow"
        )
        raise InputError(
            f"{path}: running it needs the Python package {e.name!r}, which is not installed"
            f"{hint}; or give the outputs with --observed"
        ) from None
