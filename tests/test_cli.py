"""The console script and the seed walkthrough, as a user runs them."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from random_nets import random_network
from test_network import SEED_TABLE

from lstm_ref import Padding, load_network, save_network
from lstm_ref.cli import main
from lstm_ref.datasets import load_japanese_vowels
from lstm_ref.walkthrough import run_walkthrough


@pytest.fixture(scope="module")
def test_data():
    return load_japanese_vowels("test")


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_walkthrough_steps_through_the_sequence_with_carried_state(tmp_path, test_data):
    lines: list[str] = []
    result = run_walkthrough(tmp_path, log=lines.append)
    text = "\n".join(lines)
    assert SEED_TABLE in text
    net = load_network("JapaneseVowelsNet")
    np.testing.assert_allclose(
        result.activations, net.trace(test_data[0][0]).h.T, rtol=0, atol=1e-12
    )
    assert result.activations.shape == (100, 19)
    assert result.max_abs_diff <= 1e-12
    assert result.predicted == "1"
    assert [p.name for p in result.figures] == ["test_observation.png", "lstm_activations.png"]
    assert all(is_png(p) for p in result.figures)
    assert "Test accuracy on 370 sequences: 0.9703 (each sequence alone" in text
    assert "0.8595 (MATLAB's classify defaults: unmasked mini-batches of 128)" in text


def test_literal_matlab_loop_is_compared_with_the_correct_one(tmp_path, test_data):
    lines: list[str] = []
    result = run_walkthrough(tmp_path, literal=True, svg=True, log=lines.append)
    x1 = test_data[0][0]
    repeated = np.repeat(x1[:1], len(x1), axis=0)
    net = load_network("JapaneseVowelsNet")
    np.testing.assert_allclose(result.activations, net.trace(x1).h.T, rtol=0, atol=1e-12)
    gap = np.abs(net.trace(repeated).h.T - result.activations).max()
    assert result.literal_vs_correct == pytest.approx(gap, abs=1e-12) and gap > 0.1
    assert f"The page's loop vs the correct loop: max |difference| = {gap:.3g}" in "\n".join(lines)
    names = sorted(p.name for p in result.figures)
    assert "lstm_activations_literal.png" in names and "lstm_activations_literal.svg" in names
    assert len(names) == 6 and all(p.is_file() for p in result.figures)


def test_cli_walkthrough_prints_where_figures_went(tmp_path, capsys):
    assert main(["walkthrough", "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "figs" / "lstm_activations.png") in out
    assert "4x1 Layer array with layers:" in out


def test_cli_layers(capsys):
    assert main(["layers"]) == 0
    assert capsys.readouterr().out.strip("\n") == SEED_TABLE.strip("\n")


def test_cli_predict_reads_every_format(tmp_path, capsys, test_data):
    seqs = test_data[0][:4]
    net = load_network("JapaneseVowelsNet")
    expected = list(net.classify(seqs)[0])
    np.savez(tmp_path / "s.npz", *seqs)
    np.save(tmp_path / "one.npy", seqs[0])
    np.savetxt(
        tmp_path / "one.csv", seqs[0], delimiter=",", header=",".join(f"f{k}" for k in range(12))
    )
    ts = "@problemName t\n@univariate false\n@dimensions 12\n@equalLength false\n"
    ts += "@classLabel false\n@data\n"
    ts += "".join(":".join(",".join(map(str, col.tolist())) for col in s.T) + "\n" for s in seqs)
    (tmp_path / "s.ts").write_text(ts)
    for name, labels in [
        ("s.npz", expected),
        ("one.npy", expected[:1]),
        ("one.csv", expected[:1]),
        ("s.ts", expected),
    ]:
        assert main(["predict", str(tmp_path / name)]) == 0
        header, *rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
        assert header[:3] == ["sequence", "class", "score"]
        assert [r[1] for r in rows] == labels, name
    assert main(["predict", str(tmp_path / "s.npz"), "--scores"]) == 0
    header, first, *_ = capsys.readouterr().out.splitlines()
    assert header.split("\t")[3:] == [f"score_{k}" for k in range(1, 10)]
    assert first.split("\t")[0] == "arr_0" and len(first.split("\t")) == 3 + 9


def test_cli_predict_padding_matches_the_api(tmp_path, capsys, test_data):
    """Default: each sequence alone, as net.classify; --padding matlab: MATLAB's batches."""
    seqs = test_data[0][:40]
    net = load_network("JapaneseVowelsNet")
    np.savez(tmp_path / "s.npz", *seqs)
    for argv, padding in [
        ([], Padding.masked()),
        (["--padding", "matlab"], Padding.matlab()),
        (["--padding", "matlab", "--mini-batch-size", "7"], Padding.matlab(mini_batch_size=7)),
    ]:
        assert main(["predict", str(tmp_path / "s.npz"), "--scores", *argv]) == 0
        rows = [line.split()[3:] for line in capsys.readouterr().out.splitlines()[1:]]
        _, scores = net.classify(seqs, padding=padding)
        np.testing.assert_allclose(np.array(rows, dtype=float), scores, atol=5e-5)
    matlab = net.classify(seqs, padding=Padding.matlab())[1]
    assert np.abs(matlab - net.classify(seqs)[1]).max() > 1e-3  # the two semantics differ here


def test_cli_shows_tracebacks_for_bugs_not_for_user_errors(monkeypatch):
    def broken(*_):
        raise TypeError("a bug")

    monkeypatch.setattr("lstm_ref.formats.load_network", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["layers"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "nope.npy"], "nope.npy: no such file"),
        (["predict", "nope.ts"], "nope.ts: no such file"),
        (["train", "--train-file", "nope.ts"], "nope.ts: no such file"),
        (["verify", "JapaneseVowelsNet", "--observed", "nope.npz"], "nope.npz: no such file"),
        (["walkthrough", "--observation", "0"], "observation must be 1..370; got 0"),
        (["layers", "--network", "Nope"], "no bundled network of that name"),
        (["plot", "heatmap", "--units", "0-3"], "--units must lie in 1..100"),
        (["plot", "units", "--range", "5-2"], "--range must be 'a-b'"),
    ],
)
def test_cli_errors_are_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstm-ref: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_cli_plot_without_matplotlib_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "lstm_ref.plot", raising=False)
    assert main(["plot", "sequence"]) == 2
    err = capsys.readouterr().err
    assert err == "lstm-ref: error: plotting needs matplotlib: pip install 'lstm_ref[plot]'\n"


def test_cli_predict_wrong_orientation_is_explained(tmp_path, capsys, test_data):
    np.save(tmp_path / "t.npy", test_data[0][0].T)
    assert main(["predict", str(tmp_path / "t.npy")]) == 2
    assert "it looks transposed — pass layout='CT' (--layout CT)" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "t.npy"), "--layout", "CT"]) == 0


def test_cli_plot_units_finds_matching_test_sequences(tmp_path, capsys):
    assert (
        main(["plot", "units", "--range", "3-8", "--threshold", "0.2", "--out", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    assert "units active (≥ 0.2) over steps 3-8: [" in out
    assert "  observation 1: steps " in out  # the selection's own sequence matches itself


@pytest.mark.parametrize("kind", ["sequence", "heatmap", "gates", "saturation", "units"])
def test_cli_plot_writes_each_figure(kind, tmp_path, capsys):
    extra = ["--units", "1-4"] if kind == "gates" else []
    assert main(["plot", kind, "--out", str(tmp_path), "--svg", "--dpi", "60", *extra]) == 0
    (png,) = tmp_path.glob("*.png")
    (svg,) = tmp_path.glob("*.svg")
    out = capsys.readouterr().out
    assert is_png(png) and str(png) in out and str(svg) in out
    assert svg.read_text().lstrip().startswith("<?xml")


def test_cli_plot_units_says_when_nothing_matches(tmp_path, capsys):
    argv = ["plot", "units", "--out", str(tmp_path), "--range", "1-19"]
    assert main(argv) == 0
    assert "no unit stays ≥ 0.3 over steps 1-19 of observation 1: nothing drawn" in (
        capsys.readouterr().out
    )
    assert not list(tmp_path.iterdir())


def test_cli_train_on_ts_files(tmp_path, capsys, test_data):
    x, y = test_data
    rows = [k for c in "12" for k in [k for k in range(len(x)) if y[k] == c][:15]]  # both
    head = "@problemName Tiny\n@univariate false\n@dimensions 12\n@equalLength false\n"
    head += "@classLabel true 1 2\n@data\n"
    body = "".join(
        ":".join(",".join(map(str, c.tolist())) for c in x[k].T) + f":{y[k]}\n" for k in rows
    )
    (tmp_path / "tiny.ts").write_text(head + body)
    argv = [
        "train",
        "--train-file",
        str(tmp_path / "tiny.ts"),
        "--test-file",
        str(tmp_path / "tiny.ts"),
    ]
    assert main([*argv, "--epochs", "3", "--hidden", "8", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out
    net = load_network(tmp_path / "Tiny.npz")
    assert net.class_names == ("1", "2") and net.layer("lstm").hidden_size == 8


def test_cli_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("walkthrough", "layers", "predict", "train", "plot", "explain"):
        assert command in out


def without_matplotlib(monkeypatch) -> None:
    """Every import of matplotlib (or of lstm_ref's plotting modules, which import it) fails
    as if it were not installed."""
    for name in ["matplotlib", *(n for n in sys.modules if n.startswith("matplotlib."))]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("plots", "figures", "heatmap"):
        monkeypatch.delitem(sys.modules, f"lstm_ref.viz.{name}", raising=False)
        monkeypatch.delattr(f"lstm_ref.viz.{name}", raising=False)


def test_walkthrough_prints_its_text_without_matplotlib(tmp_path, monkeypatch):
    without_matplotlib(monkeypatch)
    lines: list[str] = []
    result = run_walkthrough(tmp_path / "figs", log=lines.append)
    text = "\n".join(lines)
    assert "matplotlib is not installed: the text only" in text
    assert "Prediction for test observation 1: class 1" in text and "Test accuracy" in text
    assert result.figures == [] and not (tmp_path / "figs").exists()
    assert main(["walkthrough", "--out", str(tmp_path / "figs")]) == 0


def test_the_literal_and_correct_heatmaps_share_one_colour_scale(tmp_path, monkeypatch):
    from lstm_ref.viz import plots

    drawn = []

    def recording(activations, **kwargs):
        drawn.append((activations[kwargs["units"]], kwargs["limits"]))
        return draw(activations, **kwargs)

    draw = plots.plot_activation_heatmap
    monkeypatch.setattr(plots, "plot_activation_heatmap", recording)
    run_walkthrough(tmp_path, literal=True, log=lambda line: None)
    (correct, limits), (literal, same) = drawn
    assert limits == same
    assert limits == (min(correct.min(), literal.min()), max(correct.max(), literal.max()))
    assert literal.max() != correct.max()  # the shared scale is not either one's own


def test_cli_plot_a_time_window(tmp_path, capsys):
    out = ["--out", str(tmp_path)]
    assert main(["plot", "heatmap", "--steps", "3-9", *out]) == 0
    assert main(["plot", "gates", "--steps", "3-9", *out]) == 0
    assert main(["plot", "heatmap", "--steps", "9-3", *out]) == 2
    assert "--steps must be 'a-b' with 1 <= a <= b <= 19; got '9-3'" in capsys.readouterr().err


def test_walkthrough_shows_every_unit_of_a_network_with_fewer_than_ten(tmp_path, monkeypatch):
    from lstm_ref.viz import plots

    shown = []

    def recording(activations, **kwargs):
        shown.append(kwargs["units"])
        return draw(activations, **kwargs)

    draw = plots.plot_activation_heatmap
    monkeypatch.setattr(plots, "plot_activation_heatmap", recording)
    rng = np.random.default_rng(7)
    save_network(random_network(rng, C=5, H=4), tmp_path / "small.npz")
    np.save(tmp_path / "x.npy", rng.normal(size=(3, 6, 5)))
    argv = ["--network", str(tmp_path / "small.npz"), "--data", str(tmp_path / "x.npy")]
    argv += ["--out", str(tmp_path / "figs"), "--literal-matlab-loop"]
    assert main(["walkthrough", *argv]) == 0
    assert shown == [[0, 1, 2, 3], [0, 1, 2, 3]]  # min(10, H), both heatmaps
