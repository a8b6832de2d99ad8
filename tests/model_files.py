"""Small networks every exporter can write, and writing them as the frameworks' files
(for the bad-input and fuzz suites of the importers)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
from random_nets import random_network

from lstm_ref import LSTMState, Network

MODEL_SUFFIXES = (".pt", ".onnx", ".h5", ".keras", ".mat")


def exportable_network(rng: np.random.Generator, C: int = 3, H: int = 4, K: int = 2) -> Network:
    """A random network with a zero initial state: what a state_dict or a Keras file can hold."""
    net = random_network(rng, C=C, H=H, K=K)
    lstm = dataclasses.replace(net.layer("lstm"), initial_state=LSTMState(np.zeros(H), np.zeros(H)))
    return Network([net.layers[0], lstm, *net.layers[2:]])


def save_model_quietly(net: Network, path: Path) -> None:
    """``save_model``, with Keras on torch and Keras's own NumPy 2 deprecation notice muted."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    from lstm_ref.interop import save_model

    with warnings.catch_warnings():  # Keras's own save warns about NumPy 2's __array__
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        save_model(net, path)
