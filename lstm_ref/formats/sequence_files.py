"""Read sequences to score from a file: ``.npy``, ``.npz``, ``.csv`` or ``.ts``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..datasets import read_ts
from ..errors import InputError

Array = np.ndarray


def read_sequences(path: str | os.PathLike) -> list[Array] | Array:
    """The sequences stored in ``path``, in the file's order.

    Parameters
    ----------
    path : path
        ``.npy``: one sequence (T, C) or a batch (N, T, C) — returned as the array;
        ``.npz``: one sequence per array, in the archive's order;
        ``.csv``: one sequence, a time step per row, a feature per column (a non-numeric
        first row is taken as a header and skipped);
        ``.ts``: a UEA/UCR time series file (labels, if any, are ignored).

    Returns
    -------
    list of ndarray or ndarray
        As :meth:`lstm_ref.Network.predict` takes them (layout is the caller's to state).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            if not npz.files:
                raise InputError(f"{path}: the archive holds no arrays")
            return [npz[name] for name in npz.files]
    if suffix == ".csv":
        return [_read_csv(path)]
    if suffix == ".ts":
        return read_ts(path).sequences
    raise InputError(
        f"{path}: expected a .npy, .npz, .csv or .ts file; got {suffix or 'no suffix'!r}"
    )


def _read_csv(path: Path) -> Array:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if lines and not _is_numeric_row(lines[0]):
        lines = lines[1:]
    if not lines:
        raise InputError(f"{path}: no data rows")
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append([float(v) for v in line.split(",")])
        except ValueError:
            raise InputError(f"{path}: row {number}: not a row of numbers: {line!r}") from None
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InputError(f"{path}: rows have different numbers of columns: {sorted(widths)}")
    return np.array(rows)


def _is_numeric_row(line: str) -> bool:
    try:
        [float(v) for v in line.split(",")]
    except ValueError:
        return False
    return True
