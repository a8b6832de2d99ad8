"""PyTorch checkpoints: the tensors a source holds, and the LSTM modules among them.

A source is one of

- a ``state_dict`` (a mapping of names to ``torch.Tensor`` or NumPy arrays, taken as they
  are) or an ``nn.Module`` (its ``state_dict()``);
- a checkpoint dict such as ``{"model": state_dict, "optimizer": …, "epoch": …}``: each
  entry that is itself a state_dict is read (an optimizer's state is not one), and when
  there are several (``"model"`` and ``"ema"``), or tensors beside one, the entries' names
  lead their tensors' names (``model.decoder.rnn.weight_ih``);
- a ``.pt``/``.pth`` file of either, read with ``torch.load(weights_only=True)``;
- a ``.safetensors`` file, read with the ``safetensors`` package (as NumPy arrays: torch is
  not needed);
- a TorchScript archive (``torch.jit.save``), read without running any of its code (below).

**A TorchScript archive** is a zip holding the module's code (``code/``), its constants
(``constants.pkl``) and its objects (``data.pkl``, whose tensors are stored in ``data/``).
lstm_ref reads ``data.pkl`` alone, with torch's restricted unpickler
(``torch.load(weights_only=True)``) on a copy of the zip without ``code/`` and
``constants.pkl``. That unpickler builds nothing but tensors, containers and the classes it
is told to allow: each ``__torch__.…`` class the archive names is allowed as one inert
stand-in holding its attributes (no method of the archive runs), and so are torch's own
list-tag functions ``torch.jit._pickle.build_*`` and ``restore_type_tag`` (each returns its
argument). Nothing of ``code/`` is compiled or executed, and ``torch.jit.load`` is never
called. The module tree is walked through those stand-ins: a tensor attribute ``weight_ih``
of submodule ``decoder.rnn`` becomes ``decoder.rnn.weight_ih``, as in its state_dict.

An ``nn.LSTM`` is found by its tensors ``<prefix>weight_ih_l{k}[_reverse]`` (and
``weight_hh``, ``bias_ih``, ``bias_hh``, ``weight_hr``), an ``nn.LSTMCell`` by
``<prefix>weight_ih`` without a layer suffix; :func:`list_torch_lstms` lists them with their
shapes.
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..formats.safe_numpy import zip_members

Tensors = dict[str, Any]  # name -> torch.Tensor or np.ndarray, as read
LSTM_KEY = re.compile(
    r"^(?P<prefix>(?:.*\.)?)(?P<what>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"(?:_l(?P<layer>\d+))?(?P<reverse>_reverse)?$"
)


@dataclass(frozen=True)
class TorchLSTM:
    """One ``nn.LSTM`` or ``nn.LSTMCell`` among a checkpoint's tensors.

    ``prefix`` is its module name with a trailing dot (``"decoder.rnn."``; ``""`` for a bare
    module); ``keys`` its tensors' full names; the sizes are read from ``weight_ih_l0``
    (4H, C) and ``weight_hr_l0`` (P, H).
    """

    prefix: str
    kind: str  # "LSTM" or "LSTMCell"
    num_layers: int
    bidirectional: bool
    input_size: int
    hidden_size: int
    proj_size: int
    keys: tuple[str, ...]

    def __str__(self) -> str:
        sizes = [self.kind]
        if self.kind == "LSTM":
            sizes.append(f"{self.num_layers} layer{'s' * (self.num_layers > 1)}")
        if self.bidirectional:
            sizes.append("bidirectional")
        sizes += [f"C={self.input_size}", f"H={self.hidden_size}"]
        if self.proj_size:
            sizes.append(f"P={self.proj_size}")
        return f"{self.prefix!r} ({', '.join(sizes)})"


def read_tensors(source: Any) -> tuple[Tensors, str]:
    """The named tensors of ``source`` (see the module docstring) and a name for messages."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no PyTorch file {str(path)!r}")
        if path.suffix.lower() == ".safetensors":
            return _safetensors(path), str(path)
        if _is_torchscript(path):
            return _torchscript(path), str(path)
        return state_dict_of(_torch_load(path), str(path)), str(path)
    if hasattr(source, "state_dict") and callable(source.state_dict):
        return dict(source.state_dict()), type(source).__name__
    if isinstance(source, Mapping):
        return state_dict_of(source, "state_dict"), "state_dict"
    raise InputError(
        "expected an nn.Module, a state_dict, a checkpoint dict or a .pt/.pth/.safetensors "
        f"file; got {type(source).__name__}"
    )


def _is_tensor(value: Any) -> bool:
    """A NumPy array or a torch.Tensor (or Parameter), told without importing torch."""
    if isinstance(value, np.ndarray):
        return True
    return type(value).__module__.startswith("torch") and hasattr(value, "dtype")


def state_dict_of(checkpoint: Mapping[Any, Any], where: str) -> Tensors:
    """The tensors of a state_dict, and of the state_dicts among a checkpoint's entries."""
    tensors = {str(k): v for k, v in checkpoint.items() if _is_tensor(v)}
    entries = {
        str(k): v
        for k, v in checkpoint.items()
        if isinstance(v, Mapping) and v and all(_is_tensor(t) for t in v.values())
    }
    if not tensors and not entries:
        raise InputError(
            f"{where}: no tensors and no state_dict (a mapping of names to tensors) among its "
            f"entries {sorted(map(str, checkpoint))[:8]}"
        )
    if not tensors and len(entries) == 1:
        return {str(k): v for k, v in next(iter(entries.values())).items()}
    for entry, state in entries.items():  # several: each under its entry's name
        tensors.update({f"{entry}.{k}": v for k, v in state.items()})
    return tensors


def load_state_dict(path: str | os.PathLike) -> Mapping[str, Any]:
    """What a ``.pt``/``.pth`` file holds (a state_dict or a checkpoint dict), read with
    ``torch.load(weights_only=True)``; an InputError naming the file for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no PyTorch file {str(path)!r}")
    if _is_torchscript(path):
        raise InputError(f"{path}: a TorchScript archive; read it with from_torch(path)")
    return _torch_load(path)


def _torch_load(path: Path) -> Mapping[str, Any]:
    """:func:`load_state_dict` on a file already found, and found not TorchScript."""
    import torch

    try:
        with warnings.catch_warnings():  # a damaged file's pickle protocol, say: the error tells
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, KeyError, … here
        raise InputError(
            f"{path}: not a PyTorch weights file torch.load(weights_only=True) can read "
            f"(save model.state_dict(), not the module): {_first_line(e)}"
        ) from None
    if not isinstance(state, Mapping):
        raise InputError(f"{path}: holds a {type(state).__name__}; expected a state_dict")
    return state


def _first_line(e: Exception) -> str:
    """The line of an exception's text that says what happened (torch's restricted
    unpickler says it on its "WeightsUnpickler error:" line, after advice)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("WeightsUnpickler error:")]
    return (said or lines or [type(e).__name__])[0]


def _safetensors(path: Path) -> Tensors:
    from safetensors.numpy import load_file

    try:
        return dict(load_file(path))
    except Exception as e:  # SafetensorError, or a dtype NumPy lacks (bfloat16)
        raise InputError(f"{path}: not a .safetensors file NumPy can read: {_first_line(e)}") from e


def _is_torchscript(path: Path) -> bool:
    """torch's own test: a zip with a ``constants.pkl`` record. Every ``.pt`` zip is opened
    here first, so its directory is checked here (:func:`zip_members`: the sizes it
    declares, before torch reads any member)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = [member.filename for member in zip_members(archive, str(path))]
    except zipfile.BadZipFile as e:
        raise InputError(f"{path}: a damaged zip archive: {e}") from None
    return any(name.split("/", 1)[-1] == "constants.pkl" for name in names)


class _ScriptObject:
    """An inert stand-in for each ``__torch__.…`` class of a TorchScript archive."""


_KEPT_OUT = ("constants.pkl", "code/")


def _torchscript(path: Path) -> Tensors:
    """A TorchScript archive's tensors, by module path (see the module docstring)."""
    import torch

    data = io.BytesIO()
    with zipfile.ZipFile(path) as archive, zipfile.ZipFile(data, "w") as copy:
        for info in archive.infolist():
            if not info.filename.split("/", 1)[-1].startswith(_KEPT_OUT):
                copy.writestr(info, archive.read(info))
    data.seek(0)
    named = torch.serialization.get_unsafe_globals_in_checkpoint(data)
    script = [name for name in named if name.startswith("__torch__.")]
    list_tags = {f"torch.jit._pickle.{f.__name__}": f for f in _list_tags()}
    others = sorted(set(named) - set(script) - set(list_tags))
    if others:
        raise InputError(
            f"{path}: a TorchScript archive holding objects of {others}, which lstm_ref does "
            "not build (only tensors, torch's containers and TorchScript modules)"
        )
    allowed: list[Any] = [*((_ScriptObject, name) for name in script), *list_tags.values()]
    data.seek(0)
    try:
        with torch.serialization.safe_globals(allowed):
            root = torch.load(data, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(
            f"{path}: a TorchScript archive whose data torch's restricted unpickler cannot "
            f"read: {_first_line(e)}"
        ) from None
    tensors: Tensors = {}
    _walk(root, "", tensors)
    return tensors


def _list_tags() -> tuple[Any, ...]:
    """torch's functions that tag a TorchScript list's type; each returns its argument."""
    from torch.jit import _pickle as tags

    return (
        tags.build_intlist,
        tags.build_tensorlist,
        tags.build_doublelist,
        tags.build_boollist,
        tags.restore_type_tag,
    )


def _walk(module: Any, prefix: str, tensors: Tensors) -> None:
    if not isinstance(module, _ScriptObject):
        return
    for name, value in vars(module).items():
        if _is_tensor(value):
            tensors[f"{prefix}{name}"] = value
        else:
            _walk(value, f"{prefix}{name}.", tensors)


def find_lstms(tensors: Tensors) -> dict[str, TorchLSTM]:
    """The LSTM and LSTMCell modules among ``tensors``, by prefix."""
    keys: dict[str, list[str]] = {}
    for key in tensors:
        if m := LSTM_KEY.match(key):
            keys.setdefault(m["prefix"], []).append(key)
    return {prefix: _describe(prefix, names, tensors) for prefix, names in sorted(keys.items())}


def _describe(prefix: str, names: list[str], tensors: Tensors) -> TorchLSTM:
    matches = [m for k in names if (m := LSTM_KEY.match(k))]
    cell = all(m["layer"] is None for m in matches)

    def shape(what: str) -> tuple[int, ...]:
        key = f"{prefix}{what}" if cell else f"{prefix}{what}_l0"
        return tuple(tensors[key].shape) if key in tensors else ()

    W, P = shape("weight_ih"), shape("weight_hr")
    return TorchLSTM(
        prefix=prefix,
        kind="LSTMCell" if cell else "LSTM",
        num_layers=len({m["layer"] for m in matches}),
        bidirectional=any(m["reverse"] for m in matches),
        input_size=W[1] if len(W) == 2 else 0,
        hidden_size=W[0] // 4 if W else 0,
        proj_size=P[0] if len(P) == 2 else 0,
        keys=tuple(names),
    )


def list_torch_lstms(source: Any) -> list[TorchLSTM]:
    """The ``nn.LSTM`` and ``nn.LSTMCell`` modules ``source`` holds, with their shapes.

    Parameters
    ----------
    source : nn.Module, state_dict, checkpoint dict, or path
        Anything :func:`~lstm_ref.interop.torch.from_torch` reads.

    Returns
    -------
    list of TorchLSTM
        In order of prefix; ``str()`` of each reads ``'decoder.rnn.' (LSTMCell, C=8, H=8)``.
    """
    tensors, _ = read_tensors(source)
    return list(find_lstms(tensors).values())


def pick_lstm(lstms: dict[str, TorchLSTM], where: str, prefix: str | None) -> TorchLSTM:
    """The LSTM module named ``prefix`` (with or without its trailing dot), or the only one."""
    listed = ", ".join(map(str, lstms.values()))
    if not lstms:
        raise InputError(f"{where}: no nn.LSTM or nn.LSTMCell tensors (weight_ih_l0, …) found")
    if prefix is None:
        if len(lstms) > 1:
            raise InputError(
                f"{where}: more than one LSTM module: {listed}; pass prefix= (--prefix on the "
                "command line)"
            )
        return next(iter(lstms.values()))
    wanted = f"{prefix.rstrip('.')}." if prefix.strip(".") else ""
    if wanted not in lstms:
        raise InputError(f"{where}: no LSTM module {wanted!r}; it holds {listed}")
    return lstms[wanted]


def modules(keys: list[str]) -> list[str]:
    """The module names of tensor names (``conv1.weight`` -> ``conv1``), in order, once."""
    return list(dict.fromkeys(k.rpartition(".")[0] for k in keys))
