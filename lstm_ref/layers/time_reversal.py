"""The time reversal: each sequence's steps in reverse order (Keras's ``go_backwards``
sequence, which comes out in processing order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..lstm import LSTMState
from ..lstm_loop import reverse_in_time
from .base import Grads, Layer

Array = np.ndarray


@dataclass(frozen=True)
class ReversalCache:
    """What the backward pass needs: where each row stops."""

    lengths: Array | None  # (B,) under masked padding

    @property
    def final_state(self) -> None:
        return None


@dataclass(eq=False, repr=False)
class TimeReversal(Layer):
    """y[b, t] = x[b, n_b − 1 − t] for each sequence's own n_b steps (padding stays put).

    After an LSTM with ``direction="reverse"`` and ``output_mode="sequence"`` it gives the
    outputs in the order they were computed: Keras's ``LSTM(go_backwards=True,
    return_sequences=True)``.
    """

    name: str = "reversal"

    TYPE: ClassVar[str] = "Time Reversal"

    def description(self) -> str:
        return "each sequence reversed in time"

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, ReversalCache]:
        """x (B, T, W) -> (B, T, W)."""
        if x.ndim != 3:
            raise self._error(
                f"reverses sequences (B, T, W); got {x.shape} (the layer before it outputs "
                "only its last step)"
            )
        return reverse_in_time(x, lengths), ReversalCache(lengths)

    def backward(self, dy: Array, cache: ReversalCache) -> tuple[Array, Grads]:
        return reverse_in_time(dy, cache.lengths), {}
