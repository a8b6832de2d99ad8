"""What the units of an LSTM do: gate saturation and LSTMVis-style unit selection.

Pure NumPy (no plotting); :mod:`lstm_ref.plot` draws the results. Every array follows the
library's layout, time × units: a trace of one sequence is ``(T, H)`` — T time steps, H
hidden units — as returned by :meth:`lstm_ref.Network.trace`. Time steps are 0-based here,
and ranges are half-open ``[start, stop)`` like Python slices.

* :func:`gate_saturation` — how often each gate of each unit is nearly closed or nearly
  open (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent
  Networks", the gate saturation scatter).
* :func:`select_units` and :func:`matching_sequences` — pick the units that stay on over a
  chosen range of one sequence, then find where the same units are on together elsewhere
  (Strobelt et al., "LSTMVis", IEEE TVCG 2018; default threshold 0.3 as there).
* :func:`check_trace`, :func:`check_units` and :func:`check_step_range` — the argument
  checks shared with :mod:`lstm_ref.plot`.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np

from .lstm import GATE_NAMES, Gates

Array = np.ndarray


def gate_saturation(
    traces: Sequence[Gates] | Gates, low: float = 0.1, high: float = 0.9
) -> dict[str, tuple[Array, Array]]:
    """Per unit, the fraction of time steps at which each gate is saturated.

    A gate is *left-saturated* at a step when its value is below ``low`` (nearly closed)
    and *right-saturated* when above ``high`` (nearly open). The fractions are pooled over
    all time steps of all sequences, so a long sequence weighs more than a short one.

    The sigmoid gates i, f, o lie in (0, 1) and are compared as they are. The cell
    candidate g lies in (-1, 1) (tanh); it is mapped to (0, 1) by ``(g + 1) / 2`` first, so
    the same thresholds apply: with the defaults, g counts as left-saturated below -0.8
    and right-saturated above 0.8.

    Parameters
    ----------
    traces : sequence of Gates, or one Gates
        One trace per sequence, e.g. ``[net.trace(x) for x in X]``; in each, i, f, g, o
        are arrays of shape (T_n, H) (T_n may differ between sequences, H may not).
    low, high : float
        The thresholds, with ``0 <= low < high <= 1``.

    Returns
    -------
    dict of str to (ndarray, ndarray)
        For each gate ``"i"``, ``"f"``, ``"g"``, ``"o"``: ``(left, right)``, each of shape
        (H,): the fraction of the pooled time steps at which that unit's gate is
        ``< low`` and ``> high``. ``left + right <= 1`` for every unit.

    Raises
    ------
    ValueError
        If there are no traces or no time steps, the shapes disagree, or the thresholds
        are not ``0 <= low < high <= 1``.
    """
    if isinstance(traces, Gates):
        traces = [traces]
    traces = list(traces)
    if not traces:
        raise ValueError("gate_saturation needs at least one trace; got none")
    if not all(isinstance(tr, Gates) for tr in traces):
        kinds = sorted({type(tr).__name__ for tr in traces if not isinstance(tr, Gates)})
        raise ValueError(f"expected a sequence of Gates (from Network.trace); got {kinds}")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(
            f"thresholds must satisfy 0 <= low < high <= 1; got low={low}, high={high}"
        )
    result = {}
    for name in GATE_NAMES:
        parts = [np.asarray(getattr(tr, name), dtype=float) for tr in traces]
        for n, part in enumerate(parts):
            if part.ndim != 2:
                raise ValueError(
                    f"trace {n}: gate {name!r} must be 2-D (T, H); got shape {part.shape}"
                )
        widths = {part.shape[1] for part in parts}
        if len(widths) != 1:
            raise ValueError(f"gate {name!r}: traces have different numbers of units {widths}")
        values = np.concatenate(parts, axis=0)  # (sum of T_n, H)
        if values.shape[0] == 0:
            raise ValueError("the traces have no time steps")
        if name == "g":
            values = (values + 1.0) / 2.0  # tanh range (-1, 1) -> (0, 1)
        result[name] = ((values < low).mean(axis=0), (values > high).mean(axis=0))
    return result


def check_trace(
    a: Array, name: str = "h", layout: str = "(T, H), time × units", *, allow_empty: bool = True
) -> Array:
    """``a`` as a 2-D array of real numbers, or a ValueError naming ``name`` and ``layout``.

    ``layout`` describes the expected axes in the message (e.g. ``"(T, C), time ×
    features"``); with ``allow_empty=False`` an axis of length 0 is an error too.
    """
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array {layout}; got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers; got dtype {a.dtype}")
    if not allow_empty and 0 in a.shape:
        raise ValueError(f"{name} is empty: shape {a.shape}")
    return a


def _check_step(value: object, name: str) -> int:
    """``value`` as an int, or a ValueError if it is not an integer (bools are not)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer time step; got {value!r}")
    return int(value)


def check_step_range(start: object, stop: object, T: int) -> tuple[int, int]:
    """Validate a 0-based, stop-exclusive range of time steps of a length-T sequence."""
    start, stop = _check_step(start, "start"), _check_step(stop, "stop")
    if not 0 <= start < stop <= T:
        raise ValueError(
            f"need 0 <= start < stop <= T = {T} (0-based steps, stop exclusive); "
            f"got start={start}, stop={stop}"
        )
    return start, stop


def select_units(h: Array, start: int, stop: int, threshold: float = 0.3) -> Array:
    """The units that stay at or above ``threshold`` at every step of ``[start, stop)``.

    LSTMVis's selection: the user marks a range of one sequence, and the units whose
    activation is on (``>= threshold``) throughout that range are selected.

    Parameters
    ----------
    h : ndarray, shape (T, H)
        Hidden states (or any per-unit trace) of one sequence, time × units.
    start, stop : int
        The range of time steps, 0-based, ``stop`` exclusive: ``0 <= start < stop <= T``.
    threshold : float
        The activation a unit must reach at every step of the range (LSTMVis's default 0.3).

    Returns
    -------
    ndarray of int, shape (K,)
        The selected units, 0-based, ascending; empty when no unit qualifies.

    Raises
    ------
    ValueError
        If ``h`` is not 2-D, or the range is not ``0 <= start < stop <= T``.
    """
    h = check_trace(h)
    start, stop = check_step_range(start, stop, h.shape[0])
    return np.flatnonzero(np.all(h[start:stop] >= threshold, axis=0))


def check_units(units: Array | Sequence[int], H: int, *, allow_empty: bool = False) -> list[int]:
    """0-based unit indices of a layer of H units, as a list of ints.

    A ValueError unless ``units`` is 1-D, holds integers in 0..H-1, and — unless
    ``allow_empty`` — names at least one unit.
    """
    units = np.asarray(units)
    if units.ndim != 1:
        raise ValueError(f"units must be a 1-D list of unit indices; got shape {units.shape}")
    if units.size == 0:
        if allow_empty:
            return []
        raise ValueError("no units given: select at least one unit")
    if not np.issubdtype(units.dtype, np.integer):
        raise ValueError(f"units must be integer indices (0-based); got dtype {units.dtype}")
    bad = units[(units < 0) | (units >= H)]
    if bad.size:
        raise ValueError(f"unit indices {bad.tolist()} out of range 0..{H - 1} (0-based)")
    return units.tolist()


def _runs(on: Array) -> list[tuple[int, int]]:
    """(start, stop) of every maximal run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def matching_sequences(
    traces_h: Sequence[Array], units: Array | Sequence[int], threshold: float, min_length: int
) -> list[tuple[int, int, int]]:
    """Where else the selected units are on together: LSTMVis's match search.

    Parameters
    ----------
    traces_h : sequence of ndarray, each shape (T_n, H)
        Hidden states of each sequence, time × units (T_n may differ, H may not).
    units : array_like of int, shape (K,)
        The units to match (0-based), e.g. from :func:`select_units`; at least one.
    threshold : float
        A step matches when *all* the units are ``>= threshold`` there.
    min_length : int
        The shortest run of consecutive matching steps to report (>= 1).

    Returns
    -------
    list of (int, int, int)
        ``(n, start, stop)`` for every maximal run of at least ``min_length`` matching
        steps: sequence index n, and steps ``[start, stop)`` (0-based, stop exclusive).
        Longest runs first (LSTMVis ranks matches by length); ties by sequence index,
        then start.

    Raises
    ------
    ValueError
        If ``units`` is empty or out of range, ``min_length < 1``, or a trace is not 2-D
        with H columns.
    """
    min_length = _check_step(min_length, "min_length")
    if min_length < 1:
        raise ValueError(f"min_length must be at least 1; got {min_length}")
    traces = [check_trace(h, f"traces_h[{n}]") for n, h in enumerate(traces_h)]
    if not traces:
        return []
    widths = {h.shape[1] for h in traces}
    if len(widths) != 1:
        raise ValueError(f"traces_h have different numbers of units {sorted(widths)}")
    units = check_units(units, widths.pop())
    matches = []
    for n, h in enumerate(traces):
        on = np.all(h[:, units] >= threshold, axis=1)  # (T_n,)
        matches += [(n, a, b) for a, b in _runs(on) if b - a >= min_length]
    return sorted(matches, key=lambda m: (m[1] - m[2], m[0], m[1]))
