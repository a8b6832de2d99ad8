"""The activation heatmap (the seed's ``heatmap(features(1:10,:))``), at any size.

The figure grows with the sequence and the units up to ``MAX_SIZE``, then its cells shrink;
each cell's value is printed only where it is readable (``READABLE_POINTS``), the tick
labels are thinned to what fits, and a time window shows part of a long sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, to_rgb
from matplotlib.figure import Figure

from .._checks import check_step_range, check_trace, check_units
from ..errors import InputError
from .figures import figure_and_axes, label_positions, steps, text_color, text_width

Array = np.ndarray

MAX_SIZE = (16.0, 12.0)  # inches: at most 1600 × 1200 pixels at the default 100 dpi
MARGINS = (1.8, 1.3)  # inches beside the cells: y label, ticks, colour bar; x label, title
FONT_POINTS = 7.5  # the cell text's size when the cells have room
READABLE_POINTS = 6.0  # smaller cell text is not drawn (unless show_values=True)
CELL_PAD = 0.1  # inches of a cell's width left beside its text
ROW_HEIGHT = 0.34  # inches per unit while the figure is under MAX_SIZE
TICK_SPACING = (0.45, 0.3)  # inches per x and per y tick label, at least


def plot_activation_heatmap(
    activations: Array,
    units: Sequence[int] | Array = range(10),
    title: str = "LSTM Activations",
    *,
    cmap: str = "viridis",
    show_values: bool | None = None,
    fmt: str = ".4g",
    limits: tuple[float, float] | None = None,
    time_window: tuple[int, int] | None = None,
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
    show_values : bool, optional
        Print each cell's value in it: None (default) where the cells leave the text at
        least ``READABLE_POINTS`` (6 pt) tall and wide enough; True always (down to 3 pt);
        False never.
    fmt : str
        Format of those values (:func:`format` spec); default 4 significant digits,
        MATLAB's ``%.4g`` (``0.1234``, ``-0.01235``). ``".2f"`` gives narrower cells.
    limits : (float, float), optional
        The colour scale's (min, max); default the shown data's. Give two heatmaps the
        same limits to compare them by colour.
    time_window : (int, int), optional
        Steps ``start`` (0-based) to ``stop`` (exclusive) to show, labelled 1-based
        (``start + 1`` … ``stop``); default every step.
    figsize : (float, float), optional
        Figure size in inches. Default: each cell wide enough for its value at 7.5 pt
        (about 0.6 in per step with ``".4g"``) and 0.34 in tall, within ``MAX_SIZE``
        (16 × 12 in); past it the cells shrink and their text goes. When given, the font
        shrinks to fit the cells.

    Returns
    -------
    Figure
        An image of ``activations[units]`` over the window with colour limits at
        ``limits`` (default the data's min and max, as MATLAB's heatmap, not symmetric
        about 0), a colour bar, x "Time Step" and y "Hidden Unit" (1-based, row 1 at the
        top), every step and unit labelled while the labels fit, else the first and
        multiples of 2, 5, 10, 20, 25, 50, ….
    """
    activations = check_trace(activations, "activations", "(H, T), units × time", allow_empty=False)
    H, T = activations.shape
    rows = check_units(units, H, allow_empty=True)
    if not rows:
        raise InputError("units is empty: choose at least one unit to show")
    start, stop = (0, T) if time_window is None else check_step_range(*time_window, T)
    data = activations[rows, start:stop]  # (K, W)
    K, W = data.shape
    vmin, vmax = (float(np.min(data)), float(np.max(data))) if limits is None else limits
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmin <= vmax):
        raise InputError(f"limits must be two finite numbers (min, max); got {limits}")

    labels = [[format(v, fmt) for v in row] for row in data] if show_values is not False else []
    widest = _widest(labels)  # inches per point of the widest value
    if figsize is None:
        cell = max(0.4, widest * FONT_POINTS + CELL_PAD) if labels else 0.4
        figsize = (
            min(MAX_SIZE[0], max(6.4, MARGINS[0] + W * cell)),
            min(MAX_SIZE[1], max(3.5, MARGINS[1] + K * ROW_HEIGHT)),
        )
    cell_w, cell_h = (
        (size - margin) / n for size, margin, n in zip(figsize, MARGINS, (W, K), strict=True)
    )
    font = min(FONT_POINTS, (cell_w - CELL_PAD) / widest, 0.55 * 72 * cell_h) if labels else 0
    shown = font >= READABLE_POINTS if show_values is None else show_values
    fig, ax = figure_and_axes(ax, figsize)
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, aspect=30)
    if shown:
        colormap, norm = im.get_cmap(), Normalize(vmin, vmax)
        for r in range(K):
            for t in range(W):
                ax.text(
                    t,
                    r,
                    labels[r][t],
                    ha="center",
                    va="center",
                    fontsize=max(3.0, font),
                    color=text_color(to_rgb(colormap(norm(data[r, t])))),
                )
    time = steps(W, start + 1)
    at = label_positions(time, max(2, int(cell_w * W / TICK_SPACING[0])))
    ax.set_xticks(at, [str(t) for t in time[at]])
    at = label_positions(np.arange(1, K + 1), max(2, int(cell_h * K / TICK_SPACING[1])))
    ax.set_yticks(at, [str(rows[k] + 1) for k in at])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("Time Step")
    ax.set_ylabel("Hidden Unit")
    ax.set_title(title)
    return fig


def _widest(labels: list[list[str]]) -> float:
    """The width in inches per point of the widest of ``labels`` (measured on the longest
    few, not all of a large table); 1 when there are none."""
    if not labels:
        return 1.0
    flat = {s for row in labels for s in row}
    longest = max(map(len, flat))
    return max(text_width(s, 1.0) for s in sorted(s for s in flat if len(s) >= longest - 1)[:50])
