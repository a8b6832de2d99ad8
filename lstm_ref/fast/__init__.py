"""The fast inference path beside the readable reference, tested equal to it.

:mod:`lstm_ref.fast.step` compiles one LSTM layer (one fused product per step, the sigmoid
and the input normalisation folded into the weights) and runs its steps;
:mod:`lstm_ref.fast.engine` compiles a network's layers, runs them over its batches (sorted
and shrinking when masked) and says what it covers; :mod:`lstm_ref.fast.stepper` streams one
step at a time.
"""

from .engine import FastNetwork, one_pass
from .step import (
    FAST_ORDER,
    FastLSTM,
    StepBuffers,
    Work,
    all_finite,
    by_gate,
    compile_lstm,
    covered,
    fast_steps,
    finite_copy,
    run_lstm,
    work_buffers,
)
from .stepper import Stepper
from .watch import Watch, seal, writeable

__all__ = [
    "FAST_ORDER",
    "FastLSTM",
    "FastNetwork",
    "StepBuffers",
    "Stepper",
    "Watch",
    "Work",
    "all_finite",
    "by_gate",
    "compile_lstm",
    "covered",
    "fast_steps",
    "finite_copy",
    "one_pass",
    "run_lstm",
    "seal",
    "work_buffers",
    "writeable",
]
