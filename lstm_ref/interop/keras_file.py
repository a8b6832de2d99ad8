"""Keras: reading a ``.keras`` archive or a legacy ``.h5`` file — the model's config, the
version that wrote it and its weight arrays, where :mod:`lstm_ref.interop.keras` says they
are — with ``h5py`` and ``json`` (no model is built, nothing is unpickled).

The class names lstm_ref's export keeps beside the model (Keras has no place for them, and
reads neither on loading): key ``class_names`` of the archive's ``metadata.json`` (a list),
or the root attribute ``class_names`` of a legacy ``.h5`` file (a JSON list)."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .._checks import check_real_dtype
from ..errors import InputError
from ..formats.safe_numpy import check_hdf5_file, check_hdf5_heaps, check_hdf5_sizes, zip_members
from .keras_graph import RECURRENT_LAYERS, layer_name

Array = np.ndarray
CLASS_NAMES_KEY = "class_names"  # metadata.json key / root attribute: a JSON list of names


@contextmanager
def opened(path: str | os.PathLike) -> Iterator[tuple[dict[str, Any], str, Any, str]]:
    """The model's config, the writer's Keras version, its weights and the path as text."""
    import h5py  # type: ignore[import-untyped]

    where = os.fspath(path)
    try:
        if zipfile.is_zipfile(where):
            with zipfile.ZipFile(where) as z:
                zip_members(z, where)  # sizes declared within bounds before any is read
                config = json.loads(z.read("config.json"))
                version = json.loads(z.read("metadata.json")).get("keras_version", "3")
                data = z.read("model.weights.h5")
                check_hdf5_heaps(data, f"{where}: model.weights.h5")
                weights = h5py.File(io.BytesIO(data), "r")
            reader = _ArchiveWeights(weights)
        else:
            check_hdf5_file(where)
            weights = h5py.File(where, "r")
            if "model_config" not in weights.attrs:
                weights.close()
                raise InputError(f"{where}: an HDF5 file without a Keras model_config")
            config = json.loads(weights.attrs["model_config"])
            version = str(weights.attrs.get("keras_version", "2"))
            reader = _LegacyWeights(weights)  # type: ignore[assignment]
    except (OSError, KeyError, json.JSONDecodeError, zipfile.BadZipFile) as e:
        raise InputError(f"{where}: not a Keras model file (.keras or .h5): {e}") from None
    with weights:
        check_hdf5_sizes(weights, where)
        kind = config.get("class_name")
        if kind not in ("Sequential", "Functional", "Model"):
            raise InputError(f"{where}: a Keras {kind}; expected a Sequential or Functional model")
        yield config, version, reader, where


def read_class_names(path: str | os.PathLike) -> list[str] | None:
    """The class names lstm_ref's export stored in a Keras file (see the module docstring),
    or None: a file Keras wrote alone has none."""
    import h5py  # type: ignore[import-untyped]

    where = os.fspath(path)
    if zipfile.is_zipfile(where):
        with zipfile.ZipFile(where) as z:
            names = json.loads(z.read("metadata.json")).get(CLASS_NAMES_KEY)
    else:
        with h5py.File(where, "r") as f:
            stored = f.attrs.get(CLASS_NAMES_KEY)
            names = None if stored is None else json.loads(stored)
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise InputError(f"{where}: {CLASS_NAMES_KEY!r} must be a JSON list of names")
    return names


class _ArchiveWeights:
    """model.weights.h5 of a .keras archive: arrays by class-numbered key."""

    def __init__(self, f: Any):
        self.f = f

    def arrays(self, layer: dict[str, Any], key: str, direction: str = "") -> list[Array]:
        group = f"layers/{key}/{direction + '_layer/' if direction else ''}"
        inner = {"TimeDistributed": "layer/", **dict.fromkeys(RECURRENT_LAYERS, "cell/")}
        path = f"{group}{inner.get(layer['class_name'], '')}vars"
        if path not in self.f:
            return []
        own = self.f[path]
        return [_real(own[str(k)]) for k in range(len(own))]


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
        if direction:  # the forward layer's arrays, then the backward layer's
            half = len(names) // 2
            names = names[:half] if direction == "forward" else names[half:]
        return [_real(group[n]) for n in names]


def _real(dataset: Any) -> Array:
    """A weight dataset's values, if they are real numbers (not bool, not complex)."""
    return check_real_dtype(np.asarray(dataset), f"Keras weight {dataset.name!r}")


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def weight_keys(specs: list[dict[str, Any]]) -> dict[str, str]:
    """Each layer's key in a ``.keras`` archive, by layer name: its snake-cased class name
    numbered in model order."""
    counts: Counter[str] = Counter()
    keys = {}
    for spec in specs:
        snake = _snake(spec["class_name"])
        keys[layer_name(spec)] = snake + (f"_{counts[snake]}" if counts[snake] else "")
        counts[snake] += 1
    return keys
