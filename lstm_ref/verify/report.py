"""A :class:`~lstm_ref.verify.Report` as readable text and as JSON (schema: docs/VERIFY.md)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
from typing import Any

import numpy as np

from . import Report
from .compare import histogram_text

SCHEMA = "lstm_ref.verify/1"
VERDICTS = {
    "match": "PASSED | all outputs match within tolerance",
    "rounding": "FAILED only by {precision} rounding: the observed outputs are as far from "
    "the float64 reference as the reference itself in {precision}; no bug — pass "
    "--precision {precision} if the port computes in {precision}",
    "declared rounding": "PASSED within {precision} rounding: the observed outputs are as "
    "far from the float64 reference as the reference itself in {precision}, the precision "
    "the port computes in; no bug",
    "cause": "FAILED | a known porting bug reproduces the observed outputs",
    "unknown": "FAILED | no known porting bug reproduces the observed outputs",
    "nan": "FAILED | the observed outputs hold NaN, which none of the known porting bugs "
    "computes from finite weights and inputs: no cause is sought; look for where the port "
    "first makes a NaN (an overflow, an uninitialised state or buffer, a division by zero)",
}


def text(report: Report) -> str:
    """The report as lines of text: inputs, each output's comparison, where, why."""
    lines = [
        f"verify {report.model} against {report.observed_from}",
        f"inputs: {report.inputs}; lengths {report.lengths}; padding {report.semantics!r}; "
        f"initial state {report.initial_state}",
        f"tolerance: [abs={report.atol:g}, rel={report.rtol:g}] | an element fails when it "
        "exceeds both",
    ]
    for c in report.comparisons:
        lines += [
            "",
            f"output {c.name!r}: observed {c.observed_dtype} {c.observed_shape}, reference "
            f"float64 {c.reference_shape}; {c.compared} elements compared"
            + (
                f" ({c.padded_compared} padded values checked apart: {c.padded_failed} differ)"
                if c.padded_compared
                else ""
            ),
            f"  abs error: max {c.max_abs:.3e}, mean {c.mean_abs:.3e}, median {c.median_abs:.3e}",
            f"  rel error: max {c.max_rel:.3e}, mean {c.mean_rel:.3e}, median {c.median_rel:.3e}",
            "  minimum tolerance to pass: none (a NaN never passes)"
            if c.nan
            else f"  minimum tolerance to pass: [abs={c.max_abs:.3e}] OR [rel={c.max_rel:.3e}]",
            "  abs error histogram:",
            *histogram_text(c.histogram),
            f"  {'PASSED' if c.passed else 'FAILED'} | {c.failed} of {c.compared} elements "
            "beyond tolerance",
        ]
        if c.nan or c.infinite:
            axes = "(sequence, step, unit)" if len(c.observed_shape) == 3 else "(sequence, unit)"
            at = f" at {axes} {', '.join(map(str, c.nan_at))}" if c.nan_at else ""
            more = " (the first 5)" if c.nan > len(c.nan_at) else ""
            lines.insert(
                -2 - len(c.histogram),
                f"  observed values not finite: {c.nan} NaN{at}{more}, {c.infinite} infinite "
                "(failing; the statistics but the maxima and the histogram count the finite "
                "errors)",
            )
        if c.name in report.rounding:
            lines.append(
                f"  {report.precision} rounding of the reference itself: "
                f"{report.rounding[c.name]:.3e}"
            )
    d = report.divergence  # its indices from 0; the text counts from 1, as every message
    if d is not None:
        at = f"sequence {d.sequence + 1}" + ("" if d.step is None else f", time step {d.step + 1}")
        lines += [
            "",
            f"first divergence: output {d.output!r}, {at}, unit {d.unit + 1}: observed "
            f"{d.observed:.6g}, reference {d.reference:.6g}",
        ]
        if d.gates is not None:
            where = "there" if d.step is not None else "at the sequence's last step"
            units = [u + 1 for u in d.units]
            lines.append(f"  reference gates of layer {d.layer!r} {where}, units {units}:")
            lines += [f"    {g} = {', '.join(f'{v:.6g}' for v in vs)}" for g, vs in d.gates.items()]
        if d.implied:
            lines.append(
                "  the observed h with the reference's c implies o = "
                + ", ".join(f"{v:.6g}" for v in d.implied.values())
            )
    if report.first_layer is not None:
        lines += [
            "",
            f"first diverging layer: {report.first_layer!r} (the layers before it match)",
        ]
    declared = report.verdict == "rounding" and report.precision_declared
    verdict = VERDICTS["declared rounding" if declared else report.verdict]
    lines += ["", verdict.format(precision=report.precision)]
    for f in report.causes:
        what = "two bugs at once" if "+" in f.key else "cause"
        lines.append(f"  {what}: {f.title} [{f.key}] — reproduces the outputs to {f.max_abs:.3e}")
    if report.tried:
        lines.append(
            f"  {report.tried} hypotheses tried: {report.tried - report.pairs_tried} single "
            f"causes, {report.pairs_tried} pairs"
        )
    if report.verdict == "unknown":
        lines.append("  the closest known causes (none within tolerance):")
        lines += [f"    {f.title} [{f.key}]: max abs error {f.max_abs:.3e}" for f in report.nearest]
    return "\n".join(lines)


def to_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (docs/VERIFY.md); non-finite numbers become null."""
    data = dataclasses.asdict(dataclasses.replace(report, arrays={}))
    del data["arrays"]
    data["passed"] = report.passed
    for c in data["comparisons"]:
        c["passed"] = c["failed"] == 0
        c["histogram"] = [{"low": lo, "high": hi, "count": n} for lo, hi, n in c["histogram"]]
    return {"schema": SCHEMA, **_finite(data)}


def dumps(report: Report) -> str:
    """:func:`to_json` as a JSON document."""
    return json.dumps(to_json(report), indent=1, allow_nan=False) + "\n"


def polygraphy_json(report: Report) -> str:
    """The outputs compared in Polygraphy's ``RunResults`` JSON (what ``polygraphy run
    --save-outputs`` writes and ``--load-outputs`` and ``RunResults.load`` read): one
    iteration per runner, ``lstm_ref``'s reference (float64; padded steps as the padding
    semantics defines them) and the observed one's, each array ``np.save``d and base64-encoded.
    """

    def array(a: np.ndarray) -> dict[str, str]:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(a), allow_pickle=False)
        return {
            "array": base64.b64encode(buffer.getvalue()).decode(),
            "polygraphy_class": "ndarray",
        }

    runs = [
        [
            runner,
            [
                {
                    "outputs": {
                        name: {"values": array(a), "polygraphy_class": "LazyArray"}
                        for name, a in outputs.items()
                    },
                    "runtime": 0.0,
                    "runner_name": runner,
                    "polygraphy_class": "IterationResult",
                }
            ],
        ]
        for runner, outputs in report.arrays.items()
    ]
    return json.dumps({"lst": runs, "polygraphy_class": "RunResults"}, indent=1) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
