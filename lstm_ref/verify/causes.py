"""The known porting bugs, each a way of computing the reference with the bug switched on.

A :class:`Cause` turns a :class:`~.reference.Setting` into the one with its bug on, or None
when the bug cannot apply to this network, state or input. :func:`causes` lists them in the
order they are tried; :func:`stored_bias_causes` adds those of a file that stores two
biases. Each cause's family (its key before ``:``) holds bugs that exclude each other (two
gate orders, two padding semantics): the pair search never combines two of one family.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..activations import own_name
from ..layers import (
    LSTM,
    BiLSTM,
    ClassificationOutput,
    FullyConnected,
    Layer,
    LSTMStack,
    Softmax,
    directions,
)
from ..lstm import GATE_NAMES, LSTMParams, LSTMState, gate_rows, reorder_gates
from ..network import Network
from .reference import SEMANTICS, Setting, Wanted, reference_all

Array = np.ndarray
Apply = Callable[[Setting, list[Array], int], Setting | None]  # (setting, sequences, T)


@dataclass(frozen=True)
class Cause:
    """A known porting bug: its key, what it means, and the setting with it switched on."""

    key: str
    title: str
    apply: Apply
    per_layer: bool = False  # a bug of the weights: it may be in one LSTM layer alone

    @property
    def family(self) -> str:
        return self.key.partition(":")[0]

    def only_in(self, layer: str) -> Cause:
        """This bug of the weights in the LSTM layer ``layer`` alone (the others as they
        should be); its key ``<key>@<layer>``."""

        def apply(s: Setting, seqs: list[Array], T: int) -> Setting | None:
            one = dataclasses.replace(s, changeable=frozenset([layer]))
            changed = self.apply(one, seqs, T)
            return None if changed is None else dataclasses.replace(changed, changeable=None)

        return Cause(f"{self.key}@{layer}", f"{self.title}, in layer {layer!r} only", apply)


# ---------------------------------------------------------------- changing the network
def map_lstms(
    net: Network, change: Callable[[LSTM], LSTM | None], only: frozenset[str] | None = None
) -> Network | None:
    """``net`` with ``change`` applied to every LSTM direction (of the layers named ``only``,
    None: of every layer; every layer of a stack); None when it applies to none."""
    changed = False

    def one(lstm: LSTM) -> LSTM:
        nonlocal changed
        new = change(lstm)
        changed |= new is not None
        return lstm if new is None else new

    def recurrent(layer: LSTM | BiLSTM) -> LSTM | BiLSTM:
        if isinstance(layer, BiLSTM):
            return dataclasses.replace(layer, fwd=one(layer.fwd), bwd=one(layer.bwd))
        return one(layer)

    layers: list[Layer] = []
    for layer in net.layers:
        if only is not None and layer.name not in only:
            pass
        elif isinstance(layer, LSTMStack):
            layer = dataclasses.replace(layer, layers=[recurrent(x) for x in layer.layers])
        elif isinstance(layer, LSTM | BiLSTM):
            layer = recurrent(layer)
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


def _on_net(change: Callable[[LSTM], LSTM | None]) -> Apply:
    def apply(s: Setting, seqs: list[Array], T: int) -> Setting | None:
        net = map_lstms(s.net, change, s.changeable)
        return None if net is None else dataclasses.replace(s, net=net)

    return apply


def _on_setting(change: Callable[[Setting], Setting | None]) -> Apply:
    return lambda s, seqs, T: change(s)


# ---------------------------------------------------------------- the weights
KNOWN_ORDERS = {  # the blocks as the port reads them, in lstm_ref's gate names
    "iofg": "ONNX's i,o,f,c blocks read as i,f,g,o, or the export to ONNX reordered with "
    "the import's permutation",
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
    return Cause(f"gate-order:{order}", title, _on_net(_params(change)), per_layer=True)


def _bias(factor: float, key: str, title: str) -> Cause:
    change = _params(lambda p, H: LSTMParams(p.W, p.R, factor * p.b))
    return Cause(key, title, _on_net(change), per_layer=True)


def _forget_bias(delta: float) -> Cause:
    def change(p: LSTMParams, H: int) -> LSTMParams:
        b = p.b.copy()
        b[gate_rows("f", H)] += delta
        return LSTMParams(p.W, p.R, b)

    how = (
        "added at run time (TF's BasicLSTMCell adds forget_bias=1 to the forget gate's "
        "pre-activation; the stored bias lacks it)"
        if delta > 0
        else "stored in the bias and not added at run time (a TF forget_bias=1 folded into "
        "the weights, then the reference added it again)"
    )
    return Cause(
        f"forget-bias:{delta:+g}", f"forget_bias=1 {how}", _on_net(_params(change)), per_layer=True
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
        per_layer=True,
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
        per_layer=True,
    )


# ---------------------------------------------------------------- the gate activation
GATE_ACTIVATION_TITLES = {
    "sigmoid": "sigmoid 1 / (1 + e^-x) (every framework's default; Keras >= 2.3's "
    "recurrent_activation)",
    "hard-sigmoid": "hard_sigmoid clip(0.2x + 0.5) (Keras <= 2.15 and tf.keras, ONNX's "
    "HardSigmoid defaults, MATLAB)",
    "hard-sigmoid-keras3": "hard_sigmoid clip(x/6 + 0.5) (Keras 3 and tf.keras >= 2.16)",
}


def _gate_activation(name: str) -> Cause:
    def change(lstm: LSTM) -> LSTM | None:
        own = own_name(lstm.gate_activation)  # ONNX's spellings as lstm_ref's names
        if own not in GATE_ACTIVATION_TITLES or own == name:
            return None
        return dataclasses.replace(lstm, gate_activation=name)

    return Cause(
        f"gate-activation:{name}",
        f"gates computed with {GATE_ACTIVATION_TITLES[name]}",
        _on_net(change),
        per_layer=True,
    )


# ---------------------------------------------------------------- the initial state
def _state_dropped(s: Setting) -> Setting | None:
    if not any(a.any() for state in s.state.values() for a in state):
        return None
    zeros = {n: LSTMState(*(np.zeros_like(a) for a in state)) for n, state in s.state.items()}
    return dataclasses.replace(s, state=zeros)


def _state_swapped(s: Setting) -> Setting | None:
    swapped = {n: LSTMState(state.c, state.h) for n, state in s.state.items()}
    if any(a.shape != b.shape for a, b in swapped.values()) or all(
        np.array_equal(a, b) for a, b in swapped.values()
    ):
        return None
    return dataclasses.replace(s, state=swapped)


def _state_carried(s: Setting, seqs: list[Array], T: int) -> Setting | None:
    """The state after running this very batch once from the initial state."""
    layers = [x.name for x in s.net.stateful_layers]
    wanted = {f"{n}/{p}": Wanted(n, p) for n in layers for p in ("h", "c")}  # type: ignore[arg-type]
    final = reference_all(s, seqs, wanted, T)
    carried = {n: LSTMState(final[f"{n}/h"].values, final[f"{n}/c"].values) for n in layers}
    return dataclasses.replace(s, state=carried)


# ---------------------------------------------------------------- the data's path
def _semantics(kind: str) -> Cause:
    def change(s: Setting) -> Setting | None:
        return None if s.semantics == kind else dataclasses.replace(s, semantics=kind)

    return Cause(
        f"padding:{kind}", f"padding semantics {kind!r}: {SEMANTICS[kind]}", _on_setting(change)
    )


def _reverse_order(s: Setting) -> Setting | None:
    has_reverse = any(
        one.direction == "reverse"
        for x in s.net.layers
        if isinstance(x, LSTM | BiLSTM | LSTMStack)
        for one in directions(x)
    )
    return dataclasses.replace(s, reverse_in_processing_order=True) if has_reverse else None


def _last_step_head(s: Setting) -> Setting | None:
    layers = [
        dataclasses.replace(x, last="step")
        if isinstance(x, BiLSTM) and x.output_mode == "last" and x.last == "state"
        else x  # in any layer: its h, c and steps may match while its head reads wrong
        for x in s.net.layers
    ]
    if all(a is b for a, b in zip(layers, s.net.layers, strict=True)):
        return None
    return dataclasses.replace(s, net=Network(layers, s.net.class_names or None))


def _softmax_dropped(s: Setting) -> Setting | None:
    """The network without its final softmax: the port's outputs are the logits."""
    layers = s.net.layers
    last = len(layers) - 1 - isinstance(layers[-1], ClassificationOutput)
    if not isinstance(layers[last], Softmax):
        return None
    return dataclasses.replace(
        s, net=Network(layers[:last] + layers[last + 1 :], s.net.class_names or None)
    )


def _softmax_added(s: Setting) -> Setting | None:
    """The network with a softmax after its final fully connected layer."""
    layers = s.net.layers
    if not isinstance(layers[-1], FullyConnected):
        return None
    taken = {x.name for x in layers}
    name = "softmax" if "softmax" not in taken else f"{layers[-1].name}_softmax"
    return dataclasses.replace(s, net=Network([*layers, Softmax(name)], s.net.class_names or None))


def _reshaped_input(s: Setting, seqs: list[Array], T: int) -> Setting | None:
    if len(seqs) < 2:  # one sequence reads the same either way
        return None
    return dataclasses.replace(s, input_reading="reshaped")


def causes(extra: list[Cause] | None = None) -> list[Cause]:
    """Every known cause, in the order they are tried (``extra``: model-specific ones, which
    rebuild the network from its file and so go first)."""
    others = ("".join(p) for p in itertools.permutations(GATE_NAMES))
    canonical = "".join(GATE_NAMES)
    orders = [*KNOWN_ORDERS, *(o for o in others if o not in KNOWN_ORDERS and o != canonical)]
    return [
        *(extra or []),
        *(_gate_order(o) for o in orders),
        _bias(
            2.0,
            "bias:doubled",
            "the bias counted twice (2b: one bias written to both of two bias slots, e.g. "
            "b_ih and b_hh)",
        ),
        _bias(0.0, "bias:dropped", "the bias dropped"),
        _forget_bias(1.0),
        _forget_bias(-1.0),
        *(_gate_activation(name) for name in GATE_ACTIVATION_TITLES),
        Cause(
            "state:zeros",
            "the initial state dropped: the port started from zeros (a framework's default "
            "when no state is passed)",
            _on_setting(_state_dropped),
        ),
        Cause("state:h-c-swapped", "the initial h and c swapped", _on_setting(_state_swapped)),
        Cause(
            "state:carried",
            "the state carried over from running this batch before (a stateful layer, or a "
            "loop passing the hidden state on, not reset between batches)",
            _state_carried,
        ),
        *(_semantics(kind) for kind in SEMANTICS),
        Cause(
            "reverse-output-order",
            "the reverse direction's outputs in processing order, not time order (Keras "
            "go_backwards returns them so; ONNX and PyTorch in time order)",
            _on_setting(_reverse_order),
        ),
        Cause(
            "bilstm-head:last-step",
            "a bidirectional layer's head read the output at the last step (output[:, -1]), "
            "where the reverse direction has seen one step only, instead of the final states "
            "(h_n)",
            _on_setting(_last_step_head),
        ),
        Cause(
            "input:reshaped",
            "the batch-first input (N, T, C) read as time first (T, N, C) — reshaped "
            "instead of transposed, or, when N = T, given as it is to a time-major LSTM — so "
            "each sequence read other sequences' steps",
            _reshaped_input,
        ),
        Cause(
            "head:softmax",
            "the port returns the logits and the reference applies softmax to them: they "
            "agree before the softmax (a PyTorch state_dict stores no softmax; lstm_ref's "
            "import of its classifier appends one, which a model returning logits lacks)",
            _on_setting(_softmax_dropped),
        ),
        Cause(
            "head:no-softmax",
            "the port applies softmax to the logits the reference returns: they agree "
            "before the softmax",
            _on_setting(_softmax_added),
        ),
        _transposed_blocks("R"),
        _transposed_blocks("W"),
        _reshaped_kernels(),
    ]


# ---------------------------------------------------------------- a file's two biases
Rebuild = Callable[[int, str], Network | None]
USES = {  # how the port used the two stored biases (kept: the one it used)
    "only": "{kept} only ({other} dropped)",
    "for-both": "{kept} in place of {other} (2·{kept})",
    "added-twice": "{kept} counted twice (2·{kept} + {other})",
}


def stored_bias_causes(path: Path) -> list[Cause]:
    """For a file that stores two biases — PyTorch's b_ih and b_hh, ONNX's Wb ‖ Rb — the
    port used only one of them, one of them in both places, or one of them twice (none
    when the other is 0)."""
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
        for use, title in USES.items():
            net = rebuild(keep, use)
            if net is None:
                continue

            text = title.format(kept=kept, other=other)
            key, title = f"bias:{kept}-{use}", f"of the two stored biases, {text}"
            found.append(Cause(key, title, _rebuilt(net), per_layer=True))
    return found


def _rebuilt(net: Network) -> Apply:
    """The setting with ``net``'s LSTM layers in place of the changeable ones (every one
    when ``changeable`` is None), in the reference's dtype."""

    def apply(s: Setting, seqs: list[Array], T: int) -> Setting:
        rebuilt = net.astype(s.net.dtype)
        names = s.changeable if s.changeable is not None else {x.name for x in s.net.layers}
        layers = [
            rebuilt.layer(x.name) if x.name in names and x.initial_state is not None else x
            for x in s.net.layers
        ]
        return dataclasses.replace(s, net=Network(layers, s.net.class_names or None))

    return apply


def _combined(kept: Array, other: Array, use: str) -> Array:
    """The ``other`` bias as the port's use of the two makes it (see :data:`USES`)."""
    return {"only": 0 * other, "for-both": kept, "added-twice": kept + other}[use]


def _torch_biases(path: Path) -> Rebuild:
    """The network of a PyTorch file with bias_ih (keep 0) or bias_hh (1) kept and the
    other changed by ``use``; None when the other is 0."""
    import torch

    from ..interop.torch import load_state_dict, network_from_arrays

    state = load_state_dict(path)
    arrays = {str(k): v.detach().to(torch.float64).numpy() for k, v in state.items()}
    names = ("bias_ih", "bias_hh")

    def rebuild(keep: int, use: str) -> Network | None:
        kept, other = names[keep], names[1 - keep]
        if not any(other in k and a.any() for k, a in arrays.items()):
            return None
        changed = {
            k: _combined(arrays[k.replace(other, kept)], a, use) if other in k else a
            for k, a in arrays.items()
        }
        return network_from_arrays(changed, str(path))

    return rebuild


def _onnx_biases(path: Path) -> Rebuild:
    """The network of an ONNX file with every LSTM's B = Wb ‖ Rb (D, 8H) changed so: Wb
    (keep 0) or Rb (1) kept, the other changed by ``use``."""
    import onnx
    from onnx import numpy_helper

    from ..interop.onnx import from_onnx
    from .frameworks import zero_state_inputs

    model = onnx.load(path)
    zeros = zero_state_inputs(path)  # the graph's state inputs, read once for every rebuild
    constants = {t.name for t in model.graph.initializer}
    biases = {
        node.input[3]
        for node in model.graph.node
        if node.op_type == "LSTM" and len(node.input) > 3 and node.input[3] in constants
    }

    def rebuild(keep: int, use: str) -> Network | None:
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
            parts[1 - keep] = _combined(parts[keep], parts[1 - keep], use)
            t.CopyFrom(numpy_helper.from_array(np.concatenate(parts, axis=-1), t.name))
            changed = True
        return from_onnx(copy, inputs=zeros) if changed else None

    return rebuild
