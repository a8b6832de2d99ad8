"""Figures: the seed's two plots, gate traces, gate saturation and LSTMVis-style selection.

Every function builds and returns a :class:`matplotlib.figure.Figure` made with
``Figure(...)`` — no pyplot, no global state, works headless. Save it with
``fig.savefig(path)``; the figures use constrained layout, so nothing is cut off.

Arrays follow the library's layout, time × features, ``(T, C)`` or ``(T, H)``; only the
heatmap takes an activation matrix units × time ``(H, T)``, as the seed's ``features``. Unit
indices passed in are 0-based (Python); every *label* on a figure is 1-based like MATLAB's:
time steps 1..T, "unit 3" for index 2.

Importing this module imports matplotlib; ``import lstm_ref`` does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._checks import check_step_range, check_trace, check_units
from ..errors import InputError
from ..lstm import GATE, GATE_NAMES, GATES, Gates
from .analysis import select_units
from .figures import (
    TAB10_COLORS,
    color,
    figure_and_axes,
    figure_of,
    label_positions,
    save_figure,
    steps,
    time_ticks,
)
from .heatmap import plot_activation_heatmap

Array = np.ndarray

__all__ = [
    "plot_activation_heatmap",
    "plot_gate_saturation",
    "plot_gate_traces",
    "plot_sequence",
    "plot_unit_selection",
    "save_figure",
]

GATE_LABELS = {gate.name: f"{gate.role} {gate.name}" for gate in GATES}  # "input gate i", …
PANELS = (*GATE_NAMES, "c", "h")  # the gate-traces figure, top to bottom
PANEL_LABELS = {**GATE_LABELS, "c": "cell state c", "h": "hidden state h"}


def plot_sequence(x: Array, title: str = "Test Observation 1", *, ax: Axes | None = None) -> Figure:
    """One sequence, one line per feature: MATLAB's ``plot(XTest{1}')``.

    Parameters
    ----------
    x : ndarray, shape (T, C)
        One sequence, time × features (the library's layout; MATLAB's ``XTest{1}'``).
    title : str
        The axes title.

    Returns
    -------
    Figure
        One axes with C lines over time steps 1..T, x label "Time Step", and a legend
        "Feature 1" … "Feature C" outside the axes on the right (MATLAB's
        ``'northeastoutside'``). Features 11–20 repeat the ten colours dashed, 21–30 dotted.
    """
    x = check_trace(x, "x", "(T, C), time × features", allow_empty=False)
    T, C = x.shape
    fig, ax = figure_and_axes(ax, (8.0, 4.8))
    t = steps(T)
    styles = ("-", "--", ":", "-.")
    for k in range(C):
        ax.plot(
            t,
            x[:, k],
            color=color(k),
            linestyle=styles[(k // TAB10_COLORS) % len(styles)],
            label=f"Feature {k + 1}",
        )
    ax.set_xlabel("Time Step")
    ax.set_title(title)
    ax.set_xlim(1, max(T, 2))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


def plot_gate_traces(
    gates: Gates,
    units: Sequence[int] | Array,
    title: str = "LSTM gates and states",
    *,
    time_window: tuple[int, int] | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Gates, cell state and hidden state of chosen units over one sequence.

    Six panels sharing the time axis: the input gate i, forget gate f, cell candidate g,
    output gate o, the cell state c (unbounded) and the hidden state h = o·tanh(c), in
    (-1, 1). (With a state activation other than tanh, h is o·σ_s(c).)

    Parameters
    ----------
    gates : Gates
        A trace of one sequence (:meth:`lstm_ref.Network.trace`): each field (T, H).
    units : sequence of int
        The units to show, 0-based; labelled "unit k" with k 1-based.
    title : str
        The figure title.
    time_window : (int, int), optional
        Steps ``start`` (0-based) to ``stop`` (exclusive) to show, labelled 1-based;
        default every step.
    axes : six Axes, optional
        Where to draw (top to bottom i, f, g, o, c, h), e.g. a column of a user's figure;
        default a new figure.

    Returns
    -------
    Figure
        Six axes, x "Time Step" on the last. Up to ten units: one line per unit in the
        ten colours of tab10, one legend of the units beside the panels. More units: each
        panel an image, units × time, with its colour bar (i, f, o on 0..1; g and h on
        -1..1; c symmetric about 0), so a hundred units stay readable.
    """
    if not isinstance(gates, Gates):
        raise InputError(f"gates must be a Gates trace (from Network.trace); got {type(gates)}")
    arrays = {
        name: check_trace(getattr(gates, name), name, "(T, H)", allow_empty=False)
        for name in Gates._fields
    }
    if len({a.shape for a in arrays.values()}) != 1:
        shapes = {name: a.shape for name, a in arrays.items()}
        raise InputError(f"all fields of gates must have the same shape (T, H); got {shapes}")
    T, H = arrays["h"].shape
    units = check_units(units, H, allow_empty=True)
    if not units:
        raise InputError("units is empty: choose at least one unit to show")
    start, stop = (0, T) if time_window is None else check_step_range(*time_window, T)
    shown = {name: arrays[name][start:stop, units] for name in PANELS}  # each (W, K)

    own = axes is None
    if axes is None:
        fig = Figure(figsize=(9.5, 11.0), layout="constrained")
        axes = list(fig.subplots(len(PANELS), 1, sharex=True))
    elif len(axes) != len(PANELS):
        raise InputError(f"axes must be six Axes (i, f, g, o, c, h); got {len(axes)}")
    fig = figure_of(axes[0])
    c_max = max(float(np.abs(shown["c"]).max()), 1e-12)
    limits = {name: (-1.0, 1.0) for name in ("g", "h")} | {"c": (-c_max, c_max)}
    lines = len(units) <= TAB10_COLORS  # a line per unit, else an image per panel
    draw = _gate_lines if lines else _gate_images
    for ax, name in zip(axes, PANELS, strict=True):
        draw(fig, ax, shown[name], units, start, limits.get(name, (0.0, 1.0)))
        ax.set_ylabel(PANEL_LABELS[name])
    axes[-1].set_xlabel("Time Step")
    time_ticks(axes[-1], stop - start, first=start + 1)
    if lines and own:  # one legend beside every panel
        fig.legend(handles=list(axes[0].lines), title="units", loc="outside right upper")
    elif lines:  # beside the first of a user's axes
        axes[0].legend(
            handles=list(axes[0].lines),
            title="units",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
        )
    fig.suptitle(title)
    return fig


def _gate_lines(
    fig: Figure, ax: Axes, y: Array, units: list[int], start: int, limits: tuple[float, float]
) -> None:
    """One panel of up to ten units: a line per unit; y (W, K)."""
    t = steps(len(y), start + 1)
    for k, u in enumerate(units):
        ax.plot(t, y[:, k], color=color(k), label=f"unit {u + 1}")
    low, high = limits
    ax.set_ylim(low - 0.03 * (high - low), high + 0.03 * (high - low))
    if low < 0:
        ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0, gid="zero")
    ax.set_xlim(start + 1, max(start + len(y), start + 2))
    ax.grid(True, alpha=0.3)


def _gate_images(
    fig: Figure, ax: Axes, y: Array, units: list[int], start: int, limits: tuple[float, float]
) -> None:
    """One panel of many units: an image, a row per unit over the steps; y (W, K)."""
    W, K = y.shape
    cmap = "viridis" if limits[0] >= 0 else "RdBu_r"
    extent = (start + 0.5, start + W + 0.5, K + 0.5, 0.5)
    im = ax.imshow(
        y.T,
        cmap=cmap,
        vmin=limits[0],
        vmax=limits[1],
        aspect="auto",
        interpolation="nearest",
        extent=extent,
    )
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.01, aspect=12)
    at = label_positions(np.arange(1, K + 1), 6)
    ax.set_yticks(at + 1, [str(units[k] + 1) for k in at])
    ax.tick_params(axis="y", length=0)


def plot_gate_saturation(
    saturation: Mapping[str, tuple[Array, Array]],
    low: float = 0.1,
    high: float = 0.9,
    title: str = "Gate saturation",
    *,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Karpathy et al.'s saturation scatter: one point per unit, one panel per gate.

    Parameters
    ----------
    saturation : mapping of str to (ndarray, ndarray)
        From :func:`lstm_ref.analysis.gate_saturation`: for gates among "i", "f", "g",
        "o", the per-unit fractions (left, right), each (H,).
    low, high : float
        The thresholds used to compute ``saturation``, for the axis labels only.
    title : str
        The figure title.
    axes : sequence of Axes, optional
        One per gate present, where to draw; default a new figure.

    Returns
    -------
    Figure
        One square axes per gate present (order i, f, g, o): x the fraction of steps
        left-saturated (< low), y right-saturated (> high), both 0..1, with the bound
        x + y = 1 drawn dashed (no unit can lie above it). g is judged as (g + 1)/2.
    """
    names = [name for name in GATE_NAMES if name in saturation]
    unknown = sorted(set(saturation) - set(GATE_NAMES))
    if unknown or not names:
        raise InputError(
            f"saturation must map gates among {GATE_NAMES} to (left, right); "
            f"got keys {sorted(saturation)}"
        )
    pairs = {}
    for name in names:
        left, right = (np.asarray(a, dtype=float) for a in saturation[name])
        if left.ndim != 1 or left.shape != right.shape:
            raise InputError(
                f"gate {name!r}: left and right must be 1-D of the same length (H,); "
                f"got {left.shape} and {right.shape}"
            )
        pairs[name] = (left, right)

    if axes is None:
        ncols = 2 if len(names) == 4 else len(names)
        nrows = int(np.ceil(len(names) / ncols))
        fig = Figure(figsize=(3.4 * ncols + 0.4, 3.4 * nrows + 0.6), layout="constrained")
        axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    elif len(axes) < len(names):
        raise InputError(f"axes must be {len(names)} Axes, one per gate; got {len(axes)}")
    fig = figure_of(axes[0])
    for ax, name in zip(axes, names, strict=False):
        left, right = pairs[name]
        ax.plot([0, 1], [1, 0], color="0.5", linestyle="--", linewidth=1.0, zorder=1)
        ax.scatter(
            left,
            right,
            s=18,
            alpha=0.6,
            color=color(0),
            edgecolors="none",
            clip_on=False,
            zorder=3,
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        as_unit_range = GATE[name].activation == "state"  # mapped as gate_saturation does
        ax.set_title(GATE_LABELS[name] + (f" (as ({name}+1)/2)" if as_unit_range else ""))
        ax.set_xlabel(f"fraction left-saturated (< {low:g})")
        ax.set_ylabel(f"fraction right-saturated (> {high:g})")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


def plot_unit_selection(
    h: Array,
    units: Sequence[int] | Array | None,
    start: int,
    stop: int,
    threshold: float = 0.3,
    title: str | None = None,
    *,
    ax: Axes | None = None,
) -> Figure:
    """LSTMVis's selection view: every unit's trace, the selected ones highlighted.

    Parameters
    ----------
    h : ndarray, shape (T, H)
        Hidden states of one sequence, time × units.
    units : sequence of int, or None
        The selected units, 0-based; None selects them with
        :func:`lstm_ref.analysis.select_units` (on at every step of the range).
    start, stop : int
        The selected range, 0-based steps, stop exclusive (as for ``select_units``);
        shaded over time steps ``start + 1`` … ``stop`` on the 1-based axis.
    threshold : float
        Drawn as a horizontal line (LSTMVis's default 0.3).
    title : str, optional
        Default: how many units were selected, and the range and threshold.

    Returns
    -------
    Figure
        One axes: H faint grey lines (gid "background"), one coloured line per selected
        unit (gid "selected"; label "unit k", 1-based, when there are at most ten — more
        share one colour and one legend entry), the threshold line (gid "threshold") and
        the shaded range (gid "range").
    """
    h = check_trace(h, allow_empty=False)
    T, H = h.shape
    start, stop = check_step_range(start, stop, T)
    if units is None:
        units = select_units(h, start, stop, threshold)
    units = check_units(units, H, allow_empty=True)

    fig, ax = figure_and_axes(ax, (9.0, 4.8))
    t = steps(T)
    ax.axvspan(start + 0.5, stop + 0.5, color="tab:orange", alpha=0.15, lw=0, gid="range")
    for u in range(H):
        ax.plot(t, h[:, u], color="0.6", alpha=0.25, linewidth=0.8, gid="background")
    n = len(units)
    many = n > TAB10_COLORS  # more units than distinct colours: one colour, one legend entry
    for k, u in enumerate(units):
        label = f"unit {u + 1}" if not many else (f"{n} selected units" if k == 0 else "_")
        ax.plot(
            t, h[:, u], color=color(0 if many else k), linewidth=1.6, label=label, gid="selected"
        )
    ax.axhline(
        threshold,
        color="black",
        linestyle="--",
        linewidth=1.0,
        gid="threshold",
        label=f"threshold {threshold:g}",
    )
    ax.set_xlim(1, max(T, 2))
    time_ticks(ax, T)
    ax.set_xlabel("Time Step")
    ax.set_ylabel("activation h")
    if title is None:
        title = (
            f"{n} unit{'' if n == 1 else 's'} selected: ≥ {threshold:g} "
            f"at every time step {start + 1}–{stop}"
        )
    ax.set_title(title)
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize="small",
    )
    return fig
