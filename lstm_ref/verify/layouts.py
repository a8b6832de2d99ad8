"""Observed outputs and initial states in each framework's own names and layouts, brought to
lstm_ref's.

The weights' layouts are each importer's (:mod:`lstm_ref.interop.torch`,
:mod:`~lstm_ref.interop.onnx`, :mod:`~lstm_ref.interop.keras`); these are the layouts of
the tensors a framework *returns* and *takes* at run time, which only verify reads, so they
live here, once, beside each other. N sequences, T steps (the padded length), L the LSTM
layers (lstm_ref's LSTM/BiLSTM layers, in order; an LSTMStack's, layer by layer: its state is
theirs, so torch's ``h_n`` and ``h_0`` map onto it), D = 2 for a bidirectional layer else 1,
H its h width (a projection's P), H_c its c width:

=====================  ================================  ====================================
layout, name           shape                             what it is
=====================  ================================  ====================================
lstm_ref ``output``    (N, K) or (N, T, W)               the network's output
lstm_ref ``<layer>``   (N, K) or (N, T, W)               that layer's output
``<layer>/steps``      (N, T, D·H)                       an LSTM layer's output at every step
``<layer>/h``, ``/c``  (N, D·H), (N, D·H_c)              its final state, forward ‖ reverse
                                                         (a stack's: every layer's, in order)
torch ``output``       (T, N, D·H); batch first          the last LSTM layer's output at every
                       (N, T, D·H)                       step (``nn.LSTM``'s ``output``)
torch ``h_n``, ``c_n`` (L·D, N, H), (L·D, N, H_c)        every layer's final state, row l·D + d
torch ``model``        (N, K)                            the model's output (e.g. its head's)
onnx ``Y``             (T, D, N, H)                      the last LSTM node's output
onnx ``Y_h``, ``Y_c``  (D, N, H)                         its final state
onnx ``output``        (N, K) or (N, T, W)               the graph's output
keras ``output``       (N, K) or (N, T, W)               ``model.predict``'s output
keras ``h``, ``c``     (N, H)                            the last LSTM's returned state
                                                         (``return_state=True``)
keras ``h_forward``,   (N, H) each                       a Bidirectional's returned states;
``c_forward``,                                           given as pairs (h_forward with
``h_backward``,                                          h_backward)
``c_backward``
=====================  ================================  ====================================

Initial states, one row per sequence (or one (H,) row for all in lstm_ref's form):

- lstm_ref: ``{layer: (h, c)}`` as ``Network.state`` — or, flat as an ``.npz`` holds them,
  ``<layer>/h`` and ``<layer>/c``; (N, D·H) or (D·H,), forward ‖ reverse.
- torch: ``h_0`` (L·D, N, H) and ``c_0`` (L·D, N, H_c), ``nn.LSTM``'s ``(h_0, c_0)`` —
  ``batch_first`` does not apply to them.
- onnx: ``initial_h``, ``initial_c`` (D, N, H) of the one LSTM node.
- keras: ``h``, ``c`` (N, H) — ``initial_state=[h, c]`` of the first LSTM layer; a
  Bidirectional's ``h_forward``, ``c_forward``, ``h_backward``, ``c_backward``.

Names of lstm_ref's form are accepted in every layout beside the framework's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._checks import check_real_array, check_shape
from ..errors import InputError, InputTypeError
from ..layers import Layer, LSTMStack, directions
from ..lstm import LSTMState
from ..network import Network, State
from .reference import Wanted

Array = np.ndarray
FRAMEWORK_NAMES = {  # each layout's own names of observed outputs (lstm_ref's: in every one)
    "lstm_ref": (),
    "torch": ("output", "h_n", "c_n", "model"),
    "torch-batch-first": ("output", "h_n", "c_n", "model"),
    "onnx": ("Y", "Y_h", "Y_c"),
    "keras": ("h", "c", "h_forward", "c_forward", "h_backward", "c_backward"),
}
LAYOUTS = tuple(FRAMEWORK_NAMES)
STATE_NAMES = {  # each layout's own names of initial states (lstm_ref's: in every one)
    "lstm_ref": (),
    "torch": ("h_0", "c_0"),
    "torch-batch-first": ("h_0", "c_0"),
    "onnx": ("initial_h", "initial_c"),
    "keras": ("h", "c", "h_forward", "c_forward", "h_backward", "c_backward"),
}


@dataclass(frozen=True)
class Observed:
    """One observed output in lstm_ref's layout: ``values`` batch first, the reference's
    output it is (``wanted``), and where it came from (``label``: the framework's name)."""

    label: str
    wanted: Wanted
    values: Array


def _widths(layer: Layer) -> tuple[int, int, int]:
    """D and the h and c widths of one direction of an LSTM layer."""
    one = directions(layer)  # type: ignore[arg-type]
    h, c = one[0].state_widths
    return len(one), h, c


def observed_outputs(
    net: Network, layout: str, arrays: Mapping[str, Array], N: int, T: int
) -> list[Observed]:
    """The observed ``arrays`` (by the framework's names, see the module table) as
    lstm_ref's outputs, each shape checked and each array a real float array."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")
    lstms = net.stateful_layers
    found: list[Observed] = []
    for name, given in arrays.items():
        a = _float_array(given, f"observed output {name!r}")
        if name not in FRAMEWORK_NAMES[layout]:
            found.append(Observed(name, _native(net, name, layout), a))
        elif name == "model":
            found.append(Observed(name, Wanted(None), a))
        elif not lstms:
            raise InputError(f"observed output {name!r}: the model has no LSTM layer")
        elif layout.startswith("torch"):
            found += _torch(net, name, a, N, T, layout == "torch-batch-first")
        elif isinstance(lstms[-1], LSTMStack):  # ONNX's node, Keras's layer: one layer each
            raise InputError(
                f"observed output {name!r}: layer {lstms[-1].name!r} is a stack of LSTM layers, "
                f"which {layout}'s names of one layer's outputs do not describe; name them "
                f"'{lstms[-1].name}/steps', '/h', '/c' (lstm_ref's layout)"
            )
        elif layout == "onnx":
            found.append(_onnx(lstms[-1], name, a, N, T))
        elif not name.endswith("_backward"):  # Keras; a backward half goes with its forward
            found.append(_keras(lstms[-1], name, a, arrays, N))
    return found


def _keras(layer: Layer, name: str, a: Array, arrays: Mapping[str, Array], N: int) -> Observed:
    """Keras's returned h or c (N, H), or a Bidirectional's forward and backward halves."""
    part: Literal["h", "c"] = "h" if name[0] == "h" else "c"
    D, h, c = _widths(layer)
    width = h if part == "h" else c
    if name in ("h", "c"):
        check_shape(a, f"observed {name!r}", (N, D * width), "(N, H)")
        return Observed(name, Wanted(layer.name, part), a)
    other = name.replace("forward", "backward")
    if other not in arrays:
        raise InputError(f"observed output {name!r} needs {other!r} beside it")
    halves = [a, _float_array(arrays[other], f"observed output {other!r}")]
    for half, label in zip(halves, (name, other), strict=True):
        check_shape(half, f"observed {label!r}", (N, width), "(N, H)")
    return Observed(f"{name} ‖ {other}", Wanted(layer.name, part), np.concatenate(halves, 1))


def _torch(net: Network, name: str, a: Array, N: int, T: int, batch_first: bool) -> list[Observed]:
    lstms = net.stateful_layers
    if name == "model":
        return [Observed(name, Wanted(None), a)]
    if name == "output":
        top = lstms[-1]
        D, h, _ = _widths(top.layers[-1] if isinstance(top, LSTMStack) else top)
        shape, meaning = (
            ((N, T, D * h), "(N, T, D·H)") if batch_first else ((T, N, D * h), "(T, N, D·H)")
        )
        check_shape(a, f"observed {name!r}", shape, meaning)
        steps = a if batch_first else a.transpose(1, 0, 2)
        return [Observed(name, Wanted(lstms[-1].name, "steps"), steps)]
    part = name[0]  # h_n → h, c_n → c
    rows = [_widths(x) for x in lstms]
    L_D = sum(D for D, _, _ in rows)
    widths = {h if part == "h" else c for _, h, c in rows}
    if len(widths) != 1:
        raise InputError(f"observed {name!r}: the LSTM layers' widths differ ({sorted(widths)})")
    check_shape(
        a,
        f"observed {name!r}",
        (L_D, N, widths.pop()),
        f"(L·D, N, {'H' if part == 'h' else 'H_c'})",
    )
    found, first = [], 0
    for layer, (D, _, _) in zip(lstms, rows, strict=True):
        label = name if len(lstms) == 1 else f"{name}[{first}:{first + D}]"
        both = np.concatenate(list(a[first : first + D]), axis=1)  # (N, D·H), forward first
        found.append(Observed(label, Wanted(layer.name, part), both))  # type: ignore[arg-type]
        first += D
    return found


def _onnx(layer: Layer, name: str, a: Array, N: int, T: int) -> Observed:
    D, h, c = _widths(layer)
    if name == "Y":
        check_shape(a, f"observed {name!r}", (T, D, N, h), "(T, D, N, H)")
        return Observed(name, Wanted(layer.name, "steps"), onnx_steps(a))
    width = h if name == "Y_h" else c
    check_shape(a, f"observed {name!r}", (D, N, width), "(D, N, H)")
    part = "h" if name == "Y_h" else "c"
    return Observed(name, Wanted(layer.name, part), a.transpose(1, 0, 2).reshape(N, D * width))  # type: ignore[arg-type]


def onnx_steps(Y: Array) -> Array:
    """ONNX's ``Y`` (T, D, N, H) as lstm_ref's steps (N, T, D·H), forward ‖ reverse."""
    T, D, N, H = Y.shape
    return Y.transpose(2, 0, 1, 3).reshape(N, T, D * H)


def _native(net: Network, name: str, layout: str) -> Wanted:
    """lstm_ref's own name: ``output``, a layer's, or ``<layer>/steps|h|c``."""
    if name == "output":
        return Wanted(None)
    layer, _, what = name.rpartition("/") if "/" in name else (name, "", "output")
    names = [x.name for x in net.layers]
    stateful = [x.name for x in net.stateful_layers]
    own = what == "output" and layer in names
    if own or (layer in stateful and what in ("steps", "h", "c")):
        return Wanted(layer, what)  # type: ignore[arg-type]
    theirs = f"{layout}'s {', '.join(FRAMEWORK_NAMES[layout])}, or " if layout != "lstm_ref" else ""
    raise InputError(
        f"observed output {name!r} is none of {theirs}lstm_ref's: 'output', a layer of the "
        f"model ({names}), '<LSTM layer>/steps', '/h' or '/c' ({stateful})"
    )


def initial_states(
    net: Network,
    layout: str,
    given: Mapping[str, object],
    N: int,
    graph_inputs: Mapping[str, int] | None = None,
) -> State:
    """The initial states ``given`` in ``layout``'s names (see the module docstring) as
    ``{layer: LSTMState}`` rows (N, ·) float64; layers not named start from their own.
    ``graph_inputs``: an ONNX graph's own state inputs, each read as torch's ``h_0`` (0)
    or ``c_0`` (1), (L·D, N, H) — as ``torch.onnx.export`` takes them — in any layout."""
    aliases = {name: ("h_0", "c_0")[k] for name, k in (graph_inputs or {}).items()}
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; expected one of {list(LAYOUTS)}")
    lstms = net.stateful_layers
    if not lstms and given:
        raise InputError("an initial state was given, but the model has no LSTM layer")
    states: dict[str, list[Array | None]] = {x.name: [None, None] for x in lstms}
    expected_rows = [_widths(x) for x in lstms]
    for name, value in given.items():
        if name in states:  # lstm_ref: {layer: (h, c)}
            if not isinstance(value, tuple | list | LSTMState) or len(value) != 2:
                raise InputError(f"initial state of {name!r}: expected a pair (h, c)")
            states[name] = [_float_array(v, f"initial state of {name!r}") for v in value]
            continue
        a = _float_array(value, f"initial state {name!r}")
        layer, _, part = name.rpartition("/")
        if layer in states and part in ("h", "c"):
            states[layer]["hc".index(part)] = a
        elif (layout.startswith("torch") and name in ("h_0", "c_0")) or name in aliases:
            k = "hc".index(aliases.get(name, name)[0])
            L_D = sum(D for D, _, _ in expected_rows)
            width = {(h, c)[k] for _, h, c in expected_rows}
            if len(width) != 1:
                raise InputError(f"initial {name!r}: the LSTM layers' widths differ")
            check_shape(a, f"observed {name!r}", (L_D, N, width.pop()), "(L·D, N, H)")
            first = 0
            for x, (D, _, _) in zip(lstms, expected_rows, strict=True):
                states[x.name][k] = np.concatenate(list(a[first : first + D]), axis=1)
                first += D
        elif layout == "onnx" and name in ("initial_h", "initial_c"):
            if len(lstms) != 1:
                raise InputError(
                    f"initial state {name!r}: the model has {len(lstms)} LSTM layers; name "
                    "each layer's state as '<layer>/h' and '<layer>/c'"
                )
            D, h, c = expected_rows[0]
            k = "hc".index(name[-1])
            check_shape(a, f"observed {name!r}", (D, N, (h, c)[k]), "(D, N, H)")
            states[lstms[0].name][k] = a.transpose(1, 0, 2).reshape(N, -1)
        elif layout == "keras" and name in ("h", "c", "h_forward", "c_forward"):
            k = "hc".index(name[0])
            parts = [a] if "_" not in name else [a, _keras_backward(given, name)]
            states[lstms[0].name][k] = np.concatenate(parts, axis=-1)
        elif layout == "keras" and name in ("h_backward", "c_backward"):
            continue  # taken with its forward half
        else:
            own = [*STATE_NAMES[layout], *aliases]
            raise InputError(
                f"unknown initial state {name!r} in layout {layout!r}; expected "
                + (f"{', '.join(own)}, or " if own else "")
                + f"lstm_ref's '<layer>/h', '<layer>/c' (layers: {list(states)})"
            )
    start = net.state_rows(N)
    return {
        x.name: LSTMState(
            *(
                start[x.name][k].astype(np.float64)
                if got is None
                else _rows(got, N, start[x.name][k].shape[1], f"initial {'hc'[k]} of {x.name!r}")
                for k, got in enumerate(states[x.name])
            )
        )
        for x in lstms
    }


def _keras_backward(given: Mapping[str, object], name: str) -> Array:
    other = name.replace("forward", "backward")
    if other not in given:
        raise InputError(f"initial state {name!r} needs {other!r} beside it")
    return _float_array(given[other], f"initial state {other!r}")


def _rows(a: Array, N: int, width: int, what: str) -> Array:
    """``a`` (width,) or (N, width) as (N, width)."""
    if a.shape not in ((width,), (N, width)):
        raise InputError(f"{what} must have shape ({width},) or ({N}, {width}); got {a.shape}")
    return np.broadcast_to(check_real_array(a, what, np.float64), (N, width)).copy()


def _float_array(value: object, what: str) -> Array:
    """``value`` as a real float array, any float dtype (float16 too); non-finite values
    are kept (an observed NaN or infinity is reported, not refused)."""
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise InputTypeError(f"{what} must hold real floating-point values; got dtype {a.dtype}")
    return a


def torch_state(net: Network, state: State) -> tuple[Array, Array]:
    """``state`` (lstm_ref's rows) as torch's ``(h_0, c_0)``, (L·D, N, ·) each."""
    parts: list[list[Array]] = [[], []]
    for x in net.stateful_layers:
        D, h, c = _widths(x)
        for k, width in enumerate((h, c)):
            whole = state[x.name][k]
            parts[k] += [whole[:, d * width : (d + 1) * width] for d in range(D)]
    h_0, c_0 = (np.stack(p) for p in parts)
    return h_0, c_0
