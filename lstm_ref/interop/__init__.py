"""Import and export other frameworks' LSTM models: one module per framework.

:func:`load_model` picks the importer by the file's type; :func:`save_model` the exporter.
Each framework's module states its layout once (every transpose and gate reorder), imports
the framework lazily, and only builds lstm_ref layers.

==============================  ===============================  ==========================
file                            importer                         exporter
==============================  ===============================  ==========================
``.pt``, ``.pth``               :mod:`.torch` (a state_dict,     :func:`.torch.save_torch`
                                a checkpoint, TorchScript)
``.safetensors``                :mod:`.torch` (a state_dict)
``.onnx``                       :mod:`.onnx`                     :func:`.onnx_export.save_onnx`
``.keras``, ``.h5``, ``.hdf5``  :mod:`.keras` (h5py + JSON)      :func:`.keras_export.save_keras`
``.mat`` (v5, v7.3)             :mod:`.matlab` (learnables)      :func:`.matlab.save_matlab`
``.npz``                        lstm_ref's native format         native
==============================  ===============================  ==========================
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from .._checks import check_class_names, check_instance
from ..errors import InputError, LstmRefError
from ..network import Network

# suffix -> "module:function" of the importer and of the exporter; imported only when used
IMPORTERS = {
    ".pt": ".torch:from_torch",
    ".pth": ".torch:from_torch",
    ".safetensors": ".torch:from_torch",
    ".onnx": ".onnx:from_onnx",
    ".keras": ".keras:from_keras",
    ".h5": ".keras:from_keras",
    ".hdf5": ".keras:from_keras",
    ".mat": ".matlab:from_matlab",
    ".npz": "..formats:load_network",
}
# suffix -> the reader of class names a file stores beside the model (its importer's format
# has no place for them)
CLASS_NAMES = {
    ".onnx": ".onnx_export:read_class_names",
    ".keras": ".keras_file:read_class_names",
    ".h5": ".keras_file:read_class_names",
    ".hdf5": ".keras_file:read_class_names",
}
EXPORTERS = {
    ".pt": ".torch:save_torch",
    ".pth": ".torch:save_torch",
    ".onnx": ".onnx_export:save_onnx",
    ".keras": ".keras_export:save_keras",
    ".h5": ".keras_export:save_keras",
    ".mat": ".matlab:save_matlab",
    ".npz": "..formats:save_network",
}


def _function(spec: str) -> Callable[..., Any]:
    module, name = spec.split(":")
    return cast(Callable[..., Any], getattr(importlib.import_module(module, __package__), name))


def _suffix(path: Path, table: Mapping[str, object], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in table:
        raise InputError(
            f"{path}: cannot {what} a {suffix or 'suffix-less'} file; expected one of "
            f"{sorted(table)}"
        )
    return suffix


def load_model(
    path_or_name: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    **options: Any,
) -> Network:
    """The network in the model file ``path_or_name``, read by its framework's importer
    (float64; a PyTorch file in its tensors' own dtype), chosen by the file's suffix (see
    the module docstring); a name that is no file but a bundled network's
    (``"JapaneseVowelsNet"``) loads that one.

    Class names come from the file (native, MATLAB's ``ClassNames``, the metadata of an
    ONNX or Keras file lstm_ref wrote) or from ``class_names``, which names the outputs of a model
    whose file has none (a PyTorch state_dict, an ONNX file from another exporter); given
    for a file that names its classes, they must be the file's. ``options`` go to the
    importer: PyTorch's ``prefix=`` (the LSTM module of a bigger checkpoint), ``head=``
    (its ``nn.Linear``), ``softmax=False`` (a model returning logits) and ``last="step"``
    (a head on ``output[:, -1]``), see :func:`.torch.from_torch`.
    """
    path = Path(path_or_name)
    if not path.is_file() and not path.suffix:  # a bundled network's name, or its error
        if options:
            raise InputError(f"{path}: a bundled network takes no option {', '.join(options)}")
        net = cast(Network, _function(IMPORTERS[".npz"])(path))
    else:
        suffix = _suffix(path, IMPORTERS, "import")
        if not path.is_file():
            raise FileNotFoundError(f"no model file {str(path)!r}")
        importer = _function(IMPORTERS[suffix])
        unknown = sorted(set(options) - set(inspect.signature(importer).parameters))
        if unknown:
            raise InputError(f"{path}: {suffix} files take no option {', '.join(unknown)}")
        with framework_needed(path, "reading"), _damaged_file(path):
            net = cast(Network, importer(path, **options))
            if suffix in CLASS_NAMES and not net.class_names:
                stored = _function(CLASS_NAMES[suffix])(path)
                net = net if stored is None else _named(net, stored, path)
    return net if class_names is None else _named(net, class_names, path)


def _named(net: Network, class_names: Sequence[str], path: Path) -> Network:
    """``net`` with ``class_names``, which must be the file's own if it has some."""
    names = check_class_names(class_names)
    if net.class_names and net.class_names != names:
        raise InputError(
            f"{path}: the file names its classes {list(net.class_names)}; class names "
            f"{list(names)} were given"
        )
    return Network(net.layers, names, net.padding)


def save_model(net: Network, path: str | os.PathLike) -> None:
    """Write ``net`` to ``path`` in the format its suffix names (see the module docstring)."""
    check_instance(net, Network, "the network to save")
    path = Path(path)
    suffix = _suffix(path, EXPORTERS, "export")
    with framework_needed(path, "writing"):
        _function(EXPORTERS[suffix])(net, path)


@contextmanager
def framework_needed(path: Path, doing: str, instead: str = "") -> Iterator[None]:
    """A framework package that is not installed, as one clear error: ``doing`` ("reading",
    "writing", "running") ``path``'s kind of file needs it; ``instead`` what else to do."""
    try:
        yield
    except ModuleNotFoundError as e:
        hint = ""
        if e.name == "tensorflow":
            hint = " (Keras's default backend; set KERAS_BACKEND=torch or jax for another)"
        raise InputError(
            f"{path}: {doing} {path.suffix} files needs the Python package {e.name!r}, which is "
            f"not installed{hint}" + (f"; {instead}" if instead else "")
        ) from None


__all__ = ["EXPORTERS", "IMPORTERS", "load_model", "save_model"]


@contextmanager
def _damaged_file(path: Path) -> Iterator[None]:
    """A file its framework's own parser cannot read is reported against the file.

    torch, onnx, h5py and scipy raise a zoo of exceptions for a damaged file (RuntimeError,
    DecodeError, OSError, MatReadError, zlib.error, KeyError from a half-read graph, …);
    each becomes one InputError naming the file, with the original chained for debugging.
    """
    try:
        yield
    except (LstmRefError, FileNotFoundError, ModuleNotFoundError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise InputError(
            f"{path}: damaged or not a model this importer reads ({type(e).__name__}: {e})"
        ) from e
