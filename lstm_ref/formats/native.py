"""lstm_ref's native weight format: one ``.npz`` file holding a JSON header and the arrays.

Layout of the file (a plain NumPy ``.npz`` archive; nothing is pickled):

``header``
    uint8 array: UTF-8 JSON ``{"format": "lstm_ref", "format_version": 1,
    "class_names": [...], "layers": [{"type": ..., "config": {...}, "arrays": [...]}, ...],
    "metadata": {...}}``.
``<layer name>/<array name>``
    Each layer's arrays, e.g. ``lstm/W`` (4H, C), ``lstm/R`` (4H, H), ``lstm/b`` (4H,),
    ``lstm/h0``, ``lstm/c0`` (H,), ``fc/weights`` (K, H), ``fc/bias`` (K,).

Saving then loading gives back bit-identical arrays. (A network's current ``state`` is not
saved: a loaded network starts from its layers' initial states.)

Names and paths: :func:`load_network` reads the argument as a file when a *file* of that
name exists; otherwise, if it is the name of a bundled network (``pretrained_names()``),
it loads that one. A folder of the same name never hides a bundled network. Bundled
networks live in the top-level ``weights/`` folder, installed as ``lstm_ref.weights`` and
found there directly in a source checkout.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import layer_from_arrays
from ..network import Network
from .atomic import write_atomically

FORMAT = "lstm_ref"
FORMAT_VERSION = 1
PRETRAINED_PACKAGE = "lstm_ref.weights"  # the top-level weights/ folder, when installed


def save_network(
    net: Network, path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> None:
    """Write ``net`` to ``path`` (an ``.npz`` file) in the native format.

    ``metadata`` (JSON-ready) is stored in the header, e.g. the training recipe. The file
    is written atomically: an existing file is replaced only once the new one is complete.
    """
    layers: list[dict[str, Any]] = []
    arrays: dict[str, Any] = {}
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
    write_atomically(path, lambda f: np.savez_compressed(f, header=blob, **arrays))


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
                raise InputError(f"{path_or_name}: layer {name!r} lacks array(s) {missing}")
            arrays = {k: npz[f"{name}/{k}"] for k in spec["arrays"]}
            layers.append(layer_from_arrays(spec["type"], spec["config"], arrays))
    return Network(layers, header["class_names"] or None)


def bundled_weights() -> Traversable:
    """The folder of bundled networks: the installed ``lstm_ref.weights`` package, or the
    ``weights/`` folder of the source checkout this package is imported from."""
    try:
        return resources.files(PRETRAINED_PACKAGE)
    except ModuleNotFoundError:  # a source checkout on sys.path: <checkout>/weights
        return Path(__file__).resolve().parents[2] / "weights"


def pretrained_names() -> list[str]:
    """Names of the networks bundled with the package."""
    folder = bundled_weights()
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".npz"))


def _open_npz(path_or_name: str | os.PathLike) -> Any:
    path = os.fspath(path_or_name)
    if not os.path.isfile(path):
        if path in pretrained_names():
            bundled = bundled_weights() / f"{path}.npz"
            return np.load(io.BytesIO(bundled.read_bytes()), allow_pickle=False)
        raise FileNotFoundError(
            f"no weight file {path!r} and no bundled network of that name; "
            f"bundled: {pretrained_names()}"
        )
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise InputError(f"{path}: not an lstm_ref weight file (.npz): {e}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: a single .npy array, not an lstm_ref weight file (.npz)")
    return npz


def _header(npz: Any, path: str | os.PathLike) -> dict[str, Any]:
    if "header" not in npz.files:
        raise InputError(f"{path}: no 'header' entry; not an lstm_ref weight file")
    header = json.loads(npz["header"].tobytes().decode())
    if header.get("format") != FORMAT:
        raise InputError(f"{path}: format is {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: format version {header.get('format_version')}; this lstm_ref reads "
            f"version {FORMAT_VERSION}"
        )
    return header
