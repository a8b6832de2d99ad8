"""A network's recurrent parts, by name: what plots, ``explain`` and the walkthrough look at.

A part is a recurrent layer (``"lstm.l0"``), one direction of a BiLSTM (``"lstm.l0/forward"``,
``"lstm.l0/backward"``), or a layer of an LSTMStack (``"stack/lstm1"``,
``"stack/bilstm2/backward"``) — the names the layers' weight arrays carry
(:meth:`Layer.arrays`). A part's units are columns of its recurrent layer's trace
(:meth:`Network.trace <lstm_ref.network.Network.trace>`) and state: the layer's one-direction
LSTMs side by side in the order of :func:`~lstm_ref.layers.directions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .layers import LSTM, BiLSTM, LSTMStack, SequenceInput, directions
from .lstm import Gates, LSTMState
from .network import Network

Array = np.ndarray
Recurrent = LSTM | BiLSTM | LSTMStack


@dataclass(frozen=True)
class Part:
    """One part of a recurrent layer of a network (see the module docstring)."""

    name: str  # as addressed: "lstm.l0/backward"
    index: int  # of its recurrent layer in net.layers
    top: Recurrent  # that recurrent layer
    layer: Recurrent  # the part itself
    path: tuple[str, ...]  # the names below the recurrent layer: ("backward",)
    first: int  # its first one-direction LSTM among the recurrent layer's

    @property
    def reverse(self) -> bool:
        """Whether the part is one reverse direction (it reads each sequence from its end)."""
        return isinstance(self.layer, LSTM) and self.layer.direction == "reverse"

    @property
    def width(self) -> int:
        """Its number of units (of h: the hidden units, or a projection's width)."""
        return sum(x.state_widths[0] for x in directions(self.layer))

    def columns(self) -> tuple[slice, slice]:
        """Its columns in the recurrent layer's trace and state: of i, f, g, o and c (the
        hidden units), and of h (as many, but for a projection)."""
        before, own = directions(self.top)[: self.first], directions(self.layer)
        g0, h0 = sum(x.hidden_size for x in before), sum(x.state_widths[0] for x in before)
        g1, h1 = sum(x.hidden_size for x in own), sum(x.state_widths[0] for x in own)
        return slice(g0, g0 + g1), slice(h0, h0 + h1)

    def trace(self, net: Network, x: Array) -> Gates:
        """Its gates and states over one sequence (T, C), from the network's current state:
        i, f, g, o, c, h, each (T, ·), in time order."""
        gates, h = self.columns()
        full = net.trace(x, self.top.name)
        return Gates(*(v[:, h if k == "h" else gates] for k, v in full._asdict().items()))

    def state(self, net: Network) -> LSTMState:
        """Its part of the network's current state: h and c, (W,) or (N, W)."""
        gates, h = self.columns()
        s = net.state[self.top.name]
        return LSTMState(s.h[..., h], s.c[..., gates])

    def cache(self, cache: Any) -> Any:
        """Its own cache within ``cache``, its recurrent layer's."""
        layer: Recurrent = self.top
        for step in self.path:
            if isinstance(layer, LSTMStack):
                k = [x.name for x in layer.layers].index(step)
                layer, cache = layer.layers[k], cache.caches[k]
            elif isinstance(layer, BiLSTM):
                forward = step == "forward"
                layer = layer.fwd if forward else layer.bwd
                cache = cache.forward if forward else cache.backward
        return cache

    def input_source(self, net: Network) -> str | None:
        """The part whose outputs it reads, or None when it reads the input layer."""
        layer: Recurrent = self.top
        source = None
        for step in self.path:
            if isinstance(layer, LSTMStack):
                k = [x.name for x in layer.layers].index(step)
                source = f"{self.top.name}/{layer.layers[k - 1].name}" if k else source
                layer = layer.layers[k]
        below = net.layers[self.index - 1]
        if source is None and not isinstance(below, SequenceInput):
            source = below.name
        return source

    def describe(self) -> str:
        """The part named, its kind and which units are which: for a title or a header."""
        if self.reverse:
            return f"layer {self.name!r} (reverse: time runs backwards)"
        labels = _labels(self.layer)
        if len(labels) == 1:
            return f"layer {self.name!r}"
        groups, start = [], 1
        for label, one in zip(labels, directions(self.layer), strict=True):
            width = one.state_widths[0]
            groups.append(f"{start}-{start + width - 1} {label}")
            start += width
        return f"layer {self.name!r} ({self.layer.TYPE}: units {', '.join(groups)})"


def recurrent_part(net: Network, name: str | None = None) -> Part:
    """The part called ``name`` (default the first recurrent layer, whole); an InputError
    listing the parts when there is none of that name."""
    top_name, rest = None, []
    if name is not None:  # the layer's own name may hold a "/" (an ONNX node's)
        tops = [x.name for x in net.layers if name == x.name or str(name).startswith(x.name + "/")]
        if not tops:
            raise InputError(f"no part named {name!r}; the recurrent parts: {part_names(net)}")
        top_name = max(tops, key=len)
        rest = str(name)[len(top_name) + 1 :].split("/") if name != top_name else []
    top = net.recurrent_layer(top_name)
    assert isinstance(top, LSTM | BiLSTM | LSTMStack)
    layer: Recurrent = top
    first = 0
    for step in rest:
        if isinstance(layer, LSTMStack) and step in [x.name for x in layer.layers]:
            k = [x.name for x in layer.layers].index(step)
            first += len([one for x in layer.layers[:k] for one in directions(x)])
            layer = layer.layers[k]
        elif isinstance(layer, BiLSTM) and step in ("forward", "backward"):
            first += step == "backward"
            layer = layer.fwd if step == "forward" else layer.bwd
        else:
            raise InputError(f"no part named {name!r}; the recurrent parts: {part_names(net)}")
    index = [x.name for x in net.layers].index(top.name)
    return Part(top.name if name is None else str(name), index, top, layer, tuple(rest), first)


def part_names(net: Network, one_direction: bool = False) -> list[str]:
    """The names of every recurrent part of ``net``, in order (only those of one direction
    of equations, one LSTM, with ``one_direction``)."""
    names = [n for layer in net.stateful_layers for n in _names(layer, layer.name)]
    if one_direction:
        names = [n for n in names if isinstance(recurrent_part(net, n).layer, LSTM)]
    return names


def _names(layer: Any, name: str) -> list[str]:
    if isinstance(layer, BiLSTM):
        return [name, f"{name}/forward", f"{name}/backward"]
    if isinstance(layer, LSTMStack):
        return [name, *(n for x in layer.layers for n in _names(x, f"{name}/{x.name}"))]
    return [name]


def _labels(layer: Recurrent) -> list[str]:
    """What each of ``layer``'s one-direction LSTMs is called within it, in order."""
    if isinstance(layer, LSTM):
        return ["forward" if layer.direction == "forward" else "reverse"]
    if isinstance(layer, BiLSTM):
        return ["forward", "reverse"]
    return [f"{x.name} {label}".strip() for x in layer.layers for label in _labels(x)]
