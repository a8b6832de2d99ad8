"""The search for the known porting bug — or the two — that reproduce the observed outputs.

:func:`diagnose` switches each applicable cause of :mod:`.causes` on in the reference, one
at a time, and compares the result with the observed outputs. When none reproduces them it
tries pairs of causes of different families, pruned by the outputs, steps and units where
the observed outputs diverge: each cause must move some of those elements, and the first of
a pair must *help* alone (bring one of them within tolerance, or lower their mean error) —
a wrong gate order that scrambles everything, or a padding cause on rows that hold no
padding, prunes itself. Helpers are tried most helpful first, and the search stops with the
first helper that completes a pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from .causes import Cause, causes, stored_bias_causes
from .compare import compare, errors, failing_compared
from .reference import Expected, Setting, Wanted, reference_all

Array = np.ndarray

ROUNDING_FACTOR = 10.0  # observed within this many times the reference's own rounding


@dataclass(frozen=True)
class Finding:
    """A known cause (or a pair, keys joined by ``+``) tried: how far its outputs are from
    the observed ones."""

    key: str
    title: str
    max_abs: float
    reproduces: bool
    compared: int  # elements compared (padding computed as data leaves padded steps out)


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found: every finding (those that reproduce first, then by
    error), and how many hypotheses (single causes and pairs) were computed."""

    findings: list[Finding]
    tried: int
    pairs_tried: int


@dataclass(frozen=True)
class Observation:
    """The observed outputs to explain: by label, the :class:`~.reference.Wanted` output
    each is, its values (batch first, lstm_ref's layout) and the rounding allowed on it."""

    wanted: Mapping[str, Wanted]
    values: Mapping[str, Array]
    rounding: Mapping[str, float]
    atol: float
    rtol: float


def diagnose(
    setting: Setting,
    seqs: list[Array],
    T: int,
    observed: Observation,
    reference: Mapping[str, Expected],
    model_path: Path | None = None,
    pairs: bool = True,
    alone: Sequence[str] = (),
) -> Diagnosis:
    """Try every applicable known cause, then (when none reproduces) each bug of the
    weights in each LSTM layer of ``alone`` only, then (``pairs``) every plausible pair.

    A cause reproduces the outputs when every compared element passes ``atol`` (widened to
    :data:`ROUNDING_FACTOR` times the reference's own rounding) or ``rtol``, and no other
    cause that does compares more elements (padding computed as data leaves padded steps
    undefined: it explains less).

    Parameters
    ----------
    setting : Setting
        How the reference is computed without any bug.
    seqs : list of ndarray, each (T_n, C)
        The inputs; ``T`` the padded length of per-step outputs.
    observed : Observation
    reference : mapping of str to Expected
        The reference's outputs in ``setting`` (by the labels of ``observed``), computed
        once by the caller.
    model_path : Path, optional
        The model's file, for the causes its format stores (:func:`stored_bias_causes`).
    alone : sequence of str
        The LSTM layers a bug of the weights may be in alone (a converter's bug is usually
        in every layer, which is tried first); paired with other causes only when there is
        one such layer (the first diverging layer, known from its outputs).

    Returns
    -------
    Diagnosis
    """
    known = causes(None if model_path is None else stored_bias_causes(model_path))
    bad = _flat(_diverging(observed, reference))
    findings, effects = [], []

    def single(cause: Cause, pairable: bool = True) -> None:
        changed = cause.apply(setting, seqs, T)
        if changed is None:
            return
        finding, outputs = _try(cause.key, cause.title, changed, seqs, T, observed)
        findings.append(finding)
        if outputs is not None and pairable:
            effect = _effect(cause, changed, outputs, reference, observed, bad)
            if (effect.moved & bad).any():
                effects.append(effect)

    for cause in known:
        single(cause)
    for layer in alone:
        if any(f.reproduces for f in findings):
            break
        for cause in known:  # in pairs only when the layer is known: the search stays small
            if cause.per_layer:
                single(cause.only_in(layer), pairable=len(alone) == 1)
    singles = len(findings)
    if pairs and not any(f.reproduces for f in findings):
        before = _flat({k: errors(observed.values[k], e.values)[0] for k, e in reference.items()})
        mean = float(np.nan_to_num(before[bad], nan=np.inf).mean())
        findings += _pairs(effects, mean, seqs, T, observed)
    most = max((f.compared for f in findings if f.reproduces), default=0)
    ranked = sorted(
        (replace(f, reproduces=f.reproduces and f.compared == most) for f in findings),
        key=lambda f: (not f.reproduces, f.max_abs),
    )
    return Diagnosis(ranked, len(findings), len(findings) - singles)


def _try(
    key: str, title: str, changed: Setting, seqs: list[Array], T: int, observed: Observation
) -> tuple[Finding, dict[str, Expected] | None]:
    """The finding of the reference computed in ``changed``, and its outputs (None when
    the bug overflows this model: a non-finite output)."""
    try:
        outputs = reference_all(changed, seqs, observed.wanted, T)
    except InputError:
        return Finding(key, title, math.inf, False, 0), None
    worst, ok, compared = 0.0, True, 0
    for k, e in outputs.items():
        atol = max(observed.atol, ROUNDING_FACTOR * observed.rounding[k])
        c = compare(k, observed.values[k], e.values, e.data, atol, observed.rtol, e.padded)
        compared += c.compared + c.padded_compared
        ok &= c.padded_failed == 0
        ok &= c.failed == 0
        worst = max(worst, math.inf if math.isnan(c.max_abs) else c.max_abs)
    return Finding(key, title, worst, ok, compared), outputs


def _diverging(observed: Observation, outputs: Mapping[str, Expected]) -> dict[str, Array]:
    """Per output, where the observed values fail against ``outputs`` (bool, its shape)."""
    found = {}
    for k, e in outputs.items():
        atol = max(observed.atol, ROUNDING_FACTOR * observed.rounding[k])
        found[k], _ = failing_compared(
            observed.values[k], e.values, e.compared, atol, observed.rtol
        )
    return found


def _flat(masks: Mapping[str, Array]) -> Array:
    return np.concatenate([m.ravel() for m in masks.values()])


@dataclass(frozen=True)
class _Effect:
    """What one cause alone does to the reference, element by element (every output's
    elements in one flat array): which it moves, how many diverging ones it brings within
    tolerance, and the diverging elements' mean absolute error then."""

    cause: Cause
    setting: Setting
    moved: Array
    fixed: int
    error: float


def _effect(
    cause: Cause,
    changed: Setting,
    outputs: Mapping[str, Expected],
    base: Mapping[str, Expected],
    observed: Observation,
    bad: Array,
) -> _Effect:
    moved = _flat(
        {
            k: ~np.isclose(e.values, base[k].values, rtol=1e-9, atol=1e-12)
            for k, e in outputs.items()
        }
    )
    fixed = int((bad & ~_flat(_diverging(observed, outputs))).sum())
    after = _flat({k: errors(observed.values[k], e.values)[0] for k, e in outputs.items()})
    return _Effect(
        cause, changed, moved, fixed, float(np.nan_to_num(after[bad], nan=np.inf).mean())
    )


def _pairs(
    effects: list[_Effect],
    before: float,
    seqs: list[Array],
    T: int,
    observed: Observation,
) -> list[Finding]:
    """Pairs of causes of different families, the first switched on, then the second on
    top (in :func:`~.causes.causes`' order). The first of a pair must *help* alone — bring
    a diverging element within tolerance or lower the diverging elements' mean error below
    ``before`` — and the helpers are tried most helpful first, each with every other cause
    that moves a diverging element; the search stops after the first helper with which a
    pair reproduces the outputs."""
    order = {id(e.cause): k for k, e in enumerate(effects)}
    helpers = sorted(
        (e for e in effects if e.fixed or e.error < before), key=lambda e: (-e.fixed, e.error)
    )
    found: list[Finding] = []
    for a in helpers:
        for b in effects:
            if b is a or b.cause.family == a.cause.family:
                continue
            first, second = sorted((a, b), key=lambda e: order[id(e.cause)])
            key = f"{first.cause.key}+{second.cause.key}"
            if any(f.key == key for f in found):
                continue
            both = second.cause.apply(first.setting, seqs, T)
            if both is None:
                continue
            title = f"{first.cause.title}; and {second.cause.title}"
            found.append(_try(key, title, both, seqs, T, observed)[0])
        if any(f.reproduces for f in found):
            break
    return found
