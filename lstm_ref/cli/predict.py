"""``lstm-ref predict``: classify the sequences of a file; a table, or a CSV or JSON file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, LstmRefError
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
at the end (on stderr, so that stdout stays a table). --scores adds a column per class;
--output writes the same table to a .csv or .json file.

File formats: .npy — one sequence (T, C) or a batch (N, T, C), every step of it data; .npz —
one sequence per array (named by the array), or a zero-padded batch as verify's inputs files
hold it: x (N, T, C), time × features, and lengths (N,), each sequence's length, e.g.
np.savez("in.npz", x=x, lengths=lengths); .csv — one sequence, a time step per line, a feature
per column (an optional header line); .ts — a UEA/UCR time series file. Sequences that end in
all-zero time steps, without lengths, are read as data, with a note on stderr (unless the
model's Keras Masking skips them)."""


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
    if file.lengths is not None and args.layout == "CT":
        raise InputError(
            f"{args.file}: a padded batch's x is (N, T, C), time × features; got --layout CT"
        )
    sequences = _checked_sequences(args.file, file, net, args.layout)
    make = Padding.matlab if args.padding == "matlab" else Padding.masked
    padding = net.padding if args.padding is None else make(mini_batch_size=args.mini_batch_size)
    if file.lengths is None and padding.mask_value != 0:  # Keras's Masking skips zero steps
        _note_zero_endings(sequences)
    labels, scores = net.classify(sequences, padding=padding)
    header = ["sequence", "class", "score"] + (["true"] if file.labels else [])
    if args.scores:
        header += [f"score_{name}" for name in net.class_names]
    rows: list[list[str | float]] = []
    for k, (name, label, row) in enumerate(zip(file.names, labels, scores, strict=True)):
        cells: list[str | float] = [name, str(label), float(row.max())]
        cells += [file.labels[k]] if file.labels else []
        cells += [float(s) for s in row] if args.scores else []
        rows.append(cells)
    print("\t".join(header))
    for cells in rows:
        print("\t".join(c if isinstance(c, str) else f"{c:.4f}" for c in cells))
    if file.labels:
        accuracy = float(np.mean(labels == np.asarray(file.labels)))
        print(f"accuracy {accuracy:.4f} ({len(rows)} sequences)", file=sys.stderr)
    if args.output is not None:
        _write_table(args.output, header, rows)
    return 0


def _checked_sequences(path: Path, file: SequenceFile, net: Network, layout: Layout) -> list[Array]:
    """The file's sequences as (T, C) arrays for ``net``; an error names the sequence as the
    table does: an ``.npz`` array by its name, any other by its number."""
    from ..sequences import as_sequence_list

    items = file.sequences
    if isinstance(items, np.ndarray) and items.ndim != 3:
        items = [items]  # one sequence (T, C)
    by_array = path.suffix.lower() == ".npz" and file.lengths is None
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
            f"note: {padded} of {len(sequences)} sequences end in all-zero time steps (up to "
            f"{max(zero_endings)}), read as data; if they are padding, give each sequence's "
            "length: an .npz with x (N, T, C) and lengths (N,)",
            file=sys.stderr,
        )


def _last_nonzero_step(sequence: Array) -> int:
    """1 + the index of the last time step of ``sequence`` (T, C) with a non-zero feature."""
    steps = np.flatnonzero(np.any(sequence != 0, axis=1))
    return int(steps[-1]) + 1 if len(steps) else 0


def _write_table(path: Path, header: list[str], rows: list[list[str | float]]) -> None:
    """The table as CSV (full precision) or as JSON records, one per sequence."""
    from ..formats.writes import write_csv_atomically, write_text_atomically

    if path.suffix.lower() == ".json":
        records = [dict(zip(header, cells, strict=True)) for cells in rows]
        write_text_atomically(path, json.dumps(records, indent=1) + "\n")
    else:
        write_csv_atomically(path, [header, *rows])
