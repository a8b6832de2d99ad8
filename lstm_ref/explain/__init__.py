"""One LSTM time step of one hidden unit, forward and backward, with the real numbers.

:func:`explain_step` walks through :func:`lstm_ref.lstm.lstm_step` for one unit at one
time step of one sequence: the input the layer sees, the state it starts from, the row of
W, R and b behind each gate, each gate's pre-activation and value, and the new cell and
hidden state. :func:`explain_backward` does the same for backpropagation through time
(:func:`lstm_ref.lstm_loop.lstm_backward`, step by step through
:func:`lstm_ref.lstm.lstm_step_backward`). Both quote the library's own lines of code
(read from its source when they run, so the quotes cannot drift from the code) and check
every number they print against the library (:meth:`Network.trace`, the per-step gradients
of :func:`~lstm_ref.lstm_loop.lstm_backward`, :meth:`LSTM.backward`), raising a RuntimeError
if they ever disagree.

The LSTM may be a layer, one direction of a BiLSTM or a layer of an LSTMStack, named as
:mod:`lstm_ref.parts` names them (``layer="lstm.l0/backward"``); a reverse direction reads
the sequence from its end, so its step t starts from the state step t+1 left, and the text
says that time runs backwards. :func:`explain_backward` follows a forward LSTM layer of the
network's own.

Steps and units are 1-based, as MATLAB users count; rows of W, R and b are 0-based array
indices: unit u's row in gate block k (k = 0, 1, 2, 3 for i, f, g, o, the order of
:data:`lstm_ref.lstm.GATES`) is ``k·H + u − 1``.

The numbers come from :func:`step_details` and :func:`backward_details`
(:mod:`~lstm_ref.explain.details`), which return them as plain data (for tests and for your
own use); :func:`format_step` and :func:`format_backward` (:mod:`~lstm_ref.explain.text`)
turn them into the text, and :func:`code_line` (:mod:`~lstm_ref.explain.quoting`) quotes
the code.
"""

from .details import BackwardDetails, GateTerms, StepDetails, backward_details, step_details
from .quoting import code_line
from .text import explain_backward, explain_step, format_backward, format_step

__all__ = [
    "BackwardDetails",
    "GateTerms",
    "StepDetails",
    "backward_details",
    "code_line",
    "explain_backward",
    "explain_step",
    "format_backward",
    "format_step",
    "step_details",
]
