"""Read sequences to score from a file: ``.npy``, ``.npz``, ``.csv`` or ``.ts``.

Every reader refuses rather than guesses: ``.npy``/``.npz`` go through the bounded,
pickle-free readers of :mod:`lstm_ref.formats.safe_numpy`; a CSV file must be UTF-8 text
(a byte-order mark is allowed) with comma-separated numbers; its first line is taken as a
header only when none of its fields can be a number (each has a letter and does not parse),
and any other line that is not a row of numbers is an error naming its line number — no
line of data is ever dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_lengths
from ..errors import InputError
from .safe_numpy import read_npy, read_npz, read_text

Array = np.ndarray


@dataclass(frozen=True)
class SequenceFile:
    """What a sequence file holds.

    Attributes
    ----------
    sequences : list of ndarray, or ndarray
        As :meth:`lstm_ref.Network.predict` takes them: a list of 2-D arrays, or the
        ``.npy`` file's array ((T, C) or (N, T, C)); layout is the caller's to state,
        except for a padded batch, whose sequences are (T_n, C), cut to their lengths.
    names : list of str
        One name per sequence: the ``.npz`` array names (not for a padded batch), else
        ``"1"``, ``"2"``, ….
    labels : list of str or None
        The class label of each sequence, for a labelled ``.ts`` file.
    class_names : tuple of str
        The classes a labelled ``.ts`` file declares (empty otherwise).
    lengths : ndarray of int, shape (N,), or None
        For a padded batch (an ``.npz`` with ``x`` and ``lengths``): each sequence's length.
    padded_batch : bool
        Whether the file is an ``.npz`` batch as ``lstm-ref verify`` reads inputs: ``x``
        (N, T, C), time × features, with ``lengths`` or without (every step then data).
    """

    sequences: list[Array] | Array
    names: list[str]
    labels: list[str] | None = None
    class_names: tuple[str, ...] = ()
    lengths: Array | None = None
    padded_batch: bool = False


def read_sequence_file(path: str | os.PathLike) -> SequenceFile:
    """The sequences stored in ``path``, in the file's order, with their names and labels.

    Parameters
    ----------
    path : path
        ``.npy``: one sequence (T, C) or a batch (N, T, C);
        ``.npz``: one sequence per array, in the archive's order; or a zero-padded batch
        as ``lstm-ref verify`` reads inputs: ``x`` (N, T, C), time × features, and
        ``lengths`` (N,), each sequence's steps from the start (1..T) — without
        ``lengths``, every step of ``x`` is data;
        ``.csv``: one sequence, a time step per line, a feature per column (an optional
        header line whose fields are all non-numbers);
        ``.ts``: a UEA/UCR time series file (with its labels, if any).

    Raises
    ------
    OSError
        No such file (FileNotFoundError), a folder, an unreadable file: ``"<path>: no such
        file"``.
    InputError
        A damaged, oversized or unreadable file, named with the reason (and line).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = read_npy(path)
        return SequenceFile(array, _numbered(len(array) if array.ndim == 3 else 1))
    if suffix == ".npz":
        arrays = read_npz(path)
        if not arrays:
            raise InputError(f"{path}: the archive holds no arrays")
        if "lengths" in arrays or (list(arrays) == ["x"] and arrays["x"].ndim == 3):
            return _padded_batch(path, arrays)
        return SequenceFile(list(arrays.values()), list(arrays))
    if suffix == ".csv":
        return SequenceFile([read_csv(path)], ["1"])
    if suffix == ".ts":
        from ..datasets import read_ts  # only when a .ts file is read

        data = read_ts(path)
        labels = [str(label) for label in data.labels] if data.class_names else None
        return SequenceFile(
            data.sequences, _numbered(len(data.sequences)), labels, data.class_names
        )
    raise InputError(
        f"{path}: expected a .npy, .npz, .csv or .ts file; got {suffix or 'no suffix'!r}"
    )


def read_sequences(path: str | os.PathLike) -> list[Array] | Array:
    """The sequences of :func:`read_sequence_file`, without names and labels."""
    return read_sequence_file(path).sequences


def _padded_batch(path: Path, arrays: dict[str, Array]) -> SequenceFile:
    """``x`` (N, T, C) cut to ``lengths`` (N,) — every step of it without ``lengths`` — the
    sequences of a zero-padded batch."""
    if sorted(arrays) not in (["lengths", "x"], ["x"]):
        raise InputError(
            f"{path}: a padded batch holds 'x' (N, T, C) and 'lengths' (N,), nothing else; "
            f"got arrays {sorted(arrays)}"
        )
    x = arrays["x"]
    if x.ndim != 3 or 0 in x.shape:
        raise InputError(f"{path}: x must be a padded batch (N, T, C); got shape {x.shape}")
    if "lengths" not in arrays:
        return SequenceFile(list(x), _numbered(len(x)), padded_batch=True)
    lengths = check_lengths(arrays["lengths"], len(x), x.shape[1], f"{path}: lengths")
    sequences = [row[:n] for row, n in zip(x, lengths, strict=True)]
    return SequenceFile(sequences, _numbered(len(x)), lengths=lengths, padded_batch=True)


def _numbered(n: int) -> list[str]:
    return [str(k) for k in range(1, n + 1)]


def read_csv(path: str | os.PathLike) -> Array:
    """One sequence (T, C) from a CSV file: a line per time step, a column per feature."""
    text = read_text(path, "utf-8-sig")
    rows: list[list[float]] = []
    width: int | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        values = _numbers(fields)
        if values is None:
            if not rows and width is None and all(map(_is_name, fields)):
                width = len(fields)  # the header: no field of it can be a number
                continue
            raise InputError(f"{path}: line {number}: not comma-separated numbers: {line!r}")
        if width is not None and len(values) != width:
            raise InputError(
                f"{path}: line {number}: {len(values)} columns; the first line has {width}"
            )
        width = len(values)
        rows.append(values)
    if not rows:
        raise InputError(f"{path}: no data lines")
    return np.array(rows)


def _is_name(field: str) -> bool:
    """Whether a header field cannot be a number: it has a letter and does not parse."""
    return any(ch.isalpha() for ch in field) and _numbers([field]) is None


def _numbers(fields: list[str]) -> list[float] | None:
    """The fields as floats, or None if any is not a number."""
    try:
        return [float(field) for field in fields]
    except ValueError:
        return None
