"""``lstm-ref verify MODEL``: compare a port's outputs with lstm_ref's; say where and why
they diverge."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from ..errors import InputError
from .common import positive_float, positive_int, whole_number

HELP = "compare a ported model's outputs with the reference's: where and why they diverge"
DESCRIPTION = """\
Read MODEL (any format lstm-ref convert reads) as the reference, compute its outputs on the
inputs, and compare them with the observed outputs: those in --observed (an .npz with
'output', batch first, and/or arrays named by layers: no framework needed), or those of
--run-framework (MODEL itself, or the ported file given, run by torch, onnxruntime or
Keras). Prints per output the errors, the minimum tolerance that would pass and a
histogram; the first divergence with the reference's gate values there; and which known
porting bug (gate order, bias, forget_bias, hard-sigmoid, padding, reverse order,
transposed kernels) reproduces the observed outputs, or that float32 rounding alone
explains them, or that no known cause does. Exit status 0 within tolerance, 1 beyond it,
2 for a usage error. The JSON report's schema is in docs/VERIFY.md."""


def length_range(text: str) -> tuple[int, int]:
    """An argparse type: 'a-b' with 1 <= a <= b."""
    a, _, b = (whole_number(part) for part in text.partition("-"))
    if a is None or b is None or not 1 <= a <= b:
        raise argparse.ArgumentTypeError(f"expected 'a-b' with 1 <= a <= b; got {text!r}")
    return a, b


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..verify.diagnose import SEMANTICS

    p = sub.add_parser("verify", help=HELP, description=DESCRIPTION)
    p.add_argument("model", metavar="MODEL", help="the model as it should compute")
    p.add_argument("--inputs", type=Path, help=".npy (N, T, C) or .npz with x and lengths")
    p.add_argument("--seed", type=int, default=0, help="seed of generated inputs")
    p.add_argument("--batch", type=positive_int, default=4, help="generated sequences")
    p.add_argument(
        "--length-range", type=length_range, default=(3, 8), help="generated lengths, a-b"
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
        "--padding",
        choices=list(SEMANTICS),
        help="the padding semantics of the observed outputs (default: by the model's format)",
    )
    p.add_argument("--atol", type=positive_float, default=1e-5, help="absolute tolerance")
    p.add_argument("--rtol", type=positive_float, default=1e-5, help="relative tolerance")
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    p.add_argument(
        "--save-outputs",
        type=Path,
        help="write the reference's and the observed outputs in Polygraphy's RunResults JSON",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..formats.writes import write_atomically, write_text_atomically
    from ..interop import load_model
    from ..verify import generate_inputs, read_inputs, verify
    from ..verify.report import dumps, polygraphy_json, text

    for option, path in (("--json", args.json), ("--save-outputs", args.save_outputs)):
        if path is not None and path.suffix.lower() != ".json":
            raise InputError(f"{option} must name a .json file; got {path}")
    net = load_model(args.model)
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
    report = verify(
        args.model,
        inputs,
        observed=args.observed,
        run=run_it,
        semantics=args.padding,
        atol=args.atol,
        rtol=args.rtol,
        loaded=net,
    )
    print(text(report))
    if args.json is not None:
        write_text_atomically(args.json, dumps(report))
    if args.save_outputs is not None:
        write_text_atomically(args.save_outputs, polygraphy_json(report))
    return 0 if report.passed else 1
