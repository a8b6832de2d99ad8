"""lstm_ref: a from-scratch, pure-NumPy reference LSTM sequence classifier.

The LSTM equations and the gate table live in :mod:`lstm_ref.lstm`; the layers, under one
contract, in :mod:`lstm_ref.layers`; the network with MATLAB's predict/state/classify API
in :mod:`lstm_ref.network`; sequence layouts in :mod:`lstm_ref.sequences` and padding
semantics in :mod:`lstm_ref.padding`; files in :mod:`lstm_ref.formats`. See
docs/ARCHITECTURE.md for the whole house.
"""

from .errors import InputError, InputTypeError, LstmRefError
from .formats import load_network, pretrained_names, read_header, save_network
from .layers import LSTM, ClassificationOutput, FullyConnected, Layer, SequenceInput, Softmax
from .lstm import GATE_NAMES, GATES, Gates, LSTMParams, LSTMState, lstm_step
from .lstm_loop import lstm_forward
from .network import Network
from .padding import Padding, make_batches

__version__ = "0.2.0"

__all__ = [
    "GATES",
    "GATE_NAMES",
    "LSTM",
    "ClassificationOutput",
    "FullyConnected",
    "Gates",
    "InputError",
    "InputTypeError",
    "LSTMParams",
    "LSTMState",
    "Layer",
    "LstmRefError",
    "Network",
    "Padding",
    "SequenceInput",
    "Softmax",
    "load_network",
    "lstm_forward",
    "lstm_step",
    "make_batches",
    "pretrained_names",
    "read_header",
    "save_network",
]
