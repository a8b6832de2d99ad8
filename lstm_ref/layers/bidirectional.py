"""The bidirectional LSTM: a forward and a reverse :class:`LSTM`, their outputs merged."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np

from .._checks import check_choice
from ..errors import InputError
from ..lstm import Gates, LSTMState
from .base import Grads, Layer
from .recurrent import LSTM, LSTMCache, check_state_pair

if TYPE_CHECKING:
    from .stack import LSTMStack

Array = np.ndarray


@dataclass(frozen=True)
class BiLSTMCache:
    """The two directions' caches, their outputs (for ``mul``), and the joint final state."""

    forward: LSTMCache
    backward: LSTMCache
    y_forward: Array
    y_backward: Array
    final_state: LSTMState  # h and c of the forward direction, then the reverse's


MERGES: dict[str, Callable[[Array, Array], Array]] = {  # the two directions' outputs, merged
    "concat": lambda f, b: np.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mul": lambda f, b: f * b,
    "ave": lambda f, b: (f + b) / 2,
}
MERGE_MODES = tuple(MERGES)


@dataclass(eq=False, repr=False)
class BiLSTM(Layer):
    """A bidirectional LSTM: a forward and a reverse :class:`LSTM` over the same input.

    Their outputs are merged: ``"concat"`` [forward ‖ reverse] (MATLAB, PyTorch, ONNX,
    Keras's default), or Keras's ``"sum"``, ``"mul"``, ``"ave"``. Its state is the two
    directions' states concatenated, forward first (MATLAB's bilstmLayer).

    With ``output_mode="last"`` (both directions'), ``last`` says what "last" reads:
    ``"state"`` — each direction's final h, for the reverse one the state after each
    sequence's *first* step (PyTorch's ``h_n``, Keras's Bidirectional); ``"step"`` — the
    output at each sequence's last step, where the reverse direction has seen that one step
    only (MATLAB's bilstmLayer 'last', PyTorch's ``output[:, -1]``, ONNX's ``Y[-1]``).
    """

    fwd: LSTM
    bwd: LSTM
    name: str = "bilstm"
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"
    last: Literal["state", "step"] = "state"

    TYPE: ClassVar[str] = "BiLSTM"
    L2_FACTORS: ClassVar[dict[str, float]] = {
        f"{d}/{k}": v for d in ("forward", "backward") for k, v in LSTM.L2_FACTORS.items()
    }
    initial_state: LSTMState | None = field(init=False, default=None)
    _reverse_steps: LSTM = field(init=False, repr=False)  # bwd with every step's output

    def __post_init__(self) -> None:
        for what, layer, direction in (("fwd", self.fwd, "forward"), ("bwd", self.bwd, "reverse")):
            if not isinstance(layer, LSTM) or layer.direction != direction:
                raise self._error(f"{what} must be an LSTM layer with direction {direction!r}")
        check_choice(self.merge_mode, f"layer {self.name!r}: merge_mode", MERGE_MODES)
        if self.fwd.output_mode != self.bwd.output_mode:
            raise self._error("both directions must have the same output_mode")
        if self.fwd.input_size != self.bwd.input_size:
            raise self._error(
                f"both directions must take the same inputs; got {self.fwd.input_size} and "
                f"{self.bwd.input_size}"
            )
        if self.merge_mode != "concat" and self.fwd.state_widths != self.bwd.state_widths:
            raise self._error(f"merge_mode {self.merge_mode!r} needs two outputs of one width")
        check_choice(self.last, f"layer {self.name!r}: last", ("state", "step"))
        if self.last == "step" and self.output_mode != "last":
            raise self._error('last="step" needs output_mode "last" in both directions')
        self.initial_state = LSTMState(
            *(np.concatenate(pair) for pair in zip(self.fwd._start, self.bwd._start, strict=True))
        )
        self._reverse_steps = dataclasses.replace(self.bwd, output_mode="sequence")

    @property
    def output_mode(self) -> str:
        return self.fwd.output_mode

    @property
    def hidden_size(self) -> int:
        return self.fwd.hidden_size

    @property
    def state_widths(self) -> tuple[int, int]:
        (hf, cf), (hb, cb) = self.fwd.state_widths, self.bwd.state_widths
        return hf + hb, cf + cb

    def output_width(self, input_width: int) -> int:
        width = self.fwd.output_width(input_width)
        return width + self.bwd.output_width(input_width) if self.merge_mode == "concat" else width

    def description(self) -> str:
        merge = "" if self.merge_mode == "concat" else f" (merge {self.merge_mode})"
        return f"BiLSTM with {self.hidden_size} hidden units{merge}"

    def _last_steps(self, y: Array, lengths: Array | None) -> Array:
        """The row of each sequence's last step: (B,) indices into the time axis of y."""
        return np.full(len(y), y.shape[1] - 1) if lengths is None else np.asarray(lengths) - 1

    def _directions(self) -> dict[str, LSTM]:
        return {"forward": self.fwd, "backward": self.bwd}

    def arrays(self) -> dict[str, Array]:
        return {
            f"{d}/{k}": v
            for d, lstm in self._directions().items()
            for k, v in lstm.arrays().items()
        }

    def learnables(self) -> dict[str, Array]:
        return {
            f"{d}/{k}": v
            for d, lstm in self._directions().items()
            for k, v in lstm.learnables().items()
        }

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "merge_mode": self.merge_mode,
            "last": self.last,
            **{d: lstm.config() for d, lstm in self._directions().items()},
        }

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, Array]) -> BiLSTM:
        def half(d: str) -> LSTM:
            own = {k.partition("/")[2]: v for k, v in arrays.items() if k.startswith(f"{d}/")}
            return LSTM.from_arrays(config[d], own)

        last = config.get("last", "state")
        return cls(half("forward"), half("backward"), config["name"], config["merge_mode"], last)

    def check_state(self, state: Any, dtype: np.dtype) -> LSTMState:
        """h and c of both directions concatenated, forward first: (2H,) or (N, 2H)."""
        return check_state_pair(self.name, state, dtype, self.state_widths)

    def _split(self, state: LSTMState) -> tuple[LSTMState, LSTMState]:
        (hf, cf) = self.fwd.state_widths
        return (
            LSTMState(state.h[..., :hf], state.c[..., :cf]),
            LSTMState(state.h[..., hf:], state.c[..., cf:]),
        )

    def gates(self, cache: BiLSTMCache) -> Gates:
        """Both directions' traces side by side, forward units first, in time order."""
        both = zip(self.fwd.gates(cache.forward), self.bwd.gates(cache.backward), strict=True)
        return Gates(*(np.concatenate(pair, axis=-1) for pair in both))

    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, BiLSTMCache]:
        """x (B, T, C) -> merged outputs (B, T, ·) or (B, ·)."""
        s_f, s_b = (None, None) if state is None else self._split(state)
        y_f, c_f = self.fwd.forward(x, lengths, s_f)
        if self.last == "step":  # the reverse output at each sequence's last step
            steps, c_b = self._reverse_steps.forward(x, lengths, s_b)
            y_b = steps[np.arange(len(steps)), self._last_steps(steps, lengths)]
        else:
            y_b, c_b = self.bwd.forward(x, lengths, s_b)
        merged = MERGES[self.merge_mode](y_f, y_b)
        final = LSTMState(
            *(
                np.concatenate(p, axis=-1)
                for p in zip(c_f.final_state, c_b.final_state, strict=True)
            )
        )
        return merged, BiLSTMCache(c_f, c_b, y_f, y_b, final)

    def backward(self, dy: Array, cache: BiLSTMCache) -> tuple[Array, Grads]:
        W = cache.y_forward.shape[-1]
        dy_f, dy_b = {
            "concat": lambda: (dy[..., :W], dy[..., W:]),
            "sum": lambda: (dy, dy),
            "mul": lambda: (dy * cache.y_backward, dy * cache.y_forward),
            "ave": lambda: (dy / 2, dy / 2),
        }[self.merge_mode]()
        dx_f, g_f = self.fwd.backward(dy_f, cache.forward)
        if self.last == "step":
            x = cache.backward.x
            dY = np.zeros((*x.shape[:2], dy_b.shape[-1]), dy_b.dtype)
            rows = np.arange(len(x))
            dY[rows, self._last_steps(x, cache.backward.lengths)] = dy_b
            dx_b, g_b = self._reverse_steps.backward(dY, cache.backward)
        else:
            dx_b, g_b = self.bwd.backward(dy_b, cache.backward)
        grads = {**{f"forward/{k}": v for k, v in g_f.items()}}
        grads.update({f"backward/{k}": v for k, v in g_b.items()})
        return dx_f + dx_b, grads


def directions(layer: LSTM | BiLSTM | LSTMStack) -> list[LSTM]:
    """The one-direction LSTMs of ``layer``: itself, a BiLSTM's forward and reverse, or
    those of every layer of an LSTMStack in order (PyTorch's h_n rows: layer 0 forward,
    layer 0 reverse, layer 1 forward, …)."""
    if isinstance(layer, BiLSTM):
        return [layer.fwd, layer.bwd]
    if isinstance(layer, LSTM):
        return [layer]
    return [one for part in layer.layers for one in directions(part)]


T = TypeVar("T")


def shared_by_directions(
    layer: LSTM | BiLSTM | LSTMStack, what: str, value: Callable[[LSTM], T]
) -> T:
    """``value`` of ``layer``'s directions, which must agree: for a format that stores
    ``what`` once for both directions of a bidirectional layer (an InputError if not)."""
    values = [value(one) for one in directions(layer)]
    if any(v != values[0] for v in values[1:]):
        raise InputError(
            f"layer {layer.name!r}: this format stores one {what} for both directions; "
            f"the directions have {values}"
        )
    return values[0]
