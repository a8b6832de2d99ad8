"""``lstm-ref plot``: a figure for one sequence (or, for saturation, all of them)."""

from __future__ import annotations

import argparse
import textwrap
from typing import TYPE_CHECKING

from ..errors import counted
from ..network import Network
from ..parts import Part, recurrent_part
from .common import (
    Data,
    add_data_options,
    add_figure_options,
    add_layer_option,
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
(LSTMVis, Strobelt et al. 2018). --layer picks the recurrent layer, one direction of a
BiLSTM or one layer of an LSTMStack; the title names it and which units are which."""


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
    add_layer_option(p)
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
    part = recurrent_part(net, args.layer)
    units = parse_units(args.units, part.width)
    tag = f"observation{args.observation}"
    window = None if args.steps is None else parse_range(args.steps, len(x), "--steps")
    if args.kind == "sequence":
        fig = plots.plot_sequence(x, title=f"Observation {args.observation}")
    elif args.kind == "heatmap":
        fig = plots.plot_activation_heatmap(
            part.trace(net, x).h.T,
            units=units,
            time_window=window,
            title=_title("LSTM Activations", part),
        )
    elif args.kind == "gates":
        title = _title("LSTM gates and states", part)
        fig = plots.plot_gate_traces(
            part.trace(net, x), units=units, time_window=window, title=title
        )
    elif args.kind == "saturation":
        fig = plots.plot_gate_saturation(
            gate_saturation([part.trace(net, s) for s in data.sequences]),
            title=_title("Gate saturation", part),
        )
        tag = "all"
    else:
        selection = _unit_selection(args, net, data, part)
        if selection is None:
            return 0
        fig = selection
    if args.layer is not None and args.kind != "sequence":
        tag += "_" + part.name.replace("/", "-")
    args.out.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "svg") if args.svg else ("png",):
        path = args.out / f"{args.kind}_{tag}.{ext}"
        plots.save_figure(fig, path, dpi=args.dpi)
        print(f"wrote {path}")
    return 0


def _unit_selection(
    args: argparse.Namespace, net: Network, data: Data, part: Part
) -> Figure | None:
    """The units that stay active over --range, printed and drawn (None: none qualifies)."""
    from ..viz import plots
    from ..viz.analysis import matching_sequences, select_units

    x = data.observation(args.observation)
    h = part.trace(net, x).h
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
    traces = [part.trace(net, s).h for s in data.sequences]
    matches = matching_sequences(traces, chosen, args.threshold, stop - start)
    print(f"sequences where they stay active together for ≥ {stop - start} steps:")
    for n, a, b in matches[:10]:
        print(f"  observation {n + 1}: steps {a + 1}-{b}")
    if len(matches) > 10:
        print(f"  … and {len(matches) - 10} more")
    k = len(chosen)
    title = f"{counted(k, 'unit')} ≥ {args.threshold:g} at steps {start + 1}–{stop}"
    title = _title(title, part)
    return plots.plot_unit_selection(h, chosen, start, stop, args.threshold, title)


def _title(what: str, part: Part) -> str:
    """A figure's title: what it shows, then the part (wrapped to fit the narrowest figure)."""
    return f"{what}\n" + textwrap.fill(part.describe(), 60)
