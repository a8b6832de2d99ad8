"""Summarise pytest-benchmark JSON files: per group, each entry's median and its ratios.

    python benchmarks/report.py bench.json [more.json ...] [--markdown]

For every group (e.g. "A step (batch 1), float32") the entries are listed fastest first with
their median time per call, the spread, the number of rounds, and two time ratios:
``×fastest`` (median / the fastest median in the group, so 1.00 is the fastest) and
``×lstm_ref`` (median / the median of lstm_ref's reference entry in that group, so below 1
is faster than lstm_ref). The reference entry is the one the benchmark marked with
``extra_info["reference"]``. Given several files (repeated runs), each entry's median is the
median of its per-run medians and the spread is their range: on a shared, noisy machine
that is steadier than any one run. Reads the files only; runs nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


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

    @property
    def median(self) -> float:
        return statistics.median(self.medians)


def collect(runs: list[dict[str, Any]]) -> dict[str, list[Entry]]:
    """The entries of every group, each benchmark's medians gathered over the runs."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for data in runs:
        for bench in data.get("benchmarks", []):
            group = bench.get("group") or "(no group)"
            found[group, bench.get("fullname") or bench.get("name", "?")].append(bench)
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
            )
        )
    return groups


def group_rows(entries: list[Entry], runs: int) -> tuple[list[str], list[list[str]]]:
    """The table header and rows of one group, fastest first."""
    entries = sorted(entries, key=lambda e: e.median)
    fastest = entries[0].median
    refs = [e for e in entries if e.reference] or [e for e in entries if "lstm_ref" in e.label]
    ref = refs[0].median if refs else None
    scale, unit = unit_for(fastest)
    spread = f"IQR ({unit})" if runs == 1 else f"runs min–max ({unit})"
    header = ["entry", f"median ({unit})", spread, "rounds", "×fastest", "×lstm_ref"]
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


def report(runs: list[dict[str, Any]], markdown: bool = False) -> str:
    out = []
    for data in runs:
        out += describe(data)
    if len(runs) > 1:
        out.append(f"median: the median over the {len(runs)} runs of each run's median")
    groups = collect(runs)
    for name in sorted(groups):
        header, rows = group_rows(groups[name], len(runs))
        out += ["", f"#### {name}" if markdown else f"[{name}]", ""]
        out.append(format_table(header, rows, markdown))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "json", type=Path, nargs="+", help="files written by --benchmark-json (one per run)"
    )
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args(argv)
    runs = []
    for path in args.json:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not data.get("benchmarks"):
            print(f"{path}: no benchmarks (was the run made with --benchmark-enable?)")
            return 1
        runs.append(data)
    print(report(runs, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
