"""Sequences in, batches out: layout checks, padding, truncation and the two semantics.

Data layout
-----------
One sequence is a 2-D array **time × features**, shape (T, C) — layout ``"TC"``, the
default. MATLAB stores sequences **features × time**, (C, T); pass ``layout="CT"`` for
those. Several sequences are a list of such arrays (lengths may differ), or a padded 3-D
array (N, T, C) — (N, C, T) with ``layout="CT"`` — together with their ``lengths``.

Padding semantics
-----------------
``"masked"``
    Each sequence stops at its own length (PyTorch's packed sequences, Keras masking,
    ONNX ``sequence_lens``). Results never depend on how sequences are batched.
``"matlab"``
    MATLAB's ``predict``/``trainNetwork``: mini-batches of ``mini_batch_size`` sequences
    in data order, each padded to its longest sequence (``sequence_length="longest"``),
    truncated to its shortest (``"shortest"``), or, for a number S, padded to the next
    multiple of S at or above its longest sequence and run in chunks of S steps with the
    state carried between chunks (for a one-directional LSTM that equals one pass over the
    padded batch, which is what lstm_ref computes). Padding — and truncation — happen on
    the ``"right"`` (default: sequences start together) or the ``"left"`` (sequences end
    together) with ``padding_value``, and padding is **not masked**: the LSTM runs over
    it, so an OutputMode "last" reads the padded final step.

Non-finite values (NaN, ±Inf) are rejected with an error naming the sequence and step:
an LSTM carries them into every later step, so they are never what the caller meant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Array = np.ndarray
Layout = Literal["TC", "CT"]
Semantics = Literal["matlab", "masked"]
SequenceLength = Literal["longest", "shortest"] | int


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
        Whether the LSTM must stop each row at its length (``"masked"`` semantics).
    """

    x: Array
    rows: Array
    lengths: Array
    start: Array
    masked: bool


def as_sequence_list(
    X: Array | Sequence[Array],
    num_features: int,
    *,
    layout: Layout = "TC",
    lengths: Sequence[int] | Array | None = None,
    dtype: np.dtype | type = np.float64,
) -> tuple[list[Array], bool]:
    """Check the caller's data and return it as a list of (T_i, C) arrays.

    Parameters
    ----------
    X : ndarray or list of ndarray
        One sequence (T, C); a padded batch (N, T, C) with ``lengths``; or a list of
        sequences. Axis order as given by ``layout``.
    num_features : int
        C, the number of features the network expects.
    layout : {"TC", "CT"}
        Time × features (default) or MATLAB's features × time.
    lengths : sequence of int, optional
        For a padded 3-D array: the real length of each sequence (data at the start).
        Without it every step of the 3-D array is data.
    dtype : dtype
        The floating-point type to compute in.

    Returns
    -------
    sequences : list of ndarray, each (T_i, C)
    single : bool
        True when X was one 2-D sequence (the caller expects unbatched results).

    Raises
    ------
    ValueError, TypeError
        With a message naming what was expected and what came.
    """
    if layout not in ("TC", "CT"):
        raise ValueError(f"layout must be 'TC' (time × features) or 'CT'; got {layout!r}")
    if isinstance(X, np.ndarray) and X.ndim == 3:
        batch = X if layout == "TC" else np.swapaxes(X, 1, 2)
        seqs = list(batch)
        if lengths is not None:
            seqs = _cut_to_lengths(seqs, lengths)
        single = False
    elif isinstance(X, np.ndarray) and X.ndim == 2:
        if lengths is not None:
            raise ValueError("lengths is only meaningful for a padded 3-D batch (N, T, C)")
        seqs, single = [X if layout == "TC" else X.T], True
    elif isinstance(X, np.ndarray):
        raise ValueError(
            f"expected one sequence of shape (T, C) or a batch (N, T, C); got an array of shape "
            f"{X.shape}"
        )
    elif isinstance(X, list | tuple):
        if lengths is not None:
            raise ValueError("lengths is only meaningful for a padded 3-D batch (N, T, C)")
        if len(X) == 0:
            raise ValueError("expected at least one sequence; got an empty list")
        seqs = [_as_2d(s, k, layout) for k, s in enumerate(X)]
        single = False
    else:
        raise TypeError(f"expected a numpy array or a list of arrays; got {type(X).__name__}")
    return [_checked(s, k, num_features, layout, dtype) for k, s in enumerate(seqs)], single


def _as_2d(s: object, k: int, layout: Layout) -> Array:
    a = np.asarray(s)
    if a.ndim != 2:
        axes = "(T, C)" if layout == "TC" else "(C, T)"
        raise ValueError(f"sequence {k}: expected a 2-D array {axes}; got shape {a.shape}")
    return a if layout == "TC" else a.T


def _cut_to_lengths(seqs: list[Array], lengths: Sequence[int] | Array) -> list[Array]:
    lengths = np.asarray(lengths)
    T = seqs[0].shape[0]
    if lengths.shape != (len(seqs),) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(
            f"lengths must be {len(seqs)} integers, one per sequence; got {lengths.dtype} array "
            f"of shape {lengths.shape}"
        )
    if lengths.min() < 1 or lengths.max() > T:
        raise ValueError(f"lengths must lie in 1..{T} (the padded length); got {lengths.tolist()}")
    return [s[:n] for s, n in zip(seqs, lengths, strict=True)]


def _checked(s: Array, k: int, num_features: int, layout: Layout, dtype: np.dtype | type) -> Array:
    """One sequence as a (T, C) array of ``dtype``, or a clear error."""
    if not (np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer)) or (
        s.dtype == np.bool_
    ):
        raise TypeError(f"sequence {k}: expected real numbers; got dtype {s.dtype}")
    T, C = s.shape
    if C != num_features:
        hint = ""
        if T == num_features:
            other = "CT" if layout == "TC" else "TC"
            hint = f"; it looks transposed — pass layout={other!r}"
        shown = (T, C) if layout == "TC" else (C, T)
        want = f"(T, {num_features})" if layout == "TC" else f"({num_features}, T)"
        raise ValueError(f"sequence {k}: expected shape {want}; got {shown}{hint}")
    if T == 0:
        raise ValueError(f"sequence {k}: expected at least one time step; got 0")
    bad = ~np.isfinite(s)
    if bad.any():
        t, c = np.argwhere(bad)[0]
        raise ValueError(
            f"sequence {k}: non-finite value {s[t, c]} at time step {t}, feature {c}; "
            "inputs must be finite"
        )
    return s.astype(dtype, copy=False)


def make_batches(
    seqs: list[Array],
    semantics: Semantics = "matlab",
    *,
    mini_batch_size: int = 128,
    sequence_length: SequenceLength = "longest",
    padding_direction: Literal["right", "left"] = "right",
    padding_value: float = 0.0,
) -> list[Batch]:
    """Split sequences into padded mini-batches in data order.

    Parameters
    ----------
    seqs : list of ndarray, each (T_i, C)
    semantics : {"matlab", "masked"}
        See the module docstring.
    mini_batch_size : int
        Sequences per batch (MATLAB's default 128). Under "masked" semantics it only
        bounds memory; under "matlab" semantics it changes the padding and the numbers.
    sequence_length, padding_direction, padding_value
        MATLAB's SequenceLength, SequencePaddingDirection and SequencePaddingValue
        ("matlab" semantics only).

    Returns
    -------
    list of Batch
    """
    _check_batching(semantics, mini_batch_size, sequence_length, padding_direction, padding_value)
    masked, left = semantics == "masked", padding_direction == "left"
    C, dtype = seqs[0].shape[1], seqs[0].dtype
    batches = []
    for first in range(0, len(seqs), mini_batch_size):
        rows = np.arange(first, min(first + mini_batch_size, len(seqs)))
        lengths = np.array([len(seqs[r]) for r in rows])  # (B,) steps of data kept per row
        T = int(lengths.max())
        if sequence_length == "shortest":
            T = int(lengths.min())
            lengths[:] = T
        elif not isinstance(sequence_length, str):  # pad to a whole number of chunks
            T = -(-T // sequence_length) * sequence_length
        x = np.full((len(rows), T, C), padding_value, dtype=dtype)
        start = T - lengths if left else np.zeros_like(lengths)
        for b, (r, n, s) in enumerate(zip(rows, lengths, start, strict=True)):
            x[b, s : s + n] = seqs[r][len(seqs[r]) - n :] if left else seqs[r][:n]
        batches.append(Batch(x=x, rows=rows, lengths=lengths, start=start, masked=masked))
    return batches


def _check_batching(
    semantics: str,
    mini_batch_size: object,
    sequence_length: object,
    padding_direction: str,
    padding_value: object,
) -> None:
    """Raise a ValueError for any batching option that is out of range or does not apply."""
    if semantics not in ("matlab", "masked"):
        raise ValueError(f"semantics must be 'matlab' or 'masked'; got {semantics!r}")
    if not _is_count(mini_batch_size):
        raise ValueError(f"mini_batch_size must be a positive integer; got {mini_batch_size!r}")
    if padding_direction not in ("right", "left"):
        raise ValueError(f"padding_direction must be 'right' or 'left'; got {padding_direction!r}")
    if sequence_length not in ("longest", "shortest") and not _is_count(sequence_length):
        raise ValueError(
            "sequence_length must be 'longest', 'shortest' or a positive integer; "
            f"got {sequence_length!r}"
        )
    if isinstance(padding_value, bool) or not (
        isinstance(padding_value, int | float | np.number) and np.isfinite(padding_value)
    ):
        raise ValueError(f"padding_value must be a finite number; got {padding_value!r}")
    if semantics == "masked" and (sequence_length, padding_direction) != ("longest", "right"):
        raise ValueError(
            "sequence_length and padding_direction apply to 'matlab' semantics only: masked "
            "sequences are never padded or truncated"
        )


def _is_count(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1
