"""``lstm-ref plot``: a figure for one sequence (or, for saturation, all of them)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..network import Network
from .common import (
    Data,
    add_data_options,
    add_figure_options,
    add_network_option,
    load_data,
    load_net,
    parse_range,
    parse_units,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HELP = "draw a figure for one sequence: input, heatmap, gates, saturation or unit selection"
DESCRIPTION = """\
Draw one figure. sequence: the input, one line per feature; heatmap: the hidden units over
time (MATLAB's heatmap); gates: i, f, g, o, the cell state c and h; saturation: how often
each unit's gates are nearly closed or open over all the sequences (Karpathy et al. 2015);
units: the units that stay active over --range, and where else they are active together
(LSTMVis, Strobelt et al. 2018)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help=HELP, description=DESCRIPTION)
    p.add_argument(
        "kind",
        choices=["sequence", "heatmap", "gates", "saturation", "units"],
        help="which figure (each described above)",
    )
    add_network_option(p)
    add_data_options(p)
    add_figure_options(p)
    p.add_argument(
        "--units", default=None, help="hidden units, 1-based: '1-10' or '3,7,12' (default: 1-10)"
    )
    p.add_argument(
        "--range",
        default=None,
        help="units: time steps 'a-b' (1-based) to stay active over (default: the second half)",
    )
    p.add_argument("--threshold", type=float, default=0.3, help="units: activation threshold")
    p.add_argument(
        "--steps",
        default=None,
        help="heatmap, gates: the time steps 'a-b' (1-based) to show (default: all)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..viz import plots
    from ..viz.analysis import gate_saturation

    net = load_net(args)
    data = load_data(args, net)
    x = data.observation(args.observation)
    layer = net.recurrent_layer().name
    units = parse_units(args.units, net.width(layer))
    tag = f"observation{args.observation}"
    window = None if args.steps is None else parse_range(args.steps, len(x), "--steps")
    if args.kind == "sequence":
        fig = plots.plot_sequence(x, title=f"Observation {args.observation}")
    elif args.kind == "heatmap":
        fig = plots.plot_activation_heatmap(
            net.trace(x, layer).h.T, units=units, time_window=window
        )
    elif args.kind == "gates":
        fig = plots.plot_gate_traces(net.trace(x, layer), units=units, time_window=window)
    elif args.kind == "saturation":
        fig = plots.plot_gate_saturation(
            gate_saturation([net.trace(s, layer) for s in data.sequences])
        )
        tag = "all"
    else:
        selection = _unit_selection(args, net, data, layer)
        if selection is None:
            return 0
        fig = selection
    args.out.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "svg") if args.svg else ("png",):
        path = args.out / f"{args.kind}_{tag}.{ext}"
        plots.save_figure(fig, path, dpi=args.dpi)
        print(f"wrote {path}")
    return 0


def _unit_selection(
    args: argparse.Namespace, net: Network, data: Data, layer: str
) -> Figure | None:
    """The units that stay active over --range, printed and drawn (None: none qualifies)."""
    from ..viz import plots
    from ..viz.analysis import matching_sequences, select_units

    x = data.observation(args.observation)
    h = net.trace(x, layer).h
    start, stop = parse_range(args.range, len(x))
    chosen = select_units(h, start, stop, args.threshold)
    steps = f"steps {start + 1}-{stop}"
    if not len(chosen):
        print(
            f"no unit stays ≥ {args.threshold} over {steps} of observation {args.observation}: "
            "nothing drawn; try a shorter --range or a lower --threshold"
        )
        return None
    print(f"units active (≥ {args.threshold}) over {steps}: {[int(u) + 1 for u in chosen]}")
    traces = [net.trace(s, layer).h for s in data.sequences]
    matches = matching_sequences(traces, chosen, args.threshold, stop - start)
    print(f"sequences where they stay active together for ≥ {stop - start} steps:")
    for n, a, b in matches[:10]:
        print(f"  observation {n + 1}: steps {a + 1}-{b}")
    if len(matches) > 10:
        print(f"  … and {len(matches) - 10} more")
    return plots.plot_unit_selection(h, chosen, start, stop, args.threshold)
