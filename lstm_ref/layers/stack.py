"""The LSTM stack: recurrent layers run in order, its "last" every layer's final h."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from .._checks import check_choice
from ..errors import InputError, InputTypeError
from ..lstm import Gates, LSTMState
from .base import Grads, Layer
from .bidirectional import BiLSTM, directions
from .recurrent import LSTM, check_state_pair

Array = np.ndarray
PARTS: dict[str, type[LSTM] | type[BiLSTM]] = {"LSTM": LSTM, "BiLSTM": BiLSTM}


@dataclass(frozen=True)
class LSTMStackCache:
    """Each layer's cache, in order, and the joint final state."""

    caches: tuple[Any, ...]
    final_state: LSTMState  # every layer's h, then (in a second array) every layer's c
    steps: int  # T
    lengths: Array | None  # (B,) under masked padding


@dataclass(eq=False, repr=False)
class LSTMStack(Layer):
    """Recurrent layers run in order, each reading the sequence of the one before (PyTorch's
    ``nn.LSTM(num_layers=L)``), for a head that reads *every* layer's final state.

    ``output_mode="sequence"``: the top layer's output at every step (B, T, W_top).
    ``output_mode="last"``: every layer's final h concatenated in layer order, (B, Σ Wh_k) —
    a :class:`BiLSTM`'s as its state reads it, forward ‖ reverse — which is PyTorch's
    ``h_n.permute(1, 0, 2).reshape(B, -1)`` (``torch.cat(list(h_n), 1)``).

    Each layer is an :class:`LSTM` or a :class:`BiLSTM` with output_mode "sequence". Its state
    is the layers' states concatenated in layer order, h with h and c with c (as a BiLSTM's
    is its directions'); its learnables and arrays are the layers' under their names
    (``"lstm1/W"``, ``"bilstm2/forward/W"``).
    """

    layers: list[LSTM | BiLSTM]
    name: str = "lstm_stack"
    output_mode: Literal["sequence", "last"] = "last"

    TYPE: ClassVar[str] = "LSTMStack"
    initial_state: LSTMState | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.layers, list | tuple) or not self.layers:
            raise self._error("layers must be a non-empty list of LSTM and BiLSTM layers")
        self.layers = list(self.layers)
        for k, layer in enumerate(self.layers):
            if type(layer) not in (LSTM, BiLSTM):
                raise InputTypeError(
                    f"layer {self.name!r}: item {k} must be an LSTM or BiLSTM layer; got "
                    f"{type(layer).__name__}"
                )
            if layer.output_mode != "sequence":
                raise self._error(
                    f"layer {layer.name!r} must have output_mode 'sequence' (the next layer, "
                    f"or the stack's own output_mode, reads it); got {layer.output_mode!r}"
                )
        check_choice(self.output_mode, f"layer {self.name!r}: output_mode", ("sequence", "last"))
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names) or any("/" in n for n in names):
            raise self._error(f"its layers need distinct names without '/'; got {names}")
        dtypes = {a.dtype for layer in self.layers for a in layer.arrays().values()}
        if len(dtypes) > 1:
            raise self._error(f"its layers must hold one dtype; got {sorted(map(str, dtypes))}")
        width = self.input_size
        for layer in self.layers:
            width = layer.output_width(width)  # names the layer whose input differs
        if self.output_mode == "last":
            merged = [
                x.name for x in self.layers if isinstance(x, BiLSTM) and x.merge_mode != "concat"
            ]
            if merged:
                raise self._error(
                    f"output_mode 'last' reads each direction's final h from the outputs: "
                    f"BiLSTM {merged[0]!r} must have merge_mode 'concat'"
                )
        starts = [layer.initial_state for layer in self.layers]
        self.initial_state = LSTMState(
            *(np.concatenate([getattr(s, k) for s in starts]) for k in ("h", "c"))
        )

    @property
    def input_size(self) -> int:
        return directions(self.layers[0])[0].input_size

    @property
    def state_widths(self) -> tuple[int, int]:
        """The widths of h and c: the layers' summed."""
        widths = [layer.state_widths for layer in self.layers]
        return sum(w[0] for w in widths), sum(w[1] for w in widths)

    @property
    def L2_FACTORS(self) -> dict[str, float]:  # type: ignore[override]
        """Each layer's factors, under its name."""
        return {f"{x.name}/{k}": v for x in self.layers for k, v in x.L2_FACTORS.items()}

    def output_width(self, input_width: int) -> int:
        width = input_width
        for layer in self.layers:
            width = layer.output_width(width)
        return self.state_widths[0] if self.output_mode == "last" else width

    def description(self) -> str:
        parts = ", ".join(layer.description() for layer in self.layers)
        read = "every layer's final h" if self.output_mode == "last" else "the top layer's outputs"
        return f"{len(self.layers)} stacked layers ({parts}); output {read}"

    # ------------------------------------------------------------ stored arrays
    def arrays(self) -> dict[str, Array]:
        return {f"{x.name}/{k}": v for x in self.layers for k, v in x.arrays().items()}

    def learnables(self) -> dict[str, Array]:
        return {f"{x.name}/{k}": v for x in self.layers for k, v in x.learnables().items()}

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "output_mode": self.output_mode,
            "layers": [{"type": x.TYPE, "config": x.config()} for x in self.layers],
        }

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, Array]) -> LSTMStack:
        layers, used = [], set()
        for spec in config["layers"]:
            kind, own_config = spec["type"], spec["config"]
            if kind not in PARTS:
                raise InputError(f"a stack holds LSTM and BiLSTM layers; got type {kind!r}")
            prefix = f"{own_config['name']}/"
            own = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            used |= {prefix + k for k in own}
            layers.append(PARTS[kind].from_arrays(own_config, own))
        if set(arrays) - used:
            raise InputError(
                f"stack {config['name']!r}: arrays {sorted(set(arrays) - used)} belong to none "
                "of its layers"
            )
        return cls(layers, config["name"], config["output_mode"])  # type: ignore[arg-type]

    # ---------------------------------------------------------------------- state
    def check_state(self, state: Any, dtype: np.dtype) -> LSTMState:
        """h and c of every layer concatenated in layer order: (ΣWh,) and (ΣWc,), or rows."""
        return check_state_pair(self.name, state, dtype, self.state_widths)

    def split_state(self, state: LSTMState) -> list[LSTMState]:
        """The joint (…, ΣWh) and (…, ΣWc) state as each layer's, in order."""
        return [LSTMState(state.h[..., h], state.c[..., c]) for h, c in self.columns()]

    def columns(self) -> list[tuple[slice, slice]]:
        """Where each layer's h and c sit in the joint state."""
        columns, h0, c0 = [], 0, 0
        for layer in self.layers:
            wh, wc = layer.state_widths
            columns.append((slice(h0, h0 + wh), slice(c0, c0 + wc)))
            h0, c0 = h0 + wh, c0 + wc
        return columns

    def gates(self, cache: LSTMStackCache) -> Gates:
        """Every layer's trace side by side, layer 0's units first (a BiLSTM's forward units
        before its reverse ones), in time order."""
        traces = [x.gates(c) for x, c in zip(self.layers, cache.caches, strict=True)]
        return Gates(*(np.concatenate(each, axis=-1) for each in zip(*traces, strict=True)))

    # ------------------------------------------------------------------ computing
    def forward(
        self, x: Array, lengths: Array | None = None, state: LSTMState | None = None
    ) -> tuple[Array, LSTMStackCache]:
        """x (B, T, C) -> the top layer's outputs (B, T, W_top), or every layer's final h
        (B, ΣWh) for output_mode "last"."""
        starts = [None] * len(self.layers) if state is None else self.split_state(state)
        y, caches = x, []
        for layer, start in zip(self.layers, starts, strict=True):
            y, cache = layer.forward(y, lengths, start)
            caches.append(cache)
        ends = [c.final_state for c in caches]
        final = LSTMState(*(np.concatenate(each, axis=-1) for each in zip(*ends, strict=True)))
        out = final.h if self.output_mode == "last" else y
        return out, LSTMStackCache(tuple(caches), final, x.shape[1], lengths)

    def backward(self, dy: Array, cache: LSTMStackCache) -> tuple[Array, Grads]:
        """dy (B, T, W_top) or (B, ΣWh) -> dx (B, T, C). A direction's final h is its output
        at the last step it processed: a forward one's at each row's step n−1, a reverse
        one's at step 0 — so the gradient of a final h joins the outputs' gradient there (a
        row of no steps ends in its initial state, which no learnable reaches)."""
        grads: Grads = {}
        last = self.output_mode == "last"
        d_seq = dy
        if last:  # every BiLSTM merges by concatenation: the top's outputs are as wide as h
            d_seq = np.zeros((len(dy), cache.steps, self.layers[-1].state_widths[0]), dy.dtype)
        for k in reversed(range(len(self.layers))):
            layer = self.layers[k]
            if last:
                d_final = dy[:, self.columns()[k][0]]
                d_seq = d_seq + self._final_h_at_steps(layer, d_final, cache)
            d_seq, own = layer.backward(d_seq, cache.caches[k])
            grads.update({f"{layer.name}/{n}": g for n, g in own.items()})
        return d_seq, grads

    def _final_h_at_steps(
        self, layer: LSTM | BiLSTM, d_final: Array, cache: LSTMStackCache
    ) -> Array:
        """``d_final`` (B, Wh), the gradient of ``layer``'s final h, placed on its outputs
        (B, T, Wh) where each direction's final h was output."""
        B, T = d_final.shape[0], cache.steps
        n = np.full(B, T) if cache.lengths is None else np.asarray(cache.lengths)
        rows = np.flatnonzero(n > 0)
        d = np.zeros((B, T, d_final.shape[1]), d_final.dtype)
        at = 0
        for one in directions(layer):
            w = one.state_widths[0]
            step = n[rows] - 1 if one.direction == "forward" else 0
            d[rows, step, at : at + w] = d_final[rows, at : at + w]
            at += w
        return d
