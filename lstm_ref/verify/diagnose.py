"""The known porting bugs, each a way of computing the reference with the bug switched on,
and the search that finds which one reproduces the observed outputs.

A :class:`Setting` is how the reference is computed: the network, the padding semantics
(see :data:`SEMANTICS`), and whether a reverse direction's outputs come back in processing
order. A :class:`Cause` turns the setting into the one with its bug on (or None when it
cannot apply to this network). :func:`causes` lists them all: the 23 other gate-block
orders, the bias doubled or dropped (and one of two stored biases only), TF's forget_bias
at run time, the other hard-sigmoid (or none), another padding semantics, a reverse
direction's outputs in processing order, transposed or mis-reshaped kernels.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..layers import LSTM, BiLSTM, Layer
from ..lstm import GATE_NAMES, LSTMParams, gate_rows, reorder_gates
from ..network import Network
from ..padding import Padding, make_batches
from .compare import compare

Array = np.ndarray

ROUNDING_FACTOR = 10.0  # observed within this many times the reference's own float32 rounding
SEMANTICS = {  # the padding semantics by name: what each means
    "masked": "each sequence stops at its own length; per-step outputs are 0 past it, and "
    "the layers after the LSTM compute on those 0s (PyTorch packed sequences, ONNX "
    "sequence_lens: Padding.pytorch(), Padding.onnx())",
    "keras": "each sequence stops at its own length; per-step outputs repeat the last one "
    "past it, 0 from a Bidirectional (Keras Masking: Padding.keras())",
    "matlab": "padding on the right computed like data (MATLAB; an LSTM run on a padded "
    "batch without packing or sequence_lens)",
    "matlab-left": "padding on the left computed like data (MATLAB's "
    "SequencePaddingDirection 'left')",
}


@dataclass(frozen=True)
class Setting:
    """How the reference is computed."""

    net: Network
    semantics: str = "masked"  # a key of SEMANTICS
    reverse_in_processing_order: bool = False


@dataclass(frozen=True)
class Cause:
    """A known porting bug: its key, what it means, and the setting with it switched on."""

    key: str
    title: str
    apply: Callable[[Setting], Setting | None]


@dataclass(frozen=True)
class Finding:
    """A known cause tried: how far its outputs are from the observed ones."""

    key: str
    title: str
    max_abs: float
    reproduces: bool
    compared: int  # elements compared (padding computed as data leaves padded steps out)


def reference_outputs(
    setting: Setting, seqs: list[Array], name: str | None, T: int
) -> tuple[Array, Array]:
    """The reference's output ``name`` (a layer; None the last) on ``seqs``.

    Returns
    -------
    values : ndarray, (N, K) or (N, T, W)
        Per-step outputs in a batch of length ``T``: each sequence's steps from where it
        starts (0, or T − length when padded on the left), padded steps per the semantics
        (the framework's :class:`~lstm_ref.padding.Padding`: ``Padding.onnx()`` for
        "masked", ``Padding.keras()``).
    mask : ndarray of bool, (N,) or (N, T)
        What to compare: every sequence; every step but padded steps whose value the
        semantics leaves undefined (a framework computing over padding).
    """
    net, kind = setting.net, setting.semantics
    upto = len(net.layers) - 1 if name is None else [x.name for x in net.layers].index(name)
    if kind.startswith("matlab"):  # padded (on the left or right) to T, computed as data
        left = kind.endswith("left")
        padding = Padding.matlab(
            len(seqs), sequence_length=T, direction="left" if left else "right"
        )
        batch = make_batches([s.astype(net.dtype) for s in seqs], padding)[0]
        y, _ = net.forward(batch, None, upto)
        if y.ndim == 2:
            return y.astype(np.float64), np.ones(len(y), bool)
        t = np.arange(T)[None, :]
        start, stop = batch.start[:, None], (batch.start + batch.lengths)[:, None]
        return y.astype(np.float64), (t >= start) & (t < stop)  # (N, T, W), (N, T)
    padding = Padding.keras(len(seqs)) if kind == "keras" else Padding.onnx(len(seqs))
    x = np.zeros((len(seqs), T, seqs[0].shape[1]), net.dtype)  # (N, T, C), right-padded
    for n, s in enumerate(seqs):
        x[n, : len(s)] = s
    y = np.asarray(net.predict(x, name, lengths=[len(s) for s in seqs], padding=padding))
    layer = net.layers[upto]
    cols = _reverse_columns(layer)
    if y.ndim == 3 and setting.reverse_in_processing_order and cols is not None:
        own = [_reverse_half(y[n, : len(s)], cols) for n, s in enumerate(seqs)]  # (T_n, W)
        y = padding.pad_outputs(own, T, layer)  # padded again
    return y.astype(np.float64), np.ones(y.shape[: y.ndim - 1], bool)  # (N,) or (N, T)


def _reverse_columns(layer: Layer) -> slice | None:
    """The output columns of ``layer``'s own reverse direction (None: it has none)."""
    if isinstance(layer, LSTM) and layer.direction == "reverse":
        return slice(None)
    if isinstance(layer, BiLSTM) and layer.merge_mode == "concat":
        return slice(layer.fwd.state_widths[0], None)
    return None


def _reverse_half(y: Array, cols: slice) -> Array:
    """One sequence's outputs ``y`` (T_n, W) with the reverse direction's columns ``cols``
    in processing order (reversed in time)."""
    out = y.copy()
    out[:, cols] = y[::-1, cols]
    return out


# ---------------------------------------------------------------- changing the network
def map_lstms(net: Network, change: Callable[[LSTM], LSTM | None]) -> Network | None:
    """``net`` with ``change`` applied to every LSTM direction; None when it applies to none."""
    changed = False

    def one(lstm: LSTM) -> LSTM:
        nonlocal changed
        new = change(lstm)
        changed |= new is not None
        return lstm if new is None else new

    layers: list[Layer] = []
    for layer in net.layers:
        if isinstance(layer, BiLSTM):
            layer = dataclasses.replace(layer, fwd=one(layer.fwd), bwd=one(layer.bwd))
        elif isinstance(layer, LSTM):
            layer = one(layer)
        layers.append(layer)
    return Network(layers, net.class_names or None) if changed else None


def _params(
    change: Callable[[LSTMParams, int], LSTMParams | None],
) -> Callable[[LSTM], LSTM | None]:
    """An LSTM change from a change of its (W, R, b) given H (None: not applicable)."""

    def apply(lstm: LSTM) -> LSTM | None:
        new = change(lstm.params, lstm.hidden_size)
        return None if new is None else dataclasses.replace(lstm, params=new)

    return apply


def _on_net(change: Callable[[LSTM], LSTM | None]) -> Callable[[Setting], Setting | None]:
    def apply(s: Setting) -> Setting | None:
        net = map_lstms(s.net, change)
        return None if net is None else dataclasses.replace(s, net=net)

    return apply


KNOWN_ORDERS = {  # the blocks as the port reads them, in lstm_ref's gate names
    "iofg": "ONNX's i,o,f,c blocks read as i,f,g,o (CrispASR#106), or the export to ONNX "
    "reordered with the import's permutation",
    "igof": "i,f,g,o blocks written where ONNX expects i,o,f,c, or ONNX's blocks reordered "
    "with the export's permutation (the other direction of the 3-cycle)",
    "igfo": "TF1 BasicLSTMCell's i,j,f,o (Haiku's i,g,f,o) read as i,f,g,o",
    "ifog": "MIOpen's i,f,o,c read as i,f,g,o",
}


def _gate_order(order: str) -> Cause:
    """The port's gate block k holds the reference's gate ``order[k]``."""

    def change(p: LSTMParams, H: int) -> LSTMParams:
        W, R, b = (reorder_gates(a, order, inverse=True) for a in p)
        return LSTMParams(W, R, b)

    named = KNOWN_ORDERS.get(order)
    title = f"gate blocks in the order {','.join(order)}" + (f": {named}" if named else "")
    return Cause(f"gate-order:{order}", title, _on_net(_params(change)))


def _bias(factor: float, key: str, title: str) -> Cause:
    return Cause(key, title, _on_net(_params(lambda p, H: LSTMParams(p.W, p.R, factor * p.b))))


def _forget_bias(delta: float) -> Cause:
    def change(p: LSTMParams, H: int) -> LSTMParams:
        b = p.b.copy()
        b[gate_rows("f", H)] += delta
        return LSTMParams(p.W, p.R, b)

    sign = "added at run time" if delta > 0 else "subtracted (stored in b and added again)"
    return Cause(f"forget-bias:{delta:+g}", f"TF's forget_bias=1 {sign}", _on_net(_params(change)))


OTHER_GATE_ACTIVATIONS = {
    "sigmoid": ("hard-sigmoid", "hard-sigmoid-keras3"),
    "hard-sigmoid": ("hard-sigmoid-keras3", "sigmoid"),
    "hard-sigmoid-keras3": ("hard-sigmoid", "sigmoid"),
}
ACTIVATION_TITLES = {
    "hard-sigmoid": "hard_sigmoid 0.2x + 0.5 (Keras <= 2.15, ONNX, MATLAB)",
    "hard-sigmoid-keras3": "hard_sigmoid x/6 + 0.5 (Keras 3)",
    "sigmoid": "sigmoid (Keras >= 2.3's default)",
}


def _gate_activation(name: str) -> Cause:
    def change(lstm: LSTM) -> LSTM | None:
        if name not in OTHER_GATE_ACTIVATIONS.get(lstm.gate_activation, ()):
            return None
        return dataclasses.replace(lstm, gate_activation=name)

    return Cause(
        f"gate-activation:{name}", f"gates computed with {ACTIVATION_TITLES[name]}", _on_net(change)
    )


def _transposed_blocks(which: str) -> Cause:
    """Each square gate block of W or R transposed (a kernel stored in × out read as out × in)."""

    def change(p: LSTMParams, H: int) -> LSTMParams | None:
        a = p.W if which == "W" else p.R
        if a.shape[1] != H:
            return None
        blocks = np.concatenate([a[gate_rows(g, H)].T for g in GATE_NAMES])
        return p._replace(**{which: blocks})

    what = "input" if which == "W" else "recurrent"
    return Cause(
        f"transposed:{which}",
        f"each gate block of the {what} kernel transposed",
        _on_net(_params(change)),
    )


def _reshaped_kernels() -> Cause:
    """Keras's kernels (C, 4H) and (H, 4H) reshaped to (4H, C) and (4H, H) instead of
    transposed."""

    def change(p: LSTMParams, H: int) -> LSTMParams:
        return LSTMParams(p.W.T.reshape(p.W.shape), p.R.T.reshape(p.R.shape), p.b)

    return Cause(
        "reshaped-kernels",
        "kernels reshaped instead of transposed (Keras's (C, 4H) read as (4H, C))",
        _on_net(_params(change)),
    )


def _semantics(kind: str) -> Cause:
    def apply(s: Setting) -> Setting | None:
        return None if s.semantics == kind else dataclasses.replace(s, semantics=kind)

    return Cause(f"padding:{kind}", f"padding semantics {kind!r}: {SEMANTICS[kind]}", apply)


def _reverse_order() -> Cause:
    def apply(s: Setting) -> Setting | None:
        has_reverse = any(
            isinstance(x, BiLSTM) or (isinstance(x, LSTM) and x.direction == "reverse")
            for x in s.net.layers
        )
        return dataclasses.replace(s, reverse_in_processing_order=True) if has_reverse else None

    return Cause(
        "reverse-output-order",
        "the reverse direction's outputs in processing order, not time order (Keras "
        "go_backwards vs ONNX/PyTorch)",
        apply,
    )


def causes(extra: list[Cause] | None = None) -> list[Cause]:
    """Every known cause, in the order they are tried (``extra``: model-specific ones)."""
    others = ("".join(p) for p in itertools.permutations(GATE_NAMES))
    orders = [*KNOWN_ORDERS, *(o for o in others if o not in KNOWN_ORDERS and o != "ifgo")]
    return [
        *(_gate_order(o) for o in orders),
        _bias(
            2.0, "bias:doubled", "the bias counted twice (2b, e.g. b written to both b_ih and b_hh)"
        ),
        _bias(0.0, "bias:dropped", "the bias dropped"),
        *(extra or []),
        _forget_bias(1.0),
        _forget_bias(-1.0),
        *(_gate_activation(name) for name in ACTIVATION_TITLES),
        *(_semantics(kind) for kind in SEMANTICS),
        _reverse_order(),
        _transposed_blocks("R"),
        _transposed_blocks("W"),
        _reshaped_kernels(),
    ]


def stored_bias_causes(path: Path) -> list[Cause]:
    """For a file that stores two biases — PyTorch's b_ih and b_hh, ONNX's Wb ‖ Rb — the
    port used only one of them, or one of them in both places (none when the other is 0)."""
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        names, rebuild = ("bias_ih", "bias_hh"), _torch_biases(path)
    elif suffix == ".onnx":
        names, rebuild = ("Wb", "Rb"), _onnx_biases(path)
    else:
        return []
    found = []
    for keep in (0, 1):
        kept, other = names[keep], names[1 - keep]
        for twice, title in ((False, f"{other} dropped"), (True, f"{kept} in place of {other}")):
            net = rebuild(keep, twice)
            if net is None:
                continue

            def apply(s: Setting, net: Network = net) -> Setting:
                return dataclasses.replace(s, net=net)

            key = f"bias:{kept}-{'twice' if twice else 'only'}"
            found.append(Cause(key, f"of the two stored biases, {title}", apply))
    return found


Rebuild = Callable[[int, bool], Network | None]


def _torch_biases(path: Path) -> Rebuild:
    """The network of a PyTorch file with bias_ih (keep 0) or bias_hh (1) kept and the
    other zeroed, or replaced by the kept one (``twice``); None when the other is 0."""
    import torch

    from ..interop.torch import load_state_dict, network_from_arrays

    state = load_state_dict(path)
    arrays = {str(k): v.detach().to(torch.float64).numpy() for k, v in state.items()}
    names = ("bias_ih", "bias_hh")

    def rebuild(keep: int, twice: bool) -> Network | None:
        kept, other = names[keep], names[1 - keep]
        if not any(other in k and a.any() for k, a in arrays.items()):
            return None
        changed = {
            k: (arrays[k.replace(other, kept)] if twice else 0 * a) if other in k else a
            for k, a in arrays.items()
        }
        return network_from_arrays(changed, str(path))

    return rebuild


def _onnx_biases(path: Path) -> Rebuild:
    """The network of an ONNX file with every LSTM's B = Wb ‖ Rb (D, 8H) changed so: Wb
    (keep 0) or Rb (1) kept, the other zeroed or replaced by the kept one (``twice``)."""
    import onnx
    from onnx import numpy_helper

    from ..interop.onnx import from_onnx

    model = onnx.load(path)
    constants = {t.name for t in model.graph.initializer}
    biases = {
        node.input[3]
        for node in model.graph.node
        if node.op_type == "LSTM" and len(node.input) > 3 and node.input[3] in constants
    }

    def rebuild(keep: int, twice: bool) -> Network | None:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        changed = False
        for t in copy.graph.initializer:
            if t.name not in biases:
                continue
            B = numpy_helper.to_array(t)
            parts = np.split(B, 2, axis=-1)  # Wb, Rb: (D, 4H) each
            if not parts[1 - keep].any():
                continue
            parts[1 - keep] = parts[keep] if twice else 0 * parts[keep]
            t.CopyFrom(numpy_helper.from_array(np.concatenate(parts, axis=-1), t.name))
            changed = True
        return from_onnx(copy) if changed else None

    return rebuild


def diagnose(
    setting: Setting,
    seqs: list[Array],
    T: int,
    observed: Mapping[str, Array],
    names: Mapping[str, str | None],
    rounding: Mapping[str, float],
    atol: float,
    rtol: float,
    model_path: Path | None = None,
) -> list[Finding]:
    """Try every applicable known cause: the reference with it switched on against the
    observed outputs.

    A cause reproduces the outputs when every compared element passes ``atol`` (widened to
    :data:`ROUNDING_FACTOR` times the reference's own float32 rounding) or ``rtol``, and no
    other cause that does compares more elements (padding computed as data leaves padded
    steps undefined: it explains less).

    Parameters
    ----------
    setting : Setting
        How the reference is computed without any bug.
    seqs : list of ndarray, each (T_n, C)
        The inputs; ``T`` the padded length of per-step outputs.
    observed : mapping of str to ndarray, (N, K) or (N, T, W)
        The observed outputs by name; ``names`` maps each to its layer (None: the last).
    rounding : mapping of str to float
        Per output, the largest |reference in float32 − in float64|.
    atol, rtol : float
    model_path : Path, optional
        The model's file, for the causes its format stores (:func:`stored_bias_causes`).

    Returns
    -------
    list of Finding
        Those that reproduce the outputs first, then by the largest absolute error.
    """
    extra = [] if model_path is None else stored_bias_causes(model_path)
    findings = []
    for cause in causes(extra):
        changed = cause.apply(setting)
        if changed is None:
            continue
        worst, ok, compared = 0.0, True, 0
        for k, name in names.items():
            try:
                ref, mask = reference_outputs(changed, seqs, name, T)
            except InputError:  # the bug overflows this model (a non-finite output)
                worst, ok = float("inf"), False
                break
            c = compare(k, observed[k], ref, mask, max(atol, ROUNDING_FACTOR * rounding[k]), rtol)
            compared += c.compared
            ok &= c.failed == 0
            worst = max(worst, math.inf if math.isnan(c.max_abs) else c.max_abs)
        findings.append(Finding(cause.key, cause.title, worst, ok, compared))
    most = max((f.compared for f in findings if f.reproduces), default=0)
    return sorted(
        (replace(f, reproduces=f.reproduces and f.compared == most) for f in findings),
        key=lambda f: (not f.reproduces, f.max_abs),
    )
