"""``lstm-ref walkthrough``: the seed example, on the bundled network and data or yours."""

from __future__ import annotations

import argparse

from .common import (
    add_data_options,
    add_figure_options,
    add_layer_option,
    add_network_option,
    load_data,
    load_net,
)

HELP = "reproduce MATLAB's 'Visualize Activations of LSTM Network'"
DESCRIPTION = """\
Reproduce MATLAB's example "Visualize Activations of LSTM Network": show the layer table, plot
one sequence, step through it one time step at a time carrying the state, draw the first hidden
units as a heatmap, and print the prediction, the accuracy (three ways: masked, MATLAB's recipe,
MATLAB's defaults) and the check that the step-wise activations equal one full call. Any network
with an LSTM layer and any data (--network, --data) can be walked through, at any of its
recurrent layers (--layer). A reverse direction (a BiLSTM's second half) reads each sequence
from its end: fed one step at a time it cannot equal the full call, and the check says so."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("walkthrough", help=HELP, description=DESCRIPTION)
    add_network_option(p)
    add_data_options(p)
    add_figure_options(p)
    add_layer_option(p)
    p.add_argument("--units", type=int, default=10, help="hidden units in the heatmap")
    p.add_argument(
        "--literal-matlab-loop",
        action="store_true",
        help="also run the published page's loop, which feeds X(:,1)' at every step (a bug; "
        "see docs/USAGE.md), draw it and compare it with the correct loop",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..walkthrough import run_walkthrough

    net = load_net(args)
    data = load_data(args, net)
    run_walkthrough(
        args.out,
        network=net,
        name=args.network,
        layer=args.layer,
        sequences=data.sequences,
        labels=data.labels,
        observation=args.observation,
        units=args.units,
        literal=args.literal_matlab_loop,
        svg=args.svg,
        dpi=args.dpi,
    )
    return 0
