"""Comparing an observed output with the reference's, in the spirit of Polygraphy's comparator.

An element fails only when it exceeds **both** tolerances: ``|obs − ref| > atol`` and
``|obs − ref| / |ref| > rtol`` (the reference is the second runner, as in Polygraphy); a NaN
always fails. The minimum tolerance that would pass is the largest absolute error (with
rtol = 0) or the largest relative error (with atol = 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Comparison:
    """One output compared.

    Attributes
    ----------
    name : str
        The output's name.
    observed_shape, reference_shape : tuple of int
    observed_dtype : str
    compared : int
        How many elements of data were compared: padded steps are counted apart.
    max_abs, mean_abs, median_abs, max_rel, mean_rel, median_rel : float
        Statistics of |obs − ref| and |obs − ref| / |ref| over the compared elements (the
        maxima NaN when an observed value is NaN, infinite when one is infinite; the means
        and medians over the finite errors).
    failed : int
        Elements beyond both tolerances (NaN and infinite ones included).
    nan, infinite : int
        Observed values of data that are NaN, or infinite.
    nan_at : list of tuple of int
        Where the first (at most 5) NaN values of data are: (sequence, unit) or
        (sequence, step, unit), in time order.
    padded_compared, padded_failed : int
        Padded steps whose values the padding semantics defines (0s, Keras's repeated
        output), checked apart from the data, and how many of them differ.
    atol, rtol : float
        The tolerances applied.
    histogram : list of (float, float, int)
        Finite absolute errors per bin: (low, high, count); decades from the smallest
        non-zero error.
    """

    name: str
    observed_shape: tuple[int, ...]
    reference_shape: tuple[int, ...]
    observed_dtype: str
    compared: int
    max_abs: float
    mean_abs: float
    median_abs: float
    max_rel: float
    mean_rel: float
    median_rel: float
    failed: int
    nan: int
    infinite: int
    padded_compared: int
    padded_failed: int
    atol: float
    rtol: float
    histogram: list[tuple[float, float, int]]
    nan_at: list[tuple[int, ...]]

    @property
    def passed(self) -> bool:
        return self.failed == 0 and self.padded_failed == 0


def errors(observed: Array, reference: Array) -> tuple[Array, Array]:
    """Absolute and relative errors, elementwise (a zero reference gives an infinite
    relative error unless the observed value is zero too; a NaN gives NaN, an infinite
    observed value an infinite error)."""
    obs, ref = observed.astype(np.float64), reference.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        abs_err = np.abs(obs - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_err = np.where(abs_err == 0, 0.0, abs_err / np.abs(ref))
    return abs_err, rel_err


def failing(abs_err: Array, rel_err: Array, atol: float, rtol: float) -> Array:
    """Where an element fails: beyond both tolerances, or NaN."""
    return np.isnan(abs_err) | ((abs_err > atol) & (rel_err > rtol))


def failing_compared(
    observed: Array, reference: Array, compared: Array, atol: float, rtol: float
) -> tuple[Array, Array]:
    """Where ``observed`` fails against ``reference`` (bool, their shape) among the
    sequences or steps ``compared`` ((N,) or (N, T), every unit of each), and the absolute
    errors."""
    abs_err, rel_err = errors(observed, reference)
    return failing(abs_err, rel_err, atol, rtol) & compared[..., None], abs_err


def compare(
    name: str,
    observed: Array,
    reference: Array,
    data: Array,
    atol: float,
    rtol: float,
    padded: Array | None = None,
) -> Comparison:
    """Compare ``observed`` with ``reference`` where ``data`` holds, and apart from it where
    ``padded`` does.

    Parameters
    ----------
    name : str
    observed, reference : ndarray, shape (N, K) or (N, T, W), the same
    data : ndarray of bool, shape (N,) or (N, T)
        Which sequences (or steps) hold data; broadcast over the last axis.
    atol, rtol : float
    padded : ndarray of bool, shape of ``data``, optional
        Padded steps whose value the semantics defines.

    Returns
    -------
    Comparison
    """
    keep = np.broadcast_to(data[..., None], reference.shape)
    abs_err, rel_err = errors(observed[keep], reference[keep])
    finite = np.isfinite(abs_err)
    a, r = abs_err[finite], rel_err[finite]
    values = observed[keep]

    def stat(f: Callable[[Array], Any], v: Array) -> float:
        return float(f(v)) if v.size else 0.0

    def largest(v: Array, everything: Array) -> float:
        if np.isnan(everything).any():
            return float("nan")
        return float("inf") if np.isinf(everything).any() else stat(np.max, v)

    padded_compared = padded_failed = 0
    if padded is not None:
        where = np.broadcast_to(padded[..., None], reference.shape)
        pa, pr = errors(observed[where], reference[where])
        padded_compared, padded_failed = int(pa.size), int(failing(pa, pr, atol, rtol).sum())
    return Comparison(
        name=name,
        observed_shape=tuple(observed.shape),
        reference_shape=tuple(reference.shape),
        observed_dtype=str(observed.dtype),
        compared=int(abs_err.size),
        max_abs=largest(a, abs_err),
        mean_abs=stat(np.mean, a),
        median_abs=stat(np.median, a),
        max_rel=largest(r, rel_err),
        mean_rel=stat(np.mean, r[np.isfinite(r)]),
        median_rel=stat(np.median, r),
        failed=int(failing(abs_err, rel_err, atol, rtol).sum()),
        nan=int(np.isnan(values).sum()),
        infinite=int(np.isinf(values).sum()),
        padded_compared=padded_compared,
        padded_failed=padded_failed,
        atol=atol,
        rtol=rtol,
        histogram=histogram(a),
        nan_at=_first_nans(observed, keep),
    )


def _first_nans(observed: Array, keep: Array, most: int = 5) -> list[tuple[int, ...]]:
    """The indices of the first ``most`` NaN values where ``keep`` holds, earliest step first."""
    where = np.argwhere(np.isnan(observed) & keep)
    if observed.ndim == 3:  # (sequence, step, unit): by step, then sequence and unit
        where = where[np.lexsort((where[:, 2], where[:, 0], where[:, 1]))]
    return [tuple(int(i) for i in row) for row in where[:most]]


def histogram(abs_err: Array, bins: int = 8) -> list[tuple[float, float, int]]:
    """Counts of (finite) absolute errors in decades: [0, e₀), then [e₀, 10 e₀), … up to the largest
    error, where e₀ is the decade of the smallest non-zero error (at most ``bins`` rows)."""
    if abs_err.size == 0:
        return []
    nonzero = abs_err[abs_err > 0]
    if nonzero.size == 0:
        return [(0.0, 0.0, int(abs_err.size))]
    top = int(np.floor(np.log10(nonzero.max()))) + 1
    low = max(int(np.floor(np.log10(nonzero.min()))), top - bins + 1)
    edges = [0.0, *(10.0**k for k in range(low, top + 1))]
    counts, _ = np.histogram(abs_err, bins=edges)
    return [(edges[k], edges[k + 1], int(c)) for k, c in enumerate(counts)]


def histogram_text(rows: list[tuple[float, float, int]], width: int = 40) -> list[str]:
    """The histogram as text lines, one bar per bin."""
    most = max((c for *_, c in rows), default=0) or 1
    return [
        f"    [{lo:8.1e}, {hi:8.1e}) | {'#' * round(width * c / most):<{width}} {c}"
        for lo, hi, c in rows
    ]
