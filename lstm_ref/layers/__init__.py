"""The layers of a sequence network, all under one contract.

A layer is a plain container of parameters (a dataclass) with these methods:

``output_width(input_width) -> int``
    The width of its output (features per step) given the width of its input; raises if the
    layer cannot take that input. :class:`~lstm_ref.network.Network` passes the width along
    the layers, as JAX stax's ``serial`` passes shapes.
``forward(x, lengths, state) -> (y, cache)``
    ``x`` (B, T, C) — or (B, C) after a layer that outputs only its last step; ``lengths``
    (B,) where each row stops (masked padding) or None (every step is data); ``state`` the
    layer's starting state for each row, or None for its initial state. ``cache`` is the
    layer's own typed record for ``backward``; ``cache.final_state`` is the state after
    the batch (None for a stateless layer).
``backward(dy, cache) -> (dx, grads)``
    The chain rule through ``forward``; ``grads`` by learnable name.
``initial_state`` / ``check_state(state)``
    The state a stateful layer starts from, (H,) rows (None: the layer holds no state); a
    caller's state checked and converted.
``arrays()`` / ``config()`` / ``from_arrays()`` / ``learnables()`` / ``L2_FACTORS``
    What a weight file stores, how the layer is rebuilt, what training updates and by how
    much MATLAB's L2 regularisation weighs each learnable.
``description()`` / ``TYPE`` / ``name``
    The columns of MATLAB's ``net.Layers`` table.

Shapes: B sequences, T time steps, C features in, H hidden units, K outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .base import Cache, InputCache, Layer
from .bidirectional import MERGE_MODES, BiLSTM, BiLSTMCache, directions, shared_by_directions
from .heads import (
    Activation,
    ClassificationOutput,
    FullyConnected,
    LogSoftmax,
    Softmax,
    SoftmaxCache,
)
from .recurrent import LSTM, LSTMCache, forward_only, reverse_sequence
from .sequence_input import SequenceInput
from .stack import LSTMStack, LSTMStackCache
from .time_reversal import ReversalCache, TimeReversal

Array = np.ndarray

__all__ = [
    "LAYER_TYPES",
    "LSTM",
    "MERGE_MODES",
    "Activation",
    "BiLSTM",
    "BiLSTMCache",
    "Cache",
    "ClassificationOutput",
    "FullyConnected",
    "InputCache",
    "LSTMCache",
    "LSTMStack",
    "LSTMStackCache",
    "Layer",
    "LogSoftmax",
    "ReversalCache",
    "SequenceInput",
    "Softmax",
    "SoftmaxCache",
    "TimeReversal",
    "directions",
    "forward_only",
    "layer_from_arrays",
    "reverse_sequence",
    "shared_by_directions",
]

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (
        SequenceInput,
        LSTM,
        BiLSTM,
        LSTMStack,
        TimeReversal,
        FullyConnected,
        Activation,
        Softmax,
        LogSoftmax,
        ClassificationOutput,
    )
}


def layer_from_arrays(type_name: str, config: dict[str, Any], arrays: dict[str, Array]) -> Layer:
    """Rebuild a layer from its saved type name, config and arrays."""
    try:
        cls = LAYER_TYPES[type_name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown layer type {type_name!r}; expected one of {sorted(LAYER_TYPES)}"
        ) from None
    return cls.from_arrays(config, arrays)
