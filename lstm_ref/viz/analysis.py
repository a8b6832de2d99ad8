"""What the units of an LSTM do: gate saturation and LSTMVis-style unit selection.

Pure NumPy (no plotting); :mod:`lstm_ref.viz.plots` draws the results. Every array follows the
library's layout, time × units: a trace of one sequence is ``(T, H)`` — T time steps, H
hidden units — as returned by :meth:`lstm_ref.Network.trace`. Time steps are 0-based here,
and ranges are half-open ``[start, stop)`` like Python slices.

* :func:`gate_saturation` — how often each gate of each unit is nearly closed or nearly
  open (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent
  Networks", the gate saturation scatter).
* :func:`select_units` and :func:`matching_sequences` — pick the units that stay on over a
  chosen range of one sequence, then find where the same units are on together elsewhere
  (Strobelt et al., "LSTMVis", IEEE TVCG 2018; default threshold 0.3 as there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._checks import check_count, check_number, check_step_range, check_trace, check_units
from ..errors import InputError
from ..lstm import GATE, GATE_NAMES, Gates

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
        raise InputError("gate_saturation needs at least one trace; got none")
    if not all(isinstance(tr, Gates) for tr in traces):
        kinds = sorted({type(tr).__name__ for tr in traces if not isinstance(tr, Gates)})
        raise InputError(f"expected a sequence of Gates (from Network.trace); got {kinds}")
    if not 0.0 <= low < high <= 1.0:
        raise InputError(
            f"thresholds must satisfy 0 <= low < high <= 1; got low={low}, high={high}"
        )
    result = {}
    for name in GATE_NAMES:
        parts = [np.asarray(getattr(tr, name), dtype=float) for tr in traces]
        for n, part in enumerate(parts):
            if part.ndim != 2:
                raise InputError(
                    f"trace {n}: gate {name!r} must be 2-D (T, H); got shape {part.shape}"
                )
        widths = {part.shape[1] for part in parts}
        if len(widths) != 1:
            raise InputError(f"gate {name!r}: traces have different numbers of units {widths}")
        values = np.concatenate(parts, axis=0)  # (sum of T_n, H)
        if values.shape[0] == 0:
            raise InputError("the traces have no time steps")
        if GATE[name].activation == "state":  # g: the range (-1, 1) of σ_s -> (0, 1)
            values = (values + 1.0) / 2.0
        result[name] = ((values < low).mean(axis=0), (values > high).mean(axis=0))
    return result


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
    threshold = check_number(threshold, "threshold")
    start, stop = check_step_range(start, stop, h.shape[0])
    return np.flatnonzero(np.all(h[start:stop] >= threshold, axis=0))


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
    min_length = check_count(min_length, "min_length")
    threshold = check_number(threshold, "threshold")
    traces = [check_trace(h, f"traces_h[{n}]") for n, h in enumerate(traces_h)]
    if not traces:
        return []
    widths = {h.shape[1] for h in traces}
    if len(widths) != 1:
        raise InputError(f"traces_h have different numbers of units {sorted(widths)}")
    units = check_units(units, widths.pop())
    matches = []
    for n, h in enumerate(traces):
        on = np.all(h[:, units] >= threshold, axis=1)  # (T_n,)
        matches += [(n, a, b) for a, b in _runs(on) if b - a >= min_length]
    return sorted(matches, key=lambda m: (m[1] - m[2], m[0], m[1]))
