"""PyTorch export: a network as an ``nn.LSTM`` state_dict (+ its ``nn.Linear`` head), in the
layout :mod:`lstm_ref.interop.torch` states (its module docstring: the tensors, the
classifier, and a head on every layer's final state, an :class:`~lstm_ref.layers.LSTMStack`)."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from ..errors import InputError, counted
from ..formats.writes import write_atomically
from ..layers import (
    LSTM,
    BiLSTM,
    ClassificationOutput,
    FullyConnected,
    LSTMStack,
    SequenceInput,
    Softmax,
    directions,
)
from ..network import Network

Array = np.ndarray


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


def to_state_dict(
    net: Network, prefix: str | None = None, head: str | None = None
) -> dict[str, Any]:
    """The network as a PyTorch state_dict (the ``Classifier`` of the module docstring).

    Parameters
    ----------
    net : Network
        One run of LSTM or BiLSTM layers of one size (sigmoid/tanh, projection at most,
        zero initial state), an optional FullyConnected head.
    prefix, head : str, optional
        The names of the nn.LSTM and the nn.Linear modules, with their trailing dot. By
        default the modules' own names for a network :func:`from_torch` imported (its
        layers named ``<module>.l<k>``, and the head after its nn.Linear), else ``"lstm."``
        and ``"fc."``.

    Returns
    -------
    dict of str to torch.Tensor
        ``{prefix}weight_ih_l{k}[_reverse]`` (4H, C), ``weight_hh`` (4H, H_out), ``bias_ih``
        and ``bias_hh`` (4H,) — the layer's ``bias_split`` as imported (or, after b
        changed, b − its ``bias_hh`` and that ``bias_hh``), else b and 0 —, ``weight_hr``
        (P, H); ``{head}weight`` (K, D·H_out), ``{head}bias`` (K,); of the network's
        dtype. Loads into ``nn.LSTM(**torch_lstm_options(net))``.
    """
    import torch

    lstms = _lstm_layers(net)
    fcs = [layer for layer in net.layers if isinstance(layer, FullyConnected)]
    own = _imported_prefix(lstms)
    prefix = prefix if prefix is not None else "lstm." if own is None else own
    if head is None:
        head = f"{fcs[0].name}." if fcs and own is not None else "fc."
    out: dict[str, Any] = {}
    for k, layer in enumerate(lstms):
        for lstm, suffix in zip(directions(layer), ("", "_reverse"), strict=False):
            b_ih, b_hh = _biases(lstm)
            tensors = {
                "weight_ih": lstm.params.W,
                "weight_hh": lstm.params.R,
                "bias_ih": b_ih,
                "bias_hh": b_hh,
                "weight_hr": lstm.projection,
            }
            for what, a in tensors.items():
                if a is not None:
                    out[f"{prefix}{what}_l{k}{suffix}"] = torch.from_numpy(np.array(a))
    if fcs:
        out[f"{head}weight"] = torch.from_numpy(np.array(fcs[0].weights))
        out[f"{head}bias"] = torch.from_numpy(np.array(fcs[0].bias))
    return out


def _imported_prefix(lstms: list[LSTM | BiLSTM]) -> str | None:
    """The nn.LSTM's name when the layers are named as :func:`from_torch` names them."""
    found = [re.fullmatch(r"(?P<prefix>(?:.*\.)?)l(?P<k>\d+)", layer.name) for layer in lstms]
    prefixes = {m["prefix"] for m in found if m}
    if len(prefixes) != 1 or any(not m or int(m["k"]) != k for k, m in enumerate(found)):
        return None
    return prefixes.pop()


def _biases(lstm: LSTM) -> tuple[Array, Array]:
    """bias_ih and bias_hh: the stored split while it still sums to b exactly."""
    b, split = lstm.params.b, lstm.bias_split
    if split is None:
        return b, np.zeros_like(b)
    if np.array_equal(split[0] + split[1], b):
        return split[0], split[1]
    return b - split[1], split[1]


def save_torch(net: Network, path: str | os.PathLike) -> None:
    """Write :func:`to_state_dict` to ``path`` with ``torch.save`` (atomically)."""
    import torch

    state = to_state_dict(net)
    write_atomically(path, lambda f: torch.save(state, f))


EXPORTED = (SequenceInput, LSTM, BiLSTM, LSTMStack, FullyConnected, Softmax, ClassificationOutput)


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
    stacks = [layer for layer in net.layers if isinstance(layer, LSTMStack)]
    if stacks and (lstms or len(stacks) > 1):
        raise InputError(
            f"layer {stacks[0].name!r} (LSTMStack) is exported as the one nn.LSTM; the network "
            "has other recurrent layers beside it"
        )
    if stacks:  # its head, if any, reads every layer's h_n (L·D·H_out inputs)
        lstms = list(stacks[0].layers)
    if not lstms:
        raise InputError("the network has no LSTM layer to export")
    shapes = []
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
        shapes.append((layer.name, _nn_lstm_shape(one_ways)))
    if len({shape for _, shape in shapes}) > 1:
        found = "; ".join(f"layer {name!r}: {shape}" for name, shape in shapes)
        raise InputError(
            "an nn.LSTM's layers share one hidden_size, proj_size and number of directions; "
            f"got {found}"
        )
    return lstms


def _nn_lstm_shape(one_ways: list[LSTM]) -> str:
    """A layer's size in nn.LSTM's terms: ``"hidden_size 5, proj_size 3, 2 directions"``."""
    P, H = one_ways[0].state_widths
    proj = "" if one_ways[0].projection is None else f", proj_size {P}"
    count = len(one_ways)
    return f"hidden_size {H}{proj}, {counted(count, 'direction')}"


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
