"""Keras export: a Keras 3 model computing a network, saved as ``.keras`` or legacy
``.h5`` — the layout of :mod:`lstm_ref.interop.keras` (kernel = Wᵀ (C, 4H), recurrent
kernel = Rᵀ (H, 4H), bias b (4H,), gate blocks i, f, c, o as lstm_ref's i, f, g, o) read the
other way. ``Masking(0.0)`` makes padded batches run as lstm_ref's masked padding. The
class names go where :mod:`lstm_ref.interop.keras_file` reads them."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..formats.writes import write_atomically
from ..layers import (
    LSTM,
    BiLSTM,
    FullyConnected,
    LSTMStack,
    SequenceInput,
    Softmax,
    TimeReversal,
    directions,
    reverse_sequence,
    shared_by_directions,
)
from ..network import Network
from .keras import ACTIVATIONS, KERAS_EPSILON
from .keras_file import CLASS_NAMES_KEY

Array = np.ndarray

KERAS_NAMES = {  # lstm_ref's activation specs -> Keras 3's names: the importer's table turned round
    spec: name for name, spec in ACTIVATIONS.items() if name not in ("linear", None)
} | {"hard-sigmoid-keras3": "hard_sigmoid"}


@contextmanager
def _quiet_keras() -> Iterator[None]:
    """Silence what Keras 3.15 says to no purpose while we build and save a model: NumPy 2's
    DeprecationWarning on Keras's ``Variable.__array__`` (it takes no ``copy=``), raised
    whenever Keras turns a variable into an array, and the notice that ``.h5`` is a legacy
    format (the caller chose it)."""
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                "__array__ implementation doesn't accept a copy keyword",
                DeprecationWarning,
            )
            yield
    finally:
        absl.setLevel(level)


def to_keras(net: Network) -> Any:
    """The Keras 3 model computing ``net`` (in its dtype): ``Masking(0.0)`` so padded batches
    run like lstm_ref's masked padding, ``Normalization`` for a normalising input, then
    LSTM/Bidirectional layers (a reverse LSTM's sequence with the TimeReversal after it as
    one go_backwards LSTM), Dense (softmax)."""
    with _quiet_keras():
        return _build(net)


def _build(net: Network) -> Any:
    import keras  # type: ignore[import-untyped]

    dtype = str(net.dtype)
    x = inputs = keras.Input((None, net.input_size), dtype=dtype)
    x = keras.layers.Masking(0.0, dtype=dtype)(x)
    pending = []
    for k, layer in enumerate(net.layers):
        if isinstance(layer, SequenceInput):
            if layer.std is not None and (layer.std < KERAS_EPSILON).any():
                raise InputError(
                    f"layer {layer.name!r}: a std below {KERAS_EPSILON:g}, the least divisor "
                    "of Keras's Normalization"
                )
            if layer.mean is not None:
                variance = np.ones_like(layer.mean) if layer.std is None else layer.std**2
                normalise = keras.layers.Normalization(
                    mean=layer.mean, variance=variance, name=_keras_name(layer.name), dtype=dtype
                )
                x = normalise(x)
        elif isinstance(layer, LSTM | BiLSTM):
            reversal = k + 1 < len(net.layers) and isinstance(net.layers[k + 1], TimeReversal)
            if reverse_sequence(layer) and not reversal:
                raise InputError(
                    f"layer {layer.name!r}: a reverse sequence has no Keras LSTM (go_backwards "
                    "returns it reversed in time; a TimeReversal after it exports as that)"
                )
            keras_layer, weights = _keras_lstm(layer, dtype, keras)
            x = keras_layer(x)
            pending.append((keras_layer, weights))
        elif isinstance(layer, LSTMStack):
            raise InputError(
                f"layer {layer.name!r} (LSTMStack) has no Keras export: stacked Keras LSTM "
                "layers pass on the top layer's output only, not every layer's final state"
            )
        elif isinstance(layer, TimeReversal):  # go_backwards wrote the sequence so already
            if not reverse_sequence(net.layers[k - 1]):
                raise InputError(
                    f"layer {layer.name!r}: a time reversal exports only after a reverse "
                    "LSTM's sequence (as go_backwards)"
                )
            if any(isinstance(later, LSTM | BiLSTM) for later in net.layers[k + 1 :]):
                raise InputError(
                    f"layer {layer.name!r}: a go_backwards sequence feeding another LSTM "
                    "reads the wrong steps under Keras's Masking (its mask is passed on "
                    "unreversed)"
                )
        elif isinstance(layer, FullyConnected):
            softmax = k + 1 < len(net.layers) and isinstance(net.layers[k + 1], Softmax)
            dense = keras.layers.Dense(
                layer.output_size,
                activation="softmax" if softmax else None,
                name=_keras_name(layer.name),
                dtype=dtype,
            )
            x = dense(x)
            pending.append((dense, [layer.weights.T, layer.bias]))
        elif isinstance(layer, Softmax):
            if not isinstance(net.layers[k - 1], FullyConnected):
                x = keras.layers.Activation("softmax", name=_keras_name(layer.name), dtype=dtype)(x)
        elif layer.TYPE != "Classification Output":
            raise InputError(f"layer {layer.name!r} ({layer.TYPE}) has no Keras export")
    model = keras.Model(inputs, x)
    for keras_layer, weights in pending:
        keras_layer.set_weights(weights)
    return model


def _keras_name(name: str) -> str:
    """A layer name as Keras takes it: on the torch backend a name holds no ``.`` (an
    imported PyTorch layer is called ``lstm.l0``) — nor ``/``, a scope separator."""
    return re.sub(r"[./]", "_", name)


def _keras_lstm(layer: LSTM | BiLSTM, dtype: str, keras: Any) -> tuple[Any, list[Array]]:
    """The Keras layer computing ``layer`` and its weights (kernel, recurrent kernel, bias
    per direction)."""
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
    shared_by_directions(  # Bidirectional copies one LSTM's configuration
        layer, "pair of activations", lambda d: (d.gate_activation, d.state_activation)
    )
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
            keras.layers.LSTM(**make), merge_mode=layer.merge_mode, name=_keras_name(layer.name)
        ), weights
    return keras.layers.LSTM(
        **make, go_backwards=one.direction == "reverse", name=_keras_name(layer.name)
    ), weights


def save_keras(net: Network, path: str | os.PathLike) -> None:
    """Write :func:`to_keras` to ``path`` (``.keras``, or legacy ``.h5``), atomically, with
    ``net.class_names`` beside the model (see :mod:`lstm_ref.interop.keras_file`)."""
    import h5py  # type: ignore[import-untyped]

    model = to_keras(net)
    suffix = Path(path).suffix
    names = list(net.class_names)
    with tempfile.TemporaryDirectory() as folder, _quiet_keras():
        temp = Path(folder) / f"model{suffix}"
        model.save(temp)
        archive = zipfile.is_zipfile(temp)
        if names and not archive:
            with h5py.File(temp, "a") as f:
                f.attrs[CLASS_NAMES_KEY] = json.dumps(names)
        data = temp.read_bytes()
    if names and archive:
        data = _with_class_names(data, names)
    write_atomically(path, lambda f: f.write(data))


def _with_class_names(archive: bytes, names: list[str]) -> bytes:
    """A ``.keras`` archive with ``names`` under ``CLASS_NAMES_KEY`` in its metadata.json."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "metadata.json":
                data = json.dumps({**json.loads(data), CLASS_NAMES_KEY: names}).encode()
            new.writestr(info, data)
    return out.getvalue()
