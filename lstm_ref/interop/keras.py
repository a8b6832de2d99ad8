"""Keras: ``.keras`` archives (Keras 3) and legacy ``.h5`` files (Keras 2 / tf.keras, or
Keras 3's legacy writer), read with ``h5py`` and ``json`` — the framework is not imported
and no model is built. Export builds the Keras model (lazily importing keras) and saves it.

The layout, once (``kernel`` etc. as ``keras/src/layers/rnn/lstm.py`` names them; u units):

=======================  ==============  =====================  =============================
Keras weight             shape           lstm_ref               transform
=======================  ==============  =====================  =============================
LSTM ``kernel``          (C, 4u)         ``LSTM.params.W``      transposed
LSTM ``recurrent_kernel`` (u, 4u)        ``LSTM.params.R``      transposed
LSTM ``bias``            (4u,)           ``LSTM.params.b``      none (zeros if use_bias=False)
CuDNNLSTM ``kernel``     (C, 4u)         ``LSTM.params.W``      gate block k, (C, u), read
                                                                row-major as (u, C)
CuDNNLSTM ``recurrent``  (u, 4u)         ``LSTM.params.R``      gate block k as stored (u, u)
CuDNNLSTM ``bias``       (8u,)           ``LSTM.params.b``      input half + recurrent half
Dense ``kernel``         (H, K)          ``FullyConnected``     transposed
Dense ``bias``           (K,)            ``FullyConnected``     none
=======================  ==============  =====================  =============================

Gate blocks are i, f, c, o — lstm_ref's i, f, g, o — so nothing is reordered. The legacy
``CuDNNLSTM`` (Keras 2, tf.keras 1.x) handed each gate's kernel block to cuDNN without
transposing it, so cuDNN reads it as a row-major (u, C) matrix (Keras's own loader:
``k.T.reshape(k.shape, order="F")``), and stores cuDNN's two biases; it has sigmoid and tanh
only and no masking. Where the
arrays are: a ``.keras`` archive's ``model.weights.h5`` holds ``layers/<key>/cell/vars/0, 1,
2`` (kernel, recurrent kernel, bias; a Bidirectional's under ``forward_layer``/
``backward_layer``) and ``layers/<key>/vars/0, 1`` for a Dense, where ``<key>`` is the
snake-cased class name numbered in model order (``lstm``, ``lstm_1``, …), not the layer's
name; a legacy ``.h5`` file holds ``model_weights/<layer name>/`` with the attribute
``weight_names`` in the same order.

Semantics: ``activation`` → ``state_activation`` and ``recurrent_activation`` →
``gate_activation``, with ``hard_sigmoid`` by the version that wrote the file — Keras 3
clip(x/6 + 0.5) (``"hard-sigmoid-keras3"``), Keras 1/2 and tf.keras ≤ 2.15 clip(0.2x + 0.5)
(``"hard-sigmoid"``) — read from the file's ``keras_version``. ``unit_forget_bias`` only
initialises (the stored bias is used); dropout and recurrent dropout act in training only.
``return_sequences`` → ``output_mode``; ``go_backwards`` with only the last output →
``direction="reverse"`` (the same final state; a go_backwards *sequence* comes out reversed
in time, which is refused); ``Bidirectional`` → :class:`BiLSTM` with its ``merge_mode``
(concat, sum, mul, ave). ``Masking`` marks padded steps: Keras carries the state through
them and repeats the previous output there (zeros inside a Bidirectional with
``return_sequences``) — on every value ``Network.predict`` returns this is
``Padding.masked()`` for sequences padded at either end (a masked step *inside* a sequence
is not supported). ``Normalization`` on the last axis (its mean and variance from the config,
or adapted arrays) → a z-scoring ``SequenceInput``, std = sqrt(variance). ``Dense`` with
``softmax`` (or linear, or an ``Activation('softmax')`` after it) → FullyConnected
(+ Softmax); ``Dropout`` is skipped. Anything else (GRU,
attention, a custom layer, ``return_state``) is refused with the layer's name and class.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..activations import parse_activation
from ..errors import InputError
from ..formats.writes import write_atomically
from ..layers import LSTM, BiLSTM, FullyConnected, Layer, SequenceInput, Softmax, directions
from ..lstm import LSTMParams
from ..network import Network

Array = np.ndarray
ACTIVATIONS = {  # Keras activation names -> lstm_ref's (hard_sigmoid depends on the version)
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softsign": "softsign",
    "relu": "Relu",
    "linear": "Affine(alpha=1.0, beta=0.0)",
    None: "Affine(alpha=1.0, beta=0.0)",
}
RECURRENT = ("LSTM", "CuDNNLSTM")
SKIPPED = ("InputLayer", "Dropout", "Masking", "NotEqual", "Any")  # nothing to compute


def from_keras(path: str | os.PathLike, *, dtype: np.dtype | type = np.float64) -> Network:
    """A Network from a ``.keras`` archive or a legacy ``.h5`` file (see the module docstring).

    Parameters
    ----------
    path : path
        The file; Keras is not imported.
    dtype : float64 (default) or float32

    Returns
    -------
    Network
        SequenceInput (z-scoring for a Normalization layer) → LSTM/BiLSTM layers →
        FullyConnected (→ Softmax), in the model's order; an LSTM without
        ``return_sequences`` has ``output_mode="last"``.
    """
    import h5py  # type: ignore[import-untyped]

    where = os.fspath(path)
    try:
        if zipfile.is_zipfile(where):
            with zipfile.ZipFile(where) as z:
                config = json.loads(z.read("config.json"))
                version = json.loads(z.read("metadata.json")).get("keras_version", "3")
                weights = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
            reader = _ArchiveWeights(weights)
        else:
            weights = h5py.File(where, "r")
            if "model_config" not in weights.attrs:
                raise InputError(f"{where}: an HDF5 file without a Keras model_config")
            config = json.loads(weights.attrs["model_config"])
            version = str(weights.attrs.get("keras_version", "2"))
            reader = _LegacyWeights(weights)  # type: ignore[assignment]
    except (OSError, KeyError, json.JSONDecodeError, zipfile.BadZipFile) as e:
        raise InputError(f"{where}: not a Keras model file (.keras or .h5): {e}") from None
    with weights:
        return _network(config, version, reader, where, dtype)


class _ArchiveWeights:
    """model.weights.h5 of a .keras archive: arrays by class-numbered key."""

    def __init__(self, f: Any):
        self.f = f

    def arrays(self, layer: dict[str, Any], key: str, direction: str = "") -> list[Array]:
        group = f"layers/{key}/{direction + '_layer/' if direction else ''}"
        recurrent = layer["class_name"] in (*RECURRENT, "Bidirectional")
        path = f"{group}cell/vars" if recurrent else f"{group}vars"
        if path not in self.f:
            return []
        own = self.f[path]
        return [np.asarray(own[str(k)]) for k in range(len(own))]


class _LegacyWeights:
    """A legacy .h5 file: arrays by layer name, in the order of ``weight_names``."""

    def __init__(self, f: Any):
        self.f = f["model_weights"] if "model_weights" in f else f

    def arrays(self, layer: dict[str, Any], key: str, direction: str = "") -> list[Array]:
        name = layer["config"]["name"]
        if name not in self.f:
            return []
        group = self.f[name]
        names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]
        ]
        if direction:  # "bidirectional/forward_lstm/lstm_cell/kernel:0"
            names = [n for n in names if f"/{direction}_" in n]
        return [np.asarray(group[n]) for n in names]


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _network(config: dict[str, Any], version: str, reader: Any, where: str, dtype: Any) -> Network:
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional", "Model"):
        raise InputError(f"{where}: a Keras {kind}; expected a Sequential or Functional model")
    specs = config["config"]["layers"]
    keras2 = version.split(".")[0] in ("1", "2")
    counts: Counter[str] = Counter()
    layers: list[Layer] = []
    C = None
    for spec in specs:
        cls, cfg = spec["class_name"], spec["config"]
        key = _snake(cls) + (f"_{counts[_snake(cls)]}" if counts[_snake(cls)] else "")
        counts[_snake(cls)] += 1
        name = cfg.get("name", key)
        what = f"{where}: layer {name!r} ({cls})"
        if cls == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            C = shape[-1] if shape else None
        if cls in SKIPPED:
            continue
        if cls in RECURRENT:
            arrays = reader.arrays(spec, key)
            layers.append(_lstm(cfg, arrays, what, keras2, dtype, name, cls == "CuDNNLSTM"))
        elif cls == "Bidirectional":
            inner = cfg["layer"]
            if inner["class_name"] not in RECURRENT:
                raise InputError(f"{what}: wraps a {inner['class_name']}; expected an LSTM")
            mode = cfg.get("merge_mode")
            if mode not in ("concat", "sum", "mul", "ave"):
                raise InputError(f"{what}: merge_mode {mode!r}; expected concat, sum, mul or ave")
            halves = []
            for sub, direction in (("forward", "forward"), ("backward", "reverse")):
                arrays = reader.arrays(spec, key, sub)
                inner_cfg = dict(inner["config"], go_backwards=direction == "reverse")
                cudnn = inner["class_name"] == "CuDNNLSTM"
                half = _lstm(inner_cfg, arrays, what, keras2, dtype, f"{name}_{sub}", cudnn, True)
                halves.append(half)
            layers.append(BiLSTM(halves[0], halves[1], name=name, merge_mode=mode))
        elif cls == "Dense":
            arrays = reader.arrays(spec, key)
            if len(arrays) != (2 if cfg.get("use_bias", True) else 1):
                raise InputError(f"{what}: {len(arrays)} arrays; expected kernel and bias")
            kernel = arrays[0]
            bias = arrays[1] if len(arrays) > 1 else np.zeros(kernel.shape[1])
            if kernel.ndim != 2 or bias.shape != kernel.shape[1:]:
                raise InputError(
                    f"{what}: kernel {kernel.shape}, bias {bias.shape}; expected (H, K), (K,)"
                )
            layers.append(FullyConnected(kernel.T.astype(dtype), bias.astype(dtype), name=name))
            activation = cfg.get("activation")
            if activation == "softmax":
                layers.append(Softmax(name=f"{name}_softmax"))
            elif activation not in ("linear", None):
                raise InputError(f"{what}: activation {activation!r}; expected softmax or linear")
        elif cls == "Normalization":
            layers.append(_normalization(cfg, reader.arrays(spec, key), what, dtype, name))
        elif cls == "Activation" and cfg.get("activation") == "softmax":
            layers.append(Softmax(name=name))
        else:
            raise InputError(
                f"{what}: not supported (LSTM, Bidirectional, Masking, Dense, Dropout)"
            )
    if not any(isinstance(x, LSTM | BiLSTM) for x in layers):
        raise InputError(f"{where}: no LSTM layer")
    head: list[Layer] = []
    if isinstance(layers[0], SequenceInput):
        head, layers = [layers[0]], layers[1:]
    first = layers[0]
    if not isinstance(first, LSTM | BiLSTM):
        raise InputError(f"{where}: the first layer with arrays must be an LSTM or Bidirectional")
    width = first.fwd.input_size if isinstance(first, BiLSTM) else first.input_size
    if C is not None and C != width:
        raise InputError(f"{where}: the input has {C} features but the first LSTM takes {width}")
    return Network([*(head or [SequenceInput(width)]), *layers])


def _normalization(
    cfg: dict[str, Any], arrays: list[Array], what: str, dtype: Any, name: str
) -> SequenceInput:
    """Keras's Normalization per feature: (x − mean) / sqrt(variance) — a z-scoring input
    (zero-centring when every variance is 1)."""
    if list(cfg.get("axis", [-1])) != [-1] or cfg.get("invert"):
        raise InputError(f"{what}: only axis -1 (per feature), not inverted, is supported")
    mean, variance = cfg.get("mean"), cfg.get("variance")
    if mean is None or variance is None:  # adapted: the arrays mean, variance, count
        if len(arrays) < 2:
            raise InputError(f"{what}: neither mean/variance in its config nor adapted arrays")
        mean, variance = arrays[0], arrays[1]
    m = np.asarray(mean, np.float64).reshape(-1).astype(dtype)
    v = np.asarray(variance, np.float64).reshape(-1)
    if (v == 1).all():
        return SequenceInput(len(m), name=name, normalization="zerocenter", mean=m)
    std = np.sqrt(v).astype(dtype)  # sqrt(std²) is std exactly: the export round trips
    return SequenceInput(len(m), name=name, normalization="zscore", mean=m, std=std)


def _lstm(
    cfg: dict[str, Any],
    arrays: list[Array],
    what: str,
    keras2: bool,
    dtype: Any,
    name: str,
    cudnn: bool = False,
    bidirectional: bool = False,
) -> LSTM:
    """An LSTM (or legacy CuDNNLSTM) layer's arrays and options (the module docstring)."""
    use_bias = cudnn or cfg.get("use_bias", True)
    if len(arrays) != (3 if use_bias else 2):
        raise InputError(
            f"{what}: {len(arrays)} weight arrays; expected kernel, recurrent_kernel"
            + (", bias" if use_bias else "")
        )
    if cfg.get("return_state"):
        raise InputError(f"{what}: return_state is not supported (one output per layer)")
    u = int(cfg["units"])
    kernel, recurrent = arrays[0], arrays[1]
    bias = arrays[2] if use_bias else np.zeros(4 * u)
    if kernel.ndim != 2 or kernel.shape[1] != 4 * u or recurrent.shape != (u, 4 * u):
        raise InputError(
            f"{what}: kernel {kernel.shape} and recurrent_kernel {recurrent.shape}; expected "
            f"(C, {4 * u}) and ({u}, {4 * u})"
        )
    if bias.shape != ((8 if cudnn else 4) * u,):
        raise InputError(f"{what}: bias {bias.shape}; expected ({(8 if cudnn else 4) * u},)")
    sequences = bool(cfg.get("return_sequences", False))
    backwards = bool(cfg.get("go_backwards", False))
    if backwards and sequences and not bidirectional:
        raise InputError(
            f"{what}: go_backwards with return_sequences returns the outputs reversed in time; "
            "not supported (wrap the layer in Bidirectional, or return the last output)"
        )
    gate, state = (
        _activation(cfg.get(k, d), keras2, what)
        for k, d in (("recurrent_activation", "sigmoid"), ("activation", "tanh"))
    )
    if cudnn:  # sigmoid and tanh, fixed; each gate's kernel block reinterpreted (docstring)
        gate, state = "sigmoid", "tanh"
        C = kernel.shape[0]
        blocks = [np.ascontiguousarray(kernel[:, k * u : (k + 1) * u]) for k in range(4)]
        W = np.concatenate([block.reshape(u, C) for block in blocks])  # (4u, C)
        R = np.concatenate([recurrent[:, k * u : (k + 1) * u] for k in range(4)])  # (4u, u)
        params = LSTMParams(W, R, bias[: 4 * u] + bias[4 * u :])
    else:
        params = LSTMParams(kernel.T, recurrent.T, bias)
    return LSTM(
        LSTMParams(*(a.astype(dtype) for a in params)),
        name=name,
        output_mode="sequence" if sequences else "last",
        gate_activation=gate,
        state_activation=state,
        direction="reverse" if backwards else "forward",
    )


def _activation(name: Any, keras2: bool, what: str) -> str:
    if name == "hard_sigmoid":
        return "hard-sigmoid" if keras2 else "hard-sigmoid-keras3"
    if name not in ACTIVATIONS:
        raise InputError(
            f"{what}: activation {name!r}; expected one of {sorted(map(str, ACTIVATIONS))}"
        )
    spec = ACTIVATIONS[name]
    parse_activation(spec)
    return spec


# ------------------------------------------------------------------------------ export
KERAS_NAMES = {"sigmoid": "sigmoid", "tanh": "tanh", "softsign": "softsign", "Relu": "relu"}
KERAS_NAMES["hard-sigmoid-keras3"] = "hard_sigmoid"


def to_keras(net: Network) -> Any:
    """The Keras 3 model computing ``net`` (in its dtype): ``Masking(0.0)`` so padded batches
    run like lstm_ref's masked padding, ``Normalization`` for a normalising input, then
    LSTM/Bidirectional layers, Dense (softmax)."""
    import keras  # type: ignore[import-untyped]

    dtype = str(net.dtype)
    x = inputs = keras.Input((None, net.input_size), dtype=dtype)
    x = keras.layers.Masking(0.0, dtype=dtype)(x)
    pending = []
    for k, layer in enumerate(net.layers):
        if isinstance(layer, SequenceInput):
            if layer.mean is not None:
                variance = np.ones_like(layer.mean) if layer.std is None else layer.std**2
                normalise = keras.layers.Normalization(
                    mean=layer.mean, variance=variance, name=layer.name, dtype=dtype
                )
                x = normalise(x)
        elif isinstance(layer, LSTM | BiLSTM):
            keras_layer, weights = _keras_lstm(layer, dtype, keras)
            x = keras_layer(x)
            pending.append((keras_layer, weights))
        elif isinstance(layer, FullyConnected):
            softmax = k + 1 < len(net.layers) and isinstance(net.layers[k + 1], Softmax)
            dense = keras.layers.Dense(
                layer.output_size,
                activation="softmax" if softmax else None,
                name=layer.name,
                dtype=dtype,
            )
            x = dense(x)
            pending.append((dense, [layer.weights.T, layer.bias]))
        elif isinstance(layer, Softmax):
            if not isinstance(net.layers[k - 1], FullyConnected):
                x = keras.layers.Activation("softmax", name=layer.name, dtype=dtype)(x)
        elif layer.TYPE != "Classification Output":
            raise InputError(f"layer {layer.name!r} ({layer.TYPE}) has no Keras export")
    model = keras.Model(inputs, x)
    for keras_layer, weights in pending:
        keras_layer.set_weights(weights)
    return model


def _keras_lstm(layer: LSTM | BiLSTM, dtype: str, keras: Any) -> tuple[Any, list[Array]]:
    one_ways = directions(layer)
    for one in one_ways:
        if one.variant is not None or np.any(one._start.h) or np.any(one._start.c):
            raise InputError(
                f"layer {one.name!r}: a Keras LSTM has no peepholes, projection, clip or stored "
                "initial state"
            )
        for spec in (one.gate_activation, one.state_activation):
            if spec not in KERAS_NAMES:
                raise InputError(f"layer {one.name!r}: activation {spec!r} has no Keras 3 name")
    if isinstance(layer, BiLSTM) and layer.last == "step":
        raise InputError(f"layer {layer.name!r}: Keras's Bidirectional returns the final states")
    one = one_ways[0]
    make = dict(
        units=one.hidden_size,
        activation=KERAS_NAMES[one.state_activation],
        recurrent_activation=KERAS_NAMES[one.gate_activation],
        return_sequences=one.output_mode == "sequence",
        dtype=dtype,
    )
    weights = [a for d in one_ways for a in (d.params.W.T, d.params.R.T, d.params.b)]
    if isinstance(layer, BiLSTM):
        return keras.layers.Bidirectional(
            keras.layers.LSTM(**make), merge_mode=layer.merge_mode, name=layer.name
        ), weights
    if one.direction == "reverse" and one.output_mode == "sequence":
        raise InputError(
            f"layer {one.name!r}: a reverse sequence has no Keras LSTM (go_backwards reverses it)"
        )
    return keras.layers.LSTM(
        **make, go_backwards=one.direction == "reverse", name=layer.name
    ), weights


def save_keras(net: Network, path: str | os.PathLike) -> None:
    """Write :func:`to_keras` to ``path`` (``.keras``, or legacy ``.h5``), atomically."""
    model = to_keras(net)
    suffix = Path(path).suffix
    with tempfile.TemporaryDirectory() as folder:
        temp = Path(folder) / f"model{suffix}"
        model.save(temp)
        data = temp.read_bytes()
    write_atomically(path, lambda f: f.write(data))
