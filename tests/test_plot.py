"""The figures' content: titles, labels, plotted data, legends, cell texts — then a real PNG."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise

import matplotlib

matplotlib.use("Agg")  # this test module only: headless rendering

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.text import Text
from random_nets import random_network, random_sequences

from lstm_ref.datasets import load_japanese_vowels
from lstm_ref.viz import plots as plot
from lstm_ref.viz.analysis import gate_saturation, select_units

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def save_and_check_png(fig: Figure, path) -> None:
    """fig.savefig alone writes a valid PNG of the figure's full size."""
    fig.savefig(path)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    image = imread(path)
    width, height = fig.get_size_inches() * fig.dpi
    assert abs(image.shape[0] - height) <= 1 and abs(image.shape[1] - width) <= 1
    assert image[..., :3].std() > 0.05  # not blank


def inside(inner, outer, tol: float = 1.0) -> bool:
    return (
        inner.x0 >= outer.x0 - tol
        and inner.x1 <= outer.x1 + tol
        and inner.y0 >= outer.y0 - tol
        and inner.y1 <= outer.y1 + tol
    )


def suptitle(fig: Figure) -> str:
    """The figure title (Figure.get_suptitle needs matplotlib 3.8; setup.cfg allows 3.7)."""
    (title,) = [c.get_text() for c in fig.get_children() if isinstance(c, Text)]
    return title


def texts(labels) -> list[str]:
    return [t.get_text() for t in labels]


@pytest.fixture(scope="module")
def vowel() -> np.ndarray:
    return load_japanese_vowels("test")[0][0]  # (19, 12), the seed's XTest{1}'


@pytest.fixture
def trace(rng, vowel):
    return random_network(rng, C=12, H=100, K=9).trace(vowel)


def test_import_lstm_ref_does_not_import_matplotlib():
    code = "import sys, lstm_ref, lstm_ref.viz.analysis; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ plot_sequence


def test_plot_sequence_is_the_seed_plot(vowel, tmp_path):
    fig = plot.plot_sequence(vowel)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert ax.get_title() == "Test Observation 1"
    assert ax.get_xlabel() == "Time Step"
    T, C = vowel.shape
    assert len(ax.lines) == C == 12
    for k, line in enumerate(ax.lines):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, T + 1))
        np.testing.assert_array_equal(line.get_ydata(), vowel[:, k])
    legend = ax.get_legend()
    assert texts(legend.get_texts()) == [f"Feature {k}" for k in range(1, 13)]
    colors_styles = {(line.get_color(), line.get_linestyle()) for line in ax.lines}
    assert len(colors_styles) == C  # every feature distinguishable

    fig.draw_without_rendering()
    legend_box, axes_box = legend.get_window_extent(), ax.get_window_extent()
    assert legend_box.x0 >= axes_box.x1  # 'northeastoutside'
    assert legend_box.y1 >= axes_box.y1 - 0.2 * axes_box.height  # at the top
    assert inside(legend_box, fig.bbox)  # not cut off
    assert inside(ax.get_tightbbox(), fig.bbox)
    save_and_check_png(fig, tmp_path / "sequence.png")


def test_plot_sequence_title_and_errors(rng):
    x = random_sequences(rng, [5], C=3)[0]
    fig = plot.plot_sequence(x, title="Observation 7")
    assert fig.axes[0].get_title() == "Observation 7"
    assert len(fig.axes[0].lines) == 3
    with pytest.raises(ValueError, match=r"2-D array \(T, C\)"):
        plot.plot_sequence(x[:, 0])
    with pytest.raises(ValueError, match="empty"):
        plot.plot_sequence(np.zeros((0, 3)))


# ------------------------------------------------------------------ heatmap


def test_heatmap_is_the_seed_heatmap(trace, tmp_path):
    features = trace.h.T  # (H, T) = (100, 19), MATLAB's layout
    fig = plot.plot_activation_heatmap(features)
    ax = fig.axes[0]
    assert ax.get_title() == "LSTM Activations"
    assert ax.get_xlabel() == "Time Step"
    assert ax.get_ylabel() == "Hidden Unit"
    (image,) = ax.images
    np.testing.assert_array_equal(image.get_array(), features[:10])
    assert image.get_clim() == (features[:10].min(), features[:10].max())  # not symmetric
    assert image.colorbar is not None and len(fig.axes) == 2

    T = features.shape[1]
    np.testing.assert_array_equal(ax.get_xticks(), np.arange(T))
    assert texts(ax.get_xticklabels()) == [str(t) for t in range(1, T + 1)]
    np.testing.assert_array_equal(ax.get_yticks(), np.arange(10))
    assert texts(ax.get_yticklabels()) == [str(u) for u in range(1, 11)]

    assert len(ax.texts) == 10 * T
    by_cell = {(round(t.get_position()[0]), round(t.get_position()[1])): t for t in ax.texts}
    for r in range(10):
        for t in range(T):
            assert by_cell[t, r].get_text() == f"{features[r, t]:.4g}"
            assert float(by_cell[t, r].get_text()) == pytest.approx(features[r, t], rel=1e-3)
    # light text on the darkest cell, dark text on the brightest (viridis)
    low, high = (
        np.unravel_index(features[:10].argmin(), (10, T)),
        np.unravel_index(features[:10].argmax(), (10, T)),
    )
    assert by_cell[low[1], low[0]].get_color() == "white"
    assert by_cell[high[1], high[0]].get_color() == "black"
    save_and_check_png(fig, tmp_path / "heatmap.png")


@pytest.mark.parametrize("T", [19, 29])
def test_heatmap_values_fit_their_cells_and_are_readable(rng, T):
    # the worst case for '%.4g': negative values below 0.01 in magnitude ('-0.001235')
    features = rng.uniform(-0.9, 0.9, size=(10, T))
    features[::2, ::3] = -0.001234567
    fig = plot.plot_activation_heatmap(features)
    ax = fig.axes[0]
    fig.draw_without_rendering()
    cell_width = ax.get_window_extent().width / T
    cell_height = ax.get_window_extent().height / 10
    assert all(t.get_fontsize() >= 7 for t in ax.texts)
    for t in ax.texts:
        box = t.get_window_extent()
        assert box.width < 0.95 * cell_width and box.height < 0.8 * cell_height
    assert inside(ax.get_tightbbox(), fig.bbox)


# pixels at 100 dpi by (steps, units): under 1600 × 1200 however long or wide
HEATMAP_PIXELS = {
    (19, 10): (1385, 470),
    (100, 10): (1600, 470),
    (251, 10): (1600, 470),
    (19, 100): (1385, 1200),
    (100, 100): (1600, 1200),
    (251, 100): (1600, 1200),
}


@pytest.mark.parametrize(("T", "n"), list(HEATMAP_PIXELS))
def test_heatmap_of_any_size_stays_readable(rng, tmp_path, T, n):
    features = rng.uniform(-0.9, 0.9, size=(100, T))
    fig = plot.plot_activation_heatmap(features, units=range(n))
    save_and_check_png(fig, tmp_path / "h.png")
    assert imread(tmp_path / "h.png").shape[1::-1] == HEATMAP_PIXELS[T, n]
    ax = fig.axes[0]
    fig.draw_without_rendering()
    assert inside(ax.get_tightbbox(), fig.bbox)
    # cell text only where it is readable: the 10 × 19 of the seed, nothing smaller
    assert len(ax.texts) == (10 * 19 if (T, n) == (19, 10) else 0)
    for axis, count in ((ax.xaxis, T), (ax.yaxis, n)):
        labels = [t for t in axis.get_ticklabels() if t.get_text()]
        assert labels[0].get_text() == "1" and len(labels) <= max(count, 2) and len(labels) <= 36
        boxes = [t.get_window_extent() for t in labels]
        assert not any(a.overlaps(b) for a, b in pairwise(boxes))
    last = [t.get_text() for t in ax.get_xticklabels()][-1]
    assert int(last) > T - 10  # the thinned ticks still reach the end


def test_heatmap_time_window_and_shared_colour_scale(rng):
    features = rng.normal(size=(10, 251))
    fig = plot.plot_activation_heatmap(features, time_window=(100, 119), limits=(-5.0, 5.0))
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), features[:10, 100:119])
    assert ax.images[0].get_clim() == (-5.0, 5.0)
    assert texts(ax.get_xticklabels()) == [str(t) for t in range(101, 120)]
    assert len(ax.texts) == 10 * 19  # a 19-step window is readable again
    with pytest.raises(ValueError, match="limits must be two finite numbers"):
        plot.plot_activation_heatmap(features, limits=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"0 <= start < stop <= T = 251"):
        plot.plot_activation_heatmap(features, time_window=(0, 300))


def test_heatmap_chosen_units_are_labelled_one_based(rng, tmp_path):
    features = rng.normal(size=(6, 4))
    fig = plot.plot_activation_heatmap(features, units=[4, 0, 2], title="three units")
    ax = fig.axes[0]
    assert ax.get_title() == "three units"
    np.testing.assert_array_equal(ax.images[0].get_array(), features[[4, 0, 2]])
    assert texts(ax.get_yticklabels()) == ["5", "1", "3"]
    assert texts(ax.get_xticklabels()) == ["1", "2", "3", "4"]
    assert len(ax.texts) == 12


def test_heatmap_options(rng):
    features = rng.normal(size=(10, 20))
    bare = plot.plot_activation_heatmap(features, show_values=False)
    assert len(bare.axes[0].texts) == 0
    short = plot.plot_activation_heatmap(features, fmt=".2f")
    assert short.axes[0].texts[0].get_text() == f"{features[0, 0]:.2f}"
    assert short.get_figwidth() < plot.plot_activation_heatmap(features).get_figwidth()
    small = plot.plot_activation_heatmap(features, figsize=(8, 4), show_values=True)
    assert tuple(small.get_size_inches()) == (8, 4)
    assert len(small.axes[0].texts) == 200
    assert all(3 <= t.get_fontsize() < 6 for t in small.axes[0].texts)  # shrunk to fit
    unreadable = plot.plot_activation_heatmap(features, figsize=(8, 4))
    assert len(unreadable.axes[0].texts) == 0  # by default only text at 6 pt or more


def test_heatmap_errors(rng):
    features = rng.normal(size=(5, 7))
    with pytest.raises(ValueError, match=r"out of range 0..4"):
        plot.plot_activation_heatmap(features)  # default 10 units, only 5
    with pytest.raises(ValueError, match="units is empty"):
        plot.plot_activation_heatmap(features, units=[])
    with pytest.raises(ValueError, match=r"\(H, T\), units × time"):
        plot.plot_activation_heatmap(features[0], units=[0])


# ------------------------------------------------------------------ gate traces


def test_gate_traces_panels_and_data(trace, tmp_path):
    units = [2, 40, 7]
    fig = plot.plot_gate_traces(trace, units, title="gates of three units")
    assert suptitle(fig) == "gates of three units"
    assert len(fig.axes) == 6
    T = trace.h.shape[0]
    steps = np.arange(1, T + 1)
    for ax, name in zip(fig.axes, "ifgoch", strict=True):
        assert ax.get_ylabel().endswith(f" {name}")
        curves = [line for line in ax.lines if line.get_gid() != "zero"]
        assert len(curves) == 3
        for line, u, first in zip(curves, units, fig.axes[0].lines, strict=True):
            np.testing.assert_array_equal(line.get_xdata(), steps)
            np.testing.assert_array_equal(line.get_ydata(), getattr(trace, name)[:, u])
            assert line.get_color() == first.get_color()  # one colour per unit throughout
    (legend,) = fig.legends  # one legend of the units, beside every panel
    assert texts(legend.get_texts()) == ["unit 3", "unit 41", "unit 8"]
    assert fig.axes[-1].get_xlabel() == "Time Step"
    assert all(ax.get_xlabel() == "" for ax in fig.axes[:-1])  # one shared x label
    ticks = texts(fig.axes[-1].get_xticklabels())
    assert ticks[0] == "1" and ticks[-1] == str(T)
    c_low, c_high = fig.axes[4].get_ylim()
    assert c_low == pytest.approx(-c_high) and c_high > np.abs(trace.c[:, units]).max()

    fig.draw_without_rendering()
    for ax in fig.axes:
        assert inside(ax.get_tightbbox(), fig.bbox)
    assert inside(legend.get_window_extent(), fig.bbox)
    save_and_check_png(fig, tmp_path / "gates.png")


def test_gate_traces_time_window(trace):
    fig = plot.plot_gate_traces(trace, [0, 1], time_window=(5, 12))
    line = fig.axes[0].lines[0]
    np.testing.assert_array_equal(line.get_xdata(), np.arange(6, 13))
    np.testing.assert_array_equal(line.get_ydata(), trace.i[5:12, 0])
    assert texts(fig.axes[-1].get_xticklabels())[0] == "6"


def test_gate_traces_errors(trace):
    with pytest.raises(ValueError, match=r"out of range 0..99"):
        plot.plot_gate_traces(trace, [100])
    with pytest.raises(ValueError, match="units is empty"):
        plot.plot_gate_traces(trace, [])
    with pytest.raises(ValueError, match="Gates trace"):
        plot.plot_gate_traces(trace.h, [0])


# ------------------------------------------------------------------ gate saturation


def test_gate_saturation_scatter(rng, tmp_path):
    net = random_network(rng, C=12, H=100, K=9)
    X = load_japanese_vowels("test")[0][:5]
    sat = gate_saturation([net.trace(x) for x in X])
    fig = plot.plot_gate_saturation(sat)
    assert len(fig.axes) == 4
    for ax, name in zip(fig.axes, "ifgo", strict=True):
        assert ax.get_title().split(" ")[-1 if name != "g" else 2] == name
        (points,) = ax.collections
        np.testing.assert_array_equal(points.get_offsets(), np.column_stack(sat[name]))
        assert ax.get_xlabel() == "fraction left-saturated (< 0.1)"
        assert ax.get_ylabel() == "fraction right-saturated (> 0.9)"
        assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1)
        (bound,) = ax.lines
        np.testing.assert_array_equal(bound.get_xdata(), [0, 1])
        np.testing.assert_array_equal(bound.get_ydata(), [1, 0])
    assert "(g+1)/2" in fig.axes[2].get_title()
    save_and_check_png(fig, tmp_path / "saturation.png")


def test_gate_saturation_scatter_subset_labels_and_errors():
    sat = {"f": (np.array([0.1, 0.5]), np.array([0.2, 0.0]))}
    fig = plot.plot_gate_saturation(sat, low=0.2, high=0.8)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 1
    assert visible[0].get_xlabel() == "fraction left-saturated (< 0.2)"
    assert visible[0].get_ylabel() == "fraction right-saturated (> 0.8)"
    np.testing.assert_array_equal(visible[0].collections[0].get_offsets(), [[0.1, 0.2], [0.5, 0]])
    with pytest.raises(ValueError, match="gates among"):
        plot.plot_gate_saturation({"x": sat["f"]})
    with pytest.raises(ValueError, match="gates among"):
        plot.plot_gate_saturation({})
    with pytest.raises(ValueError, match="same length"):
        plot.plot_gate_saturation({"f": (np.zeros(2), np.zeros(3))})


# ------------------------------------------------------------------ unit selection


def lines_by_gid(ax, gid):
    return [line for line in ax.lines if line.get_gid() == gid]


def test_unit_selection_view(trace, tmp_path):
    h = trace.h  # (19, 100)
    T, H = h.shape
    units = select_units(h, 4, 9, threshold=0.7)
    assert 1 <= len(units) <= 10
    fig = plot.plot_unit_selection(h, units, 4, 9, 0.7)
    (ax,) = fig.axes
    steps = np.arange(1, T + 1)
    background = lines_by_gid(ax, "background")
    assert len(background) == H
    for u, line in enumerate(background):
        np.testing.assert_array_equal(line.get_xdata(), steps)
        np.testing.assert_array_equal(line.get_ydata(), h[:, u])
    selected = lines_by_gid(ax, "selected")
    assert len(selected) == len(units)
    for u, line in zip(units, selected, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), h[:, u])
        assert line.get_label() == f"unit {u + 1}"
        assert line.get_linewidth() > background[0].get_linewidth()
    assert len({line.get_color() for line in selected}) == len(units)
    (threshold,) = lines_by_gid(ax, "threshold")
    np.testing.assert_array_equal(threshold.get_ydata(), [0.7, 0.7])
    (span,) = [p for p in ax.patches if p.get_gid() == "range"]
    x0, x1 = span.get_x(), span.get_x() + span.get_width()
    assert (x0, x1) == (4.5, 9.5)  # 0-based steps 4..8 are time steps 5..9
    n = len(units)
    assert ax.get_title() == (
        f"{n} unit{'' if n == 1 else 's'} selected: ≥ 0.7 at every time step 5–9"
    )
    assert ax.get_xlabel() == "Time Step"
    assert texts(ax.get_xticklabels())[0] == "1"

    fig.draw_without_rendering()
    assert inside(ax.get_legend().get_window_extent(), fig.bbox)
    save_and_check_png(fig, tmp_path / "selection.png")


def test_unit_selection_selects_when_units_is_none_and_groups_many(trace):
    h = trace.h
    units = select_units(h, 4, 9)  # default threshold 0.3: many units of a random network
    assert len(units) > 10
    fig = plot.plot_unit_selection(h, None, 4, 9)
    ax = fig.axes[0]
    selected = lines_by_gid(ax, "selected")
    assert len(selected) == len(units)
    for u, line in zip(units, selected, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), h[:, u])
    assert len({line.get_color() for line in selected}) == 1
    legend = texts(ax.get_legend().get_texts())
    assert legend == [f"{len(units)} selected units", "threshold 0.3"]
    assert ax.get_title().startswith(f"{len(units)} units selected")


def test_unit_selection_with_nothing_selected_and_errors(trace):
    fig = plot.plot_unit_selection(trace.h, [], 0, 3, threshold=2.0, title="none")
    ax = fig.axes[0]
    assert lines_by_gid(ax, "selected") == []
    assert ax.get_title() == "none"
    assert (
        plot.plot_unit_selection(trace.h, None, 0, 3, 2.0)
        .axes[0]
        .get_title()
        .startswith("0 units selected")
    )
    with pytest.raises(ValueError, match=r"0 <= start < stop <= T = 19"):
        plot.plot_unit_selection(trace.h, [0], 5, 25)
    with pytest.raises(ValueError, match=r"out of range 0..99"):
        plot.plot_unit_selection(trace.h, [100], 0, 3)


@pytest.mark.parametrize("n", [3, 10, 11, 100])
def test_gate_traces_lay_out_cleanly_for_any_number_of_units(trace, tmp_path, n):
    """Up to ten units: lines and a legend; more: an image per panel, units × time, with its
    colour bar; everything inside the figure, no warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot.plot_gate_traces(trace, units=range(n))
        save_and_check_png(fig, tmp_path / "g.png")
    fig.draw_without_rendering()
    page = fig.bbox
    bars = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    panels = [a for a in fig.axes if a not in bars]
    assert len(panels) == 6
    assert (len(bars), len(fig.legends)) == ((0, 1) if n <= 10 else (6, 0))
    for legend in fig.legends:
        assert inside(legend.get_window_extent(), page)
    for ax, name in zip(panels, "ifgoch", strict=True):
        assert inside(ax.get_tightbbox(), page)
        if n > 10:
            (image,) = ax.images
            np.testing.assert_array_equal(image.get_array(), getattr(trace, name)[:, :n].T)
            assert len(ax.get_yticklabels()) <= 7 and ax.get_yticklabels()[0].get_text() == "1"


@pytest.mark.parametrize(("T", "n"), [(100, 10), (251, 100)])
def test_gate_traces_of_long_sequences_keep_their_size(rng, tmp_path, T, n):
    net = random_network(rng, C=12, H=100, K=9)
    fig = plot.plot_gate_traces(net.trace(rng.normal(size=(T, 12))), units=range(n))
    fig.savefig(tmp_path / "g.png")
    assert imread(tmp_path / "g.png").shape[1::-1] == (950, 1100)
    labels = [t for t in fig.axes[5].get_xticklabels() if t.get_text()]  # the h panel
    assert labels[0].get_text() == "1" and len(labels) <= 20


def test_every_plot_draws_into_a_users_axes(trace, vowel, tmp_path):
    fig = Figure(figsize=(14, 12), layout="constrained")
    grid = fig.subfigures(1, 2)
    left = grid[0].subplots(3, 1)
    right = grid[1].subplots(6, 1)
    assert plot.plot_sequence(vowel, ax=left[0]) is fig
    assert plot.plot_activation_heatmap(trace.h.T, units=range(4), ax=left[1]) is fig
    assert plot.plot_unit_selection(trace.h, [0, 1], 10, 19, ax=left[2]) is fig
    assert plot.plot_gate_traces(trace, units=[0, 5], axes=right) is fig
    assert len(fig.axes) == 3 + 6 + 1  # the heatmap's colour bar
    save_and_check_png(fig, tmp_path / "all.png")
    sat_fig = Figure(layout="constrained")
    axes = sat_fig.subplots(1, 4)
    assert plot.plot_gate_saturation(gate_saturation([trace]), axes=axes) is sat_fig
    with pytest.raises(ValueError, match="axes must be six Axes"):
        plot.plot_gate_traces(trace, units=[0], axes=right[:5])
