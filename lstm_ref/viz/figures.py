"""What the figures share: their axes, colours, time ticks, text sizes and atomic saving.

Importing this module imports matplotlib; ``import lstm_ref`` does not.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

from ..errors import InputError
from ..formats.writes import write_atomically

Array = np.ndarray

TAB10_COLORS = 10  # the distinct colours of tab10, which color() cycles through
NICE_STEPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000)


def figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure of ``figsize`` with one axes."""
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return figure_of(ax), ax


def figure_of(ax: Axes) -> Figure:
    """The figure ``ax`` is drawn on (a user's axes must be on a Figure)."""
    fig = ax.get_figure(root=True)
    if not isinstance(fig, Figure):
        raise InputError(f"ax must be a Matplotlib Axes on a figure; got {type(ax).__name__}")
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names (png, svg, …)."""
    kind = Path(path).suffix.lstrip(".")
    write_atomically(path, lambda f: fig.savefig(f, format=kind, dpi=dpi))


def color(k: int) -> tuple[float, float, float]:
    """The k-th colour of tab10, cycling after ten."""
    r, g, b, _ = mpl.colormaps["tab10"](k % TAB10_COLORS)
    return r, g, b


def steps(T: int, first: int = 1) -> Array:
    """MATLAB's time axis: first, first + 1, …, first + T − 1 (1-based steps)."""
    return np.arange(first, first + T)


def label_positions(labels: Array, most: int) -> Array:
    """Indices into ``labels`` (consecutive 1-based step or unit numbers) to label, at most
    ``most`` of them: every one if they fit, else the first and the multiples of the
    smallest of 2, 5, 10, 20, 25, 50, … that keeps them under ``most``."""
    n = len(labels)
    if n <= most:
        return np.arange(n)
    step = next((s for s in NICE_STEPS if n / s < most), -(-n // most))
    chosen = [0, *np.flatnonzero(labels % step == 0)]
    if labels[chosen[1]] - labels[0] < 0.6 * step:  # the first too close to the next
        chosen.pop(1)
    return np.array(chosen)


def time_ticks(ax: Axes, T: int, most: int = 20, first: int = 1) -> None:
    """x ticks at whole time steps first..first + T − 1 of a line plot, at most ``most``
    labelled."""
    t = steps(T, first)
    at = t[label_positions(t, most)]
    ax.set_xticks(at, [str(v) for v in at])


def text_width(text: str, size: float) -> float:
    """Width in inches of ``text`` at ``size`` points in the default font (no renderer)."""
    width, _, _ = TextToPath().get_text_width_height_descent(
        text, FontProperties(size=size), ismath=False
    )
    return width / 72


def text_color(rgb: tuple[float, float, float]) -> str:
    """Black text on light cells, white on dark ones (by relative luminance)."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 else "white"
