"""How far rounding alone moves the reference: the reference computed in the port's lower
precision, its distance from the float64 reference being what the port may differ by
without a bug.

float32: the network in float32 (``Network.astype``). float16 and bfloat16, which lstm_ref
does not compute in: every weight, input and initial state rounded to that format, the
network run in float32, and its outputs rounded to the format — as a framework computing in
half precision stores them (PyTorch's CPU LSTM in float16 or bfloat16 accumulates in float32
and rounds what it stores).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..lstm import LSTMState
from ..network import Network
from .reference import Setting

Array = np.ndarray


def to_float16(a: Array) -> Array:
    """``a`` rounded to float16 (nearest even), kept as float32."""
    with np.errstate(over="ignore"):
        return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def to_bfloat16(a: Array) -> Array:
    """``a`` rounded to bfloat16 (float32's upper 16 bits, nearest even), kept as float32."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32).reshape(np.shape(a))


PRECISIONS: dict[str, Callable[[Array], Array] | None] = {
    "float32": None,  # the network's own float32 computation
    "float16": to_float16,
    "bfloat16": to_bfloat16,
}


@dataclass(frozen=True)
class Rounded:
    """The setting computing in a lower precision, and how its inputs and outputs are
    rounded."""

    setting: Setting
    round: Callable[[Array], Array]

    def sequences(self, seqs: list[Array]) -> list[Array]:
        return [self.round(s) for s in seqs]

    def output(self, values: Array) -> Array:
        return self.round(values).astype(np.float64)


def rounded_setting(setting: Setting, precision: str) -> Rounded:
    """``setting`` computing in ``precision`` (a key of :data:`PRECISIONS`)."""
    net = setting.net.astype(np.float32)
    round_to = PRECISIONS[precision]
    if round_to is None:
        return Rounded(dataclasses.replace(setting, net=net), lambda a: np.asarray(a, np.float32))
    layers = [
        type(x).from_arrays(x.config(), {k: round_to(v) for k, v in x.arrays().items()})
        for x in net.layers
    ]
    state = {n: LSTMState(*(round_to(a) for a in s)) for n, s in setting.state.items()}
    low = Network(layers, net.class_names or None)
    return Rounded(dataclasses.replace(setting, net=low, state=state), round_to)
