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
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import TextToPath

from .._checks import check_step_range, check_trace, check_units
from ..errors import InputError
from ..formats.writes import write_atomically
from ..lstm import GATE, GATE_NAMES, GATES, Gates
from .analysis import select_units

Array = np.ndarray

__all__ = [
    "plot_activation_heatmap",
    "plot_gate_saturation",
    "plot_gate_traces",
    "plot_sequence",
    "plot_unit_selection",
]

GATE_LABELS = {gate.name: f"{gate.role} {gate.name}" for gate in GATES}  # "input gate i", …

TAB10_COLORS = 10  # the distinct colours of tab10, which _color cycles through


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure of ``figsize`` with one axes."""
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return _figure_of(ax), ax


def _figure_of(ax: Axes) -> Figure:
    fig = ax.get_figure(root=True)
    if not isinstance(fig, Figure):
        raise InputError(f"ax must be a Matplotlib Axes on a figure; got {type(ax).__name__}")
    return fig


def _unit_colors(n: int) -> list[tuple[float, float, float]]:
    """n distinct colours: tab10's for up to ten, else shades of viridis in order."""
    if n <= TAB10_COLORS:
        return [_color(k) for k in range(n)]
    r = mpl.colormaps["viridis"](np.linspace(0, 1, n))
    return [(float(a), float(b), float(c)) for a, b, c, _ in r]


def _unit_ticks(n: int) -> list[int]:
    """About eight tick positions 1..n on a colour bar of n units, both ends included."""
    step = -(-n // 8)
    return [*(k for k in range(1, n + 1, step) if n - k >= step / 2), n]


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names (png, svg, …)."""
    kind = Path(path).suffix.lstrip(".")
    write_atomically(path, lambda f: fig.savefig(f, format=kind, dpi=dpi))


def _color(k: int) -> tuple[float, float, float]:
    """The k-th colour of tab10, cycling after ten."""
    r, g, b, _ = mpl.colormaps["tab10"](k % 10)
    return r, g, b


def _steps(T: int) -> Array:
    """MATLAB's time axis: 1, 2, …, T."""
    return np.arange(1, T + 1)


def _integer_ticks(ax, T: int, max_ticks: int = 30) -> None:
    """x ticks at whole time steps 1..T (every step up to ``max_ticks`` steps)."""
    step = max(1, int(np.ceil(T / max_ticks)))
    ticks = _steps(T)[::step]
    ax.set_xticks(ticks, [str(t) for t in ticks])


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
    fig, ax = _figure_and_axes(ax, (8.0, 4.8))
    t = _steps(T)
    styles = ("-", "--", ":", "-.")
    for k in range(C):
        ax.plot(
            t,
            x[:, k],
            color=_color(k),
            linestyle=styles[(k // TAB10_COLORS) % len(styles)],
            label=f"Feature {k + 1}",
        )
    ax.set_xlabel("Time Step")
    ax.set_title(title)
    ax.set_xlim(1, max(T, 2))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


def _text_width(text: str, size: float) -> float:
    """Width in inches of ``text`` at ``size`` points in the default font (no renderer)."""
    width, _, _ = TextToPath().get_text_width_height_descent(
        text, FontProperties(size=size), ismath=False
    )
    return width / 72


def _text_color(rgb: tuple[float, float, float]) -> str:
    """Black text on light cells, white on dark ones (by relative luminance)."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 else "white"


def plot_activation_heatmap(
    activations: Array,
    units: Sequence[int] | Array = range(10),
    title: str = "LSTM Activations",
    *,
    cmap: str = "viridis",
    show_values: bool = True,
    fmt: str = ".4g",
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Activations of chosen units over time: MATLAB's ``heatmap(features(1:10,:))``.

    Parameters
    ----------
    activations : ndarray, shape (H, T)
        Units × time, the seed's ``features`` matrix — for one sequence,
        ``net.trace(x).h.T``. (JapaneseVowelsNet's LSTM outputs only its last step, so
        ``predict(x, outputs="lstm")`` gives one column; the seed loops over the steps.)
    units : sequence of int
        Rows to show, 0-based (default the first ten, the seed's ``1:10``).
    title : str
        The axes title.
    cmap : str
        Colormap; viridis, perceptually uniform and close to MATLAB's parula.
    show_values : bool
        Print each cell's value in it.
    fmt : str
        Format of those values (:func:`format` spec); default 4 significant digits,
        MATLAB's ``%.4g`` (``0.1234``, ``-0.01235``). ``".2f"`` gives a narrower figure.
    figsize : (float, float), optional
        Figure size in inches. Default: sized so every cell's value fits at 7.5 pt — about
        0.6 in per time step with ``".4g"``, so a wide figure for long sequences (14 in for
        T = 19, 20 in for T = 29). When given, the font shrinks to fit the cells instead.

    Returns
    -------
    Figure
        An image of ``activations[units]`` with colour limits at the data's min and max (as
        MATLAB's heatmap, not symmetric about 0), a colour bar, x "Time Step" with ticks
        1..T, y "Hidden Unit" with ticks at the unit numbers (1-based, row 1 at the top).
    """
    activations = check_trace(activations, "activations", "(H, T), units × time", allow_empty=False)
    H, T = activations.shape
    rows = check_units(units, H, allow_empty=True)
    if not rows:
        raise InputError("units is empty: choose at least one unit to show")
    data = activations[rows]  # (K, T)
    K = len(rows)
    labels = [[format(v, fmt) for v in row] for row in data]

    # Layout in inches: each cell just wide enough for the widest label at `font` points,
    # plus margins for the y label and ticks (left) and the colour bar (right).
    font, pad = 7.5, 0.1
    margin_w, margin_h = 1.8, 1.3
    widest = max(_text_width(s, 1.0) for row in labels for s in row)  # inches per point
    if figsize is None:
        cell_w = max(0.4, widest * font + pad) if show_values else 0.4
        figsize = (max(6.4, margin_w + T * cell_w), max(3.5, margin_h + K * 0.34))
    elif show_values:  # shrink the font to fit the cells of the given figure
        cell_w = (figsize[0] - margin_w) / T
        font = float(np.clip((cell_w - pad) / widest, 3.0, font))

    fig, ax = _figure_and_axes(ax, figsize)
    vmin, vmax = float(np.min(data)), float(np.max(data))
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, aspect=30)
    if show_values:
        colormap, norm = im.get_cmap(), Normalize(vmin, vmax)
        for r in range(K):
            for t in range(T):
                ax.text(
                    t,
                    r,
                    labels[r][t],
                    ha="center",
                    va="center",
                    fontsize=font,
                    color=_text_color(to_rgb(colormap(norm(data[r, t])))),
                )
    ax.set_xticks(np.arange(T), [str(t) for t in _steps(T)])
    ax.set_yticks(np.arange(K), [str(u + 1) for u in rows])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("Time Step")
    ax.set_ylabel("Hidden Unit")
    ax.set_title(title)
    return fig


def plot_gate_traces(
    gates: Gates,
    units: Sequence[int] | Array,
    title: str = "LSTM gates and states",
    *,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Gates, cell state and hidden state of chosen units over one sequence.

    Five panels sharing the time axis: the input gate i, forget gate f, cell candidate g
    and output gate o, then the cell state c (solid) beside the hidden state
    h = o·tanh(c) (dashed) in the same colour per unit — c is unbounded, h is in (-1, 1);
    they are easily confused. (With a state activation other than tanh, h is o·σ_s(c).)

    Parameters
    ----------
    gates : Gates
        A trace of one sequence (:meth:`lstm_ref.Network.trace`): each field (T, H).
    units : sequence of int
        The units to show, 0-based; labelled "unit k" with k 1-based.
    title : str
        The figure title.

    axes : five Axes, optional
        Where to draw (top to bottom i, f, g, o, c/h), e.g. a column of a user's figure;
        default a new figure.

    Returns
    -------
    Figure
        Five axes (top to bottom i, f, g, o, c/h), x "Time Step" 1..T on the last. Up to
        ten units get the ten colours of tab10 and a legend beside the first axes; more
        units get shades of viridis and a colour bar "unit" instead, so any number lays
        out. A legend of the line styles stands beside the last axes.
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

    if axes is None:
        fig = Figure(figsize=(8.5, 10.0), layout="constrained")
        axes = list(fig.subplots(5, 1, sharex=True))
    elif len(axes) != 5:
        raise InputError(f"axes must be five Axes (i, f, g, o, c/h); got {len(axes)}")
    fig = _figure_of(axes[0])
    colors = _unit_colors(len(units))
    t = _steps(T)
    for ax, name in zip(axes[:4], GATE_NAMES, strict=True):
        for k, u in enumerate(units):
            ax.plot(t, arrays[name][:, u], color=colors[k], label=f"unit {u + 1}")
        ax.set_ylabel(GATE_LABELS[name])
        ax.set_ylim((-1.05, 1.05) if name == "g" else (-0.03, 1.03))
        ax.grid(True, alpha=0.3)
    ax = axes[4]
    for k, u in enumerate(units):
        ax.plot(t, arrays["c"][:, u], color=colors[k], linestyle="-", label=f"c, unit {u + 1}")
        ax.plot(t, arrays["h"][:, u], color=colors[k], linestyle="--", label=f"h, unit {u + 1}")
    ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0, gid="zero")
    ax.set_ylabel("cell state c, hidden h")
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("Time Step")
    ax.set_xlim(1, max(T, 2))
    _integer_ticks(ax, T)

    if len(units) <= TAB10_COLORS:
        axes[0].legend(
            title="units", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0
        )
    else:
        shades = ScalarMappable(Normalize(1, len(units)), mpl.colormaps["viridis"])
        bar = fig.colorbar(shades, ax=list(axes[:4]), fraction=0.04, pad=0.02, aspect=40)
        bar.set_label(f"unit (the {len(units)} chosen, in order)")
        bar.set_ticks(
            _unit_ticks(len(units)), labels=[str(units[k - 1] + 1) for k in _unit_ticks(len(units))]
        )
    styles = [
        Line2D([], [], color="0.3", linestyle="-", label="c: cell state"),
        Line2D([], [], color="0.3", linestyle="--", label="h = o·tanh(c)"),
    ]
    ax.legend(handles=styles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.suptitle(title)
    return fig


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
    fig = _figure_of(axes[0])
    for ax, name in zip(axes, names, strict=False):
        left, right = pairs[name]
        ax.plot([0, 1], [1, 0], color="0.5", linestyle="--", linewidth=1.0, zorder=1)
        ax.scatter(
            left,
            right,
            s=18,
            alpha=0.6,
            color=_color(0),
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

    fig, ax = _figure_and_axes(ax, (9.0, 4.8))
    t = _steps(T)
    ax.axvspan(start + 0.5, stop + 0.5, color="tab:orange", alpha=0.15, lw=0, gid="range")
    for u in range(H):
        ax.plot(t, h[:, u], color="0.6", alpha=0.25, linewidth=0.8, gid="background")
    n = len(units)
    many = n > TAB10_COLORS  # more units than distinct colours: one colour, one legend entry
    for k, u in enumerate(units):
        label = f"unit {u + 1}" if not many else (f"{n} selected units" if k == 0 else "_")
        color = _color(0 if many else k)
        ax.plot(t, h[:, u], color=color, linewidth=1.6, label=label, gid="selected")
    ax.axhline(
        threshold,
        color="black",
        linestyle="--",
        linewidth=1.0,
        gid="threshold",
        label=f"threshold {threshold:g}",
    )
    ax.set_xlim(1, max(T, 2))
    _integer_ticks(ax, T)
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
