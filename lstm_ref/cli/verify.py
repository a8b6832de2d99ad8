"""``lstm-ref verify MODEL``: compare a port's outputs with lstm_ref's; say where and why
they diverge."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from ..errors import InputError
from .common import (
    add_model_options,
    model_options,
    non_negative_float,
    positive_float,
    positive_int,
    whole_number,
)

HELP = "compare a ported model's outputs with the reference's: where and why they diverge"
DESCRIPTION = """\
Read MODEL (any format lstm-ref convert reads) as the reference, compute its outputs on the
inputs from the initial state (--initial-state, else the model's own), and compare them with
the observed outputs: those in --observed (an .npz in the names and layouts of --layout:
lstm_ref's 'output', '<layer>', '<layer>/h'; torch's output, h_n, c_n, model; ONNX's Y, Y_h, Y_c;
Keras's output, h, c — no framework needed), or those of --run-framework (MODEL itself, or
the ported file given, run by torch, onnxruntime or Keras). Prints per output the errors,
the minimum tolerance that would pass and a histogram; the first divergence with the
reference's gate values there; and which known porting bug — or pair of bugs — reproduces
the observed outputs (gate order, biases, forget_bias, gate activation, initial state,
padding, reverse order, a bidirectional head, a softmax on one side only, the input's
layout, transposed kernels), or that rounding alone explains them, or that no known cause
does (for NaN outputs none is sought: where they are is said). Exit status 0 within
tolerance (or only the rounding of the precision --precision declares apart), 1 beyond it,
2 for a usage error or a file its framework cannot run as given.
The JSON report's schema is in docs/VERIFY.md."""


def length_range(text: str) -> tuple[int, int]:
    """An argparse type: 'a-b' with 1 <= a <= b."""
    a, _, b = (whole_number(part) for part in text.partition("-"))
    if a is None or b is None or not 1 <= a <= b:
        raise argparse.ArgumentTypeError(f"expected 'a-b' with 1 <= a <= b; got {text!r}")
    return a, b


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..verify.layouts import LAYOUTS
    from ..verify.reference import SEMANTICS
    from ..verify.rounding import PRECISIONS

    p = sub.add_parser("verify", help=HELP, description=DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="the model as it should compute")
    p.add_argument(
        "--inputs", type=Path, help=".npy (N, T, C) or (T, C), or .npz with x and lengths"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of generated inputs (default: 0)")
    p.add_argument("--batch", type=positive_int, default=4, help="generated sequences")
    p.add_argument(
        "--length-range",
        type=length_range,
        default=(3, 8),
        help="generated lengths, a-b (default: 3-8)",
    )
    p.add_argument(
        "--scale", type=positive_float, default=1.0, help="standard deviation of generated inputs"
    )
    p.add_argument("--save-inputs", type=Path, help="write the inputs used to this .npz")
    seen = p.add_mutually_exclusive_group(required=True)
    seen.add_argument("--observed", type=Path, help=".npz of the observed outputs")
    seen.add_argument(
        "--run-framework",
        nargs="?",
        const=True,
        metavar="PORT",
        help="run MODEL (or the file PORT) in its framework for the observed outputs",
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="lstm_ref",
        help="whose names and layouts --observed and --initial-state use (default: lstm_ref)",
    )
    p.add_argument(
        "--initial-state",
        type=Path,
        help=".npz of initial states in --layout's names (torch: h_0, c_0; onnx: initial_h, "
        "initial_c; keras: h, c; lstm_ref: <layer>/h, <layer>/c)",
    )
    p.add_argument(
        "--padding",
        choices=list(SEMANTICS),
        help="the padding semantics of the reference (default: MODEL's own, as its "
        "framework computes it; a port that pads otherwise is diagnosed)",
    )
    p.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help="the precision the port computes in (default: float16 for float16 "
        "outputs, else float32): its rounding is not a bug, and declared, passes",
    )
    p.add_argument("--atol", type=non_negative_float, default=1e-5, help="absolute tolerance")
    p.add_argument("--rtol", type=non_negative_float, default=1e-5, help="relative tolerance")
    p.add_argument(
        "--no-pairs",
        action="store_true",
        help="try single causes only, not pairs of causes (two bugs at once)",
    )
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    p.add_argument(
        "--save-outputs",
        type=Path,
        help="write the reference's and the observed outputs in Polygraphy's RunResults JSON",
    )
    add_model_options(p)  # for MODEL and PORT, each taking those of its format
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..formats.safe_numpy import read_npz
    from ..formats.writes import write_atomically, write_text_atomically
    from ..verify import check_options, generate_inputs, read_inputs, verify
    from ..verify.frameworks import options_for, read_reference
    from ..verify.report import dumps, polygraphy_json, text

    for option, path in (("--json", args.json), ("--save-outputs", args.save_outputs)):
        if path is not None and path.suffix.lower() != ".json":
            raise InputError(f"{option} must name a .json file; got {path}")
    options = model_options(args)
    class_names = options.pop("class_names")
    model = Path(args.model)
    check_options(model, args.run_framework if args.run_framework is not None else False, options)
    net = read_reference(model, options_for(model, options), class_names)
    if args.inputs is not None:
        inputs = read_inputs(args.inputs, net.input_size)
    else:
        inputs = generate_inputs(
            net.input_size, args.seed, args.batch, args.length_range, args.scale
        )
    if args.save_inputs is not None:
        buffer = io.BytesIO()
        np.savez(buffer, x=inputs.x, lengths=inputs.lengths)
        write_atomically(args.save_inputs, lambda f: f.write(buffer.getvalue()))
    run_it = args.run_framework if args.run_framework is not None else False
    start = None
    if args.initial_state is not None:
        if args.initial_state.suffix.lower() != ".npz":
            raise InputError(f"--initial-state must name an .npz file; got {args.initial_state}")
        start = read_npz(args.initial_state)
    report = verify(
        args.model,
        inputs,
        observed=args.observed,
        run=run_it,
        layout=args.layout,
        initial_state=start,
        semantics=args.padding,
        precision=args.precision,
        atol=args.atol,
        rtol=args.rtol,
        pairs=not args.no_pairs,
        options=options,
        loaded=net,
    )
    print(text(report))
    if args.json is not None:
        write_text_atomically(args.json, dumps(report))
    if args.save_outputs is not None:
        write_text_atomically(args.save_outputs, polygraphy_json(report))
    return 0 if report.passed else 1
