"""lstm_ref's native weight format: one ``.npz`` file holding a JSON header and the arrays.

Layout of the file (a plain NumPy ``.npz`` archive; nothing is pickled):

``header``
    uint8 array: UTF-8 JSON ``{"format": "lstm_ref", "format_version": 1,
    "class_names": [...], "layers": [{"type": ..., "config": {...}, "arrays": [...]}, ...],
    "metadata": {...}}``, and ``"padding": {...}``, the fields of the network's
    :class:`~lstm_ref.padding.Padding`, when it is not ``Padding.masked()``.
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

import dataclasses
import json
import os
from collections.abc import Collection
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_instance
from ..errors import InputError
from ..layers import layer_from_arrays
from ..network import Network
from ..padding import MASKED, Padding
from .safe_numpy import read_npz
from .writes import write_atomically

Array = np.ndarray

FORMAT = "lstm_ref"
FORMAT_VERSION = 1
PRETRAINED_PACKAGE = "lstm_ref.weights"  # the top-level weights/ folder, when installed


def save_network(
    net: Network, path: str | os.PathLike, metadata: dict[str, Any] | None = None
) -> None:
    """Write ``net`` to ``path`` (an ``.npz`` file) in the native format.

    ``metadata`` (JSON-ready) is stored in the header, e.g. the training recipe. The file
    is written atomically: an existing file is replaced only once the new one is complete.
    It holds the weights, not a run: each layer's initial state is stored, a state assigned
    to ``net.state`` is not (a loaded network starts from the initial states).
    """
    check_instance(net, Network, "the network to save")
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
    if net.padding != MASKED:
        header["padding"] = dataclasses.asdict(net.padding)
    blob = np.frombuffer(json.dumps(header, indent=1).encode(), dtype=np.uint8)
    write_atomically(path, lambda f: np.savez_compressed(f, header=blob, **arrays))


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a native weight file, checked."""
    where, arrays = _read_file(path, only={"header"})
    return _header(arrays, where)


def load_network(path_or_name: str | os.PathLike) -> Network:
    """Load a network from a native ``.npz`` file, or a pretrained one by name, its state
    the layers' initial states (a file stores no assigned state).

    Parameters
    ----------
    path_or_name : str or path
        A file path, or the name of a bundled network such as ``"JapaneseVowelsNet"``
        (see :func:`pretrained_names` and the module docstring for the rule).

    Raises
    ------
    FileNotFoundError
        No such file and no bundled network of that name.
    InputError
        The file is damaged, not a native weight file, or describes an invalid network;
        the message names the file (and the layer). No partly loaded network is returned.
    """
    where, arrays = _read_file(path_or_name)
    header = _header(arrays, where)
    layers, used = [], {"header"}
    for spec in header["layers"]:
        name = spec["config"]["name"]
        keys = {k: f"{name}/{k}" for k in spec["arrays"]}
        missing = [k for k, key in keys.items() if key not in arrays]
        if missing:
            raise InputError(f"{where}: layer {name!r} lacks array(s) {missing}")
        used.update(keys.values())
        own = {k: arrays[key] for k, key in keys.items()}
        try:
            layers.append(layer_from_arrays(spec["type"], spec["config"], own))
        except (InputError, TypeError) as e:  # TypeError: a config with unknown fields
            raise InputError(f"{where}: layer {name!r}: {e}") from None
        except KeyError as e:  # an array or config field the layer needs is not listed
            raise InputError(
                f"{where}: layer {name!r} ({spec['type']}) needs {e.args[0]!r}, which its "
                "header entry does not list"
            ) from None
    extra = sorted(set(arrays) - used)
    if extra:
        raise InputError(f"{where}: arrays {extra} belong to no layer of the header")
    try:
        return Network(layers, header["class_names"] or None, Padding(**header.get("padding", {})))
    except (InputError, TypeError) as e:  # TypeError: a padding with unknown fields
        raise InputError(f"{where}: {e}") from None


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


def _read_file(
    path_or_name: str | os.PathLike, only: Collection[str] | None = None
) -> tuple[str, dict[str, Array]]:
    """(what to call the file in messages, its arrays — or those named in ``only``) for a
    path or a bundled name."""
    path = os.fspath(path_or_name)
    if os.path.isfile(path):
        return path, read_npz(path, only)
    if path in pretrained_names():
        with resources.as_file(bundled_weights() / f"{path}.npz") as bundled:
            return f"bundled network {path!r}", read_npz(bundled, only)
    raise FileNotFoundError(
        f"no weight file {path!r} and no bundled network of that name; "
        f"bundled: {pretrained_names()}"
    )


def _header(arrays: dict[str, Array], where: str) -> dict[str, Any]:
    """The header of a weight file, checked against the format (see the module docstring)."""
    blob = arrays.get("header")
    if blob is None or blob.dtype != np.uint8 or blob.ndim != 1:
        raise InputError(f"{where}: no 'header' entry of UTF-8 bytes; not an lstm_ref weight file")
    try:
        header = json.loads(blob.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise InputError(f"{where}: the header is not JSON ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict):
        raise InputError(f"{where}: the header must be a JSON object; got {type(header).__name__}")
    if header.get("format") != FORMAT:
        raise InputError(f"{where}: format is {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{where}: format version {header.get('format_version')!r}; this lstm_ref reads "
            f"version {FORMAT_VERSION}"
        )
    _expect(header, "class_names", list, where)
    _expect(header, "metadata", dict, where)
    for k, spec in enumerate(_expect(header, "layers", list, where)):
        what = f"{where}: layer {k}"
        if not isinstance(spec, dict):
            raise InputError(f"{what} must be a JSON object; got {type(spec).__name__}")
        _expect(spec, "type", str, what)
        config = _expect(spec, "config", dict, what)
        _expect(config, "name", str, what + " config")
        names = _expect(spec, "arrays", list, what)
        if not all(isinstance(n, str) for n in names):
            raise InputError(f"{what}: 'arrays' must list array names; got {names!r}")
    return header


def _expect(d: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """``d[key]`` if present and of type ``kind``, else an InputError."""
    if key not in d:
        raise InputError(f"{where}: the header lacks {key!r}")
    if not isinstance(d[key], kind):
        raise InputError(f"{where}: {key!r} must be a {kind.__name__}; got {type(d[key]).__name__}")
    return d[key]
