"""The layer contract (see :mod:`lstm_ref.layers`): the base class every layer follows, the
cache protocol, and the checks the layers share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from .._checks import (
    check_float_array,
    check_shape,
)
from ..errors import InputError
from ..lstm import (
    Gates,
    LSTMState,
)

Array = np.ndarray
Grads = dict[str, Array]


class Cache(Protocol):
    """What every layer's forward pass returns beside its output, for its backward pass."""

    @property
    def final_state(self) -> LSTMState | None:
        """The state after the batch; None: the layer holds no state."""


@dataclass(frozen=True)
class InputCache:
    """What a stateless layer keeps for its backward pass: its input."""

    x: Array

    @property
    def final_state(self) -> None:
        return None


class Layer:
    """The contract every layer follows (see the module docstring)."""

    TYPE: ClassVar[str]
    ARRAYS: ClassVar[tuple[str, ...]] = ()  # the array fields a weight file stores
    LEARNABLES: ClassVar[tuple[str, ...]] = ()  # the arrays training updates
    L2_FACTORS: ClassVar[dict[str, float]] = {}  # MATLAB's L2 factor of each learnable
    name: str
    initial_state: LSTMState | None = None  # the state it starts from; None: holds no state

    # ---------------------------------------------------------------- the contract
    def output_width(self, input_width: int) -> int:
        """The output width for an input of ``input_width`` features (default: the same)."""
        return input_width

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, Cache]:
        raise NotImplementedError

    def backward(self, dy: Array, cache: Any) -> tuple[Array, Grads]:
        raise NotImplementedError

    def description(self) -> str:
        raise NotImplementedError

    def check_state(self, state: Any, dtype: np.dtype) -> LSTMState:
        """``state`` checked and cast to ``dtype`` (stateful layers only)."""
        raise InputError(f"layer {self.name!r} ({self.TYPE}) holds no state")

    def gates(self, cache: Any) -> Gates:
        """The gate trace in ``cache`` (gated layers only)."""
        raise InputError(
            f"layer {self.name!r} is a {self.TYPE} layer, not an LSTM: it has no gates"
        )

    def output_names(self) -> tuple[str, ...] | None:
        """Names of the output values (the classes), when the layer names them."""
        return None

    def __repr__(self) -> str:
        """One line, as a row of MATLAB's table (no weight dumps): ``<LSTM 'lstm': …>``."""
        return f"<{self.TYPE} {self.name!r}: {self.description()}>"

    # ------------------------------------------------------------ stored arrays
    def arrays(self) -> dict[str, Array]:
        return {k: getattr(self, k) for k in self.ARRAYS if getattr(self, k) is not None}

    def learnables(self) -> dict[str, Array]:
        return {k: getattr(self, k) for k in self.LEARNABLES}

    def config(self) -> dict[str, Any]:
        """JSON-ready hyper-parameters (everything but the arrays)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name not in self.ARRAYS and f.init
        }

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, Array]) -> Layer:
        """Rebuild a layer from :meth:`config` and :meth:`arrays` (what a weight file holds)."""
        return cls(**config, **arrays)

    def astype(self, dtype: np.dtype | type) -> Layer:
        """A copy whose arrays are of ``dtype``."""
        return self.from_arrays(
            self.config(), {k: v.astype(dtype) for k, v in self.arrays().items()}
        )

    def _error(self, message: str) -> InputError:
        return InputError(f"layer {self.name!r}: {message}")

    def _check_input(self, input_width: int, expected: int) -> None:
        if input_width != expected:
            raise InputError(
                f"layer {self.name!r} expects {expected} inputs but the layer before it gives "
                f"{input_width}"
            )


def float_array(layer: str, what: str, value: Any) -> Array:
    return check_float_array(value, f"layer {layer!r}: {what}")


def check_layer_shape(
    layer: str, what: str, a: Array, expected: tuple[int, ...], meaning: str
) -> None:
    check_shape(a, f"layer {layer!r}: {what}", expected, meaning)
