"""Import and export other frameworks' LSTM models: one module per framework.

:func:`load_model` picks the importer by the file's type; :func:`save_model` the exporter.
Each framework's module states its layout once (every transpose and gate reorder), imports
the framework lazily, and only builds lstm_ref layers.

==============================  ===============================  ==========================
file                            importer                         exporter
==============================  ===============================  ==========================
``.pt``, ``.pth``               :mod:`.torch` (a state_dict)     :func:`.torch.save_torch`
``.onnx``                       :mod:`.onnx`                     :func:`.onnx.save_onnx`
``.keras``, ``.h5``, ``.hdf5``  :mod:`.keras` (h5py + JSON)      :func:`.keras.save_keras`
``.mat`` (v5, v7.3)             :mod:`.matlab` (learnables)      :func:`.matlab.save_matlab` (v5)
``.npz``                        lstm_ref's native format         native
==============================  ===============================  ==========================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError
from ..network import Network


def _load_torch(path: Path) -> Network:
    from .torch import from_torch

    return from_torch(path)


def _load_onnx(path: Path) -> Network:
    from .onnx import from_onnx

    return from_onnx(path)


def _save_onnx(net: Network, path: Path) -> None:
    from .onnx import save_onnx

    save_onnx(net, path)


def _load_keras(path: Path) -> Network:
    from .keras import from_keras

    return from_keras(path)


def _save_keras(net: Network, path: Path) -> None:
    from .keras import save_keras

    save_keras(net, path)


def _load_matlab(path: Path) -> Network:
    from .matlab import from_matlab

    return from_matlab(path)


def _save_matlab(net: Network, path: Path) -> None:
    from .matlab import save_matlab

    save_matlab(net, path)


def _load_native(path: Path) -> Network:
    from ..formats import load_network

    return load_network(path)


def _save_torch(net: Network, path: Path) -> None:
    from .torch import save_torch

    save_torch(net, path)


def _save_native(net: Network, path: Path) -> None:
    from ..formats import save_network

    save_network(net, path)


IMPORTERS: dict[str, Callable[[Path], Network]] = {
    ".pt": _load_torch,
    ".pth": _load_torch,
    ".onnx": _load_onnx,
    ".keras": _load_keras,
    ".h5": _load_keras,
    ".hdf5": _load_keras,
    ".mat": _load_matlab,
    ".npz": _load_native,
}
EXPORTERS: dict[str, Callable[[Network, Path], None]] = {
    ".pt": _save_torch,
    ".pth": _save_torch,
    ".onnx": _save_onnx,
    ".keras": _save_keras,
    ".h5": _save_keras,
    ".mat": _save_matlab,
    ".npz": _save_native,
}


def _suffix(path: Path, table: dict[str, object], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in table:
        raise InputError(
            f"{path}: cannot {what} a {suffix or 'suffix-less'} file; expected one of "
            f"{sorted(table)}"
        )
    return suffix


def load_model(path_or_name: str | os.PathLike) -> Network:
    """The network in the model file ``path_or_name``, read by its framework's importer
    (float64), chosen by the file's suffix (see the module docstring); a name that is no
    file but a bundled network's (``"JapaneseVowelsNet"``) loads that one.
    """
    path = Path(path_or_name)
    if not path.is_file() and not path.suffix:
        return _load_native(path)  # a bundled network's name, or the native loader's error
    suffix = _suffix(path, IMPORTERS, "import")  # type: ignore[arg-type]
    if not path.is_file():
        raise FileNotFoundError(f"no model file {str(path)!r}")
    with _framework_needed(path, "reading"):
        return IMPORTERS[suffix](path)


def save_model(net: Network, path: str | os.PathLike) -> None:
    """Write ``net`` to ``path`` in the format its suffix names (see the module docstring)."""
    path = Path(path)
    suffix = _suffix(path, EXPORTERS, "export")  # type: ignore[arg-type]
    with _framework_needed(path, "writing"):
        EXPORTERS[suffix](net, path)


@contextmanager
def _framework_needed(path: Path, doing: str) -> Iterator[None]:
    """A framework package that is not installed, as one clear error."""
    try:
        yield
    except ModuleNotFoundError as e:
        hint = ""
        if e.name == "tensorflow":
            hint = " (Keras's default backend; set KERAS_BACKEND=torch or jax for another)"
        raise InputError(
            f"{path}: {doing} {path.suffix} files needs the Python package {e.name!r}, which is "
            f"not installed{hint}"
        ) from None


__all__ = ["EXPORTERS", "IMPORTERS", "load_model", "save_model"]
