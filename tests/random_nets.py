"""Random networks and data whose every gate block, bias and state differ."""

from __future__ import annotations

import numpy as np

from lstm_ref import LSTM, FullyConnected, LSTMParams, LSTMState, Network, SequenceInput, Softmax


def random_lstm_params(rng: np.random.Generator, C: int, H: int, dtype=np.float64) -> LSTMParams:
    """W, R, b with a different scale and offset per gate block, so no permutation hides."""
    scale = np.repeat([0.6, 0.9, 1.2, 0.5], H)[:, None]
    offset = np.repeat([0.3, -0.4, 0.1, 0.5], H)
    return LSTMParams(
        W=(rng.normal(size=(4 * H, C)) * scale).astype(dtype),
        R=(rng.normal(size=(4 * H, H)) * scale / np.sqrt(H)).astype(dtype),
        b=(rng.normal(size=4 * H) * 0.5 + offset).astype(dtype),
    )


def random_state(rng: np.random.Generator, B: int, H: int, dtype=np.float64) -> LSTMState:
    return LSTMState(
        h=rng.uniform(-0.8, 0.8, size=(B, H)).astype(dtype),
        c=rng.normal(size=(B, H)).astype(dtype),
    )


def random_network(
    rng: np.random.Generator,
    C: int = 5,
    H: int = 7,
    K: int = 4,
    output_mode: str = "last",
    normalization: str = "none",
    **lstm_options,
) -> Network:
    norm = {}
    if normalization != "none":
        norm = {"mean": rng.normal(size=C), "std": rng.uniform(0.5, 2.0, size=C)}
        if normalization == "zerocenter":
            del norm["std"]
    h0 = rng.uniform(-0.5, 0.5, size=H)
    c0 = rng.normal(size=H)
    layers = [
        SequenceInput(C, normalization=normalization, **norm),
        LSTM(
            random_lstm_params(rng, C, H),
            output_mode=output_mode,
            initial_state=LSTMState(h0, c0),
            **lstm_options,
        ),
        FullyConnected(rng.normal(size=(K, H)), rng.normal(size=K)),
        Softmax(),
    ]
    return Network(layers, class_names=[f"class{k}" for k in range(K)])


def random_sequences(rng: np.random.Generator, lengths, C: int = 5) -> list[np.ndarray]:
    return [rng.normal(size=(T, C)) for T in lengths]
