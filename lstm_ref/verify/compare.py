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
        How many elements were compared (padded steps whose value no semantics defines are
        left out).
    max_abs, mean_abs, median_abs, max_rel, mean_rel, median_rel : float
        Statistics of |obs − ref| and |obs − ref| / |ref| over the compared elements.
    failed : int
        Elements beyond both tolerances.
    atol, rtol : float
        The tolerances applied.
    histogram : list of (float, float, int)
        Absolute errors per bin: (low, high, count); decades from the smallest non-zero error.
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
    atol: float
    rtol: float
    histogram: list[tuple[float, float, int]]

    @property
    def passed(self) -> bool:
        return self.failed == 0


def errors(observed: Array, reference: Array) -> tuple[Array, Array]:
    """Absolute and relative errors, elementwise (a zero reference gives an infinite
    relative error unless the observed value is zero too; a NaN gives NaN)."""
    obs, ref = observed.astype(np.float64), reference.astype(np.float64)
    abs_err = np.abs(obs - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_err = np.where(abs_err == 0, 0.0, abs_err / np.abs(ref))
    return abs_err, rel_err


def failing(abs_err: Array, rel_err: Array, atol: float, rtol: float) -> Array:
    """Where an element fails: beyond both tolerances, or NaN."""
    return np.isnan(abs_err) | ((abs_err > atol) & (rel_err > rtol))


def compare(
    name: str, observed: Array, reference: Array, mask: Array, atol: float, rtol: float
) -> Comparison:
    """Compare ``observed`` with ``reference`` where ``mask`` holds.

    Parameters
    ----------
    name : str
    observed, reference : ndarray, shape (N, K) or (N, T, W), the same
    mask : ndarray of bool, shape (N,) or (N, T)
        Which sequences (or steps) to compare; broadcast over the last axis.
    atol, rtol : float

    Returns
    -------
    Comparison
    """
    keep = np.broadcast_to(mask[..., None], reference.shape)
    abs_err, rel_err = errors(observed[keep], reference[keep])
    nan = np.isnan(abs_err)
    a, r = abs_err[~nan], rel_err[~nan]

    def stat(f: Callable[[Array], Any], v: Array) -> float:
        return float(f(v)) if v.size else 0.0

    return Comparison(
        name=name,
        observed_shape=tuple(observed.shape),
        reference_shape=tuple(reference.shape),
        observed_dtype=str(observed.dtype),
        compared=int(abs_err.size),
        max_abs=float("nan") if nan.any() else stat(np.max, a),
        mean_abs=stat(np.mean, a),
        median_abs=stat(np.median, a),
        max_rel=float("nan") if nan.any() else stat(np.max, r),
        mean_rel=stat(np.mean, r[np.isfinite(r)]),
        median_rel=stat(np.median, r),
        failed=int(failing(abs_err, rel_err, atol, rtol).sum()),
        atol=atol,
        rtol=rtol,
        histogram=histogram(a),
    )


def histogram(abs_err: Array, bins: int = 8) -> list[tuple[float, float, int]]:
    """Counts of absolute errors in decades: [0, e₀), then [e₀, 10 e₀), … up to the largest
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
