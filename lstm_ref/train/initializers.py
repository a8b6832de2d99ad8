"""MATLAB's default initialisers, and a sequence classifier initialised with them.

lstmLayer: InputWeights "glorot", RecurrentWeights "orthogonal", Bias "unit-forget-gate".
fullyConnectedLayer: Weights "glorot", Bias "zeros".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._checks import check_allocation
from ..layers import LSTM, FullyConnected, SequenceInput, Softmax
from ..lstm import LSTMParams, gate_rows
from ..network import Network

Array = np.ndarray


def glorot(rng: np.random.Generator, shape: tuple[int, int]) -> Array:
    """U(−s, s) with s = sqrt(6 / (fan_in + fan_out)); ``shape`` is (fan_out, fan_in)."""
    s = np.sqrt(6 / (shape[0] + shape[1]))
    return rng.uniform(-s, s, size=shape)


def orthogonal(rng: np.random.Generator, shape: tuple[int, int]) -> Array:
    """Q of the QR decomposition of a standard normal matrix, signs fixed by diag(R)."""
    q, r = np.linalg.qr(rng.standard_normal(shape))
    return q * np.sign(np.diag(r))


def unit_forget_gate(H: int) -> Array:
    """Bias (4H,): zeros, except ones on the forget-gate block."""
    b = np.zeros(4 * H)
    b[gate_rows("f", H)] = 1
    return b


def lstm_classifier(
    rng: np.random.Generator,
    input_size: int,
    hidden_size: int,
    class_names: Sequence[str],
    *,
    mean: Array | None = None,
    std: Array | None = None,
) -> Network:
    """Sequence input → LSTM (OutputMode "last") → fully connected → softmax, initialised
    as MATLAB does. With ``mean`` and ``std`` (C,) the input layer z-scores its data.
    """
    C, H, K = input_size, hidden_size, len(class_names)
    check_allocation((4 * H, C + H + 1), np.float64, f"an LSTM of {H} hidden units")
    params = LSTMParams(
        W=glorot(rng, (4 * H, C)), R=orthogonal(rng, (4 * H, H)), b=unit_forget_gate(H)
    )
    return Network(
        [
            SequenceInput(C)
            if mean is None
            else SequenceInput(C, "sequenceinput", "zscore", mean, std),
            LSTM(params, output_mode="last"),
            FullyConnected(glorot(rng, (K, H)), np.zeros(K)),
            Softmax(),
        ],
        class_names,
    )
