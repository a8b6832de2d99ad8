"""``lstm-ref predict``: classify the sequences of a file; a table, or a CSV or JSON file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, LstmRefError, counted
from .common import add_layout_option, add_network_option, load_net, positive_int

if TYPE_CHECKING:
    from ..formats import SequenceFile
    from ..network import Network
    from ..sequences import Layout

Array = np.ndarray

HELP = "classify sequences from a file (.npy, .npz, .csv, .ts)"
DESCRIPTION = """\
Classify the sequences of a file and print a table: one line per sequence with its name, the
predicted class and its score — and, for a labelled .ts file, the true class, with the accuracy
at the end (on stderr, so that stdout stays a table). A model with an output per time step
(a sequence labeller) gets a line per step of each sequence instead, the step counted from 1,
padding excluded. --scores adds a column per class; --output writes the same table to a .csv
or .json file (before the table is printed).

File formats: .npy — one sequence (T, C) or a batch (N, T, C), every step of it data; .npz —
one sequence per array (named by the array), or a zero-padded batch as verify's inputs files
hold it: x (N, T, C), time × features, and lengths (N,), each sequence's length, e.g.
np.savez("in.npz", x=x, lengths=lengths) — x alone is a batch whose every step is data; .csv
— one sequence, a time step per line, a feature per column (an optional header line); .ts — a
UEA/UCR time series file. Sequences that end in all-zero time steps, without lengths, are
read as data, with a note on stderr (unless the model's Keras Masking skips them)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help=HELP, description=DESCRIPTION)
    p.add_argument("file", type=Path, help="the sequences: .ts, .npy, .npz or .csv")
    add_network_option(p)
    add_layout_option(p, "the file's arrays")
    p.add_argument(
        "--padding",
        choices=["masked", "matlab"],
        default=None,
        help="masked: each sequence stops at its own length; matlab: MATLAB's padded, "
        "unmasked mini-batches (default: the model's own — a Keras model's Masking — else "
        "masked)",
    )
    p.add_argument(
        "--mini-batch-size",
        type=positive_int,
        default=128,
        help="sequences per mini-batch (MATLAB's default); changes the results only with "
        "--padding matlab",
    )
    p.add_argument("--scores", action="store_true", help="a column of scores per class")
    p.add_argument("--output", type=Path, help="also write the table to a .csv or .json file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..formats import read_sequence_file
    from ..padding import Padding

    if args.output is not None:
        from ..formats.writes import check_destination

        if args.output.suffix.lower() not in (".csv", ".json"):
            raise InputError(f"--output must name a .csv or .json file; got {args.output}")
        check_destination(args.output)  # before the work, not after it
    net = load_net(args)
    if not net.class_names:
        raise InputError(
            f"{args.network}: the model file names no classes; give them with --classes a,b,c "
            f"({net.output_size} names, in output order)"
        )
    file = read_sequence_file(args.file)
    if file.padded_batch and args.layout == "CT":
        raise InputError(
            f"{args.file}: a padded batch's x is (N, T, C), time × features; got --layout CT"
        )
    sequences = _checked_sequences(args.file, file, net, args.layout)
    make = Padding.matlab if args.padding == "matlab" else Padding.masked
    padding = net.padding if args.padding is None else make(mini_batch_size=args.mini_batch_size)
    if file.lengths is None and padding.mask_value != 0:  # Keras's Masking skips zero steps
        _note_zero_endings(sequences)
    outputs = net.predict(sequences, padding=padding)
    by_step = _scores_by_step(outputs, sequences)
    scores = outputs if by_step is None else by_step
    header, rows = _table(file, net.class_names, scores, every_class=args.scores)
    if args.output is not None:  # before the table: a reader that stops early loses no file
        _write_table(args.output, header, rows)
    print("\t".join(header))
    for cells in rows:
        print("\t".join(f"{c:.4f}" if isinstance(c, float) else str(c) for c in cells))
    if file.labels and by_step is not None:
        print(
            "note: the file labels sequences and the model labels steps: no accuracy",
            file=sys.stderr,
        )
    elif file.labels:
        labels = np.asarray(net.class_names)[np.asarray(outputs).argmax(axis=1)]
        accuracy = float(np.mean(labels == np.asarray(file.labels)))
        print(f"accuracy {accuracy:.4f} ({counted(len(rows), 'sequence')})", file=sys.stderr)
    return 0


Cell = str | int | float


def _scores_by_step(outputs: Array | list[Array], sequences: list[Array]) -> list[Array] | None:
    """Each sequence's scores at its own steps, (T_n, K), for a network with an output per
    step (cut to the sequence where a framework's padding returned (N, T, K)); None for a
    network with one output per sequence, (N, K)."""
    if isinstance(outputs, np.ndarray) and outputs.ndim == 2:
        return None
    return [y[: len(s)] for y, s in zip(outputs, sequences, strict=True)]


def _table(
    file: SequenceFile,
    class_names: tuple[str, ...],
    scores: Array | list[Array],
    every_class: bool,
) -> tuple[list[str], list[list[Cell]]]:
    """The header and rows: a row per sequence (``scores`` (N, K)), or a row per step of each
    sequence, counted from 1 (``scores`` a (T_n, K) array per sequence): the class, its score,
    the true class of a labelled file and, with ``every_class``, every class's score."""
    names = np.asarray(class_names)
    per_step = isinstance(scores, list)
    header = ["sequence", *(["step"] if per_step else []), "class", "score"]
    header += ["true"] if file.labels else []
    header += [f"score_{name}" for name in class_names] if every_class else []
    rows: list[list[Cell]] = []
    for k, (name, y) in enumerate(zip(file.names, scores, strict=True)):
        true = [file.labels[k]] if file.labels else []
        for step, row in enumerate(y, 1) if per_step else [(None, y)]:
            where: list[Cell] = [name] if step is None else [name, step]
            every: list[Cell] = [float(s) for s in row] if every_class else []
            rows.append([*where, str(names[row.argmax()]), float(row.max()), *true, *every])
    return header, rows


def _checked_sequences(path: Path, file: SequenceFile, net: Network, layout: Layout) -> list[Array]:
    """The file's sequences as (T, C) arrays for ``net``; an error names the sequence as the
    table does: an ``.npz`` array by its name, any other by its number."""
    from ..sequences import as_sequence_list

    items = file.sequences
    if isinstance(items, np.ndarray) and items.ndim != 3:
        items = [items]  # one sequence (T, C)
    by_array = path.suffix.lower() == ".npz" and not file.padded_batch
    checked = []
    for name, item in zip(file.names, items, strict=True):
        try:
            (sequence,), _ = as_sequence_list(
                [item], net.input_size, layout=layout, dtype=net.dtype
            )
        except LstmRefError as e:
            what = f"array {name!r}" if by_array else f"sequence {name}"
            reason = str(e).removeprefix("sequence 1")
            reason = reason if reason != str(e) else f": {reason}"
            raise type(e)(f"{path}: {what}{reason}") from None
        checked.append(sequence)
    return checked


def _note_zero_endings(sequences: list[Array]) -> None:
    """Say on stderr when sequences end in all-zero time steps: padding read as data?"""
    zero_endings = [len(s) - _last_nonzero_step(s) for s in sequences]
    padded = sum(n > 0 for n in zero_endings)
    if padded:
        print(
            f"note: sequences ending in all-zero time steps: {padded} of {len(sequences)} (up "
            f"to {counted(max(zero_endings), 'step')}), read as data; if they are padding, give "
            "each sequence's length: an .npz with x (N, T, C) and lengths (N,)",
            file=sys.stderr,
        )


def _last_nonzero_step(sequence: Array) -> int:
    """1 + the index of the last time step of ``sequence`` (T, C) with a non-zero feature."""
    steps = np.flatnonzero(np.any(sequence != 0, axis=1))
    return int(steps[-1]) + 1 if len(steps) else 0


def _write_table(path: Path, header: list[str], rows: list[list[Cell]]) -> None:
    """The table as CSV (full precision) or as JSON records, one per row."""
    from ..formats.writes import write_csv_atomically, write_text_atomically

    if path.suffix.lower() == ".json":
        records = [dict(zip(header, cells, strict=True)) for cells in rows]
        write_text_atomically(path, json.dumps(records, indent=1) + "\n")
    else:
        write_csv_atomically(path, [header, *rows])
