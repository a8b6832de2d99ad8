"""The Network: an ordered list of layers, MATLAB's layer table, predict, state and classify.

The network walks its layers without asking what kind each one is: every layer follows the
contract of :mod:`lstm_ref.layers` (output size from input size, one forward call, a cache
that carries the final state of a stateful layer).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Literal, overload

import numpy as np

from . import _predict
from ._checks import FLOAT_DTYPES, check_class_names
from .errors import InputError, InputTypeError, counted
from .fast import FastNetwork, Stepper, finite_copy, one_pass
from .layers import Cache, Layer, SequenceInput
from .lstm import Gates, LSTMState, copy_state
from .padding import MASKED, Batch, Padding, check_padding, make_batches
from .sequences import Layout, as_sequence_list

Array = np.ndarray
State = dict[str, LSTMState]
Outputs = Array | list[Array]  # one array, or one per sequence when their shapes differ


class Network:
    """A sequence network: sequence input, LSTM layers, fully connected, softmax, ….

    Parameters
    ----------
    layers : list of Layer
        In data-flow order; the first is a :class:`SequenceInput`.
    class_names : sequence of str, optional
        Names of the output classes, in output order (taken from a layer that names them,
        a :class:`ClassificationOutput`, when there is one).
    padding : Padding
        The default of :meth:`predict` and :meth:`classify`: how the model this network
        came from computes (an importer records a Keras model's Masking as
        ``Padding.keras(mask_value=...)``); ``Padding.masked()`` by default.

    Attributes
    ----------
    state : dict of str to LSTMState
        The state of each stateful layer, by layer name: h and c of shape (H,) — used for
        every sequence of the next call — or (N, H), one row per sequence of a batch.
        ``predict(..., return_state=True)`` returns the updated state without changing
        the network; assign it back to carry it on, as MATLAB's ``net.State = state``.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        class_names: Sequence[str] | None = None,
        padding: Padding = MASKED,
    ):
        self.layers = list(layers)
        self.padding = check_padding(padding)
        self._dtype = self._check_layers()
        named = [n for n in (layer.output_names() for layer in self.layers) if n is not None]
        given = None if class_names is None else check_class_names(class_names)
        if named and given is not None and given != named[-1]:
            raise InputError(f"class_names {given} differ from the layers' {named[-1]}")
        self.class_names: tuple[str, ...] = named[-1] if named else given or ()
        if self.class_names and self.output_size != len(self.class_names):
            raise InputError(
                f"{len(self.class_names)} class names for {self.output_size} outputs of layer "
                f"{self.layers[-1].name!r}"
            )
        self._fast: dict[int, FastNetwork] = {}  # compiled layers 0 … upto, by upto
        self._issued: tuple[State, list[LSTMState]] | None = None  # the last returned state
        self.reset_state()

    def _check_layers(self) -> np.dtype:
        """Check the layer list; pass the width along it (stax's ``serial``); the dtype."""
        bad = [k for k, layer in enumerate(self.layers) if not isinstance(layer, Layer)]
        if bad:
            raise InputTypeError(
                f"layers must be lstm_ref layers; item {bad[0]} is a "
                f"{type(self.layers[bad[0]]).__name__}"
            )
        first = self.layers[0] if self.layers else None
        if not isinstance(first, SequenceInput):
            raise InputError("the first layer must be a SequenceInput")
        self._input_size = first.input_size
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise InputError(f"layer names must be unique; got {names}")
        dtypes = {a.dtype for layer in self.layers for a in layer.arrays().values()}
        if len(dtypes) > 1:
            raise InputError(
                f"all layers must hold one dtype; got {sorted(map(str, dtypes))} "
                "(use layer.astype or Network.astype)"
            )
        width = self.input_size
        self._widths: list[int] = []
        for layer in self.layers:
            width = layer.output_width(width)
            self._widths.append(width)
        return dtypes.pop() if dtypes else np.dtype(np.float64)

    # ---------------------------------------------------------------- description
    @property
    def input_size(self) -> int:
        """C, the number of features per time step the network takes."""
        return self._input_size

    @property
    def output_size(self) -> int:
        """The width of the last layer's output."""
        return self._widths[-1]

    def width(self, name: str) -> int:
        """The width of the output of layer ``name`` (H for an LSTM, K for a classifier)."""
        return self._widths[self._index(name)]

    @property
    def dtype(self) -> np.dtype:
        """The floating-point type every layer computes in (float64 or float32)."""
        return self._dtype

    @property
    def stateful_layers(self) -> list[Layer]:
        """The layers that carry a state (the LSTM layers), in order."""
        return [layer for layer in self.layers if layer.initial_state is not None]

    def layer(self, name: str) -> Layer:
        """The layer called ``name``."""
        return self.layers[self._index(name)]

    def recurrent_layer(self, name: str | None = None) -> Layer:
        """The LSTM (BiLSTM, LSTMStack) layer called ``name``, by default the first (what trace,
        explain, plots and the walkthrough look at); an InputError when the network has
        none, or ``name`` is another kind of layer."""
        recurrent = self.stateful_layers
        names = [x.name for x in recurrent]
        if not recurrent:
            raise InputError("the network has no LSTM layer")
        if name is None:
            return recurrent[0]
        if name in names:
            return recurrent[names.index(name)]
        if name in [x.name for x in self.layers]:
            kind = self.layer(name).TYPE
            raise InputError(f"layer {name!r} is a {kind} layer, not an LSTM; LSTM layers: {names}")
        raise InputError(f"no layer named {name!r}; LSTM layers: {names}")

    def _index(self, name: object) -> int:
        for k, layer in enumerate(self.layers):
            if layer.name == name:
                return k
        raise InputError(f"no layer named {name!r}; layers are {[x.name for x in self.layers]}")

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

    def digest(self) -> str:
        """SHA-256 of what the network computes: its class names and, in order, each layer's
        type, configuration and arrays (name, dtype, shape and bytes) — one hex string that
        names these weights (the model card's, each scoring worker's check)."""
        h = hashlib.sha256()
        h.update(json.dumps(list(self.class_names)).encode())
        for layer in self.layers:
            h.update(json.dumps([layer.TYPE, layer.config()], sort_keys=True, default=str).encode())
            for name, array in sorted(layer.arrays().items()):
                a = np.ascontiguousarray(array)
                h.update(json.dumps([name, a.dtype.str, a.shape]).encode())
                h.update(a.tobytes())
        return h.hexdigest()

    def astype(self, dtype: np.dtype | type) -> Network:
        """A copy computing in ``dtype`` (float64, or float32 like MATLAB), its state cast
        (an InputError if it overflows ``dtype``). (A weight file holds no assigned state:
        :func:`~lstm_ref.formats.native.save_network` stores the layers' initial states.)"""
        if np.dtype(dtype) not in FLOAT_DTYPES:
            raise InputTypeError(f"dtype must be float32 or float64; got {np.dtype(dtype)}")
        layers = [layer.astype(dtype) for layer in self.layers]
        copy = Network(layers, self.class_names or None, self.padding)
        copy.state = self._state  # checked: cast, then finite
        return copy

    # ---------------------------------------------------------------------- state
    def initial_state(self) -> State:
        """A copy of each stateful layer's initial state, (H,) each."""
        return {
            layer.name: copy_state(layer.initial_state)
            for layer in self.layers
            if layer.initial_state is not None
        }

    def reset_state(self) -> None:
        """Return every stateful layer to its initial state (MATLAB's resetState)."""
        self._state = self.initial_state()

    @property
    def state(self) -> State:
        """A copy of the current state (see the class docstring); assign to change it."""
        return {name: copy_state(s) for name, s in self._state.items()}

    @state.setter
    def state(self, value: Mapping[str, LSTMState | tuple[Array, Array]]) -> None:
        adopted = self._adopted(value)
        if adopted is not None:  # predict's own result, checked when made: copied
            self._state = adopted
            return
        if not isinstance(value, Mapping) or set(value) != set(self._state):
            got = sorted(value) if isinstance(value, Mapping) else type(value).__name__
            raise InputError(f"state must name the LSTM layers {sorted(self._state)}; got {got}")
        new = {name: self.layer(name).check_state(value[name], self.dtype) for name in self._state}
        rows = {s.h.shape[0] for s in new.values() if s.h.ndim == 2}
        if len(rows) > 1:
            raise InputError(f"state rows disagree between layers: {sorted(rows)}")
        self._state = new

    def _adopted(self, value: object) -> State | None:
        """A copy of ``value`` if it is the state the last ``predict(..., return_state=True)``
        returned, unchanged but for values, and still finite; else None."""
        if self._issued is None or value is not self._issued[0]:
            return None
        issued, parts = self._issued
        if len(issued) != len(parts):
            return None
        copies = {}
        for (name, s), part in zip(issued.items(), parts, strict=True):
            copy = finite_copy(s) if s is part else None
            if copy is None:
                return None
            copies[name] = copy
        return copies

    def state_rows(self, n: int) -> State:
        """The current state as (n, H) arrays, one row per sequence."""
        rows = {}
        for name, s in self._state.items():
            if s.h.ndim == 2 and s.h.shape[0] != n:
                raise InputError(
                    f"the network's state holds {counted(s.h.shape[0], 'row')} (layer "
                    f"{name!r}), one per sequence, but {counted(n, 'sequence')} came; call "
                    "reset_state() or assign a state of matching size"
                )
            rows[name] = LSTMState(*(np.broadcast_to(a, (n, a.shape[-1])) for a in s))
        return rows

    # ------------------------------------------------------------------ computing
    def forward(
        self, batch: Batch, state: State | None = None, upto: int | None = None
    ) -> tuple[Array, list[Cache]]:
        """Run one padded batch through the layers ``0 … upto`` (default all).

        ``state`` holds each stateful layer's (B, H) starting state; None starts every row
        from the layers' initial states (as training does). Returns the last layer's
        output and every layer's cache (for backward and for the final state).

        A layer whose output is not finite (an overflow of the dtype) raises an InputError
        naming the layer, the sequence and the time step: no NaN or Inf is ever returned.
        """
        y, caches = batch.x, []
        for layer in self.layers[: None if upto is None else upto + 1]:
            start = None if state is None else state.get(layer.name)
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                y, cache = layer.forward(y, batch.stop_lengths, start)
            _predict.check_finite_output(layer, y, batch)
            caches.append(cache)
        return y, caches

    @overload
    def predict(
        self,
        X: Array | Sequence[Array],
        outputs: str | None = None,
        *,
        layout: Layout = "TC",
        lengths: Sequence[int] | Array | None = None,
        padding: Padding | None = None,
        return_state: Literal[False] = False,
    ) -> Outputs: ...

    @overload
    def predict(
        self,
        X: Array | Sequence[Array],
        outputs: str | None = None,
        *,
        layout: Layout = "TC",
        lengths: Sequence[int] | Array | None = None,
        padding: Padding | None = None,
        return_state: Literal[True],
    ) -> tuple[Outputs, State]: ...

    def predict(
        self,
        X: Array | Sequence[Array],
        outputs: str | None = None,
        *,
        layout: Layout = "TC",
        lengths: Sequence[int] | Array | None = None,
        padding: Padding | None = None,
        return_state: bool = False,
    ) -> Outputs | tuple[Outputs, State]:
        """Compute the network's output, or the activations of layer ``outputs``.

        Parameters
        ----------
        X : ndarray or list of ndarray
            One sequence (T, C), a list of sequences, or a padded batch (N, T, C) with
            ``lengths``; see :mod:`lstm_ref.sequences` for layouts.
        outputs : str, optional
            Name of the layer whose output to return (MATLAB's ``Outputs=``); default the
            last layer.
        layout, lengths
            See :func:`lstm_ref.sequences.as_sequence_list`.
        padding : Padding
            How sequences of different lengths are computed (:mod:`lstm_ref.padding`;
            default the network's ``padding``): ``Padding.masked()`` (each sequence
            stops at its own length, so results never depend on batching) or
            ``Padding.matlab(...)`` (MATLAB's padded, unmasked mini-batches; MATLAB's own default is
            ``Padding.matlab(mini_batch_size=128)``); ``Padding.pytorch()``,
            ``.onnx()``, ``.keras()`` compute as masked and return per-step outputs of N
            sequences padded as that framework pads them.
        return_state : bool
            Also return the updated state (the network's own state is not changed).

        Returns
        -------
        y : ndarray or list of ndarray
            For one sequence: (K,) — or (T, K) for a layer with per-step output. For N
            sequences: (N, K), or a list of (T_i, K) arrays trimmed to each sequence —
            under a framework's padding one (N, T, K) array, T the padded batch's length
            or the longest sequence.
        state : dict of str to LSTMState
            Only with ``return_state``: h and c after the sequences, (H,) for one
            sequence or (N, H).
        """
        upto = len(self.layers) - 1 if outputs is None else self._index(outputs)
        padding = check_padding(self.padding if padding is None else padding)
        engine = self.fast_engine(upto)
        taken = None  # plain arrays: the fast path checks their values (None if one is bad)
        if engine is not None and layout == "TC" and lengths is None:
            taken = engine.plain(X)
        seqs, single = taken or as_sequence_list(
            X, self.input_size, layout=layout, lengths=lengths, dtype=self.dtype
        )

        def checked() -> list[Array]:  # plain arrays the fast path took unchecked, if it refuses
            return as_sequence_list(X, self.input_size, dtype=self.dtype)[0]

        skipped = padding.skipped_steps(seqs)  # Keras's Masking inside sequences
        if skipped is not None and taken is not None:  # checked before steps are dropped
            seqs, taken = checked(), None
        # the lean path of one sequence: kept buffers, for forward reference-cell LSTMs
        if (
            single
            and skipped is None
            and engine is not None
            and engine.simple
            and one_pass(padding)
        ):
            done = engine.run_one(seqs[0], self._single_state())
            if done is not None:
                return self._returned(*done, return_state)
        state_in = self.state_rows(len(seqs))
        recheck = None if taken is None else checked
        if padding.returns_padded and (not single or skipped is not None):
            T = _predict.padded_length(X, seqs, layout)
            y, final = _predict.padded(
                self, seqs, T, state_in, padding, upto, engine, recheck, skipped
            )
            if single:
                y, final = y[0], {n: LSTMState(s.h[0], s.c[0]) for n, s in final.items()}
            return self._returned(y, final, return_state)
        results, final = _predict.masked_or_matlab(
            self, seqs, state_in, padding, upto, engine, recheck
        )
        out = results[0] if single else _predict.stack_if_same_shape(results)
        if single:
            final = {n: LSTMState(s.h[0], s.c[0]) for n, s in final.items()}
        return self._returned(out, final, return_state)

    def _returned(
        self, out: Outputs, final: State, return_state: bool
    ) -> Outputs | tuple[Outputs, State]:
        """What predict returns; a returned state is remembered, so that assigning it back
        (``net.state = state``) needs no second check."""
        if not return_state:
            return out
        self._issued = final, list(final.values())
        return out, final

    def _single_state(self) -> State:
        """The state for one sequence, as held: (H,) or (1, H) h and c per layer (an error if
        it holds rows for several sequences)."""
        for s in self._state.values():
            if s.h.ndim == 2 and s.h.shape[0] != 1:
                self.state_rows(1)  # raises, naming the layer
        return self._state

    def fast_engine(self, upto: int | None = None) -> FastNetwork | None:
        """Layers ``0 … upto`` (default all) compiled for the fast path
        (:mod:`lstm_ref.fast`), or None when it does not cover them. Compiled once and
        again whenever a layer's configuration or any value of its arrays has changed."""
        upto = len(self.layers) - 1 if upto is None else upto
        layers = self.layers[: upto + 1]
        engine = self._fast.get(upto)
        if engine is None or not engine.is_current(layers):
            engine = FastNetwork.compile(layers)
            if engine is None:
                return None
            self._fast[upto] = engine
        return engine

    def stepper(self, outputs: str | None = None) -> Stepper:
        """A :class:`lstm_ref.fast.Stepper`: one step (or chunk) at a time from the current
        state, returning the activations of layer ``outputs`` (default the last)."""
        return Stepper(self, outputs)

    @overload
    def classify(
        self,
        X: list[Array] | tuple[Array, ...],
        *,
        layout: Layout = "TC",
        lengths: Sequence[int] | Array | None = None,
        padding: Padding | None = None,
    ) -> tuple[Array, Array]: ...

    @overload
    def classify(
        self,
        X: Array,
        *,
        layout: Layout = "TC",
        lengths: Sequence[int] | Array | None = None,
        padding: Padding | None = None,
    ) -> tuple[str | Array, Array]: ...

    def classify(
        self,
        X: Array | Sequence[Array],
        *,
        layout: Layout = "TC",
        lengths: Sequence[int] | Array | None = None,
        padding: Padding | None = None,
    ) -> tuple[str | Array, Array]:
        """Predicted class names and scores (class probabilities).

        Takes the same data and options as :meth:`predict`. Returns ``(labels, scores)``:
        a str and (K,) for one sequence (a 2-D array), or an (N,) str array and (N, K) for
        several (a list, or a 3-D array).
        """
        if not self.class_names:
            raise InputError("this network has no class names; use predict() for its outputs")
        scores = self.predict(X, layout=layout, lengths=lengths, padding=padding)
        if not isinstance(scores, np.ndarray):
            raise InputError(
                "classify needs one score vector per sequence; this network's output is a "
                "sequence per sequence (an LSTM with output_mode 'sequence'): use predict()"
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
        k = self._index(self.recurrent_layer(layer).name)
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            raise InputError(f"expected one sequence, a 2-D array; got {np.shape(x)}")
        seqs, _ = as_sequence_list(x, self.input_size, layout=layout, dtype=self.dtype)
        _, caches = self.forward(make_batches(seqs)[0], self.state_rows(1), k)
        return Gates(*(v[0] for v in self.layers[k].gates(caches[k])))
