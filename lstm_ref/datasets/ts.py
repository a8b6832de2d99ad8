"""Parser for the sktime/aeon ``.ts`` time-series format (UEA & UCR archive files).

A ``.ts`` file holds a header and then one case per line::

    # comment lines start with '#' (or '%', as sktime's own files use); blank lines are ignored
    @problemName Toy
    @timeStamps false
    @missing false
    @univariate false
    @dimensions 2
    @equalLength false
    @classLabel true a b
    @data
    1.0,2.0,3.0:4.0,5.0,6.0:b
    0.5,0.25:7.0,8.0:a

After ``@data`` the dimensions of a case are separated by ``:`` and the values of one
dimension by ``,``; with ``@classLabel true`` (or ``@targetLabel true`` for regression)
the label is the last ``:`` field. Header names are case-insensitive, header values and
labels are kept as written. Every dimension of one case must have the same number of
values, because a case becomes one ``(T, C)`` array (time × features).

Values are decimal numbers; ``?`` marks a missing value (NaN) and is only accepted with
``@missing true``. ``nan``, ``inf`` and values that overflow float64 are rejected.
Timestamped files (``@timeStamps true``) are not supported.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .._checks import check_instance
from ..errors import InputError, counted
from ..formats.safe_numpy import read_text

__all__ = ["TSDataset", "TSFormatError", "parse_ts", "read_ts"]

_BOOLEAN_HEADERS = ("timeStamps", "missing", "univariate", "equalLength", "targetLabel")
_INTEGER_HEADERS = ("dimensions", "seriesLength")
_HEADER_NAMES = {
    name.lower(): name
    for name in ("problemName", "classLabel", *_BOOLEAN_HEADERS, *_INTEGER_HEADERS)
}
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_POSITIVE_INT = re.compile(r"0*[1-9][0-9]*")
_MISSING = "?"


class TSFormatError(InputError):
    """A ``.ts`` text that does not follow the format.

    Parameters
    ----------
    reason : str
        What is wrong, e.g. ``"dimension 5 has 18 values but dimension 1 has 19"``.
    line : int or None
        1-based number of the offending line, or None for whole-file problems
        (empty file, no ``@data``).
    path : str or None
        The file, when the text came from one (:func:`read_ts`).

    Attributes
    ----------
    reason : str
        The reason without the line prefix.
    line, path : int or None, str or None
        As given.
    """

    def __init__(self, reason: str, line: int | None = None, path: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.path = path
        where = "" if path is None else f"{path}: "
        super().__init__(where + (reason if line is None else f"line {line}: {reason}"))


@dataclass(frozen=True, eq=False)
class TSDataset:
    """The cases of one ``.ts`` file.

    Attributes
    ----------
    sequences : list of numpy.ndarray
        N arrays, the i-th of shape ``(T_i, C)`` (time × features), float64, in file order.
    labels : numpy.ndarray
        Shape ``(N,)``, dtype str: the class label (or regression target, as written) of
        each case; shape ``(0,)`` when the file has no labels.
    class_names : tuple of str
        Labels declared in ``@classLabel``, in declared order; empty without class labels.
    problem_name : str
        Value of ``@problemName`` (empty if absent).
    metadata : dict of str to str
        Every header as ``{canonical name: value as written}``, e.g.
        ``{"dimensions": "12", "classLabel": "true 1 2 3"}``.
    """

    sequences: list[np.ndarray]
    labels: np.ndarray
    class_names: tuple[str, ...]
    problem_name: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class _Layout:
    """What the header promises about every case."""

    class_names: tuple[str, ...]
    has_labels: bool
    missing_allowed: bool
    dimensions: int | None
    series_length: int | None
    equal_length: bool


def read_ts(path: str | os.PathLike[str]) -> TSDataset:
    """Read a UTF-8 ``.ts`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    TSDataset
        See `parse_ts`.

    Raises
    ------
    TSFormatError
        If the file does not follow the format.
    """
    text = read_text(path)
    try:
        return parse_ts(text)
    except TSFormatError as e:
        raise TSFormatError(e.reason, e.line, os.fspath(path)) from None


def parse_ts(text: str) -> TSDataset:
    """Parse the text of a ``.ts`` file.

    Parameters
    ----------
    text : str
        The whole file; ``\\n``, ``\\r\\n`` line ends and a leading BOM are accepted.

    Returns
    -------
    TSDataset
        Sequences of shape ``(T_i, C)``, labels of shape ``(N,)`` (or ``(0,)``), headers.

    Raises
    ------
    TSFormatError
        With the 1-based line number and the reason, e.g.
        ``"line 17: expected 12 dimensions, got 11"``.
    """
    lines = check_instance(text, str, "the text of a .ts file").removeprefix("\ufeff").splitlines()
    metadata: dict[str, str] = {}
    header_lines: dict[str, int] = {}
    for number, line in _content_lines(lines, first=1):
        if not line.startswith("@"):
            raise TSFormatError("data line before @data", number)
        tag, value = [*line[1:].split(maxsplit=1), "", ""][:2]
        if tag.lower() == "data":
            if value:
                raise TSFormatError(f"@data takes no value, got '{value}'", number)
            layout = _layout(metadata, header_lines)
            sequences, labels = _parse_cases(lines, number + 1, layout)
            return TSDataset(
                sequences=sequences,
                labels=np.array(labels, dtype=str),
                class_names=layout.class_names,
                problem_name=metadata.get("problemName", ""),
                metadata=metadata,
            )
        _store_header(tag, value, number, metadata, header_lines)
    raise TSFormatError("missing @data line" if metadata else "empty file")


def _content_lines(lines: list[str], first: int) -> Iterator[tuple[int, str]]:
    """Yield the stripped non-blank, non-comment lines from 1-based line ``first`` on."""
    for number, line in enumerate(lines[first - 1 :], start=first):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "%")):
            yield number, stripped


def _store_header(
    tag: str, value: str, number: int, metadata: dict[str, str], header_lines: dict[str, int]
) -> None:
    """Validate one header line; store its value and line under its canonical name."""
    name = _HEADER_NAMES.get(tag.lower())
    if name is None:
        raise TSFormatError(f"unknown header @{tag}", number)
    if name in header_lines:
        raise TSFormatError(
            f"duplicate header @{name} (first given on line {header_lines[name]})", number
        )
    if name == "problemName" and not value:
        raise TSFormatError("@problemName needs a value", number)
    if name == "classLabel":
        _check_class_label(value, number)
    elif name in _BOOLEAN_HEADERS:
        if _parse_bool(name, value, number) and name == "timeStamps":
            raise TSFormatError("timestamped series (@timeStamps true) are not supported", number)
    elif name in _INTEGER_HEADERS:
        _check_positive_int(name, value, number)
    metadata[name] = value
    header_lines[name] = number


def _check_class_label(value: str, number: int) -> None:
    flag, *names = value.split() or [""]
    has_labels = _parse_bool("classLabel", flag, number)
    if names and not has_labels:
        raise TSFormatError("@classLabel false takes no labels", number)
    if has_labels and not names:
        raise TSFormatError("@classLabel true needs the list of class labels", number)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TSFormatError(f"@classLabel declares {' '.join(duplicates)} twice", number)


def _parse_bool(name: str, value: str, number: int) -> bool:
    if value.lower() not in ("true", "false"):
        raise TSFormatError(f"@{name} expects true or false, got '{value}'", number)
    return value.lower() == "true"


def _check_positive_int(name: str, value: str, number: int) -> None:
    if not _POSITIVE_INT.fullmatch(value):
        raise TSFormatError(f"@{name} expects a positive integer, got '{value}'", number)


def _layout(metadata: dict[str, str], header_lines: dict[str, int]) -> _Layout:
    """Combine the stored headers into the promises checked on every case."""

    def flag(name: str) -> bool:
        return metadata.get(name, "false").lower() == "true"

    flag_and_names = metadata.get("classLabel", "false").split()
    has_class_labels = flag_and_names[0].lower() == "true"
    if has_class_labels and flag("targetLabel"):
        line = max(header_lines["classLabel"], header_lines["targetLabel"])
        raise TSFormatError("@classLabel true and @targetLabel true exclude each other", line)
    dimensions = int(metadata["dimensions"]) if "dimensions" in metadata else None
    if flag("univariate") and dimensions not in (None, 1):
        line = max(header_lines["univariate"], header_lines["dimensions"])
        raise TSFormatError(f"@univariate true contradicts @dimensions {dimensions}", line)
    return _Layout(
        class_names=tuple(flag_and_names[1:]),
        has_labels=has_class_labels or flag("targetLabel"),
        missing_allowed=flag("missing"),
        dimensions=1 if flag("univariate") else dimensions,
        series_length=int(metadata["seriesLength"]) if "seriesLength" in metadata else None,
        equal_length=flag("equalLength"),
    )


def _parse_cases(
    lines: list[str], first: int, layout: _Layout
) -> tuple[list[np.ndarray], list[str]]:
    """Parse every case after the ``@data`` line; ``first`` is the 1-based line after it."""
    parser = _CaseParser(layout)
    cases = [parser.parse(line, number) for number, line in _content_lines(lines, first)]
    if not cases:
        raise TSFormatError("no cases after @data", first - 1)
    sequences = [sequence for sequence, _ in cases]
    labels = [label for _, label in cases if label is not None]
    return sequences, labels


class _CaseParser:
    """Parses case lines, checking each against the header and the first case."""

    def __init__(self, layout: _Layout) -> None:
        self.layout = layout
        self.n_dimensions = layout.dimensions
        self.dimensions_origin = ""
        self.first_length: tuple[int, int] | None = None  # (length, line) of the first case

    def parse(self, line: str, number: int) -> tuple[np.ndarray, str | None]:
        """Parse one case line into a ``(T, C)`` array and its label (None if unlabelled)."""
        if line.startswith("@"):
            raise TSFormatError(f"header {line.split()[0]} after @data", number)
        fields = line.split(":")
        label = fields.pop().strip() if self.layout.has_labels else None
        if not fields:
            raise TSFormatError("no ':' between the values and the label", number)
        self._check_dimension_count(len(fields), number)
        sequence = _parse_dimensions(fields, self.layout.missing_allowed, number)
        self._check_length(len(sequence), number)
        if label is not None:
            _check_label(label, self.layout.class_names, number)
        return sequence, label

    def _check_dimension_count(self, count: int, number: int) -> None:
        if self.n_dimensions is None:
            self.n_dimensions, self.dimensions_origin = count, f" (as on line {number})"
        elif count != self.n_dimensions:
            expected = counted(self.n_dimensions, "dimension") + self.dimensions_origin
            raise TSFormatError(f"expected {expected}, got {count}", number)

    def _check_length(self, length: int, number: int) -> None:
        series_length = self.layout.series_length
        if series_length is not None and length != series_length:
            raise TSFormatError(
                f"series length {length} does not match @seriesLength {series_length}", number
            )
        if self.first_length is None:
            self.first_length = (length, number)
        elif self.layout.equal_length and length != self.first_length[0]:
            first_length, first_line = self.first_length
            raise TSFormatError(
                f"series length {length} differs from {first_length} on line {first_line} "
                "but @equalLength is true",
                number,
            )


def _check_label(label: str, class_names: tuple[str, ...], number: int) -> None:
    if not label:
        raise TSFormatError("empty label after the last ':'", number)
    if class_names and label not in class_names:
        declared = " ".join(class_names)
        raise TSFormatError(
            f"class label '{label}' not declared in @classLabel (declared: {declared})", number
        )
    if not class_names and not _NUMBER.fullmatch(label):
        raise TSFormatError(f"could not parse target '{label}' as a number", number)


def _parse_dimensions(fields: list[str], missing_allowed: bool, number: int) -> np.ndarray:
    """Parse the ``:``-separated dimensions of one case into a ``(T, C)`` float64 array."""
    columns = [
        _parse_values(field, dimension, missing_allowed, number)
        for dimension, field in enumerate(fields, start=1)
    ]
    for dimension, column in enumerate(columns[1:], start=2):
        if len(column) != len(columns[0]):
            raise TSFormatError(
                f"dimension {dimension} has {len(column)} values "
                f"but dimension 1 has {len(columns[0])}",
                number,
            )
    return np.array(columns, dtype=np.float64).T.copy()


def _parse_values(field: str, dimension: int, missing_allowed: bool, number: int) -> list[float]:
    """Parse the ``,``-separated values of one dimension."""
    if not field.strip():
        raise TSFormatError(f"dimension {dimension} has no values", number)
    return [
        _parse_value(token.strip(), dimension, missing_allowed, number)
        for token in field.split(",")
    ]


def _parse_value(token: str, dimension: int, missing_allowed: bool, number: int) -> float:
    where = f"dimension {dimension}"
    if token == _MISSING:
        if not missing_allowed:
            raise TSFormatError(f"{where}: missing value '?' but @missing is not true", number)
        return math.nan
    if not _NUMBER.fullmatch(token):
        raise TSFormatError(f"{where}: could not parse '{token}' as a number", number)
    value = float(token)
    if math.isinf(value):
        raise TSFormatError(f"{where}: value '{token}' overflows float64", number)
    return value
