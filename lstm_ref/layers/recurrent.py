"""The LSTM layer: one direction, forward or reverse, with the cell variants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeGuard

import numpy as np

from .._checks import (
    check_choice,
    check_float_array,
    check_number,
    check_real_array,
)
from ..activations import parse_activation
from ..errors import InputError, InputTypeError
from ..lstm import (
    NO_VARIANT,
    CellVariant,
    Gates,
    LSTMActivations,
    LSTMParams,
    LSTMState,
    peephole_gradient,
    projection_gradient,
)
from ..lstm_loop import StepGradients, lstm_backward, lstm_forward, reverse_in_time
from .base import Grads, Layer, check_layer_shape, float_array

Array = np.ndarray


@dataclass(frozen=True)
class LSTMCache:
    """What the LSTM layer's backward pass needs, and the final state for the state API.

    ``x`` and ``trace`` are in the order the layer processed the steps (each sequence
    reversed in time for a reverse direction).
    """

    x: Array  # (B, T, C)
    state0: LSTMState  # each (B, H)
    trace: Gates  # each (B, T, H)
    final_state: LSTMState  # each (B, H)
    lengths: Array | None  # (B,) under masked padding


@dataclass(eq=False, repr=False)
class LSTM(Layer):
    """A long short-term memory layer (MATLAB's lstmLayer, one direction of nn.LSTM).

    ``output_mode``: "sequence" returns h_t at every step (B, T, H); "last" returns the
    final h (B, H). ``initial_state`` h_0 and c_0 are (H,) each; zeros by default.
    ``direction="reverse"`` runs each sequence from its own last step back to its first
    and returns the outputs in the original time order (ONNX's and PyTorch's reverse
    direction); "last" is then the state after the first step.

    The variants (see :class:`lstm_ref.lstm.CellVariant`): ``projection`` W_hr (P, H) —
    then R is (4H, P) and h_0 (P,) (PyTorch ``proj_size``); ``peephole`` (3, H) rows
    p_i, p_f, p_o; ``clip``; ``input_forget``; ``output_activation`` σ_h for
    h = o ⊙ σ_h(c) when it is not ``state_activation``. Activations are named as in
    :mod:`lstm_ref.activations`.

    ``bias_split`` (2, 4H), optional: b as the two terms a framework file stored (PyTorch's
    ``bias_ih`` and ``bias_hh``), kept so that its exporter writes them back; the layer
    computes with b alone.
    """

    params: LSTMParams
    name: str = "lstm"
    output_mode: Literal["sequence", "last"] = "sequence"
    gate_activation: str = "sigmoid"
    state_activation: str = "tanh"
    initial_state: LSTMState | None = None
    direction: Literal["forward", "reverse"] = "forward"
    projection: Array | None = None  # (P, H)
    peephole: Array | None = None  # (3, H) rows i, f, o
    clip: float | None = None
    input_forget: bool = False
    output_activation: str | None = None
    bias_split: Array | None = None  # (2, 4H): b's two stored terms

    TYPE: ClassVar[str] = "LSTM"
    L2_FACTORS: ClassVar[dict[str, float]] = {"W": 1.0, "R": 1.0, "b": 0.0}
    act: LSTMActivations = field(init=False, repr=False)
    variant: CellVariant | None = field(init=False, repr=False)  # None: the reference step

    def __post_init__(self) -> None:
        W, R, b = (float_array(self.name, k, a) for k, a in zip("WRb", self.params, strict=True))
        if self.projection is None and (
            R.ndim != 2 or R.shape[0] != 4 * R.shape[1] or R.shape[1] == 0
        ):
            raise self._error(
                "R must have shape (4H, H), four gate blocks i, f, g, o stacked, H >= 1; "
                f"got {R.shape}"
            )
        H = R.shape[1]
        if self.projection is not None:
            self.projection = float_array(self.name, "projection", self.projection)
            if self.projection.ndim != 2 or 0 in self.projection.shape:
                raise self._error(
                    f"projection must have shape (P, H), P, H >= 1; got {self.projection.shape}"
                )
            P, H = self.projection.shape
            check_layer_shape(self.name, "R", R, (4 * H, P), "(4H, P), the projected h fed back")
        if W.ndim != 2:
            raise self._error(f"W must have shape (4H, C); got {W.shape}")
        check_layer_shape(self.name, "W", W, (4 * H, W.shape[1]), "(4H, C)")
        check_layer_shape(self.name, "b", b, (4 * H,), "(4H,)")
        if self.bias_split is not None:
            self.bias_split = float_array(self.name, "bias_split", self.bias_split)
            check_layer_shape(self.name, "bias_split", self.bias_split, (2, 4 * H), "(2, 4H)")
            if self.bias_split.dtype != b.dtype:
                raise self._error(f"bias_split is {self.bias_split.dtype}; b is {b.dtype}")
        if len({W.dtype, R.dtype, b.dtype}) > 1:
            raise self._error(
                f"W, R and b must share one dtype; got {W.dtype}, {R.dtype}, {b.dtype}"
            )
        self.params = LSTMParams(W, R, b)
        check_choice(self.output_mode, f"layer {self.name!r}: output_mode", ("sequence", "last"))
        check_choice(self.direction, f"layer {self.name!r}: direction", ("forward", "reverse"))
        self.act = LSTMActivations.from_names(self.gate_activation, self.state_activation)
        H_out = R.shape[1]
        if self.initial_state is None:
            self.initial_state = LSTMState(np.zeros(H_out, W.dtype), np.zeros(H, W.dtype))
        h0, c0 = (
            float_array(self.name, k, a)
            for k, a in zip(("h0", "c0"), self.initial_state, strict=True)
        )
        check_layer_shape(
            self.name, "h0", h0, (H_out,), "(P,)" if self.projection is not None else "(H,)"
        )
        check_layer_shape(self.name, "c0", c0, (H,), "(H,)")
        self.initial_state = LSTMState(h0, c0)
        self.variant = self._variant(H)

    def _variant(self, H: int) -> CellVariant | None:
        """The cell's options beyond the reference step; None when it has none."""
        peephole = None
        if self.peephole is not None:
            peephole = float_array(self.name, "peephole", self.peephole)
            check_layer_shape(self.name, "peephole", peephole, (3, H), "(3, H), rows p_i, p_f, p_o")
            self.peephole = peephole
        if self.clip is not None:
            self.clip = check_number(self.clip, f"layer {self.name!r}: clip")
            if not self.clip > 0:
                raise self._error(f"clip must be positive; got {self.clip}")
        if not isinstance(self.input_forget, bool):
            raise InputTypeError(f"layer {self.name!r}: input_forget must be True or False")
        output = None
        if self.output_activation is not None:
            output = parse_activation(self.output_activation, "output")
        variant = CellVariant(peephole, self.clip, self.input_forget, output, self.projection)
        return variant if variant.used else None

    @property
    def input_size(self) -> int:
        return self.params.W.shape[1]

    @property
    def hidden_size(self) -> int:
        """H, the number of cells (the width of c)."""
        return self.params.W.shape[0] // 4

    @property
    def state_widths(self) -> tuple[int, int]:
        """The widths of h and c: (H, H), or (P, H) with a projection."""
        return self.params.R.shape[1], self.hidden_size

    def output_width(self, input_width: int) -> int:
        self._check_input(input_width, self.input_size)
        return self.state_widths[0]

    def arrays(self) -> dict[str, Array]:
        h0, c0 = self._start
        split = {} if self.bias_split is None else {"bias_split": self.bias_split}
        return {**self.params._asdict(), "h0": h0, "c0": c0, **self._variant_arrays(), **split}

    def learnables(self) -> dict[str, Array]:
        return {**self.params._asdict(), **self._variant_arrays()}

    def _variant_arrays(self) -> dict[str, Array]:
        """The arrays of the cell variants this layer has: projection W_hr, peepholes."""
        extra = {"projection": self.projection, "peephole": self.peephole}
        return {k: v for k, v in extra.items() if v is not None}

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "output_mode": self.output_mode,
            "gate_activation": self.gate_activation,
            "state_activation": self.state_activation,
            "direction": self.direction,
            "clip": self.clip,
            "input_forget": self.input_forget,
            "output_activation": self.output_activation,
        }

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, Array]) -> LSTM:
        params = LSTMParams(arrays["W"], arrays["R"], arrays["b"])
        start = LSTMState(arrays["h0"], arrays["c0"])
        projection, peephole = arrays.get("projection"), arrays.get("peephole")
        split = arrays.get("bias_split")
        return cls(
            params,
            initial_state=start,
            projection=projection,
            peephole=peephole,
            bias_split=split,
            **config,
        )

    def description(self) -> str:
        extras = [
            (f"projection to {self.state_widths[0]}", self.projection is not None),
            ("reverse", self.direction == "reverse"),
            ("peepholes", self.peephole is not None),
            (f"clip {self.clip:g}" if self.clip else "", self.clip is not None),
            ("input-forget", self.input_forget),
        ]
        shown = ", ".join(text for text, used in extras if used)
        return f"LSTM with {self.hidden_size} hidden units" + (f" ({shown})" if shown else "")

    @property
    def _start(self) -> LSTMState:
        assert self.initial_state is not None  # __post_init__ sets it
        return self.initial_state

    def check_state(self, state: Any, dtype: np.dtype) -> LSTMState:
        """h and c, each (H,) — for every sequence — or (N, H), one row per sequence."""
        return check_state_pair(self.name, state, dtype, self.state_widths)

    def gates(self, cache: LSTMCache) -> Gates:
        return Gates(*(self._in_time_order(v, cache.lengths) for v in cache.trace))

    def _in_time_order(self, y: Array, lengths: Array | None) -> Array:
        """(B, T, …) in processing order -> in time order (the same for one direction)."""
        return y if self.direction == "forward" else reverse_in_time(y, lengths)

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, LSTMCache]:
        """x (B, T, C) -> (B, T, H) or (B, H); ``state`` (B, H) each, default the initial state."""
        B = x.shape[0]
        state0 = state or LSTMState(*(np.broadcast_to(s, (B, len(s))) for s in self._start))
        xs = self._in_time_order(x, lengths)  # each sequence reversed for a reverse direction
        Y, final, trace = lstm_forward(self.params, xs, state0, lengths, self.act, self.variant)
        cache = LSTMCache(x=xs, state0=state0, trace=trace, final_state=final, lengths=lengths)
        return (final.h if self.output_mode == "last" else self._in_time_order(Y, lengths)), cache

    def backward(self, dy: Array, cache: LSTMCache) -> tuple[Array, Grads]:
        keep = bool(self._variant_arrays())  # their gradients come from every step's
        dx, grads, _, steps = self._bptt(dy, cache, keep_steps=keep)
        extra = {}
        if steps is not None:  # from what every step computed
            if self.projection is not None:  # dW_hr from what reached each h_t
                sigma_h = (self.variant or NO_VARIANT).sigma_h(self.act)
                extra["projection"] = projection_gradient(cache.trace, steps.dh, sigma_h)
            if self.peephole is not None:
                extra["peephole"] = peephole_gradient(cache.trace, cache.state0, steps.da)
        return self._in_time_order(dx, cache.lengths), {**grads._asdict(), **extra}

    def backward_steps(self, dy: Array, cache: LSTMCache) -> tuple[LSTMParams, StepGradients]:
        """The gradients of :meth:`backward` and what every step of BPTT computed (in the
        order the steps were processed)."""
        _, grads, _, steps = self._bptt(dy, cache, keep_steps=True)
        assert steps is not None  # kept on request
        return grads, steps

    def _bptt(
        self, dy: Array, cache: LSTMCache, keep_steps: bool
    ) -> tuple[Array, LSTMParams, LSTMState, StepGradients | None]:
        """:func:`lstm_backward` from dL/d(output) ``dy``: (B, H) for "last", (B, T, H) else."""
        if self.output_mode == "last":
            dY = np.zeros_like(cache.trace.h)  # (B, T, H): only the final h is an output
            d_final = LSTMState(dy, np.zeros_like(cache.final_state.c))
        else:
            dY = self._in_time_order(dy, cache.lengths)
            d_final = LSTMState(*(np.zeros_like(s) for s in cache.final_state))
        p, act = self.params, self.act
        x, state0, trace, lengths = cache.x, cache.state0, cache.trace, cache.lengths
        return lstm_backward(
            p, x, state0, trace, dY, d_final, lengths, act, self.variant, keep_steps=keep_steps
        )


def check_state_pair(name: str, state: Any, dtype: np.dtype, widths: tuple[int, int]) -> LSTMState:
    """A caller's (h, c) for layer ``name``: (Wh,) and (Wc,) — or (N, Wh) and (N, Wc)."""
    if not isinstance(state, tuple) or len(state) != 2:
        raise InputError(
            f"layer {name!r}: a state is a pair (h, c) of arrays; got {type(state).__name__}"
        )
    what = f"state of {name!r}"
    h, c = (check_float_array(a, what) for a in state)
    wh, wc = widths
    if (
        h.ndim not in (1, 2)
        or c.ndim != h.ndim
        or h.shape[:-1] != c.shape[:-1]
        or (h.shape[-1], c.shape[-1]) != widths
    ):
        pair = f"both be ({wh},) or (N, {wh})" if wh == wc else f"be ({wh},) and ({wc},), or rows"
        raise InputError(f"{what}: h and c must {pair}; got {h.shape} and {c.shape}")
    return LSTMState(*(check_real_array(a, what, dtype) for a in (h, c)))  # finite once cast


def forward_only(layer: Layer | None) -> TypeGuard[LSTM]:
    """Whether ``layer`` is one forward LSTM (no reverse direction)."""
    return isinstance(layer, LSTM) and layer.direction == "forward"


def reverse_sequence(layer: Layer | None) -> TypeGuard[LSTM]:
    """Whether ``layer`` is a reverse LSTM with per-step outputs (in time order)."""
    return (
        isinstance(layer, LSTM) and layer.direction == "reverse" and layer.output_mode == "sequence"
    )
