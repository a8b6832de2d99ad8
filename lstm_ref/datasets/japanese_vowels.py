"""The Japanese Vowels speaker-recognition dataset, bundled with the package.

Nine male speakers uttered the Japanese vowels /ae/; each utterance is a sequence of
frames of 12 LPC cepstrum coefficients. The task is to name the speaker ("1" … "9").
The training split has 270 sequences (30 per speaker, 7–26 frames), the test split 370
(31, 35, 88, 44, 29, 24, 40, 50, 29 per speaker, 7–29 frames).

Source and licence
------------------
M. Kudo, J. Toyama, M. Shimbo, "Multidimensional Curve Classification Using
Passing-Through Regions", Pattern Recognition Letters 20(11–13):1103–1111, 1999.
UCI Machine Learning Repository, doi:10.24432/C5NS47, licensed under CC BY 4.0.
The bundled arrays were converted, values unchanged, from the UEA ``.ts`` copies in the
sktime 1.2.0 wheel by ``python -m lstm_ref.datasets.build_japanese_vowels``; `provenance`
returns the full record (citation, source files and their sha256, counts).

Bundle layout
-------------
``data/japanese_vowels.npz`` holds, for each split ``s`` in ``("train", "test")``:

- ``{s}_values``: float64, shape ``(sum T_i, 12)``, the sequences stacked along time;
- ``{s}_lengths``: int64, shape ``(N,)``, the ``T_i`` in file order;
- ``{s}_labels``: ``<U1``, shape ``(N,)``.

It contains no object arrays and loads with ``allow_pickle=False``.

Digest
------
``data/japanese_vowels.json`` records, per split, ``bundle_sha256``: the hex SHA-256 of
the concatenation of

1. ``values`` as little-endian float64 in C order (``tobytes()``),
2. ``lengths`` as little-endian int64,
3. the labels joined with ``"\\n"``, encoded as UTF-8,

with no separators between the three parts (see `bundle_sha256`). Every load recomputes
it and refuses arrays that do not match.
"""

from __future__ import annotations

import hashlib
import io
import json
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["CLASS_NAMES", "N_FEATURES", "SPLITS", "load_japanese_vowels", "provenance"]

CLASS_NAMES: tuple[str, ...] = tuple("123456789")
N_FEATURES = 12
SPLITS = ("train", "test")
NPZ_NAME = "japanese_vowels.npz"
JSON_NAME = "japanese_vowels.json"


def load_japanese_vowels(
    split: Literal["train", "test"],
) -> tuple[list[np.ndarray], np.ndarray]:
    """Load one split of the bundled Japanese Vowels dataset.

    Parameters
    ----------
    split : {"train", "test"}
        Which split.

    Returns
    -------
    sequences : list of numpy.ndarray
        N arrays (270 for train, 370 for test), the i-th float64 of shape ``(T_i, 12)``
        (time × LPC coefficients), in the original file order.
    labels : numpy.ndarray
        Shape ``(N,)``, dtype ``<U1``: the speaker, one of `CLASS_NAMES`.

    Raises
    ------
    ValueError
        If ``split`` is not ``"train"`` or ``"test"``.
    RuntimeError
        If the bundled arrays do not match the checksum recorded with them.
    """
    return read_bundle(_data_dir(), split)


def provenance() -> dict[str, Any]:
    """Return the provenance record of the bundled copy.

    Returns
    -------
    dict
        Dataset name, citation, DOI, licence with attribution, the source wheel and the
        sha256 of its ``.ts`` files, per-split counts, length ranges and `bundle_sha256`,
        and the build command. A fresh copy on each call.
    """
    return read_provenance(_data_dir())


def read_bundle(directory: Traversable, split: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Load and verify one split from a bundle in ``directory`` (as written by the build).

    Parameters
    ----------
    directory : importlib.resources.abc.Traversable or pathlib.Path
        Folder holding ``japanese_vowels.npz`` and ``japanese_vowels.json``.
    split : {"train", "test"}
        Which split.

    Returns
    -------
    sequences, labels
        As `load_japanese_vowels`; the sequences are views into one stacked array.

    Raises
    ------
    ValueError
        For an unknown split.
    RuntimeError
        If the arrays do not match the recorded checksum or are inconsistent.
    """
    if split not in SPLITS:
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    with np.load(io.BytesIO((directory / NPZ_NAME).read_bytes()), allow_pickle=False) as npz:
        values, lengths, labels = (
            npz[f"{split}_{part}"] for part in ("values", "lengths", "labels")
        )
    expected = read_provenance(directory)["splits"][split]["bundle_sha256"]
    actual = bundle_sha256(values, lengths, labels)
    if actual != expected:
        raise RuntimeError(
            f"bundled Japanese Vowels {split} split is corrupted: its sha256 is {actual}, "
            f"{JSON_NAME} records {expected}; rebuild it with "
            "python -m lstm_ref.datasets.build_japanese_vowels"
        )
    _check_structure(split, values, lengths, labels)
    return np.split(values, np.cumsum(lengths)[:-1]), labels


def read_provenance(directory: Traversable) -> dict[str, Any]:
    """Read ``japanese_vowels.json`` from ``directory``."""
    return json.loads((directory / JSON_NAME).read_text(encoding="utf-8"))


def bundle_sha256(values: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> str:
    """Digest of one split's arrays, as defined in the module docstring.

    Parameters
    ----------
    values : numpy.ndarray
        Shape ``(sum T_i, 12)``, float64 (converted to little-endian C order).
    lengths : numpy.ndarray
        Shape ``(N,)``, integers (converted to little-endian int64).
    labels : numpy.ndarray
        Shape ``(N,)``, str.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    digest.update(np.ascontiguousarray(lengths, dtype="<i8").tobytes())
    digest.update("\n".join(labels.tolist()).encode("utf-8"))
    return digest.hexdigest()


def _check_structure(
    split: str, values: np.ndarray, lengths: np.ndarray, labels: np.ndarray
) -> None:
    """Shapes the checksum cannot see: ``values`` (sum T_i, 12), lengths and labels (N,)."""
    if (
        values.ndim != 2
        or values.shape[1] != N_FEATURES
        or lengths.shape != labels.shape
        or int(lengths.sum()) != len(values)
    ):
        raise RuntimeError(
            f"bundled Japanese Vowels {split} split is inconsistent: values {values.shape}, "
            f"lengths {lengths.shape} summing to {int(lengths.sum())}, labels {labels.shape}"
        )


def _data_dir() -> Traversable:
    return files("lstm_ref.datasets") / "data"
