"""What the commands share: the network and data options, their loading, and parsing."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..errors import InputError
from ..network import Network

Array = np.ndarray


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def whole_number(text: str) -> int | None:
    """``text`` as an int if it is ASCII digits only, else None (``str.isdigit`` also
    takes '²', which ``int`` refuses)."""
    return int(text) if text.isascii() and text.isdigit() else None


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    return _finite_float(text, "> 0", lambda value: value > 0)


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    return _finite_float(text, ">= 0", lambda value: value >= 0)


def _finite_float(text: str, bound: str, within: Callable[[float], bool]) -> float:
    """``text`` as a finite float for which ``within`` holds; else an error naming ``bound``."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and within(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number {bound}; got {text!r}")
    return value


def add_network_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--network",
        default="JapaneseVowelsNet",
        help="bundled network name or model file: .npz, .pt/.pth/.safetensors, .onnx, "
        ".keras/.h5, .mat",
    )
    add_model_options(p)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """What a model file may need besides its path: class names, a PyTorch module and
    what its head computes, an ONNX graph's output."""
    p.add_argument(
        "--classes",
        type=class_names,
        default=None,
        help="the class names, comma-separated in output order, for a model file that has none",
    )
    p.add_argument(
        "--prefix",
        default=None,
        help="a PyTorch checkpoint holding more than one LSTM: the module to read ('decoder.rnn')",
    )
    p.add_argument(
        "--head",
        default=None,
        help="a PyTorch checkpoint: the nn.Linear module that reads the LSTM ('decoder.fc')",
    )
    p.add_argument(
        "--no-softmax",
        dest="softmax",
        action="store_false",
        default=None,
        help="a PyTorch checkpoint whose model returns the head's logits: add no softmax",
    )
    p.add_argument(
        "--last",
        choices=["state", "step"],
        default=None,
        help="a PyTorch checkpoint: the head reads h_n (state, the default) or output[:, -1] "
        "(step)",
    )
    p.add_argument(
        "--graph-output",
        metavar="NAME",
        default=None,
        help="an ONNX file with several graph outputs: the one to read ('Y_h')",
    )


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of :func:`~lstm_ref.interop.load_model` that --classes, --prefix,
    --head, --no-softmax, --last and --graph-output give."""
    given = {
        "prefix": args.prefix,
        "head": args.head,
        "softmax": args.softmax,
        "last": args.last,
        "output": args.graph_output,
    }
    return {"class_names": args.classes, **{k: v for k, v in given.items() if v is not None}}


def class_names(text: str) -> list[str]:
    """An argparse type: 'a,b,c' -> ['a', 'b', 'c']."""
    names = [name.strip() for name in text.split(",")]
    if len(names) < 2 or not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected at least two distinct comma-separated names; got {text!r}"
        )
    return names


def add_data_options(p: argparse.ArgumentParser, observation: bool = True) -> None:
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="sequences (.ts, .npy, .npz, .csv) to use instead of the Japanese Vowels test set",
    )
    add_layout_option(p, "--data arrays")
    if observation:
        p.add_argument("--observation", type=int, default=1, help="sequence, 1-based")


_LAYER_HELP = (
    "the recurrent layer to look at (default: the first): its name, a BiLSTM's direction "
    "'NAME/forward' or 'NAME/backward' (time runs backwards), or an LSTMStack's layer "
    "'NAME/INNER' (and 'NAME/INNER/forward', …)"
)


def add_layer_option(p: argparse.ArgumentParser) -> None:
    """--layer: a recurrent part of the network (:mod:`lstm_ref.parts`)."""
    p.add_argument("--layer", default=None, metavar="NAME", help=_LAYER_HELP)


def add_layout_option(p: argparse.ArgumentParser, arrays: str) -> None:
    """--layout: the axes of ``arrays`` (as :func:`~lstm_ref.sequences.as_sequence_list`
    takes them)."""
    p.add_argument(
        "--layout",
        choices=["TC", "CT"],
        default="TC",
        help=f"axes of {arrays}: TC time × features; CT MATLAB's features × time",
    )


def add_figure_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("lstm_ref_output"), help="folder for figures")
    p.add_argument("--svg", action="store_true", help="also write SVG files")
    p.add_argument("--dpi", type=positive_int, default=100, help="resolution of PNG files")


def load_net(args: argparse.Namespace) -> Network:
    """The network --network names (any file :func:`~lstm_ref.interop.load_model` reads),
    with the model options."""
    from ..interop import load_model

    return load_model(args.network, **model_options(args))


@dataclass(frozen=True)
class Data:
    """Sequences as (T, C) arrays checked for ``net``, with their labels when known."""

    sequences: list[Array]
    labels: list[str] | None

    def observation(self, k: int) -> Array:
        """Sequence ``k`` (1-based, as --observation counts)."""
        if not 1 <= k <= len(self.sequences):
            raise InputError(f"--observation must be 1..{len(self.sequences)}; got {k}")
        return self.sequences[k - 1]

    def label(self, k: int) -> str | None:
        return None if self.labels is None else self.labels[k - 1]


def load_data(args: argparse.Namespace, net: Network) -> Data:
    """--data (or the Japanese Vowels test set), checked against ``net``'s input."""
    from ..sequences import as_sequence_list

    if args.data is None:
        from ..datasets import load_japanese_vowels

        x, y = load_japanese_vowels("test")
        seqs, _ = as_sequence_list(list(x), net.input_size, dtype=net.dtype)
        return Data(seqs, [str(v) for v in y])
    from ..formats import read_sequence_file

    file = read_sequence_file(args.data)
    seqs, _ = as_sequence_list(file.sequences, net.input_size, layout=args.layout, dtype=net.dtype)
    return Data(seqs, file.labels)


def parse_units(text: str | None, hidden: int) -> list[int]:
    """'1-10' or '3,7,12' (1-based) -> 0-based indices, checked against ``hidden``; None:
    the first ten (or all, if fewer)."""
    if text is None:
        return list(range(min(10, hidden)))
    units: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        first, last = whole_number(a.strip()), whole_number((b or a).strip())
        if first is None or last is None:
            raise InputError(f"--units: expected '1-10' or '3,7,12'; got {text!r}")
        if not 1 <= first <= last <= hidden:  # checked before the range is built
            raise InputError(f"--units must lie in 1..{hidden}; got {text!r}")
        units.extend(range(first, last + 1))
    return [u - 1 for u in units]


def parse_range(text: str | None, T: int, option: str = "--range") -> tuple[int, int]:
    """'a-b' (1-based, inclusive) -> 0-based [start, stop); default the second half."""
    if text is None:
        return T // 2, T
    a, _, b = (whole_number(part) for part in text.partition("-"))
    if a is None or b is None or not 1 <= a <= b <= T:
        raise InputError(f"{option} must be 'a-b' with 1 <= a <= b <= {T}; got {text!r}")
    return a - 1, b


def add_overwrite_option(p: argparse.ArgumentParser, what: str) -> None:
    """--overwrite: replace ``what`` where the command would otherwise refuse."""
    p.add_argument("--overwrite", action="store_true", help=f"replace {what} instead of refusing")


def refuse_to_replace(paths: list[Path], overwrite: bool, instead: str) -> None:
    """Before the work: a file the command would write that exists already is replaced only
    with --overwrite; the error names each such file and ``instead``, the other way out."""
    taken = [str(path) for path in paths if path.exists()]
    if taken and not overwrite:
        raise InputError(f"will not replace {' and '.join(taken)}: pass --overwrite, or {instead}")
