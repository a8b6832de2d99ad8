"""Verify a port: compare a model's outputs elsewhere with lstm_ref's, say where they first
diverge and which known porting bug reproduces them.

:func:`verify` reads the model (any format :func:`lstm_ref.interop.load_model` imports, or a
:class:`~lstm_ref.network.Network`), takes inputs from a file or generates them with a
seed, takes the observed outputs from an ``.npz`` (no framework needed) or from running a
model file in its framework (:mod:`.frameworks`), and returns a :class:`Report`:

- per output, a :class:`~.compare.Comparison` (Polygraphy's statistics and pass rule);
- where: the first divergence, with the reference's gate values there (:class:`Divergence`);
- why: the verdict of :func:`diagnose` — ``"match"``, ``"rounding"`` (float32 rounding
  only, measured by running the reference in float32), ``"cause"`` (a known bug of
  :mod:`.diagnose` reproduces the outputs within tolerance) or ``"unknown"``.

:mod:`.report` writes it as text and as JSON (the schema is in docs/VERIFY.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from .._checks import (
    check_allocation,
    check_count,
    check_lengths,
    check_number,
    check_real_array,
    check_seed,
)
from ..errors import InputError
from ..layers import LSTM, BiLSTM, Layer
from ..network import Network
from .compare import Comparison, compare, errors, failing
from .diagnose import ROUNDING_FACTOR, SEMANTICS, Finding, Setting, diagnose, reference_outputs

Array = np.ndarray
DEFAULT_SEMANTICS = {".keras": "keras", ".h5": "keras", ".hdf5": "keras", ".mat": "matlab"}


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
    batch = check_count(batch, "batch")
    if not isinstance(length_range, tuple | list) or len(length_range) != 2:
        raise InputError(f"length_range must be a pair (a, b); got {length_range!r}")
    lo, hi = (check_count(v, "a length of length_range") for v in length_range)
    if lo > hi:
        raise InputError(f"need 1 <= a <= b for lengths a-b; got {lo}-{hi}")
    if not check_number(scale, "scale") > 0:
        raise InputError(f"scale must be > 0; got {scale!r}")
    check_allocation((batch, hi, C), np.float64, "the generated inputs")
    rng = np.random.default_rng(check_seed(seed))
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
    (N, T, C) and optionally ``lengths`` (N,); zero-padded on the right."""
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
    return Inputs(x, check_lengths(lengths, len(x), x.shape[1], f"{path}: lengths"), str(path))


def read_observed(path: str | os.PathLike) -> dict[str, Array]:
    """Observed outputs from an ``.npz``: ``output`` (the network's output) and/or arrays
    named by layers (that layer's output), each (N, K) or (N, T, W) batch first."""
    from ..formats.safe_numpy import read_npz

    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise InputError(f"{path}: observed outputs must be an .npz file")
    return read_npz(path)


@dataclass(frozen=True)
class Divergence:
    """Where the first output beyond tolerance first diverges.

    ``step`` is None for an output with one value per sequence; ``gates`` holds the
    reference's i, f, g, o, c, h at (sequence, step) of ``layer`` for ``units`` (for an
    output per sequence: at the sequence's last step, first units).
    """

    output: str
    sequence: int
    step: int | None
    unit: int
    observed: float
    reference: float
    layer: str | None
    units: list[int]
    gates: dict[str, list[float]] | None
    implied: dict[str, float] | None


@dataclass(frozen=True)
class Report:
    """What :func:`verify` found (see the module docstring)."""

    model: str
    observed_from: str
    inputs: str
    lengths: list[int]
    semantics: str
    atol: float
    rtol: float
    comparisons: list[Comparison]
    rounding: dict[str, float]  # per output: max |reference float32 − float64|
    verdict: str  # "match", "rounding", "cause", "unknown"
    causes: list[Finding] = field(default_factory=list)  # those that reproduce, best first
    nearest: list[Finding] = field(default_factory=list)  # when none does: the closest
    divergence: Divergence | None = None
    arrays: dict[str, dict[str, Array]] = field(default_factory=dict, repr=False)
    """The outputs compared, by runner ("lstm_ref" and the observed one's), then by name."""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)


def verify(
    model: str | os.PathLike | Network,
    inputs: Inputs | str | os.PathLike | None = None,
    *,
    observed: Mapping[str, Array] | str | os.PathLike | None = None,
    run: str | os.PathLike | bool = False,
    semantics: str | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    seed: int = 0,
    batch: int = 4,
    length_range: tuple[int, int] = (3, 8),
    scale: float = 1.0,
    loaded: Network | None = None,
) -> Report:
    """Compare observed outputs with the reference's and diagnose a difference.

    Parameters
    ----------
    model : path or Network
        The model as it should compute (the reference), in any importable format.
    inputs : Inputs or path, optional
        A ``.npy``/``.npz`` file (:func:`read_inputs`); None generates them
        (:func:`generate_inputs` with ``seed``, ``batch``, ``length_range``, ``scale``).
    observed : mapping or path, optional
        Observed outputs by name, arrays (N, K) or (N, T, W), or an ``.npz`` of them
        (:func:`read_observed`). Give this or ``run``.
    run : path or bool
        Run this model file (True: ``model`` itself) in its framework for the observed
        outputs (:mod:`.frameworks`).
    semantics : str, optional
        The padding semantics the observed outputs follow, a key of
        :data:`~.diagnose.SEMANTICS`; default by the model's format (Keras: "keras",
        MATLAB: "matlab", else "masked").
    atol, rtol : float
        An element fails when it exceeds both.
    loaded : Network, optional
        ``model`` already imported (so that its file is not read again).

    Returns
    -------
    Report
    """
    from ..interop import load_model

    path = None if isinstance(model, Network) else Path(model)
    net = model if isinstance(model, Network) else loaded or load_model(model)
    net = net.astype(np.float64)
    if isinstance(inputs, Inputs):
        given = inputs
    elif inputs is None:
        given = generate_inputs(net.input_size, seed, batch, length_range, scale)
    else:
        given = read_inputs(inputs, net.input_size)
    if (observed is None) == (run is False):
        raise InputError("give either observed outputs or a model file to run, not both or none")
    port = (path if run is True else Path(run)) if run is not False else None
    runner = "observed"
    if observed is not None:
        source = "the observed outputs given"
        if not isinstance(observed, Mapping):
            source = str(observed)
            observed = read_observed(observed)
        outputs = {k: np.asarray(v) for k, v in observed.items()}
    elif port is None:
        raise InputError("run=True needs a model file; give run=<file> with a Network")
    else:
        runner, outputs = _run(port, given)
        source = f"{runner} running {port}"
    if semantics is None:
        made_by = port or path
        semantics = DEFAULT_SEMANTICS.get(made_by.suffix.lower() if made_by else "", "masked")
    if semantics not in SEMANTICS:
        raise InputError(
            f"unknown padding semantics {semantics!r}; expected one of {list(SEMANTICS)}"
        )
    if not outputs:
        raise InputError(f"{source}: no outputs to compare")
    setting = Setting(net, semantics)
    names = {k: _layer_name(net, k) for k in outputs}
    T = given.x.shape[1]
    reference = {k: reference_outputs(setting, given.sequences, n, T) for k, n in names.items()}
    comparisons = [_compare(k, outputs[k], *reference[k], atol, rtol) for k in outputs]
    report = partial(
        Report,
        "a Network" if path is None else str(model),
        source,
        given.source,
        [int(n) for n in given.lengths],
        semantics,
        atol,
        rtol,
        comparisons,
        arrays={"lstm_ref": {k: ref for k, (ref, _) in reference.items()}, runner: outputs},
    )
    if all(c.passed for c in comparisons):
        return report(rounding={}, verdict="match")
    as32 = Setting(net.astype(np.float32), semantics)
    rounding = {}
    for k, n in names.items():
        ref, mask = reference[k]
        ref32, _ = reference_outputs(as32, given.sequences, n, T)
        rounding[k] = float(np.max(np.abs(ref32 - ref)[mask], initial=0.0))
    divergence = _divergence(net, given, comparisons, outputs, reference, names)
    if all(c.passed or c.max_abs <= ROUNDING_FACTOR * rounding[c.name] for c in comparisons):
        return report(rounding=rounding, verdict="rounding", divergence=divergence)
    findings = diagnose(setting, given.sequences, T, outputs, names, rounding, atol, rtol, path)
    found = [f for f in findings if f.reproduces]
    return report(
        rounding=rounding,
        verdict="cause" if found else "unknown",
        causes=found,
        nearest=[] if found else findings[:3],
        divergence=divergence,
    )


def _run(path: Path, inputs: Inputs) -> tuple[str, dict[str, Array]]:
    from .frameworks import run_framework

    return run_framework(path, inputs.x, inputs.lengths)


def _layer_name(net: Network, key: str) -> str | None:
    if key == "output":
        return None
    if key not in [x.name for x in net.layers]:
        raise InputError(
            f"observed output {key!r} is neither 'output' nor a layer of the model "
            f"({[x.name for x in net.layers]})"
        )
    return key


def _compare(
    name: str, observed: Array, reference: Array, mask: Array, atol: float, rtol: float
) -> Comparison:
    if observed.shape != reference.shape:
        raise InputError(
            f"observed output {name!r} has shape {observed.shape}; the reference's is "
            f"{reference.shape} (batch first: (N, K) or (N, T, W))"
        )
    return compare(name, observed, reference, mask, atol, rtol)


def _divergence(
    net: Network,
    inputs: Inputs,
    comparisons: list[Comparison],
    observed: Mapping[str, Array],
    reference: Mapping[str, tuple[Array, Array]],
    names: Mapping[str, str | None],
) -> Divergence:
    """The first failing element of the first failing output: the earliest step, then the
    lowest sequence and unit; for outputs per sequence the lowest sequence, then the
    largest error."""
    c = next(c for c in comparisons if not c.passed)
    obs, (ref, mask) = observed[c.name], reference[c.name]
    abs_err, rel_err = errors(obs, ref)
    bad = failing(abs_err, rel_err, c.atol, c.rtol) & mask[..., None]
    if ref.ndim == 3:
        t, n, u = min((int(t), int(n), int(u)) for n, t, u in np.argwhere(bad))
    else:
        n = int(np.argwhere(bad)[0, 0])
        u, t = int(np.argmax(np.where(bad[n], np.nan_to_num(abs_err[n], nan=np.inf), -1))), None
    layer_name = names[c.name]
    layer = net.layer(layer_name) if layer_name is not None else net.layers[-1]
    traced: Layer | None = layer if isinstance(layer, LSTM | BiLSTM) else None
    if traced is None and net.stateful_layers:
        traced = net.stateful_layers[0]
    index = (n, u) if t is None else (n, t, u)
    gates = implied = None
    units: list[int] = []
    if traced is not None:
        seq = inputs.sequences[n]
        trace = net.trace(seq, traced.name)
        step = len(seq) - 1 if t is None else t
        units = [u] if traced is layer else list(range(min(4, trace.h.shape[1])))
        if step < len(seq):
            gates = {g: [float(v[step, k]) for k in units] for g, v in trace._asdict().items()}
            if traced is layer and isinstance(layer, LSTM) and layer.state_activation == "tanh":
                tanh_c = float(np.tanh(trace.c[step, u]))
                if abs(tanh_c) > 1e-12 and layer.projection is None:
                    implied = {"o": float(obs[index]) / tanh_c}
    return Divergence(
        output=c.name,
        sequence=n,
        step=t,
        unit=u,
        observed=float(obs[index]),
        reference=float(ref[index]),
        layer=None if traced is None else traced.name,
        units=units,
        gates=gates,
        implied=implied,
    )


__all__ = [
    "Divergence",
    "Finding",
    "Inputs",
    "Report",
    "diagnose",
    "generate_inputs",
    "read_inputs",
    "read_observed",
    "verify",
]
