"""The inputs verify runs both models on: generated with a seed, or read from a file, as a
zero-padded batch with each sequence's length; and the observed outputs read from a file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_lengths, check_real_array
from ..errors import InputError

Array = np.ndarray


@dataclass(frozen=True)
class Inputs:
    """A padded batch: ``x`` (N, T, C) float64, each sequence's steps from 0 to
    ``lengths[n]`` (N,); ``source`` says where it came from."""

    x: Array
    lengths: Array
    source: str

    @property
    def sequences(self) -> list[Array]:
        """Each sequence's own steps, (T_n, C)."""
        return [row[:n] for row, n in zip(self.x, self.lengths, strict=True)]


def generate_inputs(
    C: int,
    seed: int = 0,
    batch: int = 4,
    length_range: tuple[int, int] = (3, 8),
    scale: float = 1.0,
) -> Inputs:
    """``batch`` sequences of C normal features (mean 0, standard deviation ``scale``) with
    lengths drawn from ``length_range`` (inclusive), the first the longest and the last the
    shortest when there are two or more (so the lengths are mixed)."""
    lo, hi = length_range
    if not 1 <= lo <= hi or batch < 1:
        raise InputError(f"need batch >= 1 and 1 <= a <= b for lengths a-b; got {lo}-{hi}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(lo, hi + 1, size=batch)
    if batch > 1:
        lengths[0], lengths[-1] = hi, lo
    x = rng.normal(scale=scale, size=(batch, hi, C))
    x[np.arange(hi)[None, :] >= lengths[:, None]] = 0.0
    scaled = "" if scale == 1 else f", scale {scale:g}"
    return Inputs(
        x, lengths, f"generated: seed {seed}, {batch} sequences, lengths {lo}-{hi}{scaled}"
    )


def read_inputs(path: str | os.PathLike, C: int) -> Inputs:
    """Inputs from ``.npy`` — (N, T, C), or one sequence (T, C) — or ``.npz`` with ``x``
    (N, T, C) and optionally ``lengths`` (N,), zero-padded on the right; a length may be 0
    (ONNX's ``sequence_lens`` and Keras's masking allow it), not all."""
    from ..formats.safe_numpy import read_npy, read_npz

    path = Path(path)
    if path.suffix.lower() == ".npy":
        arrays = {"x": read_npy(path)}
    elif path.suffix.lower() == ".npz":
        arrays = read_npz(path)
    else:
        raise InputError(f"{path}: inputs must be a .npy or .npz file")
    if "x" not in arrays:
        raise InputError(f"{path}: expected an array 'x' (N, T, C); got {sorted(arrays)}")
    x = check_real_array(arrays["x"], f"{path}: x", np.float64)  # the padding too: finite
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3 or x.shape[2] != C or 0 in x.shape:
        raise InputError(f"{path}: x must be (N, T, {C}) for this model; got {x.shape}")
    lengths = arrays.get("lengths", np.full(len(x), x.shape[1]))
    checked = check_lengths(lengths, len(x), x.shape[1], f"{path}: lengths", minimum=0)
    if not checked.any():
        raise InputError(f"{path}: every sequence is empty (lengths all 0): nothing to compare")
    return Inputs(x, checked, str(path))


def read_observed(path: str | os.PathLike) -> dict[str, Array]:
    """Observed outputs from an ``.npz``: ``output`` (the network's output) and/or arrays
    named by layers (that layer's output), each (N, K) or (N, T, W) batch first."""
    from ..formats.safe_numpy import read_npz

    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise InputError(f"{path}: observed outputs must be an .npz file")
    return read_npz(path)
