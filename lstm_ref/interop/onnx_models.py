"""The LSTM inside a bigger ONNX model: list it, specialise the graph, extract it, capture
its tensors.

A production model rarely is "input → LSTM → head": a convolutional front end computes
the LSTM's input, ``If`` nodes choose a branch by an input (a sample rate, say) or by a
shape, the LSTM's weights are sliced and concatenated from initializers, or an LSTM cell
is written out as MatMul/Gemm, Split, Sigmoid, Tanh and Mul. This module reads such a
model as it is:

- :func:`list_lstms` — every ``LSTM`` node and every LSTM cell written out as ops
  (:mod:`.onnx_cells`), where it sits (the main graph, or the ``If``/``Loop``/``Scan``
  branches around it and the inputs their conditions depend on), its inputs, outputs and
  their shapes;
- :func:`~.onnx_specialise.specialise` — the model with some inputs fixed
  (``fixed={"sr": 16000}``) and input shapes given (``shapes={"input": (1, 576)}``),
  constants folded and every ``If`` whose condition became constant inlined;
- :func:`extract_lstm` — one LSTM (or a chain of them) of the specialised model as an
  lstm_ref :class:`~lstm_ref.network.Network` whose input is that LSTM's input tensor
  and whose initial state is the constant the model holds, of any batch; an initial
  state or ``sequence_lens`` computed from data are the caller's to give
  (``Network.state``, ``lengths``), as they are in the model;
- :func:`capture` — with onnxruntime, the whole model run on the caller's data with the
  named tensors marked as graph outputs (as Polygraphy marks them), so the LSTM alone is
  compared on exactly the tensors that reach and leave it.

Refusals name the obstacle and what to do: "the LSTM 'X' lies in an If branch on input
'sr'; fix 'sr' to inline it".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import SequenceInput, directions
from ..lstm import LSTMState
from ..network import Network
from .onnx_ops import node_attributes, node_name
from .onnx_runner import read_model
from .onnx_specialise import (
    Shape,
    constants_of,
    drop_unused,
    graphs,
    inferred_shapes,
    producers_of,
    specialise,
)

Array = np.ndarray
__all__ = ["Branch", "LstmSite", "capture", "extract_lstm", "list_lstms", "specialise"]


@dataclass(frozen=True)
class Branch:
    """One control-flow branch around an LSTM: the node, which subgraph, and the graph
    inputs its condition depends on (``"shape of 'x'"`` when only through a shape)."""

    node: str
    op: str
    subgraph: str
    depends_on: tuple[str, ...]

    def __str__(self) -> str:
        on = " and ".join(self.depends_on) or "no input"
        return f"{self.op} {self.node!r} ({self.subgraph}, on {on})"


@dataclass(frozen=True)
class LstmSite:
    """Where an LSTM sits in a model (:func:`list_lstms`)."""

    name: str
    kind: str  # "LSTM" (the node) or "cell" (written out as ops)
    branches: tuple[Branch, ...]  # () in the main graph; outermost first
    inputs: tuple[str, ...]  # the node's (cell: x, h_prev, c_prev)
    outputs: tuple[str, ...]  # the node's (cell: h, c)
    shapes: dict[str, Shape] = field(default_factory=dict)  # inferred, None if unknown
    hidden_size: int = 0
    direction: str = "forward"

    @property
    def in_main_graph(self) -> bool:
        return not self.branches


# ------------------------------------------------------------------------- listing
def _depends_on(name: str, producers: Mapping[str, Any], inputs: set[str]) -> tuple[str, ...]:
    """The graph inputs ``name`` is computed from ("shape of 'x'" through Shape/Size only)."""
    found: set[str] = set()
    seen: set[tuple[str, bool]] = set()
    stack = [(name, False)]
    while stack:
        t, via_shape = stack.pop()
        if (t, via_shape) in seen:
            continue
        seen.add((t, via_shape))
        if t in inputs:
            found.add(f"shape of input {t!r}" if via_shape else f"input {t!r}")
        node = producers.get(t)
        if node is not None:
            shape_op = node.op_type in ("Shape", "Size")
            stack.extend((i, via_shape or shape_op) for i in node.input if i)
    return tuple(sorted(found))


def list_lstms(source: Any) -> list[LstmSite]:
    """Every LSTM of a model: ``LSTM`` nodes and cells written out as ops (any graph).

    Parameters
    ----------
    source : path, bytes or onnx.ModelProto

    Returns
    -------
    list of LstmSite
        In the graphs' order, the main graph first.
    """
    from .onnx_cells import find_cells

    model = read_model(source)
    shapes = inferred_shapes(model)
    inputs = {i.name for i in model.graph.input}
    all_graphs = [g for g, _ in graphs(model.graph)]
    producers = producers_of(all_graphs)
    sites = []
    for graph, chain in graphs(model.graph):
        around = tuple(
            Branch(
                node_name(n),
                n.op_type,
                sub,
                _depends_on(n.input[0], producers, inputs) if n.op_type == "If" else (),
            )
            for n, sub, _ in chain
        )
        for node in graph.node:
            if node.op_type == "LSTM":
                attrs = node_attributes(node)
                names = (*node.input, *node.output)
                sites.append(
                    LstmSite(
                        node_name(node),
                        "LSTM",
                        around,
                        tuple(node.input),
                        tuple(node.output),
                        {n: shapes.get(n) for n in names if n},
                        int(attrs.get("hidden_size", 0)),
                        str(attrs.get("direction", "forward")),
                    )
                )
        for cell in find_cells(graph, _visible_constants(graph, chain)):
            names = (cell.x, cell.h_prev, cell.c_prev, cell.h, cell.c)
            sites.append(
                LstmSite(
                    cell.name,
                    "cell",
                    around,
                    names[:3],
                    names[3:],
                    {n: shapes.get(n) for n in names if n},
                    cell.layer.hidden_size,
                )
            )
    return sites


# ----------------------------------------------------------------------- extracting
def _obstacle(site: LstmSite) -> str:
    """What keeps an LSTM inside an ``If`` branch, and what the caller can do."""
    branch = next(b for b in site.branches if b.op == "If")
    fixes = [d.removeprefix("input ") for d in branch.depends_on if d.startswith("input ")]
    shaped = [d.removeprefix("shape of input ") for d in branch.depends_on if d.startswith("shape")]
    todo = []
    if fixes:
        todo.append(f"fix {' and '.join(fixes)} (fixed=...)")
    if shaped:
        todo.append(f"give the shape of {' and '.join(shaped)} (shapes=...)")
    return (
        f"the LSTM {site.name!r} lies in an {branch.op} branch on "
        f"{' and '.join(branch.depends_on) or 'a condition computed from no input'}; "
        + (" and ".join(todo) + " to inline it" if todo else "it cannot be inlined")
    )


def extract_lstm(
    source: Any,
    name: str | Sequence[str],
    *,
    fixed: Mapping[str, Any] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    dtype: np.dtype | type = np.float64,
) -> Network:
    """One LSTM of a model (or a chain of them) as an lstm_ref Network.

    Parameters
    ----------
    source : path, bytes or onnx.ModelProto
    name : str or list of str
        The LSTM node's (or the cell's) name as :func:`list_lstms` gives it; a list of
        LSTM node names is a chain, read by :func:`~lstm_ref.interop.onnx.from_onnx` from
        the first one's input to the last one's output.
    fixed, shapes
        As :func:`specialise`, so that the LSTM reaches the main graph and its weights
        become constants.
    dtype : float64 (default) or float32

    Returns
    -------
    Network
        ``SequenceInput(C)`` → the LSTM (per-step output). Its input is the LSTM's X as
        (B, T, C) sequences. Its initial state is the model's, read from a constant of
        any batch (as an exporter writes one for the batch it traced): zeros are no state;
        the same in every row, the layer's own; rows that differ, ``Network.state`` with
        one row per sequence of that batch (so it takes that many sequences). A state
        computed from input shapes only (zeros or a parameter expanded to a dynamic
        batch) is read when it is the same row for any size. An initial state the model
        computes from data is not part of it (pass it as ``Network.state``, e.g. as
        :func:`capture` returns it).
    """
    from .onnx import lstm_from_node, with_inputs

    names = [name] if isinstance(name, str) else list(name)
    model = read_model(source)
    sites = {s.name: s for s in list_lstms(model)}
    for n in names:
        if n not in sites:
            raise InputError(f"no LSTM named {n!r}; the model's LSTMs are {sorted(sites)}")
    special = specialise(model, fixed, shapes)  # a state built from constants: a constant
    here = {s.name: s for s in list_lstms(special)}
    for n in names:
        site = here.get(n, sites[n])
        if n not in here or any(b.op == "If" for b in site.branches):
            raise InputError(_obstacle(site))
        if len(names) > 1 and site.branches:
            raise InputError(
                f"a chain of LSTMs is read from the main graph; {n!r} is in {site.branches[0]}"
            )
    if len(names) > 1:
        return _chain(special, [here[n] for n in names], dtype)
    if here[names[0]].kind == "cell":
        from .onnx_cells import find_cells

        # unfolded unless asked: folding a constant h_prev would fold h_prev · Rᵀ away
        graph, constants = _scope_of(special if (fixed or shapes) else model, names[0])
        cell = next(c for c in find_cells(graph, constants) if c.name == names[0])
        return Network([SequenceInput(cell.layer.input_size), cell.layer]).astype(dtype)
    graph, constants = _scope_of(special, names[0])
    node = next(n for n in graph.node if node_name(n) == names[0])
    data = [
        k
        for k in (4, 5, 6)
        if len(node.input) > k and node.input[k] and node.input[k] not in constants
    ]
    layout = int(node_attributes(node).get("layout", 0))
    constants = dict(constants)
    for k in (5, 6):
        if k in data:
            built = _built_from_shapes(model, fixed, shapes, node.input[k], layout)
            if built is not None:
                data.remove(k)
                constants[node.input[k]] = built
    states = [
        _state_rows(constants[node.input[k]], layout)
        if len(node.input) > k and node.input[k] in constants
        else None
        for k in (5, 6)
    ]
    per_row = any(s is not None and len(s) > 1 for s in states)
    given = dict(constants)
    for k, rows in zip((5, 6), states, strict=True):
        if rows is None:
            continue
        if per_row or not np.any(rows):
            data.append(k)  # zeros: no state; rows that differ: Network.state below
        else:
            given[node.input[k]] = np.moveaxis(rows, 0, 1 if layout == 0 else 0)
    lstm = lstm_from_node(with_inputs(node, dict.fromkeys(data, "")), given, "sequence", dtype)
    net = Network([SequenceInput(directions(lstm)[0].input_size), lstm]).astype(dtype)
    if per_row:
        net.state = _per_row_state(lstm, states, node_name(node))
    return net


def _built_from_shapes(
    model: Any,
    fixed: Mapping[str, Any] | None,
    shapes: Mapping[str, Sequence[int]] | None,
    tensor: str,
    layout: int,
) -> Array | None:
    """An initial state computed from the shapes of inputs only (zeros or a parameter
    expanded to the batch, as exporters write them for a dynamic batch), when it folds to
    the same rows for two sizes of those inputs' unknown dimensions; else None."""
    inputs = {i.name: i for i in model.graph.input}
    on = _depends_on(tensor, producers_of([g for g, _ in graphs(model.graph)]), set(inputs))
    if not on or not all(d.startswith("shape of input ") for d in on):
        return None
    probes = []
    for size in (2, 3):
        given = dict(shapes or {})
        for d in on:
            name = d.removeprefix("shape of input ")[1:-1]
            dims = inputs[name].type.tensor_type.shape.dim
            given.setdefault(name, tuple(n.dim_value if n.dim_value > 0 else size for n in dims))
        value = constants_of(specialise(model, fixed, given).graph).get(tensor)
        if value is None:
            return None
        probes.append(_state_rows(value, layout))
    first, second = probes
    if len(first) != 1 or len(second) != 1 or not np.array_equal(first, second):
        return None
    return np.moveaxis(first, 0, 1 if layout == 0 else 0)


def _state_rows(a: Array, layout: int) -> Array:
    """A constant initial state (D, B, H) (layout 1: (B, D, H)) as (B, D, H); one row when
    every row is the same (as a state built from zeros for the export's batch is)."""
    a = np.asarray(a)
    if a.ndim != 3:
        raise InputError(f"an LSTM's initial state has shape {a.shape}; expected (D, B, H)")
    rows = np.moveaxis(a, 1 if layout == 0 else 0, 0)
    return rows[:1] if np.array_equal(rows, np.broadcast_to(rows[:1], rows.shape)) else rows


def _per_row_state(lstm: Any, states: Sequence[Array | None], name: str) -> dict[str, LSTMState]:
    """Network.state from constant initial states whose rows differ: one row per sequence
    of the batch the model was exported with ([forward ‖ reverse] for a BiLSTM)."""
    D, H = len(directions(lstm)), directions(lstm)[0].hidden_size
    B = next(len(s) for s in states if s is not None and len(s) > 1)
    rows = []
    for what, s in zip(("initial_h", "initial_c"), states, strict=True):
        if s is None:
            s = np.zeros((B, D, H))
        elif s.shape[1:] != (D, H) or len(s) not in (1, B):
            raise InputError(
                f"node {name!r} (LSTM): {what} holds rows of shape {s.shape[1:]} for "
                f"{len(s)} sequences; expected ({D}, {H}) for {B}"
            )
        rows.append(np.broadcast_to(s, (B, D, H)).reshape(B, D * H))
    return {lstm.name: LSTMState(*rows)}


def _visible_constants(graph: Any, chain: Sequence[tuple[Any, str, Any]]) -> dict[str, Array]:
    """The constants a graph sees: those of the graphs around it, then its own."""
    constants: dict[str, Array] = {}
    for scope in [parent for _, _, parent in chain] + [graph]:
        constants.update(constants_of(scope))
    return constants


def _scope_of(model: Any, name: str) -> tuple[Any, dict[str, Array]]:
    """The graph holding the node ``name`` (the main graph or a Loop/Scan body) and the
    constants it sees (its own and those of the graphs around it)."""
    for graph, chain in graphs(model.graph):
        if any(node_name(n) == name for n in graph.node):
            return graph, _visible_constants(graph, chain)
    raise InputError(f"no node named {name!r}")  # list_lstms found it: not reached


def _chain(model: Any, sites: Sequence[LstmSite], dtype: np.dtype | type) -> Network:
    """A chain of LSTM nodes read by from_onnx from a model cut at the first one's input."""
    from onnx import helper

    from .onnx import from_onnx

    first, last = sites[0], sites[-1]
    graph = model.graph
    start = first.inputs[0]
    wanted = last.outputs[0] if last.outputs[0] else last.outputs[1]
    producers = producers_of([graph])
    nodes, stack, seen = [], [wanted], set()
    while stack:
        t = stack.pop()
        node = producers.get(t)
        if t == start or node is None or id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        stack.extend(i for i in node.input if i)
    order = {id(n): k for k, n in enumerate(graph.node)}
    nodes.sort(key=lambda n: order[id(n)])
    shapes = inferred_shapes(model)
    weights = constants_of(graph)[first.inputs[1]]  # W: the chain's float type
    elem = helper.np_dtype_to_tensor_dtype(weights.dtype)
    sub = helper.make_graph(
        nodes,
        "lstm_chain",
        [helper.make_tensor_value_info(start, elem, shapes.get(start))],
        [helper.make_tensor_value_info(wanted, elem, shapes.get(wanted))],
        list(graph.initializer),
    )
    drop_unused(sub)
    cut = helper.make_model(sub, opset_imports=list(model.opset_import))
    return from_onnx(cut, dtype=dtype)


# ------------------------------------------------------------------------ capturing
def capture(source: Any, feeds: Mapping[str, Any], tensor_names: Sequence[str]) -> dict[str, Array]:
    """The named tensors of a model run whole in onnxruntime on ``feeds``.

    Each name becomes a graph output (as Polygraphy marks them), so an intermediate
    tensor — the input that reaches an LSTM, its initial state, its outputs — is what
    onnxruntime computed, not a recomputation. Tensors inside an ``If`` branch are
    refused: :func:`specialise` the model first so that they reach the main graph.
    """
    import onnx
    import onnxruntime as ort  # type: ignore[import-untyped]

    model = onnx.ModelProto()
    model.CopyFrom(read_model(source))
    graph = model.graph
    main = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    main |= {t.name for t in graph.initializer}
    inner = {o for g, _ in graphs(graph) if g is not graph for n in g.node for o in n.output}
    for name in tensor_names:
        if name not in main:
            where = (
                "lies in a subgraph branch; specialise the model first"
                if name in inner
                else "is not a tensor of the model"
            )
            raise InputError(f"tensor {name!r} {where}")
    outputs = {o.name for o in graph.output}
    for name in tensor_names:
        if name not in outputs:
            graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: not its notes on the model's unused initializers
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    values = session.run(list(tensor_names), dict(feeds))
    return dict(zip(tensor_names, values, strict=True))
