"""The ``lstm-ref`` command: thin — it parses arguments, calls the library and prints."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, LstmRefError

DESCRIPTION = """\
lstm_ref: a pure-NumPy reference LSTM sequence classifier.

Start with `lstm-ref walkthrough`: it reproduces MATLAB's example "Visualize Activations of
LSTM Network" on the bundled Japanese Vowels data and pretrained JapaneseVowelsNet.
Every subcommand has its own --help."""

EPILOG = """\
examples:
  lstm-ref walkthrough                      the seed example; figures in ./lstm_ref_output
  lstm-ref layers                           JapaneseVowelsNet's layer table
  lstm-ref predict seqs.npz                 classify sequences from a file
  lstm-ref plot gates --observation 3       gate traces of test sequence 3
  lstm-ref explain --unit 1 --step 5        one LSTM step of one unit, with the numbers
  lstm-ref train --out my_weights           retrain JapaneseVowelsNet (about 15 s)"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 on success, 2 for a user error (one line on stderr), 130 when
    interrupted, 141 when the reader of its output went away (``| head``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("lstm-ref: interrupted; files are written whole or not at all", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lstm-ref predict f.npz | head`: end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except ModuleNotFoundError as e:
        if e.name != "matplotlib":
            raise
        print(
            "lstm-ref: error: plotting needs matplotlib: pip install 'lstm_ref[plot]'",
            file=sys.stderr,
        )
        return 2
    except (LstmRefError, OSError) as e:  # the user's input; anything else is a bug
        print(f"lstm-ref: error: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstm-ref",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "walkthrough", help="reproduce MATLAB's 'Visualize Activations of LSTM Network'"
    )
    p.add_argument(
        "--out", default="lstm_ref_output", help="folder for the figures (default: %(default)s)"
    )
    p.add_argument("--observation", type=int, default=1, help="test sequence, 1-based (default: 1)")
    p.add_argument(
        "--units", type=int, default=10, help="hidden units in the heatmap (default: 10)"
    )
    p.add_argument("--svg", action="store_true", help="also write SVG figures")
    p.add_argument(
        "--literal-matlab-loop",
        action="store_true",
        help="feed X(:,1)' at every step, as the published MATLAB page does (a bug; see README)",
    )
    _network_option(p)
    p.set_defaults(run=_walkthrough)

    p = sub.add_parser("layers", help="print a network's layer table in MATLAB's net.Layers form")
    _network_option(p)
    p.set_defaults(run=_layers)

    p = sub.add_parser(
        "predict",
        help="classify sequences from a file (.npy, .npz, .csv, .ts)",
        description="Classify sequences from a file and print one line per sequence.\n\n"
        "File formats: .npy — one sequence (T, C) or a batch (N, T, C); .npz — one sequence per "
        "array, in the archive's order; .csv — one sequence, one time step per row, one feature "
        "per column (a header row is skipped); .ts — a UEA/UCR time series file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", type=Path)
    _network_option(p)
    p.add_argument(
        "--layout",
        choices=["TC", "CT"],
        default="TC",
        help="TC: time × features (default); CT: MATLAB's features × time",
    )
    p.add_argument(
        "--padding",
        choices=["masked", "matlab"],
        default="masked",
        help="masked: each sequence stops at its own length (default); matlab: MATLAB's "
        "padded, unmasked mini-batches",
    )
    p.add_argument(
        "--mini-batch-size",
        type=int,
        default=128,
        help="sequences per mini-batch (default: %(default)s, MATLAB's); changes the results "
        "only with --padding matlab",
    )
    p.add_argument("--scores", action="store_true", help="print every class score")
    p.set_defaults(run=_predict)

    p = sub.add_parser(
        "train", help="train JapaneseVowelsNet (or a classifier on your .ts files) from scratch"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("lstm_ref_output"),
        help="folder for the weights and model card",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--hidden", type=int, default=100, help="hidden units (default: 100)")
    p.add_argument(
        "--no-zscore", action="store_true", help="no input normalisation (MATLAB's bare recipe)"
    )
    p.add_argument(
        "--train-file", type=Path, help="a labelled .ts file (default: bundled Japanese Vowels)"
    )
    p.add_argument("--test-file", type=Path, help="a labelled .ts file to report test accuracy on")
    p.set_defaults(run=_train)

    p = sub.add_parser("plot", help="draw a figure for one test sequence")
    p.add_argument("kind", choices=["sequence", "heatmap", "gates", "saturation", "units"])
    p.add_argument("--observation", type=int, default=1, help="test sequence, 1-based (default: 1)")
    p.add_argument(
        "--units", default="1-10", help="hidden units, 1-based: '1-10' or '3,7,12' (default: 1-10)"
    )
    p.add_argument(
        "--range",
        default=None,
        help="units: time steps 'a-b' (1-based) the units must stay active over",
    )
    p.add_argument(
        "--threshold", type=float, default=0.3, help="units: activation threshold (default: 0.3)"
    )
    p.add_argument(
        "--out", type=Path, default=Path("lstm_ref_output"), help="folder for the figure"
    )
    _network_option(p)
    p.set_defaults(run=_plot)

    p = sub.add_parser("explain", help="print one LSTM time step of one unit with the real numbers")
    p.add_argument("--unit", type=int, default=1, help="hidden unit, 1-based (default: 1)")
    p.add_argument("--step", type=int, default=1, help="time step, 1-based (default: 1)")
    p.add_argument("--observation", type=int, default=1, help="test sequence, 1-based (default: 1)")
    p.add_argument(
        "--backward", action="store_true", help="also explain the gradients of that step (BPTT)"
    )
    _network_option(p)
    p.set_defaults(run=_explain)
    return parser


def _network_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--network",
        default="JapaneseVowelsNet",
        help="bundled network name or weight file (default: %(default)s)",
    )


def _walkthrough(args: argparse.Namespace) -> int:
    from .walkthrough import run_walkthrough

    run_walkthrough(
        args.out,
        network=args.network,
        observation=args.observation,
        units=args.units,
        literal=args.literal_matlab_loop,
        svg=args.svg,
    )
    return 0


def _layers(args: argparse.Namespace) -> int:
    from .formats import load_network

    print(load_network(args.network).summary())
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .formats import load_network, read_sequences
    from .padding import Padding

    net = load_network(args.network)
    sequences = read_sequences(args.file)
    make = Padding.matlab if args.padding == "matlab" else Padding.masked
    padding = make(mini_batch_size=args.mini_batch_size)
    labels, scores = net.classify(sequences, layout=args.layout, padding=padding)
    labels, scores = np.atleast_1d(labels), np.atleast_2d(scores)  # one sequence: one row
    for k, (label, row) in enumerate(zip(labels, scores, strict=True), 1):
        extra = "  " + " ".join(f"{s:.4f}" for s in row) if args.scores else ""
        print(f"{k}\t{label}\t{row.max():.4f}{extra}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train import Recipe, TrainingOptions, evaluate, fit
    from .train.japanese_vowels import build_japanese_vowels_net

    recipe = Recipe(
        seed=args.seed,
        hidden_size=args.hidden,
        zscore=not args.no_zscore,
        options=TrainingOptions(max_epochs=args.epochs),
    )
    if args.train_file is None:
        if args.test_file is not None:
            raise InputError("--test-file needs --train-file")
        build_japanese_vowels_net(args.out, recipe)
        return 0
    from .datasets import read_ts
    from .formats import save_network
    from .formats.writes import safe_file_name

    data = _labelled(read_ts(args.train_file), "--train-file", args.train_file)
    test = None
    if args.test_file is not None:
        test = _labelled(read_ts(args.test_file), "--test-file", args.test_file)
        _check_matching_test_file(data, test)
    path = args.out / f"{safe_file_name(data.problem_name, 'network')}.npz"
    try:
        net, _ = fit(data.sequences, list(data.labels), data.class_names, recipe)
    except KeyboardInterrupt:
        print(f"lstm-ref: training interrupted; nothing was saved ({path})", file=sys.stderr)
        return 130
    if test is not None:
        print(f"test accuracy {evaluate(net, test.sequences, list(test.labels)).accuracy:.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    save_network(net, path, {"recipe": recipe.as_dict(), "train_file": args.train_file.name})
    print(f"wrote {path}")
    return 0


def _labelled(data: Any, option: str, path: Path) -> Any:
    """``data`` (a TSDataset) if it holds class labels for classification."""
    if data.metadata.get("targetLabel", "false").lower() == "true":
        raise InputError(f"{option} {path}: regression (@targetLabel true) is not supported")
    if not data.class_names or len(data.labels) != len(data.sequences):
        raise InputError(f"{option} {path}: no class labels (@classLabel true ...) to train on")
    return data


def _check_matching_test_file(train: Any, test: Any) -> None:
    """The test file's features and classes must be the training file's."""
    widths = {s.shape[1] for s in train.sequences}, {s.shape[1] for s in test.sequences}
    if widths[0] != widths[1]:
        raise InputError(
            f"--test-file has {sorted(widths[1])} features per step; --train-file has "
            f"{sorted(widths[0])}"
        )
    unknown = sorted(set(map(str, test.labels)) - set(train.class_names))
    if unknown:
        raise InputError(
            f"--test-file has classes {unknown} that --train-file does not declare "
            f"({list(train.class_names)})"
        )


def _network_and_test_data(args: argparse.Namespace) -> tuple[Any, list[np.ndarray], np.ndarray]:
    """The network named by --network, the Japanese Vowels test set, checked --observation."""
    from .datasets import load_japanese_vowels
    from .formats import load_network

    net = load_network(args.network)
    x_test, y_test = load_japanese_vowels("test")
    if not 1 <= args.observation <= len(x_test):
        raise InputError(f"--observation must be 1..{len(x_test)}; got {args.observation}")
    return net, x_test, y_test


def _plot(args: argparse.Namespace) -> int:
    from .viz import plots as plot
    from .viz.analysis import gate_saturation, matching_sequences, select_units

    net, x_test, _ = _network_and_test_data(args)
    x = x_test[args.observation - 1]
    units = _parse_units(args.units, net.width(net.stateful_layers[0].name))
    tag = f"observation{args.observation}"
    if args.kind == "sequence":
        fig = plot.plot_sequence(x, title=f"Test Observation {args.observation}")
    elif args.kind == "heatmap":
        fig = plot.plot_activation_heatmap(net.trace(x).h.T, units=units, title="LSTM Activations")
    elif args.kind == "gates":
        fig = plot.plot_gate_traces(net.trace(x), units=units)
    elif args.kind == "saturation":
        fig = plot.plot_gate_saturation(gate_saturation([net.trace(s) for s in x_test]))
        tag = "test_set"
    else:
        h = net.trace(x).h
        start, stop = _parse_range(args.range, len(x))
        chosen = select_units(h, start, stop, args.threshold)
        fig = plot.plot_unit_selection(h, chosen, start, stop, args.threshold)
        print(
            f"units active (≥ {args.threshold}) over steps {start + 1}-{stop}: "
            f"{[int(u) + 1 for u in chosen]}"
        )
        if len(chosen):
            traces = [net.trace(s).h for s in x_test]
            matches = matching_sequences(traces, chosen, args.threshold, stop - start)
            print(f"test sequences where they stay active together for ≥ {stop - start} steps:")
            for n, a, b in matches[:10]:
                print(f"  observation {n + 1}: steps {a + 1}-{b}")
            if len(matches) > 10:
                print(f"  … and {len(matches) - 10} more")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.kind}_{tag}.png"
    plot.save_figure(fig, path)
    print(f"wrote {path}")
    return 0


def _parse_units(text: str, hidden: int) -> list[int]:
    """'1-10' or '3,7,12' (1-based) -> 0-based indices, checked against ``hidden``."""
    units: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        if not a.strip().isdigit() or (b and not b.strip().isdigit()):
            raise InputError(f"--units: expected '1-10' or '3,7,12'; got {text!r}")
        units.extend(range(int(a), int(b or a) + 1))
    if not units or min(units) < 1 or max(units) > hidden:
        raise InputError(f"--units must lie in 1..{hidden}; got {text!r}")
    return [u - 1 for u in units]


def _parse_range(text: str | None, T: int) -> tuple[int, int]:
    """'a-b' (1-based, inclusive) -> 0-based [start, stop); default the whole sequence."""
    if text is None:
        return 0, T
    a, _, b = text.partition("-")
    if not (a.isdigit() and b.isdigit() and 1 <= int(a) <= int(b) <= T):
        raise InputError(f"--range must be 'a-b' with 1 <= a <= b <= {T}; got {text!r}")
    return int(a) - 1, int(b)


def _explain(args: argparse.Namespace) -> int:
    from .explain import explain_backward, explain_step

    net, x_test, y_test = _network_and_test_data(args)
    x = x_test[args.observation - 1]
    print(explain_step(net, x, step=args.step, unit=args.unit))
    if args.backward:
        print(
            explain_backward(
                net, x, str(y_test[args.observation - 1]), step=args.step, unit=args.unit
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
