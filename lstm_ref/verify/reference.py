"""How verify computes the reference: a :class:`Setting` (the network, the padding semantics,
the initial state, and the switches a porting bug can flip) and what to compute in it, a
:class:`Wanted` output — the network's output, a layer's output, an LSTM layer's output at
every step, or its final h or c.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from ..layers import LSTM, BiLSTM, Layer, LSTMStack
from ..lstm import LSTMState
from ..network import Network, State
from ..padding import Padding, make_batches

Array = np.ndarray

SEMANTICS = {  # the padding semantics by name: what each means
    "masked": "each sequence stops at its own length; per-step outputs are 0 past it, and "
    "the layers after the LSTM compute on those 0s (PyTorch packed sequences, ONNX "
    "sequence_lens: Padding.pytorch(), Padding.onnx())",
    "keras": "each sequence stops at its own length; per-step outputs repeat the last one "
    "past it, 0 from a Bidirectional (Keras Masking: Padding.keras())",
    "matlab": "padding on the right computed like data (MATLAB; an LSTM run on a padded "
    "batch without packing or sequence_lens)",
    "matlab-left": "padding on the left computed like data (MATLAB's "
    "SequencePaddingDirection 'left')",
}
InputReading = Literal["as-given", "reshaped"]


@dataclass(frozen=True)
class Setting:
    """How the reference is computed.

    ``state`` holds every stateful layer's initial state, one row per sequence: (N, H) h
    and c (a BiLSTM's forward ‖ reverse). ``reverse_in_processing_order``: a reverse
    direction's per-step outputs come back reversed in time. ``input_reading``
    "reshaped": the batch (N, T, C) was reshaped, not transposed, to time first (T, N, C)
    and read so, each "sequence" a column of T steps holding other sequences' steps, the
    outputs reshaped back the same way. ``changeable``: the layers a cause may change
    (None: every one; those before the first diverging layer match, so hold no bug).
    """

    net: Network
    state: State
    semantics: str = "masked"  # a key of SEMANTICS
    reverse_in_processing_order: bool = False
    input_reading: InputReading = "as-given"
    changeable: frozenset[str] | None = None


@dataclass(frozen=True)
class Wanted:
    """One output of the reference: ``what`` of layer ``layer`` (None: the network's
    output): ``"output"`` as the layer computes it, ``"steps"`` an LSTM layer's output at
    every step whatever its output mode, ``"h"`` / ``"c"`` its final state."""

    layer: str | None
    what: Literal["output", "steps", "h", "c"] = "output"


class Expected(NamedTuple):
    """An output of the reference and what of it to compare.

    ``values`` (N, K) or (N, T, W), float64: per-step outputs in a batch of length T, each
    sequence's steps from where it starts (0, or T − length when padded on the left),
    padded steps per the semantics (the framework's :class:`~lstm_ref.padding.Padding`:
    ``Padding.onnx()`` for "masked", ``Padding.keras()``). ``data`` (N,) or (N, T): the
    sequences or steps of data; ``padded``: the padded steps whose value the semantics
    defines (none when the framework computes over the padding: those are undefined).
    """

    values: Array
    data: Array
    padded: Array

    @property
    def compared(self) -> Array:
        """The sequences or steps compared, (N,) or (N, T): data, and the padded steps whose
        value the semantics defines."""
        return self.data | self.padded


def _per_sequence(y: Array) -> Expected:
    every = np.ones(len(y), bool)
    return Expected(y.astype(np.float64), every, ~every)


def reference_outputs(setting: Setting, seqs: list[Array], wanted: Wanted, T: int) -> Expected:
    """The reference's output ``wanted`` on ``seqs`` (N sequences, padded to ``T``) in
    ``setting``."""
    return reference_all(setting, seqs, {"": wanted}, T)[""]


def reference_all(
    setting: Setting, seqs: list[Array], wanted: Mapping[str, Wanted], T: int
) -> dict[str, Expected]:
    """The reference's outputs ``wanted`` (by label), each network run once: a final state
    comes from any run through its layer."""
    names = [x.name for x in setting.net.layers]
    runs: dict[tuple[bool, int], tuple[Expected, State]] = {}
    found = {}
    states_last = sorted(
        wanted.items(),
        key=lambda item: (item[1].what in ("h", "c"), -names.index(item[1].layer or names[-1])),
    )
    for label, w in states_last:
        net, k = _network_for(setting.net, w)
        if w.what in ("h", "c"):
            final = next((f for (_, j), (_, f) in runs.items() if j >= k), None)
            if final is None:
                final = runs.setdefault((False, k), _run(setting, net, seqs, k, T))[1]
            state = final[names[k]]
            found[label] = _per_sequence(np.asarray(state.h if w.what == "h" else state.c))
        else:
            key = (net is not setting.net, k)
            if key not in runs:
                runs[key] = _run(setting, net, seqs, k, T)
            found[label] = runs[key][0]
    return found


def _run(
    setting: Setting, net: Network, seqs: list[Array], k: int, T: int
) -> tuple[Expected, State]:
    """Layer ``k``'s output of ``net`` on ``seqs`` in ``setting``, and the final states."""
    if setting.input_reading == "reshaped":
        x = _right_padded(seqs, T, np.float64)
        columns = x.reshape(T, len(seqs), -1).transpose(1, 0, 2)  # (N, T, C), read time first
        (y, data, padded), final = _padding_as_data(setting, net, list(columns), k, T, "right")
        if y.ndim == 3:  # (N, T, W) read back as the port wrote it: time first, reshaped
            y = y.transpose(1, 0, 2).reshape(len(seqs), T, -1)
        return Expected(y, data, padded), final  # every step is data
    if setting.semantics.startswith("matlab"):
        left = setting.semantics.endswith("left")
        return _padding_as_data(setting, net, seqs, k, T, "left" if left else "right")
    kept = [n for n, s in enumerate(seqs) if len(s)]
    if len(kept) < len(seqs):  # zero-length rows: computed apart
        return _with_empty_rows(setting, net, seqs, kept, k, T)
    padding = Padding.keras(len(seqs)) if setting.semantics == "keras" else Padding.onnx(len(seqs))
    x = _right_padded(seqs, T, net.dtype)
    net.state = _states_of(net, setting.state)
    lengths = [len(s) for s in seqs]
    layer = net.layers[k]
    out, final = net.predict(x, layer.name, lengths=lengths, padding=padding, return_state=True)
    y = np.asarray(out)
    if y.ndim == 2:
        return _per_sequence(y), final
    cols = _reverse_columns(layer)
    if setting.reverse_in_processing_order and cols is not None:
        own = [_reverse_half(y[n, : len(s)], cols) for n, s in enumerate(seqs)]  # (T_n, W)
        y = padding.pad_outputs(own, T, layer)  # padded again
    data = np.arange(T)[None, :] < np.array(lengths)[:, None]
    return Expected(y.astype(np.float64), data, ~data), final


def _right_padded(seqs: list[Array], T: int, dtype: np.dtype | type) -> Array:
    """``seqs`` (each (T_n, C)) zero-padded on the right to a batch (N, T, C) of ``dtype``."""
    x = np.zeros((len(seqs), T, seqs[0].shape[1]), dtype)
    for n, s in enumerate(seqs):
        x[n, : len(s)] = s
    return x


def _with_empty_rows(
    setting: Setting, net: Network, seqs: list[Array], kept: list[int], k: int, T: int
) -> tuple[Expected, State]:
    """The masked semantics with zero-length rows (ONNX's ``sequence_lens`` 0, a row Keras
    masks entirely): onnxruntime gives such a row 0 at every step and 0 final states
    whatever the initial state (Keras, from a zero state, the same); the layers after the
    last LSTM compute on those 0s.
    The other rows (``kept``, at least one) are computed as usual."""
    rows = {n: LSTMState(s.h[kept], s.c[kept]) for n, s in setting.state.items()}
    part = dataclasses.replace(setting, state=rows)
    (y, _, _), final = _run(part, net, [seqs[n] for n in kept], k, T)
    recurrent = [j for j in range(k + 1) if net.layers[j].initial_state is not None]
    first = recurrent[-1] + 1 if recurrent else 0
    zeros = np.zeros((1, *y.shape[1:]), net.dtype) if first > k else None
    if zeros is None:  # the layers after the last LSTM, on its 0s
        width = net.width(net.layers[first - 1].name)
        zeros = np.zeros((1, T, width) if y.ndim == 3 else (1, width), net.dtype)
        for layer in net.layers[first : k + 1]:
            zeros, _ = layer.forward(zeros, None, None)
    full = np.repeat(zeros.astype(np.float64), len(seqs), axis=0)
    full[kept] = y
    states = {}
    for name, s in final.items():
        h, c = (np.zeros((len(seqs), a.shape[1])) for a in s)
        h[kept], c[kept] = s
        states[name] = LSTMState(h, c)
    if full.ndim == 2:
        return _per_sequence(full), states
    data = np.arange(T)[None, :] < np.array([len(s) for s in seqs])[:, None]
    return Expected(full, data, ~data), states


def _padding_as_data(
    setting: Setting,
    net: Network,
    seqs: list[Array],
    k: int,
    T: int,
    side: Literal["left", "right"],
) -> tuple[Expected, State]:
    """The reference with sequences padded to T (on ``side``) and the padding computed as
    data (MATLAB; an LSTM without packing or sequence_lens)."""
    padding = Padding.matlab(len(seqs), sequence_length=T, direction=side)
    batch = make_batches([s.astype(net.dtype) for s in seqs], padding)[0]
    y, caches = net.forward(batch, _states_of(net, setting.state), k)  # rows in data order
    final = {
        x.name: c.final_state
        for x, c in zip(net.layers, caches, strict=False)
        if c.final_state is not None
    }
    if y.ndim == 2:
        return _per_sequence(y), final
    t = np.arange(T)[None, :]
    start, stop = batch.start[:, None], (batch.start + batch.lengths)[:, None]
    data = (t >= start) & (t < stop)
    cols = _reverse_columns(net.layers[k])
    if setting.reverse_in_processing_order and cols is not None:  # the whole padded axis
        y = _reverse_half(y, cols, axis=1)
        data[:] = True  # every step computed, the padding as data
    return Expected(y.astype(np.float64), data, np.zeros_like(data)), final  # padding: undefined


def _network_for(net: Network, wanted: Wanted) -> tuple[Network, int]:
    """The network that computes ``wanted`` and the index of its layer: ``net`` itself, or
    for an LSTM layer's every step, ``net`` up to that layer with per-step output."""
    names = [x.name for x in net.layers]
    k = len(names) - 1 if wanted.layer is None else names.index(wanted.layer)
    layer = net.layers[k]
    if wanted.what != "steps" or layer.output_mode == "sequence":  # type: ignore[attr-defined]
        return net, k
    steps: Layer
    if isinstance(layer, BiLSTM):
        fwd, bwd = (dataclasses.replace(d, output_mode="sequence") for d in (layer.fwd, layer.bwd))
        steps = dataclasses.replace(layer, fwd=fwd, bwd=bwd, last="state")
    elif isinstance(layer, LSTMStack):  # the top layer's outputs
        steps = dataclasses.replace(layer, output_mode="sequence")
    else:
        assert isinstance(layer, LSTM)
        steps = dataclasses.replace(layer, output_mode="sequence")
    return Network([*net.layers[:k], steps]), k


def _states_of(net: Network, state: State) -> State:
    """``state`` of ``net``'s stateful layers, in its dtype."""
    return {
        x.name: LSTMState(*(np.asarray(a, net.dtype) for a in state[x.name]))
        for x in net.stateful_layers
    }


def _reverse_columns(layer: Layer) -> slice | None:
    """The output columns of ``layer``'s own reverse direction (None: it has none; a stack's
    per-step outputs are its top layer's)."""
    if isinstance(layer, LSTMStack):
        return _reverse_columns(layer.layers[-1])
    if isinstance(layer, LSTM) and layer.direction == "reverse":
        return slice(None)
    if isinstance(layer, BiLSTM) and layer.merge_mode == "concat":
        return slice(layer.fwd.state_widths[0], None)
    return None


def _reverse_half(y: Array, cols: slice, axis: int = 0) -> Array:
    """Outputs ``y`` — one sequence's (T_n, W), or a batch's (N, T, W) with ``axis`` 1 —
    with the reverse direction's columns ``cols`` in processing order (reversed in time)."""
    out = y.copy()
    out[..., cols] = np.flip(y[..., cols], axis=axis)
    return out
