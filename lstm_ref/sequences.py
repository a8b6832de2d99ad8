"""Sequences in, batches out: layout checks, padding, truncation and the two semantics.

Data layout
-----------
One sequence is a 2-D array **time × features**, shape (T, C) — layout ``"TC"``, the
default. MATLAB stores sequences **features × time**, (C, T); pass ``layout="CT"`` for
those. Several sequences are a list of such arrays (lengths may differ), or a padded 3-D
array (N, T, C) — (N, C, T) with ``layout="CT"`` — together with their ``lengths``.

How a batch of sequences of different lengths is computed is :mod:`lstm_ref.padding`'s.

Data are real numbers (integers or floats, not bool), cast to the network's dtype and then
checked finite: NaN, ±Inf and values that overflow the dtype are rejected with an error
naming the sequence, time step and feature — an LSTM carries them into every later step,
so they are never what the caller meant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ._checks import check_lengths, check_real_array, check_real_dtype
from .errors import InputError, InputTypeError

Array = np.ndarray
Layout = Literal["TC", "CT"]


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
    InputError, InputTypeError
        With a message naming what was expected and what came.
    """
    if layout not in ("TC", "CT"):
        raise InputError(f"layout must be 'TC' (time × features) or 'CT'; got {layout!r}")
    if isinstance(X, np.ma.MaskedArray):
        raise InputTypeError(
            "masked arrays are not read (their mask would be ignored): pass a list of "
            "sequences, or a padded array with lengths="
        )
    if isinstance(X, np.ndarray) and X.ndim == 3:
        if X.shape[0] == 0:
            raise InputError(f"expected at least one sequence; got a batch of shape {X.shape}")
        batch = X if layout == "TC" else np.swapaxes(X, 1, 2)
        seqs = list(batch)
        if lengths is not None:
            seqs = _cut_to_lengths(seqs, lengths)
        single = False
    elif isinstance(X, np.ndarray) and X.ndim == 2:
        if lengths is not None:
            raise InputError("lengths is only meaningful for a padded 3-D batch (N, T, C)")
        seqs, single = [X if layout == "TC" else X.T], True
    elif isinstance(X, np.ndarray):
        raise InputError(
            f"expected one sequence of shape (T, C) or a batch (N, T, C); got an array of shape "
            f"{X.shape}"
        )
    elif isinstance(X, list | tuple):
        if lengths is not None:
            raise InputError("lengths is only meaningful for a padded 3-D batch (N, T, C)")
        if len(X) == 0:
            raise InputError("expected at least one sequence; got an empty list")
        if any(isinstance(s, np.ma.MaskedArray) for s in X):
            raise InputTypeError("masked arrays are not read (their mask would be ignored)")
        seqs = [_as_2d(s, k, layout) for k, s in enumerate(X)]
        single = False
    else:
        raise InputTypeError(f"expected a numpy array or a list of arrays; got {type(X).__name__}")
    return [_checked(s, k, num_features, layout, dtype) for k, s in enumerate(seqs)], single


def _as_2d(s: object, k: int, layout: Layout) -> Array:
    a = np.asarray(s)
    if a.ndim != 2:
        axes = "(T, C)" if layout == "TC" else "(C, T)"
        raise InputError(f"sequence {k + 1}: expected a 2-D array {axes}; got shape {a.shape}")
    return a if layout == "TC" else a.T


def _cut_to_lengths(seqs: list[Array], lengths: Sequence[int] | Array) -> list[Array]:
    lengths = check_lengths(lengths, len(seqs), seqs[0].shape[0])
    return [s[:n] for s, n in zip(seqs, lengths, strict=True)]


def _checked(s: Array, k: int, num_features: int, layout: Layout, dtype: np.dtype | type) -> Array:
    """One sequence as a (T, C) array of ``dtype``, or a clear error."""
    what = f"sequence {k + 1}"  # counted from 1, as every message counts
    check_real_dtype(s, what)  # before the shape, so that text gets this message
    T, C = s.shape
    if C != num_features:
        hint = ""
        if T == num_features:
            other = "CT" if layout == "TC" else "TC"
            hint = f"; it looks transposed — pass layout={other!r} (--layout {other})"
        shown = (T, C) if layout == "TC" else (C, T)
        want = f"(T, {num_features})" if layout == "TC" else f"({num_features}, T)"
        raise InputError(f"{what}: expected shape {want}; got {shown}{hint}")
    if T == 0:
        raise InputError(f"{what}: expected at least one time step; got 0")
    return check_real_array(s, what, dtype, axes=("time step", "feature"))
