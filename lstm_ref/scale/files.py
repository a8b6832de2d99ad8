"""The files of a scoring run: shards in, one scores file per shard out.

A **shard** is any sequence file :func:`lstm_ref.formats.read_sequence_file` reads, and its
sequences are named as it names them: by the ``.npz`` archive's member names, or by their
1-based position in the file (``"1"``, ``"2"``, …) for ``.npy`` batches, ``.ts`` and
``.csv`` files.

A **scores file** is ``<shard file name>.csv`` (``part-7.npz`` → ``part-7.npz.csv``),
UTF-8 CSV with a header line ``shard,sequence,label,<class name 1>,…,<class name K>`` and
one line per sequence, in the shard's order: the shard's file name, the sequence's name,
the predicted label and the K class probabilities, each written as Python's shortest
``repr`` that reads back to the same float64 (a float32 network's scores read back exactly
once cast to float32). It holds no pickle and is written atomically: it exists whole or
not at all, and its existence is what marks a shard as done.
"""

from __future__ import annotations

import csv
import glob
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..formats.writes import write_csv_atomically

Array = np.ndarray
SHARD_SUFFIXES = (".npy", ".npz", ".csv", ".ts")
SCORES_SUFFIX = ".csv"
FIXED_COLUMNS = ("shard", "sequence", "label")

Shards = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass(frozen=True)
class ShardScores:
    """The contents of one scores file.

    Attributes
    ----------
    shard : str
        The shard's file name.
    names : tuple of str
        N sequence names, in the shard's order.
    labels : ndarray, shape (N,), str
        The predicted class of each sequence.
    scores : ndarray, shape (N, K), float64
        The class probabilities, columns in ``class_names`` order.
    class_names : tuple of str
        K class names.
    """

    shard: str
    names: tuple[str, ...]
    labels: Array
    scores: Array
    class_names: tuple[str, ...]


def find_shards(shards: Shards) -> list[Path]:
    """The shard files named by ``shards``, sorted, as absolute paths.

    Parameters
    ----------
    shards : path, glob pattern or sequence of paths
        A folder (its ``.npy``, ``.npz``, ``.csv`` and ``.ts`` files that are not hidden),
        a glob pattern such as ``"night/*.npz"`` (every file it matches; ``**`` matches
        folders at any depth), one file, or a list of files.

    Raises
    ------
    FileNotFoundError
        A named file or folder does not exist.
    InputError
        No shard found, or two shards share a file name (their scores files would clash).
    """
    if isinstance(shards, str | os.PathLike):
        text = os.fspath(shards)
        path = Path(text)
        if path.is_dir():
            found = [
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SHARD_SUFFIXES
            ]
        elif any(ch in text for ch in "*?["):
            found = [Path(p) for p in glob.glob(text, recursive=True) if os.path.isfile(p)]
        elif path.is_file():
            found = [path]
        else:
            raise FileNotFoundError(f"no such file or folder: {text}")
        what = text
    else:
        found = [Path(p) for p in shards]
        missing = [p for p in found if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"no such file: {missing[0]}")
        what = f"{len(found)} paths"
    if not found:
        raise InputError(f"no shards in {what}: expected {', '.join(SHARD_SUFFIXES)} files")
    paths = sorted({p.resolve() for p in found})
    names: dict[str, Path] = {}
    for p in paths:
        if p.name in names:
            raise InputError(
                f"two shards are both named {p.name!r} ({names[p.name]} and {p}); their "
                "scores files would clash: rename one or score them into different folders"
            )
        names[p.name] = p
    return paths


def scores_path(shard: Path, out_dir: Path) -> Path:
    """Where the scores of ``shard`` go in ``out_dir``."""
    return out_dir / f"{shard.name}{SCORES_SUFFIX}"


def write_scores(
    path: str | os.PathLike,
    shard: str,
    names: Sequence[str],
    labels: Array,
    scores: Array,
    class_names: Sequence[str],
) -> None:
    """Write one shard's scores to ``path`` atomically (format: the module docstring).

    Parameters
    ----------
    path : path
        The scores file.
    shard : str
        The shard's file name.
    names : sequence of str
        N sequence names.
    labels : ndarray, shape (N,)
        Predicted class names.
    scores : ndarray, shape (N, K)
        Class probabilities.
    class_names : sequence of str
        K class names, the order of the columns of ``scores``.
    """
    if not len(names) == len(labels) == len(scores):
        raise InputError(
            f"{len(names)} names, {len(labels)} labels and {len(scores)} score rows for {shard}"
        )
    lines = (
        [shard, name, str(label), *(repr(float(v)) for v in row)]
        for name, label, row in zip(names, labels, scores, strict=True)
    )
    write_csv_atomically(path, [[*FIXED_COLUMNS, *class_names], *lines])


def read_scores(path: str | os.PathLike) -> ShardScores:
    """Read a scores file written by :func:`write_scores`.

    Raises
    ------
    InputError
        The file is not a scores file, or a line of it is damaged (named by line number).
    """
    try:
        lines = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: not a scores file ({e})") from None
    if not lines or tuple(lines[0][: len(FIXED_COLUMNS)]) != FIXED_COLUMNS:
        raise InputError(f"{path}: not a scores file: the header must start with shard,sequence")
    class_names = tuple(lines[0][len(FIXED_COLUMNS) :])
    rows = lines[1:]
    width = len(lines[0])
    for number, row in enumerate(rows, 2):
        if len(row) != width:
            raise InputError(f"{path}: line {number}: {len(row)} fields; the header has {width}")
    shards = {row[0] for row in rows}
    if len(shards) > 1:
        raise InputError(f"{path}: scores of several shards {sorted(shards)}")
    try:
        scores = np.array([[float(v) for v in row[len(FIXED_COLUMNS) :]] for row in rows])
    except ValueError as e:
        raise InputError(f"{path}: a score is not a number ({e})") from None
    return ShardScores(
        shard=rows[0][0] if rows else "",
        names=tuple(row[1] for row in rows),
        labels=np.array([row[2] for row in rows], dtype=str),
        scores=scores.reshape(len(rows), len(class_names)),
        class_names=class_names,
    )
