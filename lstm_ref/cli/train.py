"""``lstm-ref train``: JapaneseVowelsNet by its recipe, or a classifier on your .ts files."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .common import positive_float, positive_int

if TYPE_CHECKING:
    from ..train import Recipe

HELP = "train JapaneseVowelsNet (or a classifier on your .ts files) from scratch"
DESCRIPTION = """\
Without --train-file: retrain JapaneseVowelsNet by its own recipe (MATLAB's: sorted unmasked
mini-batches of 27, Adam 1e-3, 60 epochs, z-score input) and write JapaneseVowelsNet.npz
and MODEL_CARD.md in --out.

With --train-file: train a classifier on a labelled UEA/UCR .ts file with defaults meant for
anyone's data — masked padding, mini-batches shuffled every epoch, a validation split held
out of the training file (or --validation-file), early stopping on the validation loss with
the best epoch's weights kept — write <problemName>.npz in --out (the file's
@problemName), and report --test-file's accuracy. The options override either recipe."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=HELP, description=DESCRIPTION)
    p.add_argument("--train-file", type=Path, help="a labelled .ts file")
    p.add_argument("--test-file", type=Path, help="a labelled .ts file to report accuracy on")
    p.add_argument("--validation-file", type=Path, help="a labelled .ts file for early stopping")
    from ..train.japanese_vowels import JAPANESE_VOWELS
    from ..train.recipe import VALIDATION_FRACTION, YOUR_DATA

    p.add_argument(
        "--validation-split",
        type=float,
        default=VALIDATION_FRACTION,
        help="without --validation-file: the fraction of each class held out",
    )
    p.add_argument("--out", type=Path, default=Path("lstm_ref_output"), help="output folder")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a network (and its model card) already in --out instead of refusing",
    )
    p.add_argument("--seed", type=int, default=0, help="initial weights and shuffling (default: 0)")
    jv, yours = _defaults(JAPANESE_VOWELS), _defaults(YOUR_DATA)
    for option, kind, what in [
        ("epochs", positive_int, "at most this many epochs"),
        ("lr", positive_float, "Adam's learning rate"),
        ("batch_size", positive_int, "sequences per mini-batch"),
        ("hidden", positive_int, "hidden units"),
        ("patience", positive_int, "early stopping: epochs without a better validation loss"),
    ]:
        p.add_argument(
            f"--{option.replace('_', '-')}",
            type=kind,
            default=None,
            help=f"{what} (default: {jv[option] or 'none'} for JapaneseVowelsNet, "
            f"{yours[option]} with --train-file)",
        )
    p.add_argument(
        "--no-zscore", action="store_true", help="no input normalisation (MATLAB's bare recipe)"
    )
    p.set_defaults(run=run)


def _defaults(recipe: Any) -> dict[str, Any]:
    """A recipe's values of the options this command takes, by option name."""
    o = recipe.options
    return {
        "epochs": o.max_epochs,
        "lr": o.learning_rate,
        "batch_size": o.padding.mini_batch_size,
        "hidden": recipe.hidden_size,
        "patience": o.patience,
    }


def run(args: argparse.Namespace) -> int:
    if args.train_file is None:
        return _japanese_vowels(args)
    return _your_data(args)


def _recipe(base: Recipe, args: argparse.Namespace) -> Recipe:
    """``base`` with the options given on the command line (the rest as ``base`` has them)."""
    o = base.options
    batch = args.batch_size
    options = dataclasses.replace(
        o,
        max_epochs=args.epochs or o.max_epochs,
        learning_rate=args.lr or o.learning_rate,
        padding=dataclasses.replace(o.padding, mini_batch_size=batch) if batch else o.padding,
        patience=args.patience or o.patience,
    )
    return dataclasses.replace(
        base,
        seed=args.seed,
        hidden_size=args.hidden or base.hidden_size,
        zscore=not args.no_zscore,
        options=options,
    )


def _refuse_to_replace(paths: list[Path], args: argparse.Namespace) -> None:
    """Before training: a file the run would write that exists already is replaced only
    with --overwrite."""
    taken = [str(p) for p in paths if p.exists()]
    if taken and not args.overwrite:
        raise InputError(
            f"will not replace {' and '.join(taken)}: pass --overwrite, or another --out"
        )


def _japanese_vowels(args: argparse.Namespace) -> int:
    from ..train.japanese_vowels import FILES, JAPANESE_VOWELS, build_japanese_vowels_net

    if args.test_file or args.validation_file:
        raise InputError("--test-file and --validation-file need --train-file")
    if args.patience is not None:
        raise InputError("--patience needs validation data: use --train-file")
    _refuse_to_replace([args.out / name for name in FILES], args)
    build_japanese_vowels_net(args.out, _recipe(JAPANESE_VOWELS, args))
    return 0


def _your_data(args: argparse.Namespace) -> int:
    from ..datasets import read_ts
    from ..formats import save_network
    from ..formats.writes import safe_file_name
    from ..train import evaluate
    from ..train.recipe import YOUR_DATA, fit_holding_out

    data = _labelled(read_ts(args.train_file), "--train-file", args.train_file)
    test = validation = None
    if args.test_file is not None:
        test = _labelled(read_ts(args.test_file), "--test-file", args.test_file)
        _check_matching(data, test, "--test-file")
    sequences, labels = list(data.sequences), [str(y) for y in data.labels]
    if args.validation_file is not None:
        held = _labelled(read_ts(args.validation_file), "--validation-file", args.validation_file)
        _check_matching(data, held, "--validation-file")
        validation = (list(held.sequences), [str(y) for y in held.labels])
    recipe = _recipe(YOUR_DATA, args)
    path = args.out / f"{safe_file_name(data.problem_name, 'network')}.npz"
    _refuse_to_replace([path], args)
    try:
        net, _ = fit_holding_out(
            sequences, labels, data.class_names, recipe, validation, args.validation_split
        )
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


def _check_matching(train: Any, other: Any, option: str) -> None:
    """Another file's features and classes must be the training file's."""
    widths = {s.shape[1] for s in train.sequences}, {s.shape[1] for s in other.sequences}
    if widths[0] != widths[1]:
        raise InputError(
            f"{option} has {sorted(widths[1])} features per step; --train-file has "
            f"{sorted(widths[0])}"
        )
    unknown = sorted(set(map(str, other.labels)) - set(train.class_names))
    if unknown:
        raise InputError(
            f"{option} has classes {unknown} that --train-file does not declare "
            f"({list(train.class_names)})"
        )
