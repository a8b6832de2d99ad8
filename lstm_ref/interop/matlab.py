"""MATLAB: a network's learnables saved as plain variables in a ``.mat`` file — v5/v7 read
with ``scipy.io``, v7.3 (HDF5) with ``h5py`` — and written back as v5.

MATLAB's own objects (``SeriesNetwork``, ``dlnetwork``) cannot be read outside MATLAB, so
the user saves their arrays with a few lines of MATLAB (README, "Importing and
exporting")::

    lstm = net.Layers(2); fc = net.Layers(3);
    s.InputWeights = lstm.InputWeights; s.RecurrentWeights = lstm.RecurrentWeights;
    s.Bias = lstm.Bias; s.FcWeights = fc.Weights; s.FcBias = fc.Bias;
    s.ClassNames = cellstr(string(net.Layers(end).Classes));   % or net.OutputNames…
    save("learnables.mat", "-struct", "s")                      % add "-v7.3" for HDF5

The variables, once (MATLAB's shapes; the gate order is lstm_ref's i, f, g, o, so nothing
is reordered; v7.3 files store every array transposed — column-major — and are transposed
back on reading):

==========================  ===========  ===================================  ==========
variable                    shape        lstm_ref                             optional
==========================  ===========  ===================================  ==========
``InputWeights``            4H × C       ``LSTM.params.W``                    no
``RecurrentWeights``        4H × H       ``LSTM.params.R``                    no
``Bias``                    4H × 1       ``LSTM.params.b``                    no
``FcWeights``, ``FcBias``   K × H, K × 1 ``FullyConnected``                   no
``ClassNames``              cell of char ``ClassificationOutput``             yes
``HiddenState``,            H × 1        ``LSTM.initial_state``               yes
``CellState``
``Mean``,                   C × 1        ``SequenceInput`` zerocenter/zscore  yes
``StandardDeviation``
``OutputMode``              char         ``LSTM.output_mode`` (default last)  yes
``StateActivationFunction`` char         ``state_activation`` (tanh)          yes
``GateActivationFunction``  char         ``gate_activation`` (sigmoid)        yes
==========================  ===========  ===================================  ==========

The variables may also sit in one struct variable (``save("f.mat", "s")``). MATLAB's
semantics are lstm_ref's: no masking — ``Padding.matlab(...)`` reproduces ``predict``'s
padded mini-batches. MATLAB's ``exportONNXNetwork`` output goes through the ONNX importer.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import InputError
from ..formats.writes import write_atomically
from ..layers import LSTM, ClassificationOutput, FullyConnected, Layer, SequenceInput, Softmax
from ..lstm import LSTMParams, LSTMState
from ..network import Network

Array = np.ndarray
REQUIRED = ("InputWeights", "RecurrentWeights", "Bias", "FcWeights", "FcBias")
OPTIONAL = (
    "ClassNames",
    "HiddenState",
    "CellState",
    "Mean",
    "StandardDeviation",
    "OutputMode",
    "StateActivationFunction",
    "GateActivationFunction",
)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def from_matlab(path: str | os.PathLike, *, dtype: np.dtype | type = np.float64) -> Network:
    """A Network from the variables of a ``.mat`` file (the module table).

    Parameters
    ----------
    path : path
        v5/v7 (read with scipy.io) or v7.3 (HDF5, read with h5py).
    dtype : float64 (default) or float32

    Returns
    -------
    Network
        SequenceInput → LSTM (W (4H, C), R (4H, H), b (4H,)) → FullyConnected (K, H) →
        Softmax (→ ClassificationOutput with ``ClassNames``).
    """
    where = os.fspath(path)
    with open(where, "rb") as f:
        head = f.read(520)
    v73 = head[512:520] == HDF5_SIGNATURE or head[:8] == HDF5_SIGNATURE
    values = _read_v73(where) if v73 else _read_v5(where)
    structs = [v for v in values.values() if isinstance(v, dict)]
    if not set(REQUIRED) <= set(values) and len(structs) == 1:
        values = structs[0]
    missing = [k for k in REQUIRED if k not in values]
    if missing:
        raise InputError(
            f"{where}: lacks the variable(s) {missing}; expected {list(REQUIRED)} (optional: "
            f"{list(OPTIONAL)}) — see the README for the MATLAB lines that save them"
        )
    extra = sorted(set(values) - set(REQUIRED) - set(OPTIONAL))
    if extra:
        raise InputError(f"{where}: unexpected variable(s) {extra}")
    num = {k: _numeric(where, k, v, dtype) for k, v in values.items() if k not in _TEXT}
    text = {
        k: _text(where, k, values[k])
        for k in ("OutputMode", "StateActivationFunction", "GateActivationFunction")
        if k in values
    }
    W, R = num["InputWeights"], num["RecurrentWeights"]
    if W.ndim != 2 or R.ndim != 2:
        raise InputError(
            f"{where}: InputWeights {W.shape} and RecurrentWeights {R.shape} must be matrices"
        )
    H, C = R.shape[1], W.shape[1]
    start = None
    if "HiddenState" in num or "CellState" in num:
        zero = np.zeros(H, dtype)
        start = LSTMState(
            num.get("HiddenState", zero).reshape(-1), num.get("CellState", zero).reshape(-1)
        )
    normalization = (
        "zscore" if "StandardDeviation" in num else "zerocenter" if "Mean" in num else "none"
    )
    norm = {
        k: num[v].reshape(-1)
        for k, v in (("mean", "Mean"), ("std", "StandardDeviation"))
        if v in num
    }
    layers: list[Layer] = [
        SequenceInput(C, normalization=normalization, **norm),  # type: ignore[arg-type]
        LSTM(
            LSTMParams(W, R, num["Bias"].reshape(-1)),
            output_mode=text.get("OutputMode", "last"),  # type: ignore[arg-type]
            gate_activation=text.get("GateActivationFunction", "sigmoid"),
            state_activation=text.get("StateActivationFunction", "tanh"),
            initial_state=start,
        ),
        FullyConnected(num["FcWeights"], num["FcBias"].reshape(-1)),
        Softmax(),
    ]
    if "ClassNames" in values:
        layers.append(ClassificationOutput(tuple(_names(where, values["ClassNames"]))))
    return Network(layers)


_TEXT = ("ClassNames", "OutputMode", "StateActivationFunction", "GateActivationFunction")


def _numeric(where: str, name: str, value: Any, dtype: Any) -> Array:
    a = np.asarray(value)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise InputError(f"{where}: variable {name!r} holds {a.dtype} values; expected numbers")
    return a.astype(dtype)


def _text(where: str, name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    a = np.asarray(value)
    if a.dtype.kind == "U" and a.size == 1:
        return str(a.reshape(-1)[0])
    raise InputError(f"{where}: variable {name!r} must be text (char); got {a.dtype}")


def _names(where: str, value: Any) -> list[str]:
    items = value if isinstance(value, list) else list(np.asarray(value, dtype=object).reshape(-1))
    return [_text(where, "ClassNames", v) for v in items]


def _read_v5(where: str) -> dict[str, Any]:
    import scipy.io  # type: ignore[import-untyped]

    try:
        raw = scipy.io.loadmat(where, simplify_cells=True)
    except (ValueError, TypeError, OSError, NotImplementedError) as e:
        raise InputError(f"{where}: not a MATLAB .mat file: {e}") from None
    return {k: v for k, v in raw.items() if not k.startswith("__")}


def _read_v73(where: str) -> dict[str, Any]:
    import h5py  # type: ignore[import-untyped]

    try:
        with h5py.File(where, "r") as f:
            return {k: _h5_value(f, f[k]) for k in f if not k.startswith("#")}
    except OSError as e:
        raise InputError(f"{where}: not a MATLAB v7.3 .mat file: {e}") from None


def _h5_value(f: Any, item: Any) -> Any:
    """A v7.3 variable: a struct (group) as a dict, char as str, cell as a list, numbers
    transposed back to MATLAB's shape (HDF5 holds them column-major)."""
    import h5py

    if isinstance(item, h5py.Group):
        return {k: _h5_value(f, item[k]) for k in item}
    kind = item.attrs.get("MATLAB_class", b"double")
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    data = np.asarray(item)
    if kind == "char":
        return "".join(map(chr, data.T.reshape(-1)))
    if kind == "cell":
        return [_h5_value(f, f[ref]) for ref in data.T.reshape(-1)]
    return data.T


def save_matlab(net: Network, path: str | os.PathLike) -> None:
    """Write ``net`` (SequenceInput → one LSTM → FullyConnected → Softmax …) as the module
    table's variables in a v5 ``.mat`` file (``scipy.io.savemat``), atomically."""
    import scipy.io  # type: ignore[import-untyped]

    layers = [x for x in net.layers if not isinstance(x, Softmax | ClassificationOutput)]
    seq, lstm, fc = [*layers, None, None, None][:3]
    if not (
        len(layers) == 3
        and isinstance(seq, SequenceInput)
        and isinstance(lstm, LSTM)
        and isinstance(fc, FullyConnected)
    ):
        raise InputError(
            "a MATLAB learnables file holds sequence input → one LSTM → fully connected; this "
            f"network is {[x.TYPE for x in net.layers]}"
        )
    if lstm.variant is not None or lstm.direction != "forward":
        extras = lstm.variant.used if lstm.variant is not None else ["a reverse direction"]
        raise InputError(f"layer {lstm.name!r}: MATLAB's lstmLayer has no {', '.join(extras)}")
    values: dict[str, Any] = {
        "InputWeights": lstm.params.W,
        "RecurrentWeights": lstm.params.R,
        "Bias": lstm.params.b[:, None],
        "FcWeights": fc.weights,
        "FcBias": fc.bias[:, None],
        "HiddenState": lstm._start.h[:, None],
        "CellState": lstm._start.c[:, None],
        "OutputMode": lstm.output_mode,
        "StateActivationFunction": lstm.state_activation,
        "GateActivationFunction": lstm.gate_activation,
    }
    if seq.mean is not None:
        values["Mean"] = seq.mean[:, None]
    if seq.std is not None:
        values["StandardDeviation"] = seq.std[:, None]
    if net.class_names:
        values["ClassNames"] = np.array(list(net.class_names), dtype=object)[:, None]
    write_atomically(path, lambda f: scipy.io.savemat(f, values, do_compression=True))
