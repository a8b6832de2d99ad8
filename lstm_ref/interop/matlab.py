"""MATLAB: a network's learnables saved as plain variables in a ``.mat`` file — v5/v7 read
and written with ``scipy.io``, v7.3 (HDF5) with ``h5py``.

MATLAB's own objects (``SeriesNetwork``, ``dlnetwork``) cannot be read outside MATLAB, so
the user saves their arrays with a few lines of MATLAB (docs/INTEROP.md,
"MATLAB's learnables")::

    lstm = net.Layers(2); fc = net.Layers(3);
    s.InputWeights = lstm.InputWeights; s.RecurrentWeights = lstm.RecurrentWeights;
    s.Bias = lstm.Bias; s.FcWeights = fc.Weights; s.FcBias = fc.Bias;
    s.ClassNames = cellstr(string(net.Layers(end).Classes));   % or net.OutputNames…
    save("learnables.mat", "-struct", "s")                      % add "-v7.3" for HDF5

The variables, once (MATLAB's shapes; the gate order is lstm_ref's i, f, g, o, so nothing
is reordered; v7.3 files store every array transposed — column-major — and are transposed
back on reading):

===============================  ============  ===================================  ========
variable                         shape         lstm_ref                             optional
===============================  ============  ===================================  ========
``InputWeights``                 4H × C        ``LSTM.params.W``                    no
``RecurrentWeights``             4H × H        ``LSTM.params.R``                    no
``Bias``                         4H × 1        ``LSTM.params.b``                    no
``FcWeights``, ``FcBias``        K × H, K × 1  ``FullyConnected``                   no
``ClassNames``                   cell of char  ``ClassificationOutput``             yes
``HiddenState``, ``CellState``   H × 1         ``LSTM.initial_state``               yes
``Mean``, ``StandardDeviation``  C × 1         ``SequenceInput`` zerocenter/zscore  yes
``OutputMode``                   char          ``LSTM.output_mode`` (default last)  yes
``StateActivationFunction``      char          ``state_activation`` (tanh)          yes
``GateActivationFunction``       char          ``gate_activation`` (sigmoid)        yes
``InputProjector``               C × Qi        an ``lstmProjectedLayer`` (below)    yes
``OutputProjector``              H × Qo        an ``lstmProjectedLayer`` (below)    yes
===============================  ============  ===================================  ========

An ``lstmProjectedLayer`` (``s.InputProjector = lstm.InputProjector;
s.OutputProjector = lstm.OutputProjector;`` beside the lines above) stores factors:
``InputWeights`` 4H × Qi and ``RecurrentWeights`` 4H × Qo. MATLAB computes
``InputWeights·(InputProjectorᵀ x)``; lstm_ref multiplies the factors out once, in float64,
into an ordinary LSTM — W = InputWeights · InputProjectorᵀ (4H × C) and
R = RecurrentWeights · OutputProjectorᵀ (4H × H) — equal to MATLAB's up to rounding (the
order of the sums differs), and exported as such.

A ``bilstmLayer``'s arrays have 8H rows, the forward direction's i, f, g, o blocks above
the backward's, and 2H-value states (forward first); it becomes a :class:`BiLSTM` whose
``'last'`` is MATLAB's — the output at the last step (``last="step"``), where the backward
direction has seen that one step only. The variables may also sit in one struct variable
(``save("f.mat", "s")``). MATLAB's
semantics are lstm_ref's: no masking — ``Padding.matlab(...)`` reproduces ``predict``'s
padded mini-batches. MATLAB's ``exportONNXNetwork`` output goes through the ONNX importer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, BinaryIO, Literal

import numpy as np

from ..errors import InputError
from ..formats.safe_numpy import check_declared_sizes, check_hdf5_file, check_hdf5_sizes
from ..formats.writes import write_atomically
from ..layers import (
    LSTM,
    BiLSTM,
    ClassificationOutput,
    FullyConnected,
    Layer,
    LSTMStack,
    SequenceInput,
    Softmax,
    directions,
    shared_by_directions,
)
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
    "InputProjector",
    "OutputProjector",
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
            f"{list(OPTIONAL)}) — docs/INTEROP.md (MATLAB's learnables) gives the MATLAB lines "
            "that save them"
        )
    extra = sorted(set(values) - set(REQUIRED) - set(OPTIONAL))
    if extra:
        raise InputError(f"{where}: unexpected variable(s) {extra}")
    num = {  # W and R (or their factors) are read by _multiplied_out
        k: _numeric(where, k, v, dtype) for k, v in values.items() if k not in _TEXT + _FACTORS
    }
    text = {
        k: _text(where, k, values[k])
        for k in ("OutputMode", "StateActivationFunction", "GateActivationFunction")
        if k in values
    }
    W, R = _multiplied_out(where, values, dtype)
    H, C = R.shape[1], W.shape[1]
    D = 2 if R.shape[0] == 8 * H else 1  # a bilstmLayer stacks the forward then backward rows
    rows = R.shape[0]  # 4H (8H for a bilstmLayer); a wrong R is named by the layer below
    zero = np.zeros(rows // 4, dtype)
    h0, c0 = (_vector(where, k, num.get(k, zero), rows // 4) for k in ("HiddenState", "CellState"))
    normalization = (
        "zscore" if "StandardDeviation" in num else "zerocenter" if "Mean" in num else "none"
    )
    norm = {
        k: _vector(where, v, num[v], C)
        for k, v in (("mean", "Mean"), ("std", "StandardDeviation"))
        if v in num
    }
    mode = text.get("OutputMode", "last")
    b = _vector(where, "Bias", num["Bias"], rows)
    one_ways = []
    for d, way in enumerate(["forward", "reverse"][:D]):
        rows, half = slice(4 * H * d, 4 * H * (d + 1)), slice(H * d, H * (d + 1))
        one_ways.append(
            LSTM(
                LSTMParams(W[rows], R[rows], b[rows]),
                name="lstm" if D == 1 else f"bilstm_{way}",
                output_mode=mode,  # type: ignore[arg-type]
                gate_activation=text.get("GateActivationFunction", "sigmoid"),
                state_activation=text.get("StateActivationFunction", "tanh"),
                initial_state=LSTMState(h0[half], c0[half]),
                direction=way,  # type: ignore[arg-type]
            )
        )
    recurrent: Layer = one_ways[0]
    if D == 2:  # MATLAB's bilstm 'last' is the output at the last (padded) step
        last: Literal["state", "step"] = "step" if mode == "last" else "state"
        recurrent = BiLSTM(one_ways[0], one_ways[1], name="bilstm", last=last)
    layers: list[Layer] = [
        SequenceInput(C, normalization=normalization, **norm),  # type: ignore[arg-type]
        recurrent,
        FullyConnected(
            num["FcWeights"], _vector(where, "FcBias", num["FcBias"], len(num["FcWeights"]))
        ),
        Softmax(),
    ]
    if "ClassNames" in values:
        layers.append(ClassificationOutput(tuple(_names(where, values["ClassNames"]))))
    return Network(layers)


_TEXT = ("ClassNames", "OutputMode", "StateActivationFunction", "GateActivationFunction")
_FACTORS = ("InputWeights", "RecurrentWeights", "InputProjector", "OutputProjector")


def _multiplied_out(where: str, values: dict[str, Any], dtype: Any) -> tuple[Array, Array]:
    """InputWeights and RecurrentWeights, (4H, C) and (4H, H): as stored, or an
    lstmProjectedLayer's factors multiplied out in float64 (see the module docstring)."""
    W, R = (_numeric(where, k, values[k], np.float64) for k in REQUIRED[:2])
    if W.ndim != 2 or R.ndim != 2:
        raise InputError(
            f"{where}: InputWeights {W.shape} and RecurrentWeights {R.shape} must be matrices"
        )
    projectors = [k for k in ("InputProjector", "OutputProjector") if k in values]
    if not projectors:
        return W.astype(dtype), R.astype(dtype)
    if len(projectors) == 1:
        raise InputError(
            f"{where}: an lstmProjectedLayer stores both InputProjector and OutputProjector; "
            f"got {projectors[0]} only"
        )
    P_in, P_out = (_numeric(where, k, values[k], np.float64) for k in projectors)
    H = R.shape[0] // 4
    if (
        R.shape[0] != 4 * H
        or W.shape[0] != 4 * H
        or P_in.ndim != 2
        or P_in.shape[1] != W.shape[1]
        or P_out.shape != (H, R.shape[1])
    ):
        raise InputError(
            f"{where}: an lstmProjectedLayer stores InputWeights 4H × Qi, InputProjector C × Qi, "
            f"RecurrentWeights 4H × Qo and OutputProjector H × Qo; got {W.shape}, "
            f"{P_in.shape}, {R.shape} and {P_out.shape}"
        )
    W = W @ P_in.T  # (4H, Qi) @ (Qi, C) -> (4H, C)
    R = R @ P_out.T  # (4H, Qo) @ (Qo, H) -> (4H, H)
    return W.astype(dtype), R.astype(dtype)


def _numeric(where: str, name: str, value: Any, dtype: Any) -> Array:
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":  # bool is kind "b"
        raise InputError(f"{where}: variable {name!r} holds {a.dtype} values; expected numbers")
    return a.astype(dtype)


def _vector(where: str, name: str, a: Array, n: int) -> Array:
    """``a`` — a column (n × 1), a row (1 × n) or as scipy squeezes them — as (n,); any
    other shape is refused, never flattened or cut to n."""
    if a.size != n or sum(d > 1 for d in a.shape) > 1:
        raise InputError(f"{where}: variable {name!r} must be {n} × 1; got shape {a.shape}")
    return a.reshape(n)


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
        declared = scipy.io.whosmat(where)  # the variables' headers only (not a struct's fields)
        check_declared_sizes(((f"variable {n!r}", 8 * math.prod(s)) for n, s, _ in declared), where)
        raw = scipy.io.loadmat(where, simplify_cells=True)
    except (ValueError, TypeError, OSError, NotImplementedError) as e:
        raise InputError(f"{where}: not a MATLAB .mat file: {e}") from None
    logical = {name for name, _, kind in declared if kind == "logical"}  # scipy gives uint8
    return {k: np.asarray(v, bool) if k in logical else v for k, v in raw.items() if k[:2] != "__"}


def _read_v73(where: str) -> dict[str, Any]:
    import h5py  # type: ignore[import-untyped]

    try:
        check_hdf5_file(where)
        with h5py.File(where, "r") as f:
            check_hdf5_sizes(f, where)
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
    return data.T.astype(bool) if kind == "logical" else data.T


def save_matlab(
    net: Network, path: str | os.PathLike, *, version: Literal["5", "7.3"] = "5"
) -> None:
    """Write ``net`` (SequenceInput → one LSTM or BiLSTM → FullyConnected → Softmax …) as
    the module table's variables in a ``.mat`` file, atomically.

    Parameters
    ----------
    net : Network
    path : path
    version : "5" or "7.3"
        v5 (``scipy.io.savemat``, compressed) or v7.3 (HDF5 as MATLAB's ``save -v7.3``
        writes it: a 512-byte MATLAB header, every array transposed to column-major, char
        as uint16, a cell as references into ``#refs#``; written with h5py).
    """
    if version not in ("5", "7.3"):
        raise InputError(f"MAT-file version must be '5' or '7.3'; got {version!r}")
    layers = [x for x in net.layers if not isinstance(x, Softmax | ClassificationOutput)]
    stack = next((x for x in layers if isinstance(x, LSTMStack)), None)
    if stack is not None:
        raise InputError(
            f"layer {stack.name!r} (LSTMStack) has no MATLAB export: a MATLAB learnables file "
            "holds one LSTM or BiLSTM layer, not a stack reading every layer's final state"
        )
    seq, lstm, fc = [*layers, None, None, None][:3]
    if not (
        len(layers) == 3
        and isinstance(seq, SequenceInput)
        and isinstance(lstm, LSTM | BiLSTM)
        and isinstance(fc, FullyConnected)
    ):
        raise InputError(
            "a MATLAB learnables file holds sequence input → one LSTM or BiLSTM → fully "
            f"connected; this network is {[x.TYPE for x in net.layers]}"
        )
    one_ways = directions(lstm)
    if isinstance(lstm, BiLSTM) and (
        lstm.merge_mode != "concat" or (lstm.output_mode == "last" and lstm.last != "step")
    ):
        raise InputError(
            f"layer {lstm.name!r}: MATLAB's bilstmLayer concatenates the directions and its "
            "'last' is the output at the last step (last='step'), not the final states"
        )
    for one in one_ways:
        if one.variant is not None:
            raise InputError(f"layer {one.name!r}: lstmLayer has no {', '.join(one.variant.used)}")
    if not isinstance(lstm, BiLSTM) and lstm.direction != "forward":
        raise InputError(f"layer {lstm.name!r}: lstmLayer has no reverse direction")
    one = one_ways[0]
    shared_by_directions(  # the variables below hold one of each
        lstm,
        "output mode and pair of activations",
        lambda d: (d.output_mode, d.gate_activation, d.state_activation),
    )

    def stacked(f: Any) -> Array:
        return np.concatenate([f(d) for d in one_ways])

    values: dict[str, Any] = {
        "InputWeights": stacked(lambda d: d.params.W),
        "RecurrentWeights": stacked(lambda d: d.params.R),
        "Bias": stacked(lambda d: d.params.b)[:, None],
        "FcWeights": fc.weights,
        "FcBias": fc.bias[:, None],
        "HiddenState": stacked(lambda d: d._start.h)[:, None],
        "CellState": stacked(lambda d: d._start.c)[:, None],
        "OutputMode": one.output_mode,
        "StateActivationFunction": one.state_activation,
        "GateActivationFunction": one.gate_activation,
    }
    if seq.mean is not None:
        values["Mean"] = seq.mean[:, None]
    if seq.std is not None:
        values["StandardDeviation"] = seq.std[:, None]
    if version == "7.3":
        write_atomically(path, lambda f: _write_v73(f, values, net.class_names))
        return
    import scipy.io  # type: ignore[import-untyped]

    if net.class_names:
        values["ClassNames"] = np.array(list(net.class_names), dtype=object)[:, None]
    write_atomically(path, lambda f: scipy.io.savemat(f, values, do_compression=True))


V73_HEADER = b"MATLAB 7.3 MAT-file, Platform: lstm_ref, HDF5 schema 1.00 ."


def _write_v73(f: BinaryIO, values: dict[str, Any], class_names: Sequence[str] | None) -> None:
    """``values`` (MATLAB's shapes; text as str) and ``class_names`` (a K × 1 cell) as
    MATLAB's v7.3 layout: the header's 116 bytes of text, 8 of subsystem offset, version
    0x0200 and the endian mark ``IM`` in HDF5's 512-byte user block."""
    import h5py

    with h5py.File(f, "w", userblock_size=512) as h5:
        for name, value in values.items():
            _h5_write(h5, name, value)
        if class_names:
            refs = h5.create_group("#refs#")
            cells = [_h5_write(refs, f"c{k}", c).ref for k, c in enumerate(class_names)]
            cell = h5.create_dataset(
                "ClassNames", data=np.array([cells]), dtype=h5py.ref_dtype
            )  # HDF5 (1, K) = MATLAB K × 1
            cell.attrs["MATLAB_class"] = np.bytes_("cell")
    f.seek(0)
    f.write(V73_HEADER.ljust(116) + bytes(8) + b"\x00\x02IM")


def _h5_write(group: Any, name: str, value: str | Array) -> Any:
    """One v7.3 variable: char as a (n, 1) uint16 dataset (MATLAB's 1 × n), numbers as
    float64 transposed to column-major."""
    if isinstance(value, str):
        d = group.create_dataset(name, data=np.array([[ord(ch)] for ch in value], np.uint16))
        d.attrs["MATLAB_class"] = np.bytes_("char")
        d.attrs["MATLAB_int_decode"] = np.int32(2)
        return d
    d = group.create_dataset(name, data=np.asarray(value, np.float64).T)  # (C, 4H) of 4H × C
    d.attrs["MATLAB_class"] = np.bytes_("double")
    return d
