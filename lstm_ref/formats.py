"""lstm_ref's native weight format: one ``.npz`` file holding a JSON header and the arrays.

Layout of the file (a plain NumPy ``.npz`` archive; nothing is pickled):

``header``
    uint8 array: UTF-8 JSON ``{"format": "lstm_ref", "format_version": 1,
    "class_names": [...], "layers": [{"type": ..., "config": {...}, "arrays": [...]}, ...],
    "metadata": {...}}``.
``<layer name>/<array name>``
    Each layer's arrays, e.g. ``lstm/W`` (4H, C), ``lstm/R`` (4H, H), ``lstm/b`` (4H,),
    ``lstm/h0``, ``lstm/c0`` (H,), ``fc/weights`` (K, H), ``fc/bias`` (K,).

Saving then loading gives back bit-identical arrays.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from importlib import resources
from typing import Any

import numpy as np

from .layers import layer_from_arrays
from .network import Network

FORMAT = "lstm_ref"
FORMAT_VERSION = 1
PRETRAINED_PACKAGE = "lstm_ref.weights"


def save_network(
    net: Network, path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> None:
    """Write ``net`` to ``path`` (an ``.npz`` file) in the native format.

    ``metadata`` (JSON-ready) is stored in the header, e.g. the training recipe.
    """
    layers, arrays = [], {}
    for layer in net.layers:
        own = layer.arrays()
        layers.append({"type": type(layer).__name__, "config": layer.config(), "arrays": list(own)})
        arrays.update({f"{layer.name}/{k}": v for k, v in own.items()})
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class_names": list(net.class_names),
        "layers": layers,
        "metadata": metadata or {},
    }
    blob = np.frombuffer(json.dumps(header, indent=1).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez_compressed(f, header=blob, **arrays)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a native weight file."""
    with _open_npz(path) as npz:
        return _header(npz, path)


def load_network(path_or_name: str | os.PathLike) -> Network:
    """Load a network from a native ``.npz`` file, or a pretrained one by name.

    Parameters
    ----------
    path_or_name : str or path
        A file path, or the name of a bundled network such as ``"JapaneseVowelsNet"``
        (see :func:`pretrained_names`).
    """
    with _open_npz(path_or_name) as npz:
        header = _header(npz, path_or_name)
        layers = []
        for spec in header["layers"]:
            name = spec["config"]["name"]
            missing = [k for k in spec["arrays"] if f"{name}/{k}" not in npz.files]
            if missing:
                raise ValueError(f"{path_or_name}: layer {name!r} lacks array(s) {missing}")
            arrays = {k: npz[f"{name}/{k}"] for k in spec["arrays"]}
            layers.append(layer_from_arrays(spec["type"], spec["config"], arrays))
    return Network(layers, header["class_names"] or None)


def pretrained_names() -> list[str]:
    """Names of the networks bundled with the package."""
    folder = resources.files(PRETRAINED_PACKAGE)
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".npz"))


def _open_npz(path_or_name: str | os.PathLike) -> Any:
    path = os.fspath(path_or_name)
    if not os.path.exists(path) and os.sep not in path and "." not in path:
        bundled = resources.files(PRETRAINED_PACKAGE) / f"{path}.npz"
        if not bundled.is_file():
            raise FileNotFoundError(
                f"no weight file {path!r} and no bundled network of that name; "
                f"bundled: {pretrained_names()}"
            )
        return np.load(io.BytesIO(bundled.read_bytes()), allow_pickle=False)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such weight file: {path}")
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ValueError(f"{path}: not an lstm_ref weight file (.npz): {e}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single .npy array, not an lstm_ref weight file (.npz)")
    return npz


def _header(npz: Any, path: str | os.PathLike) -> dict[str, Any]:
    if "header" not in npz.files:
        raise ValueError(f"{path}: no 'header' entry; not an lstm_ref weight file")
    header = json.loads(npz["header"].tobytes().decode())
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: format is {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {header.get('format_version')}; this lstm_ref reads "
            f"version {FORMAT_VERSION}"
        )
    return header
