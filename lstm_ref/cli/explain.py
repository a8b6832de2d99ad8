"""``lstm-ref explain``: one LSTM time step of one unit, with the real numbers."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .common import add_data_options, add_layer_option, add_network_option, load_data, load_net

HELP = "print one LSTM time step of one unit with the real numbers"
DESCRIPTION = """\
Print one LSTM time step of one hidden unit with every number: the input, the state it starts
from, each gate's row of W, R and b, the pre-activations and gate values, the new cell and
hidden state — each beside its line of lstm_step. With --backward, the same for
backpropagation through time, checked against a central difference. --layer names the LSTM:
a layer, one direction of a BiLSTM ('NAME/forward', 'NAME/backward': time runs backwards) or
one layer of an LSTMStack."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help=HELP, description=DESCRIPTION)
    add_network_option(p)
    add_data_options(p)
    add_layer_option(p)
    p.add_argument("--unit", type=int, default=1, help="hidden unit, 1-based")
    p.add_argument("--step", type=int, default=1, help="time step, 1-based")
    p.add_argument(
        "--backward", action="store_true", help="also explain the gradients of that step (BPTT)"
    )
    p.add_argument(
        "--label", default=None, help="the true class for --backward (default: the file's label)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..explain import explain_backward, explain_step

    net = load_net(args)
    data = load_data(args, net)
    x = data.observation(args.observation)
    print(explain_step(net, x, step=args.step, unit=args.unit, layer=args.layer))
    if args.backward:
        label = args.label or data.label(args.observation)
        if label is None:
            raise InputError("--backward needs the true class: a labelled .ts file or --label")
        print(explain_backward(net, x, label, step=args.step, unit=args.unit, layer=args.layer))
    return 0
