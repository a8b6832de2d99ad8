"""Keras: a model's graph as lstm_ref's one chain of layers (the Keras importer,
:mod:`lstm_ref.interop.keras`, builds the layers).

A Sequential model is its layer list. A Functional model's layers must form one chain from
one data input: each layer called once, on one tensor, which Keras 3 saves as the node
``{"args": [tensor], "kwargs": {...}}`` with ``tensor["config"]["keras_history"] = [layer,
node, index]`` (Keras 2: ``[[layer, node, index, kwargs]]``); the model's inputs and
outputs are ``input_layers``/``output_layers``, lists of [layer, node, index]. The mask ops
a Masking layer adds to a Functional model (``NotEqual``, ``Any``, read through
``kwargs["mask"]``) are left out. ``return_state=True`` makes an LSTM's outputs [output, h,
c] (a Bidirectional's [output, h_f, c_f, h_b, c_b]), indices 0 … 4:

- h read by the next layer (or the model's output) → ``output_mode="last"``: h after each
  sequence's last step, which is exactly the last output;
- h and c among the model's other outputs → ``Network.predict(..., return_state=True)``'s
  state of that layer, by its name (a Bidirectional's h = [h_f ‖ h_b], c = [c_f ‖ c_b]);
- c, or a Bidirectional's state, read by a layer → refused (lstm_ref's layers pass on h,
  a BiLSTM its merged output); so are a branching graph, several data outputs and a shared
  layer.

An ``initial_state`` read straight from model inputs (Keras 3: ``kwargs["initial_state"]``,
[h, c], a Bidirectional's [h_f, c_f, h_b, c_b]) is the layer's state rows:
``net.state = {layer: LSTMState(h, c)}`` (:func:`lstm_ref.interop.keras.read_keras_inputs`
names them); one computed by another layer (an encoder's states) is refused. Keras 3 passes
a layer called with an ``initial_state`` no mask unless ``mask=`` is given too: such a layer
computes masked steps as data (:attr:`Chain.unmasked`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

MASK_OPS = ("NotEqual", "Any")  # a Functional model's Masking computes its mask with these
RECURRENT = ("LSTM", "CuDNNLSTM")
RECURRENT_LAYERS = (*RECURRENT, "Bidirectional")
PICK_HINT = "; or import one LSTM alone with from_keras(path, layer=<name>)"


@dataclass(frozen=True)
class Chain:
    """A model's layers as one chain.

    Attributes
    ----------
    specs : list of dict
        The layers' configs in data-flow order (a Functional model's mask ops left out).
    reads : dict of str to int
        By layer name, which of its outputs flows on — 0 the output, 1 and 2 h and c of
        ``return_state`` (a Bidirectional's 1 … 4 h_f, c_f, h_b, c_b) — where it is not 0.
    state_inputs : dict of str to list of str
        By layer name, the model inputs its ``initial_state`` reads, in Keras's order.
    unmasked : set of str
        The layers Keras 3 calls without the mask (an ``initial_state`` and no ``mask=``).
    """

    specs: list[dict[str, Any]]
    reads: dict[str, int] = field(default_factory=dict)
    state_inputs: dict[str, list[str]] = field(default_factory=dict)
    unmasked: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Node:
    """What one call of a layer reads: (layer, output index) of its data argument, of its
    ``initial_state``, and whether it was handed a mask."""

    data: list[tuple[str, int]]
    states: list[tuple[str, int]]
    has_mask: bool


def layer_name(spec: dict[str, Any]) -> str:
    return str(spec.get("name") or spec["config"].get("name", ""))


def model_layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every layer of the model in its saved order, the mask ops left out."""
    return [s for s in config["config"]["layers"] if s["class_name"] not in MASK_OPS]


def chain(config: dict[str, Any], where: str) -> Chain:
    """The model's layers as one chain from its data input to its output (the module
    docstring)."""
    model = config["config"]
    specs = model_layers(config)
    if config["class_name"] == "Sequential":  # each layer reads its predecessor's output
        return Chain(specs)
    by_name = {layer_name(s): s for s in specs}
    inputs = [str(n) for n, _, _ in _tensor_list(model.get("input_layers"))]
    fed: dict[str, list[tuple[str, int]]] = {n: [] for n in by_name}  # name -> (reader, index)
    state_inputs, unmasked = {}, set()
    for spec in specs:
        name = layer_name(spec)
        what = f"{where}: layer {name!r} ({spec['class_name']})"
        node = _node(spec, what)
        if len(node.data) > 1:
            raise InputError(f"{what}: reads {len(node.data)} tensors; expected one (one chain)")
        for source, index in node.data:
            if source not in fed:
                raise InputError(f"{what}: reads layer {source!r}, which the model lacks")
            fed[source].append((name, index))
        if node.states:
            state_inputs[name] = _state_sources(node.states, inputs, by_name, what)
            unmasked |= set() if node.has_mask else {name}
    given_states = {n for sources in state_inputs.values() for n in sources}
    data = [n for n in inputs if n not in given_states]
    if len(data) != 1:
        raise InputError(
            f"{where}: {len(data)} data inputs {data} (besides initial states); expected one"
        )
    names, reads = [data[0]], {}
    while fed[names[-1]]:
        if len(fed[names[-1]]) > 1:
            readers = [n for n, _ in fed[names[-1]]]
            raise InputError(
                f"{where}: layer {names[-1]!r} feeds {readers}; lstm_ref's network is one chain"
                + PICK_HINT
            )
        ((reader, reads[names[-1]]),) = fed[names[-1]]
        names.append(reader)
    off = [n for n in by_name if n not in names and n not in given_states]
    if off:
        raise InputError(
            f"{where}: layers {off} are off the path from the input to the output" + PICK_HINT
        )
    outputs = [(str(n), int(i)) for n, _, i in _tensor_list(model.get("output_layers"))]
    end = names[-1]
    ends = sorted(i for n, i in outputs if n == end)
    if not ends:
        raise InputError(f"{where}: the last layer {end!r} is not among the outputs {outputs}")
    reads[end] = ends[0]
    for n, i in outputs:
        if (n, i) != (end, ends[0]) and not 1 <= i <= _state_count(by_name[n]):
            raise InputError(
                f"{where}: outputs {outputs}; expected one output (and return_state's states)"
                + PICK_HINT
            )
    return Chain(
        [by_name[n] for n in names],
        {n: i for n, i in reads.items() if i},
        state_inputs,
        unmasked,
    )


def state_inputs(config: dict[str, Any], where: str) -> dict[str, list[str]]:
    """By layer name, the model inputs an ``initial_state`` reads, where it reads model
    inputs only — in any model, a chain or not."""
    if config["class_name"] == "Sequential":
        return {}
    inputs = {str(n) for n, _, _ in _tensor_list(config["config"].get("input_layers"))}
    found = {}
    for spec in model_layers(config):
        states = _node(spec, f"{where}: layer {layer_name(spec)!r}").states
        if states and all(n in inputs for n, _ in states):
            found[layer_name(spec)] = [n for n, _ in states]
    return found


def _state_sources(
    states: list[tuple[str, int]], inputs: list[str], by_name: dict[str, Any], what: str
) -> list[str]:
    """The model inputs an ``initial_state`` reads (refused when a layer computes it)."""
    computed = [n for n, _ in states if n not in inputs]
    if computed:
        source = by_name.get(computed[0], {}).get("class_name", "?")
        raise InputError(
            f"{what}: its initial_state comes from layer {computed[0]!r} ({source}); lstm_ref's "
            "network is one chain, so an initial state can only be a model input (it becomes "
            "Network.state)" + PICK_HINT
        )
    return [n for n, _ in states]


def _state_count(spec: dict[str, Any]) -> int:
    """How many states ``return_state`` adds to a layer's outputs, after the output itself:
    h and c (and, of a Bidirectional, both directions')."""
    cls, cfg = spec["class_name"], spec["config"]
    if cls == "Bidirectional" and cfg["layer"]["config"].get("return_state"):
        return 4
    return 2 if cls in RECURRENT and cfg.get("return_state") else 0


def _node(spec: dict[str, Any], what: str) -> _Node:
    """What a Functional model's layer reads: Keras 3 writes a node as ``{"args": [tensor],
    "kwargs": {"mask": tensor, "initial_state": [tensor, …], …}}`` with a tensor's
    ``keras_history`` [layer, node, index]; Keras 2 as ``[[layer, node, index, kwargs]]``."""
    nodes = spec.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise InputError(f"{what}: called {len(nodes)} times (a shared layer); expected once")
    if not nodes:
        return _Node([], [], False)
    node = nodes[0]
    if isinstance(node, dict):
        refs = [t["config"]["keras_history"] for t in _keras_tensors(node.get("args", []))]
        kwargs = node.get("kwargs") or {}
        states = [t["config"]["keras_history"] for t in _keras_tensors(kwargs.get("initial_state"))]
    else:
        refs = [t[:3] for t in node]
        kwargs = {k: v for t in node if len(t) > 3 for k, v in t[3].items()}
        states = []
        if kwargs.get("initial_state") is not None:
            raise InputError(f"{what}: an initial_state in a Keras 2 graph is not supported")
    return _Node(
        [(str(r[0]), int(r[2])) for r in refs],
        [(str(s[0]), int(s[2])) for s in states],
        kwargs.get("mask") is not None,
    )


def _keras_tensors(value: Any) -> list[dict[str, Any]]:
    """Every ``__keras_tensor__`` inside a Keras 3 node's (nested) arguments."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [value]
    items = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list | tuple):
        return [t for item in items for t in _keras_tensors(item)]
    return []


def _tensor_list(refs: Any) -> list[list[Any]]:
    """``input_layers``/``output_layers``: one [layer, node, index], or a list (or dict) of
    them, in order."""
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return [refs]
    items = refs.values() if isinstance(refs, dict) else refs or []
    return [r for item in items for r in _tensor_list(item)]
