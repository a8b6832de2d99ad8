"""The seed: MATLAB's example "Visualize Activations of LSTM Network", step by step.

1. Load the pretrained JapaneseVowelsNet and show its layers (``net.Layers``).
2. Load the test data and plot test observation 1.
3. Step through the sequence one time step at a time, asking for the activations of layer
   "lstm" and carrying the state: ``[features(i,:),state] = predict(net,X(:,i)',
   Outputs="lstm"); net.State = state;``.
4. Draw the first 10 hidden units as a heatmap.
5. Print the prediction, the test accuracy, and a check that the step-wise activations
   equal one full-sequence call — for the units a step-wise loop can compute: a reverse
   direction (a BiLSTM's second half) reads each sequence from its end, so its units, and
   any that read from them, differ, and the walkthrough says so.

The published MATLAB page feeds ``X(:,1)'`` — always the first time step — at every
iteration (the R2020b page used ``X(:,i)``). The walkthrough runs the correct loop;
``literal=True`` also runs the page's loop as printed, draws it, and prints how far it is
from the correct one. Any network with an LSTM layer and any data can be walked through.
Without matplotlib the walkthrough prints its text and draws nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from textwrap import fill
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from .datasets import load_japanese_vowels
from .errors import InputError
from .fast.stepper import forward_units, reverse_reader
from .interop import load_model
from .network import Network
from .parts import recurrent_part
from .sequences import as_sequence_list
from .train import evaluate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Array = np.ndarray


@dataclass(frozen=True)
class WalkthroughResult:
    activations: Array  # (H, T): the LSTM activations, units × time steps (MATLAB's features)
    figures: list[Path]
    predicted: str
    max_abs_diff: float  # step-wise vs one full-sequence call, over the forward units (or NaN)
    reverse_diff: float | None  # the same over the units of (or after) a reverse direction
    literal_vs_correct: float | None  # with literal=True: max |literal loop − correct loop|


def run_walkthrough(
    out_dir: str | Path = "lstm_ref_output",
    *,
    network: str | os.PathLike | Network = "JapaneseVowelsNet",
    name: str | None = None,
    layer: str | None = None,
    sequences: Sequence[Array] | None = None,
    labels: Sequence[str] | None = None,
    observation: int = 1,
    units: int = 10,
    literal: bool = False,
    svg: bool = False,
    dpi: int = 100,
    log: Callable[[str], None] = print,
) -> WalkthroughResult:
    """Run the seed example end to end; write its figures to ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Folder for the figures (created if needed).
    network : str, path or Network
        A bundled network name, a model file :func:`~lstm_ref.interop.load_model` reads,
        or a network.
    name : str, optional
        What the log calls the network (default: ``network`` when it is a str, else "net").
    layer : str, optional
        The recurrent layer to step through (default the first): its name, a BiLSTM's
        direction ``"NAME/forward"`` or ``"NAME/backward"``, an LSTMStack's layer
        ``"NAME/INNER"`` (:mod:`lstm_ref.parts`); the heatmap shows its units.
    sequences, labels : list of ndarray (T_i, C), list of str, optional
        The data to walk through (default: the Japanese Vowels test set); with ``labels``
        the test accuracy is printed too.
    observation : int
        Which sequence, 1-based as MATLAB's ``XTest{1}``.
    units : int
        How many hidden units the heatmap shows (the first ``units``).
    literal : bool
        Also run the published page's loop, which feeds ``X(:,1)'`` at every step, and
        compare it with the correct one (its figure: ``lstm_activations_literal.png``).
    svg : bool
        Also write SVG files.
    dpi : int
        Resolution of the PNG files.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    figures: list[Path] = []
    plots = _plots(log)

    def save(stem: str, draw: Callable[[ModuleType], Figure]) -> None:
        if plots is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        fig = draw(plots)
        for ext in ("png", "svg") if svg else ("png",):
            path = out / f"{stem}.{ext}"
            plots.save_figure(fig, path, dpi=dpi)
            figures.append(path)

    name = name or (os.fspath(network) if not isinstance(network, Network) else "net")
    reader = "load_model" if Path(name).suffix.lower() not in ("", ".npz") else "load_network"
    log(f">> net = {reader}({name!r}); net.Layers")
    if isinstance(network, Network):  # its own state, from the initial states: yours untouched
        net = Network(network.layers, network.class_names or None, network.padding)
    else:
        net = load_model(network)
    log(f"ans = \n{net.summary()}\n")
    part = recurrent_part(net, layer)
    _, columns = part.columns()  # the part's units among its layer's
    layer = part.top.name

    if sequences is None:
        x_test, y_test = load_japanese_vowels("test")
        sequences, labels = list(x_test), [str(y) for y in y_test]
    seqs, _ = as_sequence_list(list(sequences), net.input_size, dtype=net.dtype)
    if not 1 <= observation <= len(seqs):
        raise InputError(f"observation must be 1..{len(seqs)}; got {observation}")
    X = seqs[observation - 1]  # (T, C): time steps × features
    T = X.shape[0]
    log(f">> X = XTest{{{observation}}}: {T} time steps × {X.shape[1]} features")
    save("test_observation", lambda p: p.plot_sequence(X, title=f"Test Observation {observation}"))

    log(
        f">> for i = 1:{T}: [features(i,:),state] = "
        f'predict(net,X(:,i)\',Outputs="{layer}"); net.State = state'
    )
    if part.path:
        log(f">> {part.name}: units {columns.start + 1}-{columns.stop} of layer {layer!r}")
    activations = _step_through(net, X, layer)[columns]  # (H, T)
    shown = list(range(min(units, len(activations))))
    repeated = None
    if literal:
        log(
            f">> the page's loop as printed: predict(net,X(:,1)',Outputs=\"{layer}\") at every "
            f"step — step 1 fed {T} times"
        )
        repeated = _step_through(net, X[np.zeros(T, dtype=int)], layer)[columns]
    # one colour scale for both loops' heatmaps, so that they compare by colour
    both = [a[shown] for a in (activations, repeated) if a is not None]
    limits = (float(min(map(np.min, both))), float(max(map(np.max, both))))
    about = part.describe()
    heading = "LSTM Activations" + ("" if about == f"layer {layer!r}" else "\n" + fill(about, 60))
    save(
        "lstm_activations",
        lambda p: p.plot_activation_heatmap(activations, units=shown, title=heading, limits=limits),
    )
    full = part.trace(net, X).h.T  # (H, T) from one full-sequence call
    walked = net.layers[: part.index + 1]
    forward = forward_units(walked)[columns]  # the units a step-wise loop computes as one call
    gap = np.abs(full - activations).max(axis=1)
    diff = float(gap[forward].max()) if forward.any() else float("nan")
    reverse_diff = None if forward.all() else float(gap[~forward].max())
    literal_diff = None
    if repeated is not None:
        literal_diff = float(np.abs(repeated - activations).max())
        title = "LSTM Activations — the page's loop, X(:,1) at every step"
        save(
            "lstm_activations_literal",
            lambda p: p.plot_activation_heatmap(repeated, units=shown, title=title, limits=limits),
        )
    label, scores = _classify(net, X)
    truth = "" if labels is None else f"; true class {labels[observation - 1]}"
    log(
        f"\nPrediction for test observation {observation}: class {label} "
        f"(score {scores.max():.4f}){truth}"
    )
    if labels is not None and net.class_names:
        evaluation = evaluate(net, seqs, list(labels))
        log(
            f"Test accuracy on {len(seqs)} sequences: {evaluation.accuracy:.4f} (each sequence "
            f"alone: masked padding, lstm_ref's default); {evaluation.matlab_accuracy:.4f} "
            f"(MATLAB's recipe: sorted, unmasked mini-batches of 27); "
            f"{evaluation.matlab_default_accuracy:.4f} (MATLAB's classify defaults: unmasked "
            "mini-batches of 128)"
        )
    log(_difference_line(diff, reverse_diff, forward, reverse_reader(walked)))
    if literal_diff is not None:
        log(
            f"The page's loop vs the correct loop: max |difference| = {literal_diff:.3g} — its "
            "heatmap shows the response to x_1 repeated, not to the sequence"
        )
    if figures:
        log("Figures:\n" + "\n".join(f"  {p}" for p in figures))
    log(f"Done in {time.perf_counter() - start:.1f} s.")
    return WalkthroughResult(activations, figures, label, diff, reverse_diff, literal_diff)


def _difference_line(
    diff: float, reverse_diff: float | None, forward: Array, reader: str | None
) -> str:
    """The check of the step-wise loop, and why a reverse direction's units differ."""
    line = "Step-wise activations vs one full-sequence call: max |difference| = "
    if reverse_diff is None:
        return f"{line}{diff:.1e}"
    why = (
        f"{reader}, reading each sequence from its end: fed one step at a time, it never sees "
        "the steps after the one given, nor does any unit that reads from it"
    )
    if not forward.any():
        return f"{line}{reverse_diff:.1e}, as it must be: {why}"
    return (
        f"{line}{diff:.1e} over the units a step-wise loop can compute ({_ranges(forward)}); "
        f"the others ({_ranges(~forward)}) differ by {reverse_diff:.1e}, as they must: {why}"
    )


def _ranges(mask: Array) -> str:
    """The 1-based units where ``mask`` holds, as ranges: "units 1-16, 33-40"."""
    units = np.flatnonzero(mask) + 1
    runs = np.split(units, np.flatnonzero(np.diff(units) > 1) + 1)
    spans = [f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs]
    return ("units " if len(units) > 1 else "unit ") + ", ".join(spans)


def _step_through(net: Network, X: Array, layer: str) -> Array:
    """The seed's loop: one step per call, the state assigned back; (H, T) activations: the
    units' h, read from the state (the layer's outputs, for an LSTM, a BiLSTM merging by
    concatenation or an LSTMStack's every final h; its directions' h, whatever it outputs)."""
    net.reset_state()
    activations = np.empty((len(net.state[layer].h), len(X)), dtype=net.dtype)  # (H, T)
    for i in range(len(X)):
        x_i = X[i][None, :]  # (1, C): one time step
        _, state = net.predict(x_i, outputs=layer, return_state=True)
        activations[:, i] = state[layer].h
        net.state = state
    net.reset_state()
    return activations


def _plots(log: Callable[[str], None]) -> ModuleType | None:
    """lstm_ref.viz.plots, or None (said in the log) when matplotlib is not installed."""
    try:
        from .viz import plots
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] != "matplotlib":
            raise
        log(
            "(matplotlib is not installed: the text only, no figures; pip install 'lstm_ref[plot]')"
        )
        return None
    return plots


def _classify(net: Network, X: Array) -> tuple[str, Array]:
    """The predicted class of one sequence and the scores: by name, or "output k" (1-based)
    for a network whose outputs are unnamed."""
    if net.class_names:
        label, scores = net.classify(X)
        return str(label), scores
    scores = np.asarray(net.predict(X))
    return f"output {int(np.argmax(scores)) + 1}", scores
