"""``lstm-ref layers``: a network's layer table, as MATLAB shows ``net.Layers``."""

from __future__ import annotations

import argparse

from .common import add_network_option, load_net

HELP = "print a network's layer table in MATLAB's net.Layers form"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layers", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_network_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(load_net(args).summary())
    return 0
