"""The ``lstm-ref`` command: thin — it parses arguments, calls the library and prints.

One module per subcommand, each with ``add_parser(sub)`` and ``run(args) -> int``; what they
share is in ``common``. User errors (:class:`~lstm_ref.errors.LstmRefError`, OSError) print
one line and exit 2; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import LstmRefError
from . import convert, explain, layers, plot, predict, score, train, verify, walkthrough
from .common import Parser

COMMANDS = (walkthrough, layers, predict, train, plot, explain, score, convert, verify)

DESCRIPTION = """\
lstm_ref: a pure-NumPy reference LSTM sequence classifier.

Start with `lstm-ref walkthrough`: it reproduces MATLAB's example "Visualize Activations of
LSTM Network" on the bundled Japanese Vowels data and pretrained JapaneseVowelsNet.
Every subcommand has its own --help."""

EPILOG = """\
examples:
  lstm-ref walkthrough                      the seed example; figures in ./lstm_ref_output
  lstm-ref layers                           JapaneseVowelsNet's layer table
  lstm-ref convert model.pt model.onnx      a model from one framework's file to another's
  lstm-ref predict seqs.npz                 classify sequences from a file
  lstm-ref plot gates --observation 3       gate traces of test sequence 3
  lstm-ref explain --unit 1 --step 5        one LSTM step of one unit, with the numbers
  lstm-ref train --out my_weights           retrain JapaneseVowelsNet (a few seconds)
  lstm-ref train --train-file A_TRAIN.ts --test-file A_TEST.ts   a classifier on your data
  lstm-ref verify port.onnx --run-framework      where and why a port's outputs diverge"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 on success, 2 for a user error (one line on stderr), 130 when
    interrupted, 141 when the reader of its output went away (``| head``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help and --version (0), a malformed command line (2)
        if stop.code == 2:
            return 2
        raise
    if not hasattr(args, "run"):  # bare `lstm-ref`
        parser.print_help()
        return 0
    try:
        status = int(args.run(args))
        sys.stdout.flush()  # a reader gone away shows here, not as a traceback at exit
        return status
    except KeyboardInterrupt:
        print("lstm-ref: interrupted; files are written whole or not at all", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lstm-ref predict f.npz | head`: end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except ModuleNotFoundError as e:  # an optional extra (the message of each says which)
        if (e.name or "").partition(".")[0] == "matplotlib":
            e = ModuleNotFoundError("plotting needs matplotlib: pip install 'lstm_ref[plot]'")
        elif e.name not in ("dask", "distributed"):
            raise
        print(f"lstm-ref: error: {e}", file=sys.stderr)
        return 2
    except (LstmRefError, OSError) as e:  # the user's input; anything else is a bug
        print(f"lstm-ref: error: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; options show their defaults in --help."""
    from .. import __version__

    parser = Parser(
        prog="lstm-ref",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lstm-ref {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    for p in sub.choices.values():
        if p.formatter_class is argparse.HelpFormatter:
            p.formatter_class = HelpFormatter
    return parser


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Paragraphs as written, and each option's default where it has one to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and "default" not in text
        return f"{text} (default: %(default)s)" if shown and action.option_strings else text
