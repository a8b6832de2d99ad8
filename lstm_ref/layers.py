"""The layers of a sequence classifier: plain parameter containers with forward and backward.

Every layer has a ``name``, a display ``TYPE`` and a one-line :meth:`description` (the
columns of MATLAB's ``net.Layers`` table), ``forward(x) -> (y, cache)`` and
``backward(dy, cache) -> (dx, grads)``, ``arrays()`` (everything saved) and
``learnables()`` (the arrays training updates, by name). The recurrent layer (LSTM) also
takes the padding ``lengths`` and an initial state, and its cache holds the final state.

Shapes: B sequences, T time steps, C features, H hidden units, K classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from .lstm import LSTMActivations, LSTMParams, LSTMState, lstm_backward, lstm_forward

Array = np.ndarray


def check_shape(
    layer: str, what: str, array: Array, expected: tuple[int, ...], meaning: str
) -> None:
    """Raise a ValueError naming the layer, the array, and the shape expected and given."""
    if array.shape != expected:
        raise ValueError(
            f"layer {layer!r}: {what} must have shape {expected} = {meaning}; got {array.shape}"
        )


def as_float(array: Any, layer: str, what: str) -> Array:
    """An array of real floats (float64 unless already float32), or a clear TypeError."""
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"layer {layer!r}: {what} must hold real floats; got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"layer {layer!r}: {what} contains NaN or Inf")
    return a


class Layer:
    """Common behaviour; subclasses are dataclasses whose array fields are listed in ARRAYS."""

    TYPE: ClassVar[str]
    ARRAYS: ClassVar[tuple[str, ...]] = ()
    LEARNABLES: ClassVar[tuple[str, ...]] = ()
    recurrent: ClassVar[bool] = False
    name: str

    def description(self) -> str:
        raise NotImplementedError

    def arrays(self) -> dict[str, Array]:
        return {k: getattr(self, k) for k in self.ARRAYS if getattr(self, k) is not None}

    def learnables(self) -> dict[str, Array]:
        return {k: getattr(self, k) for k in self.LEARNABLES}

    def config(self) -> dict[str, Any]:
        """JSON-ready hyper-parameters (everything but the arrays)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name not in self.ARRAYS
        }

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, Array]) -> Layer:
        """Rebuild a layer from :meth:`config` and :meth:`arrays` (what a weight file holds)."""
        return cls(**config, **arrays)  # type: ignore[call-arg]

    def astype(self, dtype: np.dtype | type) -> Layer:
        """A copy whose arrays are of ``dtype``."""
        return self.from_arrays(
            self.config(), {k: v.astype(dtype) for k, v in self.arrays().items()}
        )


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
        C = self.input_size
        needs = {"none": (), "zerocenter": ("mean",), "zscore": ("mean", "std")}
        if self.normalization not in needs:
            raise ValueError(
                f"layer {self.name!r}: normalization must be one of {list(needs)}; "
                f"got {self.normalization!r}"
            )
        for what in ("mean", "std"):
            value = getattr(self, what)
            if what in needs[self.normalization]:
                if value is None:
                    raise ValueError(
                        f"layer {self.name!r}: {self.normalization!r} normalization needs {what}"
                    )
                value = as_float(value, self.name, what)
                check_shape(self.name, what, value, (C,), "(C,)")
                setattr(self, what, value)
            elif value is not None:
                raise ValueError(
                    f"layer {self.name!r}: {what} given but normalization is {self.normalization!r}"
                )
        if self.std is not None and (self.std <= 0).any():
            raise ValueError(f"layer {self.name!r}: std must be positive")

    def description(self) -> str:
        return f"Sequence input with {self.input_size} dimensions"

    def forward(self, x: Array) -> tuple[Array, None]:
        """x (B, T, C) -> normalised (B, T, C)."""
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return x, None

    def backward(self, dy: Array, cache: None) -> tuple[Array, dict[str, Array]]:
        return (dy if self.std is None else dy / self.std), {}


@dataclass(frozen=True)
class LSTMCache:
    """What the LSTM layer's backward pass needs, and the final state for the state API."""

    x: Array  # (B, T, C)
    state0: LSTMState  # each (B, H)
    trace: Any  # Gates, each (B, T, H)
    final: LSTMState  # each (B, H)
    lengths: Array | None  # (B,) under masked semantics


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
    recurrent: ClassVar[bool] = True
    act: LSTMActivations = field(init=False, repr=False)

    def __post_init__(self) -> None:
        W, R, b = (as_float(a, self.name, k) for k, a in zip("WRb", self.params, strict=True))
        if R.ndim != 2 or R.shape[0] != 4 * R.shape[1]:
            raise ValueError(
                f"layer {self.name!r}: R must have shape (4H, H), four gate blocks i, f, g, o "
                f"stacked; got {R.shape}"
            )
        H = R.shape[1]
        if W.ndim != 2:
            raise ValueError(f"layer {self.name!r}: W must have shape (4H, C); got {W.shape}")
        check_shape(self.name, "W", W, (4 * H, W.shape[1]), "(4H, C)")
        check_shape(self.name, "b", b, (4 * H,), "(4H,)")
        self.params = LSTMParams(W, R, b)
        if self.output_mode not in ("sequence", "last"):
            raise ValueError(
                f"layer {self.name!r}: output_mode must be 'sequence' or 'last'; "
                f"got {self.output_mode!r}"
            )
        self.act = LSTMActivations.from_names(self.gate_activation, self.state_activation)
        if self.initial_state is None:
            self.initial_state = LSTMState(np.zeros(H, W.dtype), np.zeros(H, W.dtype))
        h0, c0 = (
            as_float(a, self.name, k) for k, a in zip(("h0", "c0"), self.initial_state, strict=True)
        )
        check_shape(self.name, "h0", h0, (H,), "(H,)")
        check_shape(self.name, "c0", c0, (H,), "(H,)")
        self.initial_state = LSTMState(h0, c0)

    @property
    def input_size(self) -> int:
        return self.params.W.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.params.R.shape[1]

    def arrays(self) -> dict[str, Array]:
        h0, c0 = self.initial_state
        return {**self.params._asdict(), "h0": h0, "c0": c0}

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

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, LSTMCache]:
        """x (B, T, C) -> (B, T, H) or (B, H); ``state`` (B, H) each, default the initial state."""
        B = x.shape[0]
        state0 = state or LSTMState(
            *(np.broadcast_to(s, (B, self.hidden_size)) for s in self.initial_state)
        )
        Y, final, trace = lstm_forward(self.params, x, state0, lengths, self.act)
        cache = LSTMCache(x=x, state0=state0, trace=trace, final=final, lengths=lengths)
        return (final.h if self.output_mode == "last" else Y), cache

    def backward(self, dy: Array, cache: LSTMCache) -> tuple[Array, dict[str, Array]]:
        if self.output_mode == "last":
            dY = np.zeros_like(cache.trace.h)
            d_final = LSTMState(dy, np.zeros_like(dy))
        else:
            dY = dy
            d_final = LSTMState(*(np.zeros_like(s) for s in cache.final))
        dx, grads, _ = lstm_backward(
            self.params, cache.x, cache.state0, cache.trace, dY, d_final, cache.lengths, self.act
        )
        return dx, grads._asdict()

    def learnables(self) -> dict[str, Array]:
        return self.params._asdict()


@dataclass(eq=False)
class FullyConnected(Layer):
    """y = x Wᵀ + b on the last axis (MATLAB's fullyConnectedLayer)."""

    weights: Array  # (K, H)
    bias: Array  # (K,)
    name: str = "fc"

    TYPE: ClassVar[str] = "Fully Connected"
    ARRAYS: ClassVar[tuple[str, ...]] = ("weights", "bias")
    LEARNABLES: ClassVar[tuple[str, ...]] = ("weights", "bias")

    def __post_init__(self) -> None:
        self.weights = as_float(self.weights, self.name, "weights")
        self.bias = as_float(self.bias, self.name, "bias")
        if self.weights.ndim != 2:
            raise ValueError(
                f"layer {self.name!r}: weights must have shape (K, H); got {self.weights.shape}"
            )
        check_shape(self.name, "bias", self.bias, (self.output_size,), "(K,)")

    @property
    def input_size(self) -> int:
        return self.weights.shape[1]

    @property
    def output_size(self) -> int:
        return self.weights.shape[0]

    def description(self) -> str:
        return f"{self.output_size} fully connected layer"

    def forward(self, x: Array) -> tuple[Array, Array]:
        """x (..., H) -> (..., K)."""
        return x @ self.weights.T + self.bias, x

    def backward(self, dy: Array, x: Array) -> tuple[Array, dict[str, Array]]:
        dy2, x2 = dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])
        return dy @ self.weights, {"weights": dy2.T @ x2, "bias": dy2.sum(axis=0)}


@dataclass(eq=False)
class Softmax(Layer):
    """p = exp(y) / Σ exp(y) on the last axis, computed without overflow."""

    name: str = "softmax"

    TYPE: ClassVar[str] = "Softmax"

    def description(self) -> str:
        return "softmax"

    def forward(self, x: Array) -> tuple[Array, Array]:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        return p, p

    def backward(self, dy: Array, p: Array) -> tuple[Array, dict[str, Array]]:
        return p * (dy - (dy * p).sum(axis=-1, keepdims=True)), {}


@dataclass(eq=False)
class ClassificationOutput(Layer):
    """Names the classes of the probabilities it passes through (MATLAB's classificationLayer)."""

    class_names: tuple[str, ...]
    name: str = "classoutput"

    TYPE: ClassVar[str] = "Classification Output"

    def __post_init__(self) -> None:
        self.class_names = tuple(str(c) for c in self.class_names)
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(
                f"layer {self.name!r}: class_names must be at least two distinct names; "
                f"got {self.class_names}"
            )

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "class_names": list(self.class_names)}

    def description(self) -> str:
        first, others = self.class_names[0], len(self.class_names) - 1
        return f"crossentropyex with '{first}' and {others} other classes"

    def forward(self, x: Array) -> tuple[Array, None]:
        return x, None

    def backward(self, dy: Array, cache: None) -> tuple[Array, dict[str, Array]]:
        return dy, {}


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (SequenceInput, LSTM, FullyConnected, Softmax, ClassificationOutput)
}


def layer_from_arrays(type_name: str, config: dict[str, Any], arrays: dict[str, Array]) -> Layer:
    """Rebuild a layer from its saved type name, config and arrays."""
    try:
        cls = LAYER_TYPES[type_name]
    except KeyError:
        raise ValueError(
            f"unknown layer type {type_name!r}; expected one of {sorted(LAYER_TYPES)}"
        ) from None
    return cls.from_arrays(config, arrays)
