"""lstm_ref: a from-scratch, pure-NumPy reference LSTM sequence classifier.

The LSTM equations live in :func:`lstm_ref.lstm.lstm_step`; the layers in
:mod:`lstm_ref.layers`; the network with MATLAB's predict/state/classify API in
:mod:`lstm_ref.network`; sequence layouts and padding semantics in
:mod:`lstm_ref.sequences`; the native weight format in :mod:`lstm_ref.formats`.
"""

from .formats import load_network, pretrained_names, read_header, save_network
from .layers import LSTM, ClassificationOutput, FullyConnected, SequenceInput, Softmax
from .lstm import Gates, LSTMParams, LSTMState, lstm_forward, lstm_step
from .network import Network
from .sequences import make_batches

__version__ = "0.1.0"

__all__ = [
    "LSTM",
    "ClassificationOutput",
    "FullyConnected",
    "Gates",
    "LSTMParams",
    "LSTMState",
    "Network",
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
