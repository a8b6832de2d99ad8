"""The sequence input layer: the data as it enters, normalised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from .._checks import (
    check_choice,
    check_count,
)
from ..lstm import (
    LSTMState,
)
from .base import Grads, InputCache, Layer, check_layer_shape, float_array

Array = np.ndarray


@dataclass(eq=False, repr=False)
class SequenceInput(Layer):
    """Sequence input with optional normalisation (MATLAB's sequenceInputLayer).

    ``normalization``: "none"; "zerocenter" (x − mean); "zscore" ((x − mean) / std),
    with ``mean`` and ``std`` of shape (C,) computed from the training data.
    """

    input_size: int
    name: str = "sequenceinput"
    normalization: Literal["none", "zerocenter", "zscore"] = "none"
    mean: Array | None = None  # (C,)
    std: Array | None = None  # (C,)

    TYPE: ClassVar[str] = "Sequence Input"
    ARRAYS: ClassVar[tuple[str, ...]] = ("mean", "std")

    def __post_init__(self) -> None:
        self.input_size = check_count(self.input_size, f"layer {self.name!r}: input_size")
        C = self.input_size
        needs = {"none": (), "zerocenter": ("mean",), "zscore": ("mean", "std")}
        check_choice(self.normalization, f"layer {self.name!r}: normalization", list(needs))
        for what in ("mean", "std"):
            value = getattr(self, what)
            if what in needs[self.normalization]:
                if value is None:
                    raise self._error(f"{self.normalization!r} normalization needs {what}")
                value = float_array(self.name, what, value)
                check_layer_shape(self.name, what, value, (C,), "(C,)")
                setattr(self, what, value)
            elif value is not None:
                raise self._error(f"{what} given but normalization is {self.normalization!r}")
        if self.std is not None and (self.std <= 0).any():
            raise self._error("std must be positive")

    def output_width(self, input_width: int) -> int:
        self._check_input(input_width, self.input_size)
        return self.input_size

    def description(self) -> str:
        return f"Sequence input with {self.input_size} dimensions"

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, InputCache]:
        """x (B, T, C) -> normalised (B, T, C)."""
        y = x
        if self.mean is not None:
            y = y - self.mean
        if self.std is not None:
            y = y / self.std
        return y, InputCache(x)

    def backward(self, dy: Array, cache: InputCache) -> tuple[Array, Grads]:
        return (dy if self.std is None else dy / self.std), {}
