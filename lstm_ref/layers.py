"""The layers of a sequence network, all under one contract.

A layer is a plain container of parameters (a dataclass) with these methods:

``output_width(input_width) -> int``
    The width of its output (features per step) given the width of its input; raises if the
    layer cannot take that input. :class:`~lstm_ref.network.Network` passes the width along
    the layers, as JAX stax's ``serial`` passes shapes.
``forward(x, lengths, state) -> (y, cache)``
    ``x`` (B, T, C) — or (B, C) after a layer that outputs only its last step; ``lengths``
    (B,) where each row stops (masked padding) or None (every step is data); ``state`` the
    layer's starting state for each row, or None for its initial state. ``cache`` is the
    layer's own typed record for ``backward``; ``cache.final_state`` is the state after
    the batch (None for a stateless layer).
``backward(dy, cache) -> (dx, grads)``
    The chain rule through ``forward``; ``grads`` by learnable name.
``initial_state`` / ``check_state(state)``
    The state a stateful layer starts from, (H,) rows (None: the layer holds no state); a
    caller's state checked and converted.
``arrays()`` / ``config()`` / ``from_arrays()`` / ``learnables()`` / ``L2_FACTORS``
    What a weight file stores, how the layer is rebuilt, what training updates and by how
    much MATLAB's L2 regularisation weighs each learnable.
``description()`` / ``TYPE`` / ``name``
    The columns of MATLAB's ``net.Layers`` table.

Shapes: B sequences, T time steps, C features in, H hidden units, K outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from ._checks import (
    check_choice,
    check_class_names,
    check_count,
    check_float_array,
    check_real_array,
    check_shape,
)
from .errors import InputError
from .lstm import (
    Gates,
    LSTMActivations,
    LSTMParams,
    LSTMState,
    StepGradients,
    lstm_backward,
    lstm_forward,
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


def _float_array(layer: str, what: str, value: Any) -> Array:
    return check_float_array(value, f"layer {layer!r}: {what}")


def _shape(layer: str, what: str, a: Array, expected: tuple[int, ...], meaning: str) -> None:
    check_shape(a, f"layer {layer!r}: {what}", expected, meaning)


@dataclass(eq=False)
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
                value = _float_array(self.name, what, value)
                _shape(self.name, what, value, (C,), "(C,)")
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


@dataclass(frozen=True)
class LSTMCache:
    """What the LSTM layer's backward pass needs, and the final state for the state API."""

    x: Array  # (B, T, C)
    state0: LSTMState  # each (B, H)
    trace: Gates  # each (B, T, H)
    final_state: LSTMState  # each (B, H)
    lengths: Array | None  # (B,) under masked padding


@dataclass(eq=False)
class LSTM(Layer):
    """A long short-term memory layer (MATLAB's lstmLayer).

    ``output_mode``: "sequence" returns h_t at every step (B, T, H); "last" returns the
    final h (B, H). ``initial_state`` h_0 and c_0 are (H,) each; zeros by default.
    """

    params: LSTMParams
    name: str = "lstm"
    output_mode: Literal["sequence", "last"] = "sequence"
    gate_activation: str = "sigmoid"
    state_activation: str = "tanh"
    initial_state: LSTMState | None = None

    TYPE: ClassVar[str] = "LSTM"
    LEARNABLES: ClassVar[tuple[str, ...]] = ("W", "R", "b")
    L2_FACTORS: ClassVar[dict[str, float]] = {"W": 1.0, "R": 1.0, "b": 0.0}
    act: LSTMActivations = field(init=False, repr=False)

    def __post_init__(self) -> None:
        W, R, b = (_float_array(self.name, k, a) for k, a in zip("WRb", self.params, strict=True))
        if R.ndim != 2 or R.shape[0] != 4 * R.shape[1] or R.shape[1] == 0:
            raise self._error(
                "R must have shape (4H, H), four gate blocks i, f, g, o stacked, H >= 1; "
                f"got {R.shape}"
            )
        H = R.shape[1]
        if W.ndim != 2:
            raise self._error(f"W must have shape (4H, C); got {W.shape}")
        _shape(self.name, "W", W, (4 * H, W.shape[1]), "(4H, C)")
        _shape(self.name, "b", b, (4 * H,), "(4H,)")
        if len({W.dtype, R.dtype, b.dtype}) > 1:
            raise self._error(
                f"W, R and b must share one dtype; got {W.dtype}, {R.dtype}, {b.dtype}"
            )
        self.params = LSTMParams(W, R, b)
        check_choice(self.output_mode, f"layer {self.name!r}: output_mode", ("sequence", "last"))
        self.act = LSTMActivations.from_names(self.gate_activation, self.state_activation)
        if self.initial_state is None:
            self.initial_state = LSTMState(np.zeros(H, W.dtype), np.zeros(H, W.dtype))
        h0, c0 = (
            _float_array(self.name, k, a)
            for k, a in zip(("h0", "c0"), self.initial_state, strict=True)
        )
        _shape(self.name, "h0", h0, (H,), "(H,)")
        _shape(self.name, "c0", c0, (H,), "(H,)")
        self.initial_state = LSTMState(h0, c0)

    @property
    def input_size(self) -> int:
        return self.params.W.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.params.R.shape[1]

    def output_width(self, input_width: int) -> int:
        self._check_input(input_width, self.input_size)
        return self.hidden_size

    def arrays(self) -> dict[str, Array]:
        h0, c0 = self._start
        return {**self.params._asdict(), "h0": h0, "c0": c0}

    def learnables(self) -> dict[str, Array]:
        return self.params._asdict()

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "output_mode": self.output_mode,
            "gate_activation": self.gate_activation,
            "state_activation": self.state_activation,
        }

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, Array]) -> LSTM:
        params = LSTMParams(arrays["W"], arrays["R"], arrays["b"])
        return cls(params, initial_state=LSTMState(arrays["h0"], arrays["c0"]), **config)

    def description(self) -> str:
        return f"LSTM with {self.hidden_size} hidden units"

    @property
    def _start(self) -> LSTMState:
        assert self.initial_state is not None  # __post_init__ sets it
        return self.initial_state

    def check_state(self, state: Any, dtype: np.dtype) -> LSTMState:
        """h and c, each (H,) — for every sequence — or (N, H), one row per sequence."""
        H = self.hidden_size
        if not isinstance(state, tuple) or len(state) != 2:
            raise self._error(f"a state is a pair (h, c) of arrays; got {type(state).__name__}")
        h, c = (check_float_array(a, f"state of {self.name!r}") for a in state)
        if h.shape != c.shape or h.shape[-1:] != (H,) or h.ndim not in (1, 2):
            raise InputError(
                f"state of {self.name!r}: h and c must both be ({H},) or (N, {H}); "
                f"got {h.shape} and {c.shape}"
            )
        what = f"state of {self.name!r}"
        return LSTMState(*(check_real_array(a, what, dtype) for a in (h, c)))  # finite once cast

    def gates(self, cache: LSTMCache) -> Gates:
        return cache.trace

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, LSTMCache]:
        """x (B, T, C) -> (B, T, H) or (B, H); ``state`` (B, H) each, default the initial state."""
        B, H = x.shape[0], self.hidden_size
        state0 = state or LSTMState(*(np.broadcast_to(s, (B, H)) for s in self._start))
        Y, final, trace = lstm_forward(self.params, x, state0, lengths, self.act)
        cache = LSTMCache(x=x, state0=state0, trace=trace, final_state=final, lengths=lengths)
        return (final.h if self.output_mode == "last" else Y), cache

    def backward(self, dy: Array, cache: LSTMCache) -> tuple[Array, Grads]:
        dx, grads, _, _ = self._bptt(dy, cache, keep_steps=False)
        return dx, grads._asdict()

    def backward_steps(self, dy: Array, cache: LSTMCache) -> tuple[LSTMParams, StepGradients]:
        """The gradients of :meth:`backward` and what every step of BPTT computed."""
        _, grads, _, steps = self._bptt(dy, cache, keep_steps=True)
        assert steps is not None  # kept on request
        return grads, steps

    def _bptt(
        self, dy: Array, cache: LSTMCache, keep_steps: bool
    ) -> tuple[Array, LSTMParams, LSTMState, StepGradients | None]:
        """:func:`lstm_backward` from dL/d(output) ``dy``: (B, H) for "last", (B, T, H) else."""
        if self.output_mode == "last":
            dY = np.zeros_like(cache.trace.h)  # (B, T, H): only the final h is an output
            d_final = LSTMState(dy, np.zeros_like(dy))
        else:
            dY = dy
            d_final = LSTMState(*(np.zeros_like(s) for s in cache.final_state))
        p, act = self.params, self.act
        x, state0, trace, lengths = cache.x, cache.state0, cache.trace, cache.lengths
        return lstm_backward(p, x, state0, trace, dY, d_final, lengths, act, keep_steps=keep_steps)


@dataclass(eq=False)
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
        self.weights = _float_array(self.name, "weights", self.weights)
        self.bias = _float_array(self.name, "bias", self.bias)
        if self.weights.ndim != 2 or 0 in self.weights.shape:
            raise self._error(
                f"weights must have shape (K, H), K, H >= 1; got {self.weights.shape}"
            )
        _shape(self.name, "bias", self.bias, (self.weights.shape[0],), "(K,)")

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


@dataclass(eq=False)
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


@dataclass(eq=False)
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


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (SequenceInput, LSTM, FullyConnected, Softmax, ClassificationOutput)
}


def layer_from_arrays(type_name: str, config: dict[str, Any], arrays: dict[str, Array]) -> Layer:
    """Rebuild a layer from its saved type name, config and arrays."""
    try:
        cls = LAYER_TYPES[type_name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown layer type {type_name!r}; expected one of {sorted(LAYER_TYPES)}"
        ) from None
    return cls.from_arrays(config, arrays)
