"""The Network: an ordered list of layers, MATLAB's layer table, predict, state and classify."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from .layers import LSTM, ClassificationOutput, FullyConnected, Layer, SequenceInput, as_float
from .lstm import Gates, LSTMState
from .sequences import Batch, Layout, Semantics, SequenceLength, as_sequence_list, make_batches

Array = np.ndarray
State = dict[str, LSTMState]


class Network:
    """A sequence network: sequence input, LSTM layers, fully connected, softmax, ….

    Parameters
    ----------
    layers : list of Layer
        In data-flow order; the first is a :class:`SequenceInput`.
    class_names : sequence of str, optional
        Names of the output classes, in output order (taken from a
        :class:`ClassificationOutput` layer when there is one).

    Attributes
    ----------
    state : dict of str to LSTMState
        The state of each LSTM layer, by layer name: h and c of shape (H,) — used for
        every sequence of the next call — or (N, H), one row per sequence of a batch.
        ``predict(..., return_state=True)`` returns the updated state without changing
        the network; assign it back to carry it on, as MATLAB's ``net.State = state``.
    """

    def __init__(self, layers: Sequence[Layer], class_names: Sequence[str] | None = None):
        self.layers = list(layers)
        self._check_layers()
        out = [layer for layer in self.layers if isinstance(layer, ClassificationOutput)]
        if out and class_names is not None and tuple(class_names) != out[0].class_names:
            raise ValueError(
                f"class_names {tuple(class_names)} differ from layer {out[0].name!r}'s "
                f"{out[0].class_names}"
            )
        self.class_names = out[0].class_names if out else tuple(map(str, class_names or ()))
        fcs = [layer for layer in self.layers if isinstance(layer, FullyConnected)]
        if self.class_names and fcs and fcs[-1].output_size != len(self.class_names):
            raise ValueError(
                f"{len(self.class_names)} class names for {fcs[-1].output_size} outputs of layer "
                f"{fcs[-1].name!r}"
            )
        self.reset_state()

    def _check_layers(self) -> None:
        if not self.layers or not isinstance(self.layers[0], SequenceInput):
            raise ValueError("the first layer must be a SequenceInput")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique; got {names}")
        dtypes = {a.dtype for layer in self.layers for a in layer.arrays().values()}
        if len(dtypes) > 1:
            raise ValueError(
                f"all layers must hold one dtype; got {sorted(map(str, dtypes))} "
                "(use layer.astype or Network.astype)"
            )
        self._dtype = dtypes.pop() if dtypes else np.dtype(np.float64)
        width = self.layers[0].input_size
        for layer in self.layers[1:]:
            if isinstance(layer, LSTM | FullyConnected):
                if layer.input_size != width:
                    raise ValueError(
                        f"layer {layer.name!r} expects {layer.input_size} inputs but the layer "
                        f"before it gives {width}"
                    )
                width = layer.hidden_size if isinstance(layer, LSTM) else layer.output_size

    # ---------------------------------------------------------------- description
    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def dtype(self) -> np.dtype:
        """The floating-point type every layer computes in (float64 or float32)."""
        return self._dtype

    @property
    def lstm_layers(self) -> list[LSTM]:
        return [layer for layer in self.layers if isinstance(layer, LSTM)]

    def layer(self, name: str) -> Layer:
        """The layer called ``name``."""
        return self.layers[self._index(name)]

    def _index(self, name: str) -> int:
        for k, layer in enumerate(self.layers):
            if layer.name == name:
                return k
        raise KeyError(f"no layer named {name!r}; layers are {[x.name for x in self.layers]}")

    def summary(self) -> str:
        """The layer table, laid out as MATLAB displays ``net.Layers``."""
        names = [f"'{layer.name}'" for layer in self.layers]
        types = [layer.TYPE for layer in self.layers]
        wn, wt = max(map(len, names)), max(map(len, types))
        rows = [
            f"{k:>6}   {n:<{wn}}   {t:<{wt}}   {layer.description()}"
            for k, (n, t, layer) in enumerate(zip(names, types, self.layers, strict=True), 1)
        ]
        return "\n".join([f"  {len(self.layers)}x1 Layer array with layers:", "", *rows])

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<Network {len(self.layers)} layers, {self.dtype}>\n{self.summary()}"

    def astype(self, dtype: np.dtype | type) -> Network:
        """A copy computing in ``dtype`` (float64, or float32 like MATLAB)."""
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64; got {np.dtype(dtype)}")
        return Network([layer.astype(dtype) for layer in self.layers], self.class_names)

    # ---------------------------------------------------------------------- state
    def initial_state(self) -> State:
        """A copy of each LSTM layer's initial state, (H,) each."""
        return {layer.name: _copy(layer.initial_state) for layer in self.lstm_layers}

    def reset_state(self) -> None:
        """Return every LSTM layer to its initial state (MATLAB's resetState)."""
        self._state = self.initial_state()

    @property
    def state(self) -> State:
        """A copy of the current state (see the class docstring); assign to change it."""
        return {name: _copy(s) for name, s in self._state.items()}

    @state.setter
    def state(self, value: Mapping[str, LSTMState | tuple[Array, Array]]) -> None:
        expected = {layer.name: layer.hidden_size for layer in self.lstm_layers}
        if set(value) != set(expected):
            raise ValueError(
                f"state must name the LSTM layers {sorted(expected)}; got {sorted(value)}"
            )
        new = {}
        for name, H in expected.items():
            h, c = (as_float(a, name, "state") for a in value[name])
            if h.shape != c.shape or h.shape[-1:] != (H,) or h.ndim not in (1, 2):
                raise ValueError(
                    f"state of {name!r}: h and c must both be ({H},) or (N, {H}); "
                    f"got {h.shape} and {c.shape}"
                )
            new[name] = LSTMState(h.astype(self.dtype), c.astype(self.dtype))
        rows = {s.h.shape[0] for s in new.values() if s.h.ndim == 2}
        if len(rows) > 1:
            raise ValueError(f"state rows disagree between layers: {sorted(rows)}")
        self._state = new

    def state_rows(self, n: int) -> State:
        """The current state as (n, H) arrays, one row per sequence."""
        rows = {}
        for name, s in self._state.items():
            if s.h.ndim == 2 and s.h.shape[0] != n:
                raise ValueError(
                    f"the network's state holds {s.h.shape[0]} sequences' states (layer {name!r}) "
                    f"but {n} sequences were given; call reset_state() or assign a state of "
                    "matching size"
                )
            rows[name] = LSTMState(*(np.broadcast_to(a, (n, a.shape[-1])) for a in s))
        return rows

    # ------------------------------------------------------------------ computing
    def forward(
        self, batch: Batch, state: State | None = None, upto: int | None = None
    ) -> tuple[Array, list[Any]]:
        """Run one padded batch through the layers ``0 … upto`` (default all).

        ``state`` holds each LSTM layer's (B, H) starting state; None starts every row from
        the layers' initial states (as training does). Returns the last layer's output and
        every layer's cache (for backward and for the final state).
        """
        y, caches = batch.x, []
        for layer in self.layers[: None if upto is None else upto + 1]:
            if layer.recurrent:
                lengths = batch.lengths if batch.masked else None
                start = None if state is None else state[layer.name]
                y, cache = layer.forward(y, lengths, start)  # type: ignore[call-arg]
            else:
                y, cache = layer.forward(y)
            caches.append(cache)
        return y, caches

    def predict(
        self,
        X: Array | Sequence[Array],
        outputs: str | None = None,
        *,
        layout: Layout = "TC",
        lengths: Sequence[int] | Array | None = None,
        semantics: Semantics = "matlab",
        mini_batch_size: int = 128,
        sequence_length: SequenceLength = "longest",
        padding_direction: Literal["right", "left"] = "right",
        padding_value: float = 0.0,
        return_state: bool = False,
    ) -> Any:
        """Compute the network's output, or the activations of layer ``outputs``.

        Parameters
        ----------
        X : ndarray or list of ndarray
            One sequence (T, C), a list of sequences, or a padded batch (N, T, C) with
            ``lengths``; see :mod:`lstm_ref.sequences` for layouts and semantics.
        outputs : str, optional
            Name of the layer whose output to return (MATLAB's ``Outputs=``); default the
            last layer.
        layout, lengths
            See :func:`lstm_ref.sequences.as_sequence_list`.
        semantics, mini_batch_size, sequence_length, padding_direction, padding_value
            See :func:`lstm_ref.sequences.make_batches`.
        return_state : bool
            Also return the updated state (the network's own state is not changed).

        Returns
        -------
        y : ndarray or list of ndarray
            For one sequence: (K,) — or (T, K) for a layer with per-step output. For N
            sequences: (N, K), or a list of (T_i, K) arrays trimmed to each sequence.
        state : dict of str to LSTMState
            Only with ``return_state``: h and c after the sequences, (H,) for one
            sequence or (N, H).
        """
        upto = len(self.layers) - 1 if outputs is None else self._index(outputs)
        seqs, single = as_sequence_list(
            X, self.input_size, layout=layout, lengths=lengths, dtype=self.dtype
        )
        state_in = self.state_rows(len(seqs))
        results: list[Array] = [np.empty(0)] * len(seqs)
        final = {name: LSTMState(s.h.copy(), s.c.copy()) for name, s in state_in.items()}
        batches = make_batches(
            seqs,
            semantics,
            mini_batch_size=mini_batch_size,
            sequence_length=sequence_length,
            padding_direction=padding_direction,
            padding_value=padding_value,
        )
        for batch in batches:
            rows = {n: LSTMState(s.h[batch.rows], s.c[batch.rows]) for n, s in state_in.items()}
            y, caches = self.forward(batch, rows, upto)
            for b, r in enumerate(batch.rows):
                start, n = batch.start[b], batch.lengths[b]
                results[r] = y[b] if y.ndim == 2 else y[b, start : start + n]
            for layer, cache in zip(self.layers, caches, strict=False):
                if layer.recurrent:
                    final[layer.name].h[batch.rows] = cache.final.h
                    final[layer.name].c[batch.rows] = cache.final.c
        out: Any = results[0] if single else _stack_if_same_shape(results)
        if not return_state:
            return out
        if single:
            final = {n: LSTMState(s.h[0], s.c[0]) for n, s in final.items()}
        return out, final

    def classify(self, X: Array | Sequence[Array], **options: Any) -> tuple[Any, Array]:
        """Predicted class names and scores (class probabilities).

        Takes the same data and options as :meth:`predict`. Returns ``(labels, scores)``:
        a str and (K,) for one sequence, or an (N,) str array and (N, K).
        """
        if not self.class_names:
            raise ValueError("this network has no class names; use predict() for its outputs")
        if {"outputs", "return_state"} & set(options):
            raise ValueError("classify takes the network's output; use predict() for outputs=")
        scores = self.predict(X, **options)
        if not isinstance(scores, np.ndarray):
            raise ValueError(
                "classify needs one score vector per sequence; this network's output is a "
                "sequence per sequence (an LSTM with output_mode 'sequence'): use predict()"
            )
        if scores.shape[-1] != len(self.class_names):
            raise ValueError(
                f"the output has {scores.shape[-1]} values per sequence for "
                f"{len(self.class_names)} classes"
            )
        labels = np.asarray(self.class_names)[scores.argmax(axis=-1)]
        return (str(labels) if labels.ndim == 0 else labels), scores

    def trace(self, x: Array, layer: str | None = None, *, layout: Layout = "TC") -> Gates:
        """Gate-level trace of one sequence through an LSTM layer, from the current state.

        Parameters
        ----------
        x : ndarray, shape (T, C)
        layer : str, optional
            Name of the LSTM layer (default the first).

        Returns
        -------
        Gates
            i, f, g, o, c, h at every step, each (T, H).
        """
        name = layer or self.lstm_layers[0].name
        k = self._index(name)
        if not isinstance(self.layers[k], LSTM):
            raise ValueError(f"layer {name!r} is a {self.layers[k].TYPE} layer, not an LSTM")
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            raise ValueError(f"expected one sequence, a 2-D array; got {np.shape(x)}")
        seqs, _ = as_sequence_list(x, self.input_size, layout=layout, dtype=self.dtype)
        batch = make_batches(seqs, "masked")[0]
        _, caches = self.forward(batch, self.state_rows(1), k)
        return Gates(*(v[0] for v in caches[k].trace))


def _copy(state: LSTMState) -> LSTMState:
    return LSTMState(state.h.copy(), state.c.copy())


def _stack_if_same_shape(arrays: list[Array]) -> Array | list[Array]:
    """One (N, …) array when every result has the same shape, else the list."""
    if len({a.shape for a in arrays}) == 1 and arrays[0].ndim == 1:
        return np.stack(arrays)
    return arrays
