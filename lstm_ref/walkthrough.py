"""The seed: MATLAB's example "Visualize Activations of LSTM Network", step by step.

1. Load the pretrained JapaneseVowelsNet and show its layers (``net.Layers``).
2. Load the test data and plot test observation 1.
3. Step through the sequence one time step at a time, asking for the activations of layer
   "lstm" and carrying the state: ``[features(i,:),state] = predict(net,X(:,i)',
   Outputs="lstm"); net.State = state;``.
4. Draw the first 10 hidden units as a heatmap.
5. Print the prediction, the test accuracy, and a check that the step-wise activations
   equal one full-sequence call.

The published MATLAB page feeds ``X(:,1)'`` — always the first time step — at every
iteration (the R2020b page used ``X(:,i)``). The default here is the correct loop;
``literal=True`` reproduces the page's loop as printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datasets import load_japanese_vowels
from .errors import InputError
from .formats import load_network
from .train import evaluate

Array = np.ndarray


@dataclass(frozen=True)
class WalkthroughResult:
    activations: Array  # (H, T): the LSTM activations, units × time steps (MATLAB's features)
    figures: list[Path]
    predicted: str
    max_abs_diff: float  # step-wise activations vs one full-sequence call


def run_walkthrough(
    out_dir: str | Path = "lstm_ref_output",
    *,
    network: str = "JapaneseVowelsNet",
    observation: int = 1,
    units: int = 10,
    literal: bool = False,
    svg: bool = False,
    log: Callable[[str], None] = print,
) -> WalkthroughResult:
    """Run the seed example end to end; write its figures to ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Folder for the figures (created if needed).
    network : str
        A bundled network name or a weight file.
    observation : int
        Which test sequence, 1-based as MATLAB's ``XTest{1}``.
    units : int
        How many hidden units the heatmap shows (the first ``units``).
    literal : bool
        Feed ``X(:,1)'`` at every step, as the published page's loop does.
    svg : bool
        Also write SVG files.
    """
    from .viz.plots import (  # matplotlib only when plotting
        plot_activation_heatmap,
        plot_sequence,
        save_figure,
    )

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []

    def save(fig, stem: str) -> None:
        for ext in ("png", "svg") if svg else ("png",):
            path = out / f"{stem}.{ext}"
            save_figure(fig, path)
            figures.append(path)

    log(f">> net = load_network({network!r}); net.Layers")
    net = load_network(network)
    log(f"ans = \n{net.summary()}\n")

    x_test, y_test = load_japanese_vowels("test")
    if not 1 <= observation <= len(x_test):
        raise InputError(f"observation must be 1..{len(x_test)}; got {observation}")
    X = x_test[observation - 1]  # (T, 12): time steps × features
    T = X.shape[0]
    log(f">> X = XTest{{{observation}}}: {T} time steps × {X.shape[1]} features")
    save(plot_sequence(X, title=f"Test Observation {observation}"), "test_observation")

    column = "X(:,1)'" if literal else "X(:,i)'"
    log(
        f">> for i = 1:{T}: [features(i,:),state] = "
        f'predict(net,{column},Outputs="lstm"); net.State = state'
        + ("   % as printed on the page: step 1 every time" if literal else "")
    )
    net.reset_state()
    activations = np.empty((net.width("lstm"), T))  # (H, T)
    for i in range(T):
        x_i = X[0 if literal else i][None, :]  # (1, 12): one time step
        activations[:, i], state = net.predict(x_i, outputs="lstm", return_state=True)
        net.state = state
    net.reset_state()
    save(
        plot_activation_heatmap(activations, units=range(units), title="LSTM Activations"),
        "lstm_activations",
    )

    fed = X[np.zeros(T, dtype=int)] if literal else X
    full = net.trace(fed).h.T  # (H, T) from one full-sequence call
    diff = float(np.abs(full - activations).max())
    label, scores = net.classify(X)
    evaluation = evaluate(net, x_test, list(y_test))
    log(
        f"\nPrediction for test observation {observation}: speaker {label} "
        f"(score {scores.max():.4f}); true speaker {y_test[observation - 1]}"
    )
    log(
        f"Test accuracy on {len(x_test)} sequences: {evaluation.accuracy:.4f} (each sequence "
        f"alone: masked padding, lstm_ref's default); {evaluation.matlab_accuracy:.4f} (MATLAB's "
        f"recipe: sorted, unmasked mini-batches of 27); {evaluation.matlab_default_accuracy:.4f} "
        "(MATLAB's classify defaults: unmasked mini-batches of 128)"
    )
    log(f"Step-wise activations vs one full-sequence call: max |difference| = {diff:.1e}")
    log("Figures:\n" + "\n".join(f"  {p}" for p in figures))
    log(f"Done in {time.perf_counter() - start:.1f} s.")
    return WalkthroughResult(
        activations=activations, figures=figures, predicted=label, max_abs_diff=diff
    )
