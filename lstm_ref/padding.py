"""Padding semantics: how a batch of sequences of different lengths is computed.

One :class:`Padding` value says it all, checked once when it is made, and is passed as one
argument through ``predict``, ``classify``, ``trace``, training and the command line.

``Padding.masked()`` — the default
    Each sequence stops at its own length (PyTorch's packed sequences): its state is held
    after its last step and the outputs there are zero. Results never depend on how the
    sequences are batched; ``mini_batch_size`` only bounds memory.
``Padding.matlab(...)``
    MATLAB's ``predict``/``classify``/``trainNetwork``: mini-batches of ``mini_batch_size``
    (MATLAB's default 128) in data order, each padded to its longest sequence
    (``sequence_length="longest"``), truncated to its shortest (``"shortest"``), or, for a
    number S, padded to the next multiple of S at or above its longest sequence and run in
    chunks of S steps with the state carried between chunks (for a one-directional LSTM
    that equals one pass over the padded batch, which is what lstm_ref computes). Padding —
    and truncation — happen on the ``"right"`` (sequences start together) or the ``"left"``
    (sequences end together) with ``value``, and padding is **not masked**: the LSTM runs
    over it, so an OutputMode "last" layer reads the padded final step and results depend
    on the batching.

The frameworks' own masked semantics, ``Padding.pytorch()``, ``Padding.onnx()`` and
``Padding.keras()``, compute what ``Padding.masked()`` computes — each sequence stops at its
own length, its state is held after it and a reverse direction starts at its own last step
— and differ in what a padded batch of per-step outputs holds past each sequence's length
(:data:`PADDED_STEPS`). ``Padding.keras(mask_value=0.0)`` is Keras's ``Masking(mask_value)``
in full: a step whose features all equal ``mask_value`` is skipped *wherever it is* — at the
start, in the middle (missing values filled with the mask value) or at the end — the state
carried over it, and its output is what Keras writes there (:meth:`Padding.pad_outputs`).
Keras hands the same mask to every recurrent layer after the Masking, so the skipped steps
are removed before the recurrent layers (:meth:`Padding.skipped_steps`) and the outputs put
back in place after them.

With one of them, ``predict`` on several sequences returns per-step outputs as that
framework does: one (N, T, K) array, T the padded batch's length (or the longest sequence),
its padded steps filled at the last recurrent layer's output and carried through the layers
after it, as the framework's Linear/Dense/Softmax compute them there. ``Padding.masked()``
returns each sequence's own steps instead. (ONNX's zero-length rows, which lstm_ref's
sequences cannot be, are computed by :func:`lstm_ref.interop.onnx.run_lstm_node`.)
See docs/INTEROP.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._checks import (
    check_allocation,
    check_choice,
    check_count,
    check_number,
    check_real_array,
    check_sequence_arrays,
    is_integer,
)
from .errors import InputError
from .layers import LSTM, Layer

Array = np.ndarray
SequenceLength = Literal["longest", "shortest"] | int
Direction = Literal["right", "left"]
Kind = Literal["masked", "pytorch", "onnx", "keras", "matlab"]
MASKED_KINDS = ("masked", "pytorch", "onnx", "keras")  # each sequence stops at its length
PADDED_STEPS = {  # what a padded batch of per-step outputs holds past a sequence's length
    "masked": "not returned: each sequence's own steps come back, trimmed",
    "pytorch": "0 (pad_packed_sequence's padding_value) at the last recurrent layer's output",
    "onnx": "0 in Y past each sequence_lens",
    "keras": "the previous output repeated (Masking; 0 before the first unmasked step); a "
    "go_backwards layer repeats in its processing order (0 after the last unmasked step); 0 "
    "from a Bidirectional",
    "matlab": "computed like data: the padding runs through the LSTM",
}


@dataclass(frozen=True)
class Padding:
    """How sequences of different lengths are batched and computed (see the module doc).

    Make one with :meth:`masked` or :meth:`matlab`; the fields are checked when it is made.
    """

    kind: Kind = "masked"
    mini_batch_size: int = 128
    sequence_length: SequenceLength = "longest"
    direction: Direction = "right"
    value: float = 0.0
    mask_value: float | None = None

    def __post_init__(self) -> None:
        check_choice(self.kind, "padding kind", (*MASKED_KINDS, "matlab"))
        object.__setattr__(
            self, "mini_batch_size", check_count(self.mini_batch_size, "mini_batch_size")
        )
        if not is_integer(self.sequence_length):
            check_choice(self.sequence_length, "sequence_length", ("longest", "shortest"))
        else:
            length = check_count(self.sequence_length, "sequence_length (a number of steps)")
            object.__setattr__(self, "sequence_length", length)
        check_choice(self.direction, "padding direction", ("right", "left"))
        object.__setattr__(self, "value", check_number(self.value, "padding value"))
        if self.is_masked and (self.sequence_length, self.direction, self.value) != (
            "longest",
            "right",
            0.0,
        ):
            raise InputError(
                "sequence_length, direction and value apply to MATLAB's padding only: masked "
                "sequences are never padded into the computation or truncated"
            )
        if self.mask_value is not None:
            if self.kind != "keras":
                raise InputError(
                    f"mask_value is Keras's Masking (Padding.keras(mask_value=...)); padding "
                    f"{self.kind!r} skips no steps inside a sequence"
                )
            object.__setattr__(self, "mask_value", check_number(self.mask_value, "mask_value"))

    @classmethod
    def masked(cls, mini_batch_size: int = 128) -> Padding:
        """Each sequence stops at its own length (PyTorch's packed sequences)."""
        return cls("masked", mini_batch_size)

    @classmethod
    def pytorch(cls, mini_batch_size: int = 128) -> Padding:
        """PyTorch's packed sequences: masked; per-step outputs 0 past each length."""
        return cls("pytorch", mini_batch_size)

    @classmethod
    def onnx(cls, mini_batch_size: int = 128) -> Padding:
        """ONNX's ``sequence_lens``: masked; Y 0 past each length."""
        return cls("onnx", mini_batch_size)

    @classmethod
    def keras(cls, mini_batch_size: int = 128, mask_value: float | None = 0.0) -> Padding:
        """Keras's ``Masking(mask_value)``: every step whose features all equal
        ``mask_value`` is skipped, wherever it is, and every step past a sequence's length;
        at those steps the previous output is repeated (0 from a Bidirectional). None: only
        the steps past each length are skipped (masks given as lengths)."""
        return cls("keras", mini_batch_size, mask_value=mask_value)

    @classmethod
    def matlab(
        cls,
        mini_batch_size: int = 128,
        sequence_length: SequenceLength = "longest",
        direction: Direction = "right",
        value: float = 0.0,
    ) -> Padding:
        """MATLAB's MiniBatchSize, SequenceLength, SequencePaddingDirection and
        SequencePaddingValue: padded, unmasked mini-batches in data order."""
        return cls("matlab", mini_batch_size, sequence_length, direction, value)

    @property
    def is_masked(self) -> bool:
        """Whether each sequence stops at its own length."""
        return self.kind in MASKED_KINDS

    @property
    def returns_padded(self) -> bool:
        """Whether per-step outputs come back as one padded batch, as the framework's."""
        return self.is_masked and self.kind != "masked"

    def skipped_steps(self, seqs: list[Array]) -> list[Array] | None:
        """The steps Keras's Masking skips inside each sequence: (T_n,) bool, True where every
        feature equals ``mask_value`` (compared in the sequences' dtype, as Keras compares
        in the model's); None when no step of any sequence is skipped."""
        if self.mask_value is None:
            return None
        skipped = [(s == s.dtype.type(self.mask_value)).all(axis=1) for s in seqs]
        if not any(k.any() for k in skipped):
            return None
        empty = [n for n, k in enumerate(skipped) if k.all()]
        if empty:
            raise InputError(
                f"sequence {empty[0] + 1}: every step equals the mask value {self.mask_value:g}, "
                "so Keras's Masking skips all of it; give each sequence at least one step of data"
            )
        return skipped

    def pad_outputs(
        self, ys: list[Array], T: int, source: Layer | None, skipped: list[Array] | None = None
    ) -> Array:
        """Per-step outputs as this framework's padded batch.

        Parameters
        ----------
        ys : list of ndarray, each (K_n, W)
            A recurrent layer's outputs at each sequence's steps that were computed: its
            own T_n steps, or those not ``skipped``.
        T : int
            The padded length, at least every T_n.
        source : Layer or None
            That recurrent layer (None: the outputs come before any). At a skipped or padded
            step Keras repeats the previous output of a one-direction layer in its
            processing order — forward: the last computed step before (0 before the first),
            go_backwards: the first computed step after (0 after the last, the padding it
            processes first); a Bidirectional writes 0, and so does Masking before any
            recurrent layer.
        skipped : list of ndarray of bool, each (T_n,), optional
            Keras's masked steps inside each sequence (:meth:`skipped_steps`); None: none.

        Returns
        -------
        ndarray, shape (N, T, W)
            ``ys[n]`` at the computed steps; elsewhere what :data:`PADDED_STEPS` says.
        """
        if not self.returns_padded:
            raise InputError(f"padding {self.kind!r} returns no padded batch of outputs")
        out = np.zeros((len(ys), T, ys[0].shape[1]), ys[0].dtype)  # (N, T, W)
        repeat = self.kind == "keras" and isinstance(source, LSTM)
        backwards = isinstance(source, LSTM) and source.direction == "reverse"
        steps = np.arange(T)
        for n, y in enumerate(ys):
            computed = steps[: len(y)] if skipped is None else np.flatnonzero(~skipped[n])
            if not repeat:
                out[n, computed] = y
                continue
            if backwards:  # the first computed step at or after each step; none: 0
                shown = np.searchsorted(computed, steps, side="left")
                shown[shown == len(computed)] = -1
            else:  # the last computed step at or before each step; none: 0
                shown = np.searchsorted(computed, steps, side="right") - 1
            out[n, shown >= 0] = y[shown[shown >= 0]]
        return out


MASKED = Padding.masked()


def check_padding(padding: object) -> Padding:
    """``padding`` if it is a :class:`Padding`; a clear error for the old string form."""
    if not isinstance(padding, Padding):
        raise InputError(
            "padding must be a lstm_ref.Padding, e.g. Padding.masked() or "
            f"Padding.matlab(mini_batch_size=128); got {padding!r}"
        )
    return padding


@dataclass(frozen=True)
class Batch:
    """A padded mini-batch.

    Attributes
    ----------
    x : ndarray, shape (B, T, C)
        The padded data.
    rows : ndarray of int, shape (B,)
        Which input sequences these are.
    lengths : ndarray of int, shape (B,)
        How many steps of each row are real data (after any truncation).
    start : ndarray of int, shape (B,)
        Where each row's real data starts in ``x`` (non-zero for left padding).
    masked : bool
        Whether the layers must stop each row at its length.
    """

    x: Array
    rows: Array
    lengths: Array
    start: Array
    masked: bool

    @property
    def stop_lengths(self) -> Array | None:
        """The lengths the layers stop each row at: ``lengths`` when masked, else None
        (every step of ``x`` is data)."""
        return self.lengths if self.masked else None


def make_batches(seqs: list[Array], padding: Padding = MASKED) -> list[Batch]:
    """Split checked sequences into padded mini-batches in data order.

    Parameters
    ----------
    seqs : list of ndarray, each (T_i, C)
        From :func:`lstm_ref.sequences.as_sequence_list`; at least one.
    padding : Padding
        The semantics (see the module docstring).

    Returns
    -------
    list of Batch
    """
    padding = check_padding(padding)
    check_sequence_arrays(seqs)
    if padding.skipped_steps(seqs) is not None:
        raise InputError(
            f"a step whose features all equal the mask value {padding.mask_value:g} lies inside "
            "a sequence: Network.predict skips such steps as Keras's Masking does, but these "
            "batches would compute it; remove those steps, or use Padding.keras(mask_value=None)"
        )
    return split_batches(seqs, padding)


def split_batches(seqs: list[Array], padding: Padding) -> list[Batch]:
    """:func:`make_batches` for what ``Network.predict`` has already checked: sequences as
    ``as_sequence_list`` returns them, none holding a step that ``padding`` skips."""
    left = padding.direction == "left"
    C, dtype = seqs[0].shape[1], seqs[0].dtype
    check_real_array(padding.value, "padding value", dtype)  # finite in the network's dtype
    batches = []
    for first in range(0, len(seqs), padding.mini_batch_size):
        rows = np.arange(first, min(first + padding.mini_batch_size, len(seqs)))
        lengths = np.array([len(seqs[r]) for r in rows])  # (B,) steps of data kept per row
        T = int(lengths.max())
        if padding.sequence_length == "shortest":
            T = int(lengths.min())
            lengths[:] = T
        elif not isinstance(padding.sequence_length, str):  # pad to a whole number of chunks
            T = -(-T // padding.sequence_length) * padding.sequence_length
        check_allocation((len(rows), T, C), dtype, "a padded mini-batch")
        x = np.full((len(rows), T, C), padding.value, dtype=dtype)  # (B, T, C)
        start = T - lengths if left else np.zeros_like(lengths)
        for b, (r, n, s) in enumerate(zip(rows, lengths, start, strict=True)):
            x[b, s : s + n] = seqs[r][len(seqs[r]) - n :] if left else seqs[r][:n]
        batches.append(Batch(x, rows, lengths, start, padding.is_masked))
    return batches
