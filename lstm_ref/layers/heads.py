"""The layers on top: fully connected, an element-wise activation, softmax and log-softmax,
and the classification output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._checks import (
    check_class_names,
)
from ..activations import parse_activation
from ..lstm import (
    LSTMState,
)
from .base import Grads, InputCache, Layer, check_layer_shape, float_array

Array = np.ndarray


@dataclass(eq=False, repr=False)
class FullyConnected(Layer):
    """y = x Wᵀ + b on the last axis (MATLAB's fullyConnectedLayer)."""

    weights: Array  # (K, H)
    bias: Array  # (K,)
    name: str = "fc"

    TYPE: ClassVar[str] = "Fully Connected"
    ARRAYS: ClassVar[tuple[str, ...]] = ("weights", "bias")
    LEARNABLES: ClassVar[tuple[str, ...]] = ("weights", "bias")
    L2_FACTORS: ClassVar[dict[str, float]] = {"weights": 1.0, "bias": 0.0}

    def __post_init__(self) -> None:
        self.weights = float_array(self.name, "weights", self.weights)
        self.bias = float_array(self.name, "bias", self.bias)
        if self.weights.ndim != 2 or 0 in self.weights.shape:
            raise self._error(
                f"weights must have shape (K, H), K, H >= 1; got {self.weights.shape}"
            )
        check_layer_shape(self.name, "bias", self.bias, (self.weights.shape[0],), "(K,)")

    @property
    def input_size(self) -> int:
        return self.weights.shape[1]

    @property
    def output_size(self) -> int:
        """K, the number of outputs (MATLAB's OutputSize)."""
        return self.weights.shape[0]

    def output_width(self, input_width: int) -> int:
        self._check_input(input_width, self.input_size)
        return self.output_size

    def description(self) -> str:
        return f"{self.output_size} fully connected layer"

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, InputCache]:
        """x (..., H) -> (..., K)."""
        return x @ self.weights.T + self.bias, InputCache(x)

    def backward(self, dy: Array, cache: InputCache) -> tuple[Array, Grads]:
        dy2, x2 = dy.reshape(-1, dy.shape[-1]), cache.x.reshape(-1, cache.x.shape[-1])
        return dy @ self.weights, {"weights": dy2.T @ x2, "bias": dy2.sum(axis=0)}


@dataclass(frozen=True)
class SoftmaxCache(InputCache):
    """The softmax's output p, which its backward pass reads."""

    p: Array


@dataclass(eq=False, repr=False)
class Softmax(Layer):
    """p = exp(y) / Σ exp(y) on the last axis, computed without overflow."""

    name: str = "softmax"

    TYPE: ClassVar[str] = "Softmax"

    def description(self) -> str:
        return "softmax"

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, SoftmaxCache]:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        return p, SoftmaxCache(x, p)

    def backward(self, dy: Array, cache: SoftmaxCache) -> tuple[Array, Grads]:
        p = cache.p
        return p * (dy - (dy * p).sum(axis=-1, keepdims=True)), {}


@dataclass(frozen=True)
class OutputCache(InputCache):
    """The layer's output y, which its backward pass reads."""

    y: Array


@dataclass(eq=False, repr=False)
class Activation(Layer):
    """y = f(x) element-wise, f any activation of :mod:`lstm_ref.activations` by its spec
    (an ONNX head's ``Relu``, ``sigmoid``, ``tanh``, ``LeakyRelu(alpha=0.1)``, …)."""

    function: str
    name: str = "activation"

    TYPE: ClassVar[str] = "Activation"

    def __post_init__(self) -> None:
        self._f = parse_activation(self.function)

    def description(self) -> str:
        return self.function

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, OutputCache]:
        y = self._f.value(x)
        return y, OutputCache(x, y)

    def backward(self, dy: Array, cache: OutputCache) -> tuple[Array, Grads]:
        return dy * self._f.grad(cache.y), {}


@dataclass(eq=False, repr=False)
class LogSoftmax(Layer):
    """log p = y − max y − log Σ exp(y − max y) on the last axis, without overflow."""

    name: str = "logsoftmax"

    TYPE: ClassVar[str] = "Log Softmax"

    def description(self) -> str:
        return "log softmax"

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, OutputCache]:
        shifted = x - x.max(axis=-1, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return y, OutputCache(x, y)

    def backward(self, dy: Array, cache: OutputCache) -> tuple[Array, Grads]:
        return dy - np.exp(cache.y) * dy.sum(axis=-1, keepdims=True), {}


@dataclass(eq=False, repr=False)
class ClassificationOutput(Layer):
    """Names the classes of the probabilities it passes through (MATLAB's classificationLayer)."""

    class_names: tuple[str, ...]
    name: str = "classoutput"

    TYPE: ClassVar[str] = "Classification Output"

    def __post_init__(self) -> None:
        self.class_names = check_class_names(self.class_names, f"layer {self.name!r}: class_names")

    def output_width(self, input_width: int) -> int:
        if input_width != len(self.class_names):
            raise self._error(
                f"{len(self.class_names)} class names for {input_width} outputs of the layer "
                "before it"
            )
        return input_width

    def output_names(self) -> tuple[str, ...]:
        return self.class_names

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "class_names": list(self.class_names)}

    def description(self) -> str:
        first, others = self.class_names[0], len(self.class_names) - 1
        return f"crossentropyex with '{first}' and {others} other classes"

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, InputCache]:
        return x, InputCache(x)

    def backward(self, dy: Array, cache: InputCache) -> tuple[Array, Grads]:
        return dy, {}
