"""Summarise pytest-benchmark JSON files: per group, each entry's median and its ratios.

    python benchmarks/report.py bench.json [more.json ...] [--markdown]

For every group (e.g. "A step (batch 1), float32") the entries are listed fastest first with
their median time per call, the spread, the number of rounds, and two time ratios:
``×fastest`` (median / the fastest median in the group, so 1.00 is the fastest) and
``×lstm_ref`` (median / the median of lstm_ref's reference entry in that group, so below 1
is faster than lstm_ref). The reference entry is the one the benchmark marked with
``extra_info["reference"]``. Given several files (repeated runs), each entry's median is the
median of its per-run medians and the spread is their range: on a shared, noisy machine
that is steadier than any one run; so are the repetitions of one run made with
``--robin N`` (every entry once, then every entry again, …), which count as runs here.

Entries that state their floating-point work (``extra_info["flops"]``) also show GFLOP/s and
the fraction of the machine's peak: the "GEMM peak" entry (a 2000 × 2000 matmul, one BLAS
thread) of the same dtype, measured in the same run. The section "Targets" prints the ratios
(ours / peer, below 1 is faster) beside their targets, and the peak memory of a
NumPy-only inference process; where "floor" entries of the same run bound a target, also
their floor / peer, and "out of reach (floor)" when that alone misses it. Reads the files
only; runs nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
ROBIN = re.compile(r"(?<=\[)r\d+-|-r\d+(?=[-\]])|\[r\d+\]")  # a --robin repetition's id


def unit_for(seconds: float) -> tuple[float, str]:
    """The largest unit in which ``seconds`` is at least 1."""
    for scale, name in UNITS:
        if seconds >= scale:
            return scale, name
    return UNITS[-1]


def number(value: float) -> str:
    """Three significant digits, without an exponent."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def entry_label(bench: dict[str, Any]) -> str:
    info = bench.get("extra_info") or {}
    text = info.get("label") or bench.get("name", "?")
    params = {k: v for k, v in (bench.get("params") or {}).items() if k != "dtype"}
    return text if not params or info.get("label") else f"{text} {params}"


class Entry(NamedTuple):
    """One benchmark over one or more runs (files)."""

    label: str
    reference: bool
    medians: list[float]  # one per run
    iqr: float  # of the first run
    rounds: int  # over all runs
    flops: int  # floating-point work of one call (0: not stated)
    extra: dict[str, Any]  # the first run's extra_info

    @property
    def median(self) -> float:
        return statistics.median(self.medians)


def collect(runs: list[dict[str, Any]]) -> dict[str, list[Entry]]:
    """The entries of every group, each benchmark's medians gathered over the runs."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for data in runs:
        for bench in data.get("benchmarks", []):
            group = bench.get("group") or "(no group)"
            name = bench.get("fullname") or bench.get("name", "?")
            found[group, ROBIN.sub("", name)].append(bench)  # repetitions count as runs
    groups: dict[str, list[Entry]] = defaultdict(list)
    for (group, _), benches in found.items():
        first = benches[0]
        info = first.get("extra_info") or {}
        groups[group].append(
            Entry(
                label=entry_label(first),
                reference=bool(info.get("reference")),
                medians=[b["stats"]["median"] for b in benches],
                iqr=first["stats"]["iqr"],
                rounds=sum(b["stats"]["rounds"] for b in benches),
                flops=int(info.get("flops") or 0),
                extra=info,
            )
        )
    return groups


def gemm_peaks(groups: dict[str, list[Entry]]) -> dict[str, float]:
    """GFLOP/s of the "GEMM peak" entry of each dtype."""
    peaks = {}
    for name, entries in groups.items():
        if name.startswith("GEMM peak") and entries[0].flops:
            peaks[name.rsplit(", ", 1)[-1]] = entries[0].flops / entries[0].median / 1e9
    return peaks


def group_rows(
    entries: list[Entry], runs: int, peak: float | None = None
) -> tuple[list[str], list[list[str]]]:
    """The table header and rows of one group, fastest first."""
    entries = sorted(entries, key=lambda e: e.median)
    fastest = entries[0].median
    refs = [e for e in entries if e.reference] or [e for e in entries if "lstm_ref" in e.label]
    ref = refs[0].median if refs else None
    scale, unit = unit_for(fastest)
    runs = max(len(e.medians) for e in entries)  # runs, or --robin repetitions
    spread = f"IQR ({unit})" if runs == 1 else f"runs min–max ({unit})"
    header = ["entry", f"median ({unit})", spread, "rounds", "×fastest", "×lstm_ref"]
    header += ["GFLOP/s", "of peak"]
    rows = []
    for e in entries:
        if runs == 1:
            spread = f"{e.iqr / scale:.2g}"
        else:
            spread = f"{number(min(e.medians) / scale)}–{number(max(e.medians) / scale)}"
        rows.append(
            [
                e.label,
                number(e.median / scale),
                spread,
                str(e.rounds),
                f"{e.median / fastest:.2f}",
                "-" if ref is None else f"{e.median / ref:.2f}",
                f"{e.flops / e.median / 1e9:.3g}" if e.flops else "-",
                f"{e.flops / e.median / 1e9 / peak:.1%}" if e.flops and peak else "-",
            ]
        )
    return header, rows


def format_table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]

    def line(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def describe(data: dict[str, Any]) -> list[str]:
    """The environment lines of one run."""
    machine = data.get("machine_info") or {}
    cpu = machine.get("cpu", {}).get("brand_raw", "")
    out = [f"run of {data.get('datetime', '?')} {cpu}".rstrip()]
    env = machine.get("lstm_ref")
    if env:  # written by benchmarks/conftest.py
        pools = "; ".join(
            " ".join(
                str(v)
                for v in (p.get("internal_api"), p.get("version"), p.get("architecture"))
                if v
            )
            + f" {p.get('num_threads')} thread(s)"
            for p in env.get("thread_pools", [])
        )
        variables = ", ".join(
            f"{k}={'<unset>' if v is None else v}" for k, v in env.get("openblas_env", {}).items()
        )
        out.append(
            f"  numpy {env.get('numpy')}, torch {env.get('torch')} "
            f"({env.get('torch_threads')} thread); {pools}; {variables}"
        )
        load = env.get("load")
        if load:
            out.append(
                f"  other processes kept {load['other_cores_busy']} of {load['cpus']} CPUs busy "
                f"on average during the run ({load['wall_s']} s)"
            )
    return out


class Target(NamedTuple):
    """One performance target: ``ours / peer ≤ limit``; each a (group, label) entry
    (``"*text"``: the fastest entry whose label starts with ``text``). ``floor`` names the
    entries whose medians add up to the least NumPy work ours cannot skip: when
    ``floor / peer`` is above ``limit`` already, the target is out of NumPy's reach."""

    what: str
    ours: tuple[str, str]
    peer: tuple[str, str]
    limit: float
    floor: tuple[tuple[str, str], ...] = ()


A32, A64 = "A step (batch 1), float32", "A step (batch 1), float64"
B32 = "B one sequence → probabilities, float32"
C32, C2 = "C 370 sequences masked, float32", "C 370 sequences, 2 cores"
D32 = "D training epoch (270 sequences, mini-batch 27), float32"
D64 = "D training epoch (270 sequences, mini-batch 27), float64"
STEPPER, IOBINDING = (
    (A32, "lstm_ref stepper.step (fast path)"),
    (A32, "onnxruntime run_with_iobinding"),
)
STEP_FLOOR = (A32, "floor: fast_steps, one row (product + 7 ufuncs)")
WEIGHT_CHECK = (A32, "floor: the weight check of a public call (is_current)")
PUBLIC_FLOOR = (A32, "floor: the public call's NumPy work (checks, copies, step)")
B_FLOOR = ((B32, "floor: fast_steps, 19 steps + head (no checks)"),)
C2_OURS = (C2, "lstm_ref classify, 2 BLAS threads")  # what classify does (the split is a test)
C_OURS, C_FLOOR = (
    (C32, "lstm_ref classify (masked)"),
    ((C32, "floor: run_lstm over the batches (no batching, checks, head)"),),
)
TARGETS = [
    Target(
        "A f32: stepper ≥ 1.5× faster than onnxruntime run_with_iobinding",
        STEPPER,
        IOBINDING,
        1 / 1.5,
        (STEP_FLOOR,),
    ),
    Target(
        "A f32: stepper ≥ 5× faster than torch nn.LSTMCell",
        STEPPER,
        (A32, "torch nn.LSTMCell"),
        1 / 5,
        (STEP_FLOOR,),
    ),
    Target(
        "A f32: MATLAB-style public loop at least as fast as run_with_iobinding",
        (A32, "lstm_ref predict + net.state (public API)"),
        IOBINDING,
        1.0,
        (PUBLIC_FLOOR,),
    ),
    Target(
        "A: float64 stepper within 1.7× of float32",
        (A64, "lstm_ref stepper.step (fast path)"),
        STEPPER,
        1.7,
    ),
    Target(
        "B f32: predict within 1.15× of its NumPy floor (the steps and the head by hand)",
        (B32, "lstm_ref net.predict(x)"),
        B_FLOOR[0],
        1.15,
    ),
    Target(
        "B f32: predict ≥ 2.5× faster than torch",
        (B32, "lstm_ref net.predict(x)"),
        (B32, "torch LSTM + Linear + softmax"),
        1 / 2.5,
        B_FLOOR,
    ),
    Target(
        "B f32: predict within 1.5× of onnxruntime",
        (B32, "lstm_ref net.predict(x)"),
        (B32, "onnxruntime run (LSTM + Gemm + Softmax)"),
        1.5,
        B_FLOOR,
    ),
    Target(
        "C f32, 1 thread: classify at least as fast as onnxruntime",
        C_OURS,
        (C32, "onnxruntime run with sequence_lens"),
        1.0,
        C_FLOOR,
    ),
    Target(
        "C f32, 1 thread: classify ≥ 1.5× faster than torch packed",
        C_OURS,
        (C32, "torch packed + final h + Linear + softmax"),
        1 / 1.5,
        C_FLOOR,
    ),
    Target(
        "C f32, 2 cores: within 1.3× of onnxruntime with its default threads",
        C2_OURS,
        (C2, "onnxruntime sequence_lens, default threads"),
        1.3,
    ),
    Target(
        "C f32, 2 cores: never slower than lstm_ref on 1 thread",
        C2_OURS,
        C_OURS,
        1.0,
    ),
    Target(
        "D f32: a training epoch no slower than torch's",
        (D32, "*lstm_ref epoch (fast"),
        (D32, "*torch"),
        1.0,
    ),
    Target(
        "D f64: a training epoch no slower than torch's",
        (D64, "*lstm_ref epoch (fast"),
        (D64, "*torch"),
        1.0,
    ),
]
IB, IC = (f"I ONNX-imported JapaneseVowelsNet, {w}, float32" for w in "BC")
TARGETS += [
    Target(
        f"I f32, {w}: the ONNX-imported network within 1.15× of the native one",
        (group, "lstm_ref predict (onnx network)"),
        (group, "lstm_ref predict (native network)"),
        1.15,
    )
    for w, group in (("B", IB), ("C", IC))
]
TARGETS += [
    Target(
        f"T f32: a torch-made {kind} LSTM, all sequences, no slower than torch packed",
        (f"T torch-made {kind} LSTM, C, float32", "lstm_ref predict (masked)"),
        (f"T torch-made {kind} LSTM, C, float32", "torch packed + final h + Linear + softmax"),
        1.0,
    )
    for kind in ("2-layer", "bidirectional", "projection")
]
TARGETS.append(
    Target(
        "K f32: a Keras hard-sigmoid LSTM on the fast path, against the reference path",
        ("K Keras hard-sigmoid LSTM, C, float32", "lstm_ref predict (fast path)"),
        ("K Keras hard-sigmoid LSTM, C, float32", "lstm_ref predict (reference path)"),
        1.0,
    )
)
PEAK_MEMORY_MB = 50.0


def find(groups: dict[str, list[Entry]], group: str, label: str) -> Entry | None:
    """The entry ``label`` of ``group``; ``"*text"``: the fastest entry whose label starts
    with ``text``."""
    entries = groups.get(group, [])
    if label.startswith("*"):
        matches = [e for e in entries if e.label.startswith(label[1:])]
        return min(matches, key=lambda e: e.median) if matches else None
    return next((e for e in entries if e.label == label), None)


def target_rows(groups: dict[str, list[Entry]]) -> tuple[list[str], list[list[str]]]:
    header = ["target", "ours", "peer", "ratio ours/peer", "needed", "NumPy floor/peer", "met"]
    rows = []
    for t in TARGETS:
        ours, peer = find(groups, *t.ours), find(groups, *t.peer)
        if ours is None or peer is None:
            rows.append([t.what, "-", "-", "not measured", f"≤ {t.limit:.2f}", "-", "-"])
            continue
        ratio = ours.median / peer.median
        parts = [e for e in (find(groups, *f) for f in t.floor) if e is not None]
        floor = (
            sum(e.median for e in parts) / peer.median
            if t.floor and len(parts) == len(t.floor)
            else None
        )
        met = "yes" if ratio <= t.limit else "no"
        if met == "no" and floor is not None and floor > t.limit:
            met = "no: out of reach (floor)"
        scale, unit = unit_for(min(ours.median, peer.median))
        rows.append(
            [
                t.what,
                f"{number(ours.median / scale)} {unit}",
                f"{number(peer.median / scale)} {unit}",
                f"{ratio:.2f}",
                f"≤ {t.limit:.2f}",
                "-" if floor is None else f"{floor:.2f}",
                met,
            ]
        )
    memory = [e for entries in groups.values() for e in entries if "peak_rss_mb" in e.extra]
    for e in memory:
        mb = float(e.extra["peak_rss_mb"])
        rows.append(
            [
                "peak RSS of a NumPy-only inference process",
                f"{mb:.1f} MB",
                "-",
                "-",
                f"≤ {PEAK_MEMORY_MB:.0f} MB",
                "-",
                "yes" if mb <= PEAK_MEMORY_MB else "no",
            ]
        )
    return header, rows


def report(runs: list[dict[str, Any]], markdown: bool = False) -> str:
    out = []
    for data in runs:
        out += describe(data)
    if len(runs) > 1:
        out.append(f"median: the median over the {len(runs)} runs of each run's median")
    groups = collect(runs)
    peaks = gemm_peaks(groups)
    for name in sorted(groups):
        peak = peaks.get(name.rsplit(", ", 1)[-1]) or peaks.get("float32")
        header, rows = group_rows(groups[name], len(runs), peak)
        out += ["", f"#### {name}" if markdown else f"[{name}]", ""]
        out.append(format_table(header, rows, markdown))
    header, rows = target_rows(groups)
    out += ["", "#### Targets" if markdown else "[Targets]", ""]
    out.append(format_table(header, rows, markdown))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "json", type=Path, nargs="+", help="files written by --benchmark-json (one per run)"
    )
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    parser.add_argument(
        "--save",
        action="store_true",
        help="also write the Markdown report to benchmarks/results/<date of the first run>.md",
    )
    args = parser.parse_args(argv)
    runs = []
    for path in args.json:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not data.get("benchmarks"):
            print(f"{path}: no benchmarks (was the run made with --benchmark-enable?)")
            return 1
        runs.append(data)
    print(report(runs, args.markdown))
    if args.save:
        date = str(runs[0].get("datetime", "undated"))[:10]
        path = Path(__file__).parent / "results" / f"{date}.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"# Benchmarks, {date}\n\n" + report(runs, True) + "\n", encoding="utf-8")
        print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
