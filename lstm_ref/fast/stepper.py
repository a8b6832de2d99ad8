"""The streaming stepper: one step (or one chunk) at a time, the state held inside.

It runs the compiled layers of :mod:`lstm_ref.fast.step` on preallocated one-row buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import check_real_array
from ..errors import InputError
from ..layers import LSTM, BiLSTM, Layer, LSTMStack, TimeReversal, directions
from ..lstm import LSTMState
from ..sequences import as_sequence_list
from .engine import FastNetwork
from .step import Work, all_finite, fast_steps, within

Array = np.ndarray


class Stepper:
    """Streaming inference: one step (or one chunk) at a time, the state held inside.

    Made from a network — ``net.stepper(outputs="lstm")`` — it starts from the network's
    current state and takes a snapshot of its weights (make a new stepper after changing
    them). ``step(x_t)`` equals ``net.predict(x_t[None], outputs=..., return_state=True)``
    followed by ``net.state = state``, for an (H,) state; ``run(X)`` does the same for a
    chunk (T, C). A network the fast path does not cover steps through the reference.
    A network with a reverse direction up to layer ``outputs`` (a reverse LSTM, a BiLSTM,
    an LSTMStack holding one, a TimeReversal) cannot be stepped: an InputError names it.
    Under the network's Keras Masking (``Padding.keras``) a step whose features all equal
    the mask value is skipped, as Keras skips it over a whole sequence: the state is kept and
    the previous step's output returned again (an InputError if no step has been computed
    yet), in ``step`` and in ``run`` alike.

    Each step's input is checked with one ``abs`` and one dot product
    (:func:`~lstm_ref.fast.step.within`): every |x_i| must be finite and small enough that
    no pre-activation can overflow (then no value can become NaN or Inf, and the output
    needs no check of its own). A larger x goes through the full check.

    Parameters
    ----------
    net : Network
    outputs : str, optional
        The layer whose activations to return (default the last layer).
    """

    def __init__(self, net: Any, outputs: str | None = None):
        upto = len(net.layers) - 1 if outputs is None else net.layers.index(net.layer(outputs))
        reader = reverse_reader(net.layers[: upto + 1])
        if reader is not None:
            raise InputError(
                f"this network cannot be stepped: {reader}, reading each sequence from its "
                "end (its output at step t depends on the steps after t); predict whole "
                "sequences, or step the layers before it (stepper(outputs=...))"
            )
        self._net = type(net)(net.layers, net.class_names or None, net.padding)  # its own state
        self._net.state = net.state
        self._mask = net.padding.mask_value  # Keras's Masking: steps equal to it are skipped
        self._last: Array | None = None  # the last step's output, for a skipped step
        recurrent = [x for x in net.layers[: upto + 1] if x.initial_state is not None]
        self._per_step = not recurrent or getattr(recurrent[-1], "output_mode", "") != "last"
        self._outputs = outputs
        self.input_size, self.dtype = net.input_size, net.dtype
        engine = FastNetwork.compile(net.layers[: upto + 1])
        self._engine = engine if engine is not None and engine.simple else None
        start = net.state  # (H,) or (1, H) rows
        if any(s.h.ndim == 2 and s.h.shape[0] != 1 for s in start.values()):
            raise InputError("a stepper runs one sequence: the network's state holds several rows")
        self._half = np.array(0.5, dtype=self.dtype)
        self._plan: list[tuple[Array, Work, Array, Array | None]] = []
        if self._engine is not None:
            lstms = self._engine.lstms
            works = [Work.make(f, 1, in_place=True) for f in lstms]
            for k, (f, work) in enumerate(zip(lstms, works, strict=True)):
                nxt = works[k + 1].Z[0, : f.H] if k + 1 < len(lstms) else None
                self._plan.append((f.M, work, work.h0, nxt))
            self._zx = works[0].Z[0, : lstms[0].C]
        self._sums = (
            [_weight_sums(f.M, f.C, f.H) for f in self._engine.lstms] if self._engine else []
        )
        self.reset(start)

    # ---------------------------------------------------------------------- state
    def reset(self, state: dict[str, LSTMState] | None = None) -> None:
        """Back to the layers' initial state (or to ``state``, (H,) per LSTM layer)."""
        self._last = None
        if self._engine is None:
            self._net.reset_state() if state is None else setattr(self._net, "state", state)
            return
        hmax = 1.0  # |h| after any step; the starting h may be larger
        for f, (_, work, h, _) in zip(self._engine.lstms, self._plan, strict=True):
            h0, c0 = (f.h0, f.c0) if state is None else state[f.name]
            h[:], work.buf.c[:] = np.reshape(h0, -1), np.reshape(c0, -1)
            hmax = max(hmax, float(np.abs(h).max()))
        self._bound, self._check_out = self._input_bound(hmax)

    def _input_bound(self, hmax: float) -> tuple[float, bool]:
        """The bound on |x| below which no pre-activation can overflow (and the input
        normalisation cannot), and whether the output needs a check of its own (heads, or
        weights so large that no bound keeps every layer finite)."""
        assert self._engine is not None
        big = float(np.finfo(self.dtype).max) / 4
        limit, safe = self._engine.limit, True
        for k, (per_x, per_h, bias) in enumerate(self._sums):
            room = float((big - (hmax * per_h + bias)).min())
            if k == 0:
                limit = min(limit, room / max(per_x, 1e-300))
            safe = safe and room > 0 and (k == 0 or per_x * hmax < room)
        return max(limit, 0.0), bool(self._engine.heads) or not safe

    @property
    def state(self) -> dict[str, LSTMState]:
        """A copy of the held state: h and c, (H,) each, by LSTM layer name."""
        if self._engine is None:
            return self._net.state
        return {
            f.name: LSTMState(h.copy(), work.buf.c.copy())
            for f, (_, work, h, _) in zip(self._engine.lstms, self._plan, strict=True)
        }

    # ------------------------------------------------------------------ computing
    def step(self, x: Array) -> Array:
        """One time step: ``x`` (C,) in, the layer's activations at this step out, (W,)."""
        return self._step(x) if self._mask is None else self._masked_step(x)

    def _step(self, x: Any) -> Array:
        """One step computed (``step`` without Keras's Masking)."""
        if self._engine is None:
            y, state = self._net.predict(self._one_step(x)[None], self._outputs, return_state=True)
            self._net.state = state
            return y[0] if y.ndim == 2 else y
        zx = self._zx
        if type(x) is np.ndarray and x.shape == zx.shape and x.dtype == self.dtype:
            zx[:] = x
        else:
            zx[:] = self._one_step(x)
        if not within(zx, self._bound):
            self._one_step(x)  # raises, or x is fine after all
        half = self._half
        for M, work, h, nxt in self._plan:
            fast_steps(M, work.steps, work.buf, half)
            if nxt is not None:
                nxt[:] = h
        y = h.copy()
        for layer in self._engine.heads:
            y, _ = layer.forward(y)
        if self._check_out and not all_finite(y):
            raise InputError(
                f"a layer overflowed {self.dtype} at this step (a non-finite value): the "
                "inputs, state or weights are too large; reset() the stepper"
            )
        return y

    def run(self, X: Array) -> Array:
        """A chunk of steps, ``X`` (T, C): what ``net.predict(X, outputs=...)`` returns from
        the held state ((T, W), or (W,) for an output mode "last"); the state is carried on."""
        if self._engine is None and self._mask is None:
            y, state = self._net.predict(X, self._outputs, return_state=True)
            self._net.state = state
            return y
        if not isinstance(X, np.ndarray) or X.ndim != 2:
            raise InputError(f"expected one chunk of steps (T, C); got {np.shape(X)}")
        seqs, _ = as_sequence_list(X, self.input_size, dtype=self.dtype)
        if self._mask is not None:  # step by step: a skipped step repeats the last output
            ys = [self._masked_step(x) for x in seqs[0]]
            return np.stack(ys) if self._per_step else ys[-1]
        assert self._engine is not None
        done = self._engine.run_one(seqs[0], self.state)
        if done is None:
            raise InputError(
                "a value overflowed the network's dtype in this chunk (a non-finite value): "
                "the inputs, state or weights are too large; reset() the stepper"
            )
        y, final = done
        self.reset(final)
        return y

    def _masked_step(self, x: Any) -> Array:
        """``step`` under Keras's Masking: a step equal to the mask value skipped."""
        plain = type(x) is np.ndarray and x.dtype == self.dtype  # checked by _step, once
        a = x if plain and x.shape == (self._net.input_size,) else self._one_step(x)
        if not (a == self.dtype.type(self._mask)).all():
            y = self._step(a)
            self._last = y.copy()
            return y
        if self._last is None:
            raise InputError(
                f"every feature of this step equals the mask value {self._mask:g} of the "
                "network's Masking, so Keras skips it, and no step has been computed yet: "
                "there is no output to repeat"
            )
        return self._last.copy()

    def _one_step(self, x: Any) -> Array:
        """``x`` checked as one step (C,) of real numbers, cast, finite, and within the
        range the input normalisation can take (else an InputError)."""
        a = np.asarray(x)
        if a.shape != (self.input_size,):
            raise InputError(f"expected one step of shape ({self.input_size},); got {a.shape}")
        a = check_real_array(a, "x", self.dtype, axes=("feature",))
        norm = self._net.layers[0]
        if norm.mean is not None:
            with np.errstate(over="ignore"):
                y, _ = norm.forward(a)
            if not np.isfinite(y).all():
                raise InputError(
                    f"layer {norm.name!r} overflowed {self.dtype} at this step (a non-finite "
                    "value): the input is too large for the normalisation"
                )
        return a


def reverse_reader(layers: Sequence[Layer]) -> str | None:
    """The first of ``layers`` that reads a sequence from its end — a reverse LSTM, alone or
    in a BiLSTM or an LSTMStack, or a TimeReversal — described; None if none does."""
    for layer in layers:
        if isinstance(layer, TimeReversal):
            return f"layer {layer.name!r} reverses each sequence in time"
        if isinstance(layer, LSTM | BiLSTM | LSTMStack) and any(
            one.direction == "reverse" for one in directions(layer)
        ):
            return f"layer {layer.name!r} ({layer.TYPE}) has a reverse direction"
    return None


def forward_units(layers: Sequence[Layer]) -> Array:
    """Which units of the last of ``layers`` (a recurrent one) step as over whole sequences:
    a bool per column of its trace's h (its directions in order, :func:`directions`) —
    False for a reverse direction's and for any that reads, through a layer before, from one."""
    *before, last = layers
    if not isinstance(last, LSTM | BiLSTM | LSTMStack):
        raise InputError(f"layer {last.name!r} is a {last.TYPE} layer, not an LSTM")
    clean = reverse_reader(before) is None
    mask: list[bool] = []
    for part in last.layers if isinstance(last, LSTMStack) else [last]:
        for one in directions(part):
            mask += [clean and one.direction == "forward"] * one.state_widths[0]
        clean = clean and reverse_reader([part]) is None
    return np.array(mask, dtype=bool)


def _weight_sums(M: Array, C: int, H: int) -> tuple[float, Array, Array]:
    """Of the stacked weights M (C + 1 + H, 4H), once per stepper (its weights are a
    snapshot): the largest column sum of |W|, the column sums of |R|, and |b|."""
    A = np.abs(M.astype(np.float64))
    return float(A[:C].sum(axis=0).max()), A[C + 1 :].sum(axis=0), A[C]
