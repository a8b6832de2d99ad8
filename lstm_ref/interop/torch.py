"""PyTorch: ``nn.LSTM`` / ``nn.LSTMCell`` (+ an ``nn.Linear`` head) in and out.

The layout, once (PyTorch 2.x, ``torch/nn/modules/rnn.py``; ``k`` the layer, ``_reverse``
the second direction; H hidden units, P ``proj_size``, H_out = P or H, D = 2 or 1):

======================  ==================  =================================  ===========
PyTorch tensor          shape               lstm_ref                           transform
======================  ==================  =================================  ===========
``weight_ih_l{k}``      (4H, C)             ``LSTM.params.W``                  none
``weight_hh_l{k}``      (4H, H_out)         ``LSTM.params.R``                  none
``bias_ih_l{k}``        (4H,)               ``LSTM.params.b`` = b_ih + b_hh;   summed;
``bias_hh_l{k}``        (4H,)               ``LSTM.bias_split`` [b_ih; b_hh]   kept
``weight_hr_l{k}``      (P, H)              ``LSTM.projection``                none
``<head>.weight``       (K, D·H_out)        ``FullyConnected.weights``         none
                        or (K, L·D·H_out)   (every layer's ``h_n``: a stack)
``<head>.bias``         (K,)                ``FullyConnected.bias``            none
======================  ==================  =================================  ===========

Gate blocks are i, f, g, o — lstm_ref's order, so nothing is reordered. ``bias=False``
means b = 0. Layer k > 0 takes C = D·H_out. ``nn.LSTMCell`` has the same tensors without the
``_l0`` suffix. A bidirectional layer becomes a :class:`~lstm_ref.layers.BiLSTM` whose
output is [forward ‖ reverse], as ``output`` is. The layers are named ``<module>.l{k}``
(``l{k}`` for a bare module) and the head after its ``nn.Linear``; the arrays keep the
tensors' dtype unless ``dtype=`` says otherwise. Export writes the stored ``bias_split``
back while b is unchanged (b − b_hh and b_hh after training changed b), in the network's
dtype, under those module names — so a state_dict imported and exported is the same
tensors, as stored.

**An nn.LSTMCell** is one step; a decoder calls it in a loop,
``for x_t in x: h, c = cell(x_t, (h, c))``. It becomes an :class:`~lstm_ref.layers.LSTM`
layer with its weights, and ``predict`` on a sequence runs that loop — the cell at every
step, (h, c) carried over — from the layer's state (``Network.state``: the ``(h, c)`` the
first call receives, zeros by default). A sequence of one step is one call. It is written
back as a one-layer ``nn.LSTM`` (``_l0`` names).

Semantics: a PyTorch module has no stored initial state (h_0 = c_0 = 0 unless passed);
``dropout`` acts between layers in training only, so an inference reference ignores it (a
state_dict does not even record it). ``batch_first`` concerns only the caller's tensor
layout: lstm_ref always takes (B, T, C) batches and lists of (T, C) sequences. PyTorch's
packed sequences are lstm_ref's default ``Padding.masked()``: every sequence runs for its
own length and a reverse direction starts at each sequence's own last step;
``Padding.pytorch()`` returns per-step outputs padded back with zeros, as
``pad_packed_sequence``.

The classifier head lstm_ref reads and writes (the last layer's ``h_n``, both directions
concatenated forward first, through one ``nn.Linear``, then softmax — a state_dict holds no
softmax, so lstm_ref adds a ``Softmax`` layer after the head, ``softmax=False`` leaves it out
for a model that returns the head's logits)::

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

**A head on every layer's final state** — ``fc(h_n.permute(1, 0, 2).reshape(B, -1))``, or
``torch.cat(list(h_n), dim=1)``, an ``nn.Linear(L·D·H_out, K)`` on the h_n of all L > 1
layers, layer by layer, forward before reverse — is told by the head's width: the layers
become one :class:`~lstm_ref.layers.LSTMStack` (``output_mode="last"``, named after the
module) before the head, and such a network is written back the same way. A head of any
other width is an error.

Without a head the network ends in the last LSTM layer, with per-step outputs. A state_dict
does not say what the head reads: ``last="state"`` (the default) is ``h_n`` as above;
``last="step"`` is ``output[:, -1]``, the output at each sequence's last step, where the
reverse direction of a bidirectional LSTM has seen that one step only
(``BiLSTM(..., last="step")``; for one direction both are the same h).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .._checks import check_choice
from ..errors import InputError, InputTypeError
from ..layers import (
    LSTM,
    BiLSTM,
    FullyConnected,
    Layer,
    LSTMStack,
    SequenceInput,
    Softmax,
    directions,
)
from ..lstm import LSTMParams
from ..network import Network
from .torch_checkpoint import (
    LSTM_KEY,
    find_lstms,
    list_torch_lstms,
    load_state_dict,
    modules,
    pick_lstm,
    read_tensors,
)
from .torch_export import save_torch, to_state_dict, torch_lstm_options

Array = np.ndarray
__all__ = [
    "from_torch",
    "list_torch_lstms",
    "load_state_dict",
    "network_from_arrays",
    "save_torch",
    "to_state_dict",
    "torch_lstm_options",
]


def from_torch(
    source: Any,
    *,
    prefix: str | None = None,
    head: str | None = None,
    dtype: np.dtype | type | None = None,
    class_names: list[str] | None = None,
    softmax: bool = True,
    last: Literal["state", "step"] = "state",
) -> Network:
    """A Network from an LSTM or LSTMCell in a module, a state_dict, a checkpoint dict, or
    a ``.pt``/``.pth``/``.safetensors`` file or TorchScript archive of one (see
    :mod:`.torch_checkpoint`; :func:`.torch_checkpoint.list_torch_lstms` lists them).

    Parameters
    ----------
    source : torch.nn.Module, mapping, or path
        Tensors may be ``torch.Tensor`` or NumPy arrays.
    prefix : str, optional
        The LSTM module to import (``"decoder.rnn"``); the rest of the checkpoint is ignored
        but for ``head``. Without it the source must hold one LSTM module and, beside it,
        nothing or one ``nn.Linear`` (taken as the head).
    head : str, optional
        The ``nn.Linear`` module (``"decoder.fc"``) that reads the LSTM's final h.
    dtype : float64 or float32, optional
        The dtype lstm_ref computes in; by default the tensors' own (float32 stays float32;
        float16 and bfloat16 widen to float32).
    class_names : list of str, optional
        Names of the head's outputs.
    softmax : bool
        Add a ``Softmax`` after the head (the default: class probabilities, as the
        documented classifier returns); False for a model whose forward returns the head's
        logits. A state_dict cannot say which.
    last : "state" or "step"
        What the head reads: ``h_n``, the final states (the default), or ``output[:, -1]``,
        the output at the last step (:class:`~lstm_ref.layers.BiLSTM`'s ``last``; the two
        differ only for a bidirectional LSTM).

    Returns
    -------
    Network
        SequenceInput → LSTM/BiLSTM layers (the last with ``output_mode="last"`` when a
        head follows) → FullyConnected → Softmax (unless ``softmax=False``); or the LSTM
        layers alone.
    """
    check_choice(last, "last", ("state", "step"))
    if not isinstance(softmax, bool):
        raise InputTypeError(f"softmax must be True or False; got {softmax!r}")
    tensors, where = read_tensors(source)
    lstm = pick_lstm(find_lstms(tensors), where, prefix)
    rest = [k for k in tensors if k not in lstm.keys]
    head_keys: list[str] = []
    if head is not None:
        head_keys = _linear_keys(head.rstrip("."))
        if head_keys[0] not in tensors:
            raise InputError(
                f"{where}: no nn.Linear {head!r} ({head_keys[0]} missing); the modules beside "
                f"the LSTM: {modules(rest)}"
            )
    elif prefix is None and rest:
        if _one_linear(rest) is None:
            raise InputError(
                f"{where}: modules {_few(modules(rest))} beside the LSTM {lstm}; pass "
                f"prefix={lstm.prefix.rstrip('.')!r} to import the LSTM alone (and head='<name>' "
                "for an nn.Linear head; --prefix, --head on the command line)"
            )
        head_keys = rest
    picked = [k for k in [*lstm.keys, *head_keys] if k in tensors]
    if dtype is None:
        dtype = np.result_type(np.float32, *(_dtype_of(where, k, tensors[k]) for k in picked))
    arrays = {k: _as_numpy(where, k, tensors[k], dtype) for k in picked}
    return network_from_arrays(arrays, where, class_names, softmax=softmax, last=last)


def _linear_keys(name: str) -> list[str]:
    """The tensor names of the nn.Linear ``name``: its weight and its bias."""
    dot = f"{name}." if name else ""
    return [f"{dot}weight", f"{dot}bias"]


def _one_linear(keys: list[str]) -> str | None:
    """The module name if ``keys`` are one nn.Linear's tensors (its weight, its bias), else
    None."""
    names = modules(keys)
    return names[0] if len(names) == 1 and set(keys) <= set(_linear_keys(names[0])) else None


def _few(names: list[str], most: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return f"{shown}, … ({len(names)} in all)" if len(names) > most else shown


def network_from_arrays(
    arrays: dict[str, Array],
    where: str,
    class_names: list[str] | None = None,
    *,
    softmax: bool = True,
    last: Literal["state", "step"] = "state",
) -> Network:
    """The network a state_dict's arrays describe: one LSTM module and at most one
    ``nn.Linear`` head, reading ``last`` and followed by a softmax if ``softmax`` (see
    :func:`from_torch`)."""
    lstms = find_lstms(arrays)
    lstm = pick_lstm(lstms, where, None)
    cell = lstm.kind == "LSTMCell"
    by_layer: dict[int, dict[str, dict[str, Array]]] = {}
    for key in lstm.keys:
        m = LSTM_KEY.match(key)
        assert m is not None  # find_lstms matched it
        if m["layer"] is None and not cell:
            raise InputError(f"{where}: tensor {key!r} mixes nn.LSTMCell and nn.LSTM names")
        direction = "reverse" if m["reverse"] else "forward"
        layer = by_layer.setdefault(int(m["layer"] or 0), {})
        layer.setdefault(direction, {})[m["what"]] = arrays[key]
    rest = {k: v for k, v in arrays.items() if k not in lstm.keys}
    fc = _head(rest, where)
    count = len(by_layer)
    if sorted(by_layer) != list(range(count)):
        raise InputError(f"{where}: LSTM layers {sorted(by_layer)}; expected 0 … {count - 1}")
    if fc is None and last != "state":
        raise InputError(f"{where}: last={last!r} says what a head reads; there is no head")
    layers: list[LSTM | BiLSTM] = [
        _layer(by_layer[k], f"{lstm.prefix}l{k}", "sequence", where, "state") for k in range(count)
    ]
    recurrent: list[Layer] = list(layers)
    every = sum(layer.state_widths[0] for layer in layers)  # L·D·H_out
    if fc is not None and count > 1 and fc[0].shape[1] == every:  # a head on every layer's h_n
        if last != "state":
            raise InputError(
                f"{where}: last={last!r} reads the top layer's output; a head of {every} inputs "
                "reads every layer's h_n (L·D·H_out)"
            )
        recurrent = [LSTMStack(layers, name=lstm.prefix.rstrip(".") or "lstm")]
    elif fc is not None:  # on the top layer's h_n (D·H_out), or its output at the last step
        recurrent[-1] = _layer(
            by_layer[count - 1], f"{lstm.prefix}l{count - 1}", "last", where, last
        )
    C = directions(layers[0])[0].input_size
    network: list[Layer] = [SequenceInput(C), *recurrent]
    if fc is not None:
        network.append(FullyConnected(fc[0], fc[1], name=fc[2] or "fc"))
        if softmax:
            network.append(Softmax())
    return Network(network, class_names)


def _layer(
    directions: dict[str, dict[str, Array]],
    name: str,
    mode: str,
    where: str,
    last: Literal["state", "step"],
) -> LSTM | BiLSTM:
    if "forward" not in directions:
        raise InputError(f"{where}: layer {name!r} has only reverse-direction tensors")
    fwd = _direction(directions["forward"], name, mode, "forward", where)
    if "reverse" not in directions:
        return fwd
    bwd = _direction(directions["reverse"], f"{name}_reverse", mode, "reverse", where)
    return BiLSTM(fwd, bwd, name=name, last=last if mode == "last" else "state")


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
        bias_split=np.stack([b_ih, b_hh]) if "bias_ih" in t else None,
        name=name,
        output_mode=mode,  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
        projection=projection,
    )


def _head(rest: dict[str, Array], where: str) -> tuple[Array, Array, str] | None:
    """An nn.Linear's weight (K, ·) and bias (K,) — 0 for ``bias=False`` — among the other
    tensors, or None."""
    if not rest:
        return None
    name = _one_linear(list(rest))
    if name is None:
        raise InputError(
            f"{where}: tensors {sorted(rest)} beside the LSTM; expected none or one nn.Linear "
            "head (<name>.weight, <name>.bias)"
        )
    weight_key, bias_key = _linear_keys(name)
    weight = rest.get(weight_key)
    if weight is None or weight.ndim != 2:
        raise InputError(f"{where}: head {name!r}: expected a weight (K, H)")
    bias = rest.get(bias_key, np.zeros(len(weight), weight.dtype))
    if bias.shape != weight.shape[:1]:
        raise InputError(
            f"{where}: head {name!r}: weight {weight.shape} and bias {bias.shape} must be "
            "(K, H) and (K,)"
        )
    return weight, bias, name


def _dtype_of(where: str, key: str, value: Any) -> np.dtype:
    """The NumPy dtype of a tensor or array; an InputError unless it is floating-point."""
    kind = str(value.dtype).removeprefix("torch.")
    if kind in ("float16", "bfloat16"):
        return np.dtype(np.float32)  # widened exactly
    if kind not in ("float32", "float64"):
        raise InputError(f"{where}: {key!r} holds {kind} values; expected floating-point")
    return np.dtype(kind)


def _as_numpy(where: str, key: str, value: Any, dtype: np.dtype | type) -> Array:
    """A tensor or array as a NumPy array of ``dtype`` (float32 widens exactly)."""
    _dtype_of(where, key, value)
    if isinstance(value, np.ndarray):
        return value.astype(dtype)
    import torch

    return value.detach().cpu().to(torch.float64).numpy().astype(dtype)
