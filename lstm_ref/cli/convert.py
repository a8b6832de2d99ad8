"""``lstm-ref convert IN OUT``: a model from one framework's file to another's."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_model_options, add_overwrite_option, model_options, refuse_to_replace

HELP = "convert a model between PyTorch, ONNX, Keras, MATLAB and lstm_ref files"
DESCRIPTION = """\
Read IN with its framework's importer and write OUT with the exporter its suffix names:
.pt/.pth (a PyTorch state_dict), .onnx, .keras/.h5 (Keras), .mat (MATLAB learnables),
.npz (lstm_ref's native format). IN may also name a bundled network (JapaneseVowelsNet).
Every array comes back exactly when OUT is read again (ONNX stores float32). What each
format can hold is in docs/INTEROP.md; what it cannot is refused with the layer's name. An
existing OUT is replaced only with --overwrite."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help=HELP, description=DESCRIPTION)
    p.add_argument("input", metavar="IN", help="model file (or bundled network name)")
    p.add_argument("output", metavar="OUT", type=Path, help="file to write")
    add_model_options(p)
    add_overwrite_option(p, "OUT if it exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..interop import load_model, save_model

    refuse_to_replace([args.output], args.overwrite, "another OUT")
    net = load_model(args.input, **model_options(args))
    save_model(net, args.output)
    print(f"wrote {args.output}")
    print(net.summary())
    return 0
