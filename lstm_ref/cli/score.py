"""``lstm-ref score``: classify a folder of sequence files on a Dask cluster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_network_option, model_options, positive_int

HELP = "classify a folder of sequence files on a Dask cluster, one scores file each"
DESCRIPTION = """\
Classify every sequence file (shard) of a folder or glob on a Dask cluster and write one scores
file per shard to --out: <shard>.csv with a line per sequence (shard, sequence, label, every
class probability). Shards already scored are skipped, so a rerun does only what is left. Bad
shards are listed at the end; the others are scored, and the exit status is then 2. Needs the
dask extra: pip install 'lstm_ref[dask]'. See docs/SCALE.md."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help=HELP, description=DESCRIPTION)
    p.add_argument("shards", help="a folder of .npy/.npz/.csv/.ts files, or a glob ('d/*.npz')")
    add_network_option(p)
    p.add_argument("--out", type=Path, required=True, help="folder for the scores files")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786)")
    where.add_argument(
        "--workers",
        type=positive_int,
        default=2,
        help="worker processes of the local cluster, one thread each",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..scale import score_shards  # dask missing: main names the extra

    report = score_shards(
        args.shards,
        args.network,
        args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=sys.stdout.isatty(),
        model_options=model_options(args),
    )
    print(report.summary())
    print(f"scores in {args.out}")
    if report.bad:
        print(f"lstm-ref: error: {len(report.bad)} bad shard(s), listed above", file=sys.stderr)
        return 2
    return 0
