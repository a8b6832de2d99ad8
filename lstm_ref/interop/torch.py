"""PyTorch: ``nn.LSTM`` / ``nn.LSTMCell`` (+ an ``nn.Linear`` head) in and out.

The layout, once (PyTorch 2.x, ``torch/nn/modules/rnn.py``; ``k`` the layer, ``_reverse``
the second direction; H hidden units, P ``proj_size``, H_out = P or H, D = 2 or 1):

======================  ==================  =================================  ===========
PyTorch tensor          shape               lstm_ref                           transform
======================  ==================  =================================  ===========
``weight_ih_l{k}``      (4H, C)             ``LSTM.params.W``                  none
``weight_hh_l{k}``      (4H, H_out)         ``LSTM.params.R``                  none
``bias_ih_l{k}``        (4H,)               ``LSTM.params.b`` = b_ih + b_hh    summed
``bias_hh_l{k}``        (4H,)               (summed into b)
``weight_hr_l{k}``      (P, H)              ``LSTM.projection``                none
``<head>.weight``       (K, D·H_out)        ``FullyConnected.weights``         none
``<head>.bias``         (K,)                ``FullyConnected.bias``            none
======================  ==================  =================================  ===========

Gate blocks are i, f, g, o — lstm_ref's order, so nothing is reordered. ``bias=False``
means b = 0. Layer k > 0 takes C = D·H_out. ``nn.LSTMCell`` has the same tensors without the
``_l0`` suffix. A bidirectional layer becomes a :class:`~lstm_ref.layers.BiLSTM` whose
output is [forward ‖ reverse], as ``output`` is.

Semantics: a PyTorch module has no stored initial state (h_0 = c_0 = 0 unless passed);
``dropout`` acts between layers in training only, so an inference reference ignores it (a
state_dict does not even record it). ``batch_first`` concerns only the caller's tensor
layout: lstm_ref always takes (B, T, C) batches and lists of (T, C) sequences. PyTorch's
packed sequences are lstm_ref's default ``Padding.masked()``: every sequence runs for its
own length and a reverse direction starts at each sequence's own last step;
``Padding.pytorch()`` returns per-step outputs padded back with zeros, as
``pad_packed_sequence``.

The classifier head lstm_ref reads and writes (the last layer's ``h_n``, both directions
concatenated forward first, through one ``nn.Linear``, then softmax)::

    class Classifier(nn.Module):
        def __init__(self, C, H, K, num_layers=1, bidirectional=False, proj_size=0):
            super().__init__()
            self.lstm = nn.LSTM(C, H, num_layers, batch_first=True,
                                bidirectional=bidirectional, proj_size=proj_size)
            D = 2 if bidirectional else 1
            self.fc = nn.Linear(D * (proj_size or H), K)

        def forward(self, x):                       # x (B, T, C) or a PackedSequence
            _, (h_n, _) = self.lstm(x)              # h_n (num_layers·D, B, H_out)
            last = torch.cat(list(h_n[-(2 if self.lstm.bidirectional else 1):]), dim=1)
            return self.fc(last).softmax(dim=1)

Without a head the network ends in the last LSTM layer, with per-step outputs. A state_dict
does not say what the head reads: a model whose head reads ``output[:, -1]`` of a
bidirectional LSTM (the reverse half after one step) needs its last layer rebuilt as
``BiLSTM(fwd, bwd, last="step")`` with both directions' ``output_mode="last"``.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..formats.safe_numpy import zip_members
from ..formats.writes import write_atomically
from ..layers import (
    LSTM,
    BiLSTM,
    ClassificationOutput,
    FullyConnected,
    Layer,
    SequenceInput,
    Softmax,
    directions,
)
from ..lstm import LSTMParams
from ..network import Network

Array = np.ndarray
_LSTM_KEY = re.compile(
    r"^(?P<prefix>.*?)(?P<what>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"(?:_l(?P<layer>\d+))?(?P<reverse>_reverse)?$"
)


def from_torch(
    source: Any, *, dtype: np.dtype | type = np.float64, class_names: list[str] | None = None
) -> Network:
    """A Network from an ``nn.LSTM`` or ``nn.LSTMCell`` module, a module holding one (and an
    optional ``nn.Linear`` head), a ``state_dict``, or a ``.pt``/``.pth`` file of one.

    Parameters
    ----------
    source : torch.nn.Module, mapping of str to tensor, or path
        A file is read with ``torch.load(weights_only=True)``: it must hold a state_dict.
    dtype : float64 (default) or float32
        The dtype lstm_ref computes in (float32 weights widen to float64 exactly).
    class_names : list of str, optional
        Names of the head's outputs.

    Returns
    -------
    Network
        SequenceInput → LSTM/BiLSTM layers (the last with ``output_mode="last"`` when a
        head follows) → FullyConnected → Softmax; or the LSTM layers alone.
    """
    where = "state_dict"
    if isinstance(source, str | os.PathLike):
        where = os.fspath(source)
        state = load_state_dict(source)
    elif hasattr(source, "state_dict") and callable(source.state_dict):
        where = type(source).__name__
        state = source.state_dict()
    elif isinstance(source, Mapping):
        state = source
    else:
        raise InputError(
            f"expected an nn.LSTM/nn.LSTMCell module, a state_dict or a .pt file; got "
            f"{type(source).__name__}"
        )
    arrays = {str(k): _as_numpy(where, str(k), v, dtype) for k, v in state.items()}
    return network_from_arrays(arrays, where, class_names)


def network_from_arrays(
    arrays: dict[str, Array], where: str, class_names: list[str] | None = None
) -> Network:
    """The network a state_dict's arrays describe (see the module docstring)."""
    lstm_keys = {k: m for k in arrays if (m := _LSTM_KEY.match(k))}
    if not lstm_keys:
        raise InputError(f"{where}: no nn.LSTM tensors (weight_ih_l0, …) found")
    prefixes = {m["prefix"] for m in lstm_keys.values()}
    if len(prefixes) > 1:
        raise InputError(f"{where}: more than one LSTM module ({sorted(prefixes)}); expected one")
    prefix = prefixes.pop()
    cell = all(m["layer"] is None for m in lstm_keys.values())
    by_layer: dict[int, dict[str, dict[str, Array]]] = {}
    for key, m in lstm_keys.items():
        if m["layer"] is None and not cell:
            raise InputError(f"{where}: tensor {key!r} mixes nn.LSTMCell and nn.LSTM names")
        direction = "reverse" if m["reverse"] else "forward"
        by_layer.setdefault(int(m["layer"] or 0), {}).setdefault(direction, {})[m["what"]] = arrays[
            key
        ]
    rest = {k: v for k, v in arrays.items() if k not in lstm_keys}
    head = _head(rest, where)
    count = len(by_layer)
    if sorted(by_layer) != list(range(count)):
        raise InputError(f"{where}: LSTM layers {sorted(by_layer)}; expected 0 … {count - 1}")
    layers: list[LSTM | BiLSTM] = []
    for k in range(count):
        mode = "last" if head is not None and k == count - 1 else "sequence"
        layers.append(_layer(by_layer[k], f"{prefix}l{k}", mode, where))
    C = directions(layers[0])[0].input_size
    network: list[Layer] = [SequenceInput(C), *layers]
    if head is not None:
        network += [FullyConnected(head[0], head[1], name=head[2] or "fc"), Softmax()]
    return Network(network, class_names)


def _layer(
    directions: dict[str, dict[str, Array]], name: str, mode: str, where: str
) -> LSTM | BiLSTM:
    if "forward" not in directions:
        raise InputError(f"{where}: layer {name!r} has only reverse-direction tensors")
    fwd = _direction(directions["forward"], name, mode, "forward", where)
    if "reverse" not in directions:
        return fwd
    bwd = _direction(directions["reverse"], f"{name}_reverse", mode, "reverse", where)
    return BiLSTM(fwd, bwd, name=name)


def _direction(t: dict[str, Array], name: str, mode: str, direction: str, where: str) -> LSTM:
    for needed in ("weight_ih", "weight_hh"):
        if needed not in t:
            raise InputError(f"{where}: layer {name!r} lacks {needed}")
    if ("bias_ih" in t) != ("bias_hh" in t):
        raise InputError(f"{where}: layer {name!r} has only one of bias_ih and bias_hh")
    W, R = t["weight_ih"], t["weight_hh"]
    if R.ndim == 2 and R.shape[0] in (R.shape[1], 3 * R.shape[1]):
        kind = "an nn.GRU" if R.shape[0] == 3 * R.shape[1] else "an nn.RNN"
        raise InputError(
            f"{where}: layer {name!r}: weight_hh {R.shape} has {R.shape[0] // R.shape[1]} gate "
            f"block(s) — {kind}, not an nn.LSTM (4 blocks i, f, g, o)"
        )
    if W.ndim != 2 or W.shape[0] % 4 or R.ndim != 2 or R.shape[0] != W.shape[0]:
        raise InputError(
            f"{where}: layer {name!r}: weight_ih {W.shape} and weight_hh {R.shape} must be "
            "(4H, C) and (4H, H_out)"
        )
    H = W.shape[0] // 4
    zero = np.zeros(4 * H, W.dtype)
    b_ih, b_hh = t.get("bias_ih", zero), t.get("bias_hh", zero)
    for what, bias in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if bias.shape != (4 * H,):
            raise InputError(
                f"{where}: layer {name!r}: {what} is {bias.shape}; expected ({4 * H},)"
            )
    projection = t.get("weight_hr")
    if projection is not None and projection.shape != (R.shape[1], H):
        raise InputError(
            f"{where}: layer {name!r}: weight_hr is {projection.shape}; expected "
            f"({R.shape[1]}, {H}) = (P, H)"
        )
    return LSTM(
        LSTMParams(W, R, b_ih + b_hh),
        name=name,
        output_mode=mode,  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
        projection=projection,
    )


def _head(rest: dict[str, Array], where: str) -> tuple[Array, Array, str] | None:
    """An nn.Linear's weight (K, ·) and bias (K,) among the other tensors, or None."""
    if not rest:
        return None
    names = {k.rsplit(".", 1)[0] if "." in k else "" for k in rest}
    if len(names) != 1 or {k.rsplit(".", 1)[-1] for k in rest} != {"weight", "bias"}:
        raise InputError(
            f"{where}: tensors {sorted(rest)} beside the LSTM; expected none or one nn.Linear "
            "head (<name>.weight, <name>.bias)"
        )
    prefix = names.pop()
    dot = f"{prefix}." if prefix else ""
    weight, bias = rest[f"{dot}weight"], rest[f"{dot}bias"]
    if weight.ndim != 2 or bias.shape != weight.shape[:1]:
        raise InputError(
            f"{where}: head {prefix!r}: weight {weight.shape} and bias {bias.shape} must be "
            "(K, H) and (K,)"
        )
    return weight, bias, prefix


def load_state_dict(path: str | os.PathLike) -> Mapping[str, Any]:
    """The state_dict in a ``.pt``/``.pth`` file, read with ``weights_only=True``; an
    InputError naming the file for anything else."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no PyTorch file {str(path)!r}")
    try:
        if zipfile.is_zipfile(path):  # torch's format: the sizes it declares, before reading
            with zipfile.ZipFile(path) as archive:
                zip_members(archive, str(path))
        with warnings.catch_warnings():  # a damaged file's pickle protocol, say: the error tells
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, KeyError, … here
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{path}: not a PyTorch weights file torch.load(weights_only=True) can read "
            f"(save model.state_dict(), not the module): {first}"
        ) from None
    if not isinstance(state, Mapping):
        raise InputError(f"{path}: holds a {type(state).__name__}; expected a state_dict")
    return state


def _as_numpy(where: str, key: str, value: Any, dtype: np.dtype | type) -> Array:
    import torch

    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise InputError(f"{where}: {key!r} is not a floating-point tensor")
    return value.detach().cpu().to(torch.float64).numpy().astype(dtype)


# ------------------------------------------------------------------------------ export
def torch_lstm_options(net: Network) -> dict[str, Any]:
    """The ``nn.LSTM(**options)`` whose state_dict :func:`to_state_dict` fills."""
    lstms = _lstm_layers(net)
    first = directions(lstms[0])[0]
    width, H = first.state_widths
    return {
        "input_size": first.input_size,
        "hidden_size": H,
        "num_layers": len(lstms),
        "bidirectional": isinstance(lstms[0], BiLSTM),
        "proj_size": width if first.projection is not None else 0,
        "batch_first": True,
    }


def to_state_dict(net: Network, prefix: str = "lstm.", head: str = "fc.") -> dict[str, Any]:
    """The network as a PyTorch state_dict (the ``Classifier`` of the module docstring).

    Parameters
    ----------
    net : Network
        One run of LSTM or BiLSTM layers of one size (sigmoid/tanh, projection at most,
        zero initial state), an optional FullyConnected head.
    prefix, head : str
        The names of the nn.LSTM and the nn.Linear modules.

    Returns
    -------
    dict of str to torch.Tensor
        ``{prefix}weight_ih_l{k}[_reverse]`` (4H, C), ``weight_hh`` (4H, H_out), ``bias_ih``
        = b and ``bias_hh`` = 0 (4H,), ``weight_hr`` (P, H); ``{head}weight`` (K, D·H_out),
        ``{head}bias`` (K,); of the network's dtype. Loads into
        ``nn.LSTM(**torch_lstm_options(net))``.
    """
    import torch

    out: dict[str, Any] = {}
    for k, layer in enumerate(_lstm_layers(net)):
        for lstm, suffix in zip(directions(layer), ("", "_reverse"), strict=False):
            tensors = {
                "weight_ih": lstm.params.W,
                "weight_hh": lstm.params.R,
                "bias_ih": lstm.params.b,
                "bias_hh": np.zeros_like(lstm.params.b),
                "weight_hr": lstm.projection,
            }
            for what, a in tensors.items():
                if a is not None:
                    out[f"{prefix}{what}_l{k}{suffix}"] = torch.from_numpy(np.array(a))
    fcs = [layer for layer in net.layers if isinstance(layer, FullyConnected)]
    if fcs:
        out[f"{head}weight"] = torch.from_numpy(np.array(fcs[0].weights))
        out[f"{head}bias"] = torch.from_numpy(np.array(fcs[0].bias))
    return out


def save_torch(net: Network, path: str | os.PathLike) -> None:
    """Write :func:`to_state_dict` to ``path`` with ``torch.save`` (atomically)."""
    import torch

    state = to_state_dict(net)
    write_atomically(path, lambda f: torch.save(state, f))


EXPORTED = (SequenceInput, LSTM, BiLSTM, FullyConnected, Softmax, ClassificationOutput)


def _lstm_layers(net: Network) -> list[LSTM | BiLSTM]:
    """The network's LSTM layers, checked to be what one nn.LSTM computes."""
    for layer in net.layers:
        if isinstance(layer, SequenceInput) and layer.normalization != "none":
            raise InputError(
                f"layer {layer.name!r} normalises its input ({layer.normalization}), which an "
                "nn.LSTM cannot hold"
            )
        if not isinstance(layer, EXPORTED):
            raise InputError(f"layer {layer.name!r} ({layer.TYPE}) has no nn.LSTM export")
    if sum(isinstance(layer, FullyConnected) for layer in net.layers) > 1:
        raise InputError("the exported head is one nn.Linear; the network has several")
    lstms = [layer for layer in net.layers if isinstance(layer, LSTM | BiLSTM)]
    if not lstms:
        raise InputError("the network has no LSTM layer to export")
    shapes = set()
    for layer in lstms:
        if isinstance(layer, BiLSTM) and layer.merge_mode != "concat":
            raise InputError(f"layer {layer.name!r}: nn.LSTM concatenates the two directions")
        if isinstance(layer, BiLSTM) and layer.last == "step":
            raise InputError(
                f"layer {layer.name!r} reads the output at the last step; the documented head "
                "reads h_n (the final states)"
            )
        if isinstance(layer, LSTM) and layer.direction == "reverse":
            raise InputError(f"layer {layer.name!r}: an nn.LSTM has no lone reverse direction")
        one_ways = directions(layer)
        for one in one_ways:
            _check_plain(one)
        shapes.add((len(one_ways), one_ways[0].state_widths, one_ways[0].projection is None))
    if len(shapes) > 1:
        raise InputError("an nn.LSTM's layers share one size and one number of directions")
    return lstms


def _check_plain(lstm: LSTM) -> None:
    """Raise unless ``lstm`` is what nn.LSTM computes (a projection at most)."""
    extras = lstm.variant is not None and lstm.variant.used != ["projection"]
    if extras or (lstm.gate_activation, lstm.state_activation) != ("sigmoid", "tanh"):
        raise InputError(
            f"layer {lstm.name!r}: nn.LSTM has sigmoid gates and tanh only, and no peepholes, "
            "clip or coupled gates"
        )
    if np.any(lstm._start.h) or np.any(lstm._start.c):
        raise InputError(
            f"layer {lstm.name!r} has a non-zero initial state, which a state_dict cannot "
            "hold (pass it to the module as (h_0, c_0))"
        )
