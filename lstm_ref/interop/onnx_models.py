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
- :func:`specialise` — the model with some inputs fixed (``fixed={"sr": 16000}``) and
  input shapes given (``shapes={"input": (1, 576)}``): every node that depends only on
  constants (and ``Shape``/``Size`` of a tensor whose shape is then known) is folded, in
  NumPy by :mod:`.onnx_ops`, and every ``If`` whose condition became constant is replaced
  by its branch, until nothing changes; nodes nothing uses are dropped;
- :func:`extract_lstm` — one LSTM (or a chain of them) of the specialised model as an
  lstm_ref :class:`~lstm_ref.network.Network` whose input is that LSTM's input tensor;
  an initial state or ``sequence_lens`` computed from data are the caller's to give
  (``Network.state``, ``lengths``), as they are in the model;
- :func:`capture` — with onnxruntime, the whole model run on the caller's data with the
  named tensors marked as graph outputs (as Polygraphy marks them), so the LSTM alone is
  compared on exactly the tensors that reach and leave it.

Refusals name the obstacle and what to do: "the LSTM 'X' lies in an If branch on input
'sr'; fix 'sr' to inline it".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import SequenceInput, directions
from ..network import Network
from .onnx_ops import node_attributes, run_node
from .onnx_runner import default_opset, load_model

Array = np.ndarray
Shape = tuple[int | str | None, ...] | None
_SUBGRAPHS = ("then_branch", "else_branch", "body")
_NOT_FOLDED = {"If", "Loop", "Scan", "RandomNormal", "RandomUniform", "RandomNormalLike"}
_NOT_FOLDED |= {"RandomUniformLike", "Multinomial", "Bernoulli"}  # random: never folded


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
def _graphs(
    graph: Any, branches: tuple[tuple[Any, str, Any], ...] = ()
) -> Iterator[tuple[Any, tuple[tuple[Any, str, Any], ...]]]:
    """Every graph of the model with the (node, subgraph name, graph) chain around it."""
    yield graph, branches
    for node in graph.node:
        for a in node.attribute:
            if a.name in _SUBGRAPHS and a.g is not None and a.g.node:
                yield from _graphs(a.g, (*branches, (node, a.name, graph)))


def _producers(graphs: Sequence[Any]) -> dict[str, Any]:
    return {o: n for g in graphs for n in g.node for o in n.output if o}


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


def _inferred_shapes(model: Any) -> dict[str, Shape]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is a help here, never a requirement
        inferred = model
    shapes: dict[str, Shape] = {}
    for graph, _ in _graphs(inferred.graph):
        shapes.update({t.name: tuple(t.dims) for t in graph.initializer})
        for vi in (*graph.input, *graph.value_info, *graph.output):
            t = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and t.HasField("shape"):
                shapes[vi.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in t.shape.dim
                )
    return shapes


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

    model = load_model(source)
    shapes = _inferred_shapes(model)
    inputs = {i.name for i in model.graph.input}
    all_graphs = [g for g, _ in _graphs(model.graph)]
    producers = _producers(all_graphs)
    sites = []
    for graph, chain in _graphs(model.graph):
        around = tuple(
            Branch(
                n.name,
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
                        node.name,
                        "LSTM",
                        around,
                        tuple(node.input),
                        tuple(node.output),
                        {n: shapes.get(n) for n in names if n},
                        int(attrs.get("hidden_size", 0)),
                        str(attrs.get("direction", "forward")),
                    )
                )
        for cell in find_cells(graph, _constants(graph)):
            names = (cell.x, cell.h_prev, cell.c_prev, cell.h, cell.c)
            sites.append(
                LstmSite(
                    cell.name,
                    "cell",
                    around,
                    names[:3],
                    names[3:],
                    {n: shapes.get(n) for n in names},
                    cell.layer.hidden_size,
                )
            )
    return sites


# -------------------------------------------------------------------- specialising
def _constants(graph: Any) -> dict[str, Array]:
    """The graph's initializers (not those a caller may override as inputs) and Constants."""
    from onnx import numpy_helper

    inputs = {i.name for i in graph.input}
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name not in inputs}
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0]:
            values[node.output[0]] = run_node(node, [], 1)[0]
    return values


def specialise(
    source: Any,
    fixed: Mapping[str, Any] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> Any:
    """The model with ``fixed`` inputs made constants and ``shapes`` given, constants
    folded and every ``If`` with a constant condition inlined (module docstring).

    Parameters
    ----------
    source : path, bytes or onnx.ModelProto
        Left unchanged.
    fixed : dict of str to array-like, optional
        Graph inputs and their values (cast to the input's declared type); they are no
        longer inputs of the result.
    shapes : dict of str to tuple of int, optional
        The full shapes of other graph inputs (e.g. the batch and the length).

    Returns
    -------
    onnx.ModelProto
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(load_model(source))
    graph = model.graph
    fixed, shapes = dict(fixed or {}), dict(shapes or {})
    declared = {i.name: i for i in graph.input}
    unknown = sorted((set(fixed) | set(shapes)) - set(declared))
    if unknown:
        raise InputError(
            f"{unknown} are not inputs of the model; its inputs are {sorted(declared)}"
        )
    for name, value in fixed.items():
        dtype = helper.tensor_dtype_to_np_dtype(declared[name].type.tensor_type.elem_type)
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        graph.input.remove(declared[name])
    for name, shape in shapes.items():
        dims = declared[name].type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise InputError(f"input {name!r} has {len(dims)} axes; shapes gives {tuple(shape)}")
        for d, n in zip(dims, shape, strict=True):
            d.Clear()
            d.dim_value = int(n)
    opset = default_opset(model)
    while _fold_once(graph, _inferred_shapes(model), opset):
        pass
    _drop_unused(graph)
    return model


def _fold_once(graph: Any, shapes: Mapping[str, Shape], opset: int) -> bool:
    """One pass over the main graph; True if anything changed."""
    from onnx import numpy_helper

    values = _constants(graph)
    partial: dict[str, Array] = {}  # Shape outputs, an unknown dimension as -1
    kept: list[Any] = []
    changed = False
    for node in graph.node:
        known = [n for n in node.input if n]
        static = shapes.get(node.input[0]) if node.input else None
        folded: list[Array] | None = None
        if node.op_type == "Constant":
            folded = [values[node.output[0]]]
        elif node.op_type in ("Shape", "Size") and static is not None:
            dims = [d if isinstance(d, int) and d > 0 else -1 for d in static]
            if -1 not in dims:
                folded = run_node(node, [np.empty(dims, dtype=np.uint8)], opset)
            elif node.op_type == "Shape" and not node.attribute:
                partial[node.output[0]] = np.asarray(dims, dtype=np.int64)
        elif node.op_type == "Gather" and node.input[0] in partial and node.input[1] in values:
            picked = run_node(node, [partial[node.input[0]], values[node.input[1]]], opset)
            folded = None if (picked[0] < 0).any() else picked
        elif node.op_type not in _NOT_FOLDED and all(n in values for n in known):
            folded = run_node(node, [values[n] if n else None for n in node.input], opset)
        elif node.op_type == "If" and node.input[0] in values:
            kept.extend(
                _inlined(node, bool(np.asarray(values[node.input[0]]).reshape(-1)[0]), graph)
            )
            changed = True
            continue
        if folded is None:
            kept.append(node)
            continue
        for name, value in zip(node.output, folded, strict=False):
            if name:
                values[name] = value
                graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        changed = True
    del graph.node[:]
    graph.node.extend(kept)
    return changed


def _inlined(node: Any, condition: bool, graph: Any) -> list[Any]:
    """The nodes of the branch an ``If`` takes, its outputs renamed to the ``If``'s."""
    from onnx import helper

    branch = node_attributes(node)["then_branch" if condition else "else_branch"]
    graph.initializer.extend(branch.initializer)
    nodes = list(branch.node)
    for inner, outer in zip(branch.output, node.output, strict=True):
        if outer:
            nodes.append(
                helper.make_node("Identity", [inner.name], [outer], name=f"{node.name}/{outer}")
            )
    return nodes


def _drop_unused(graph: Any) -> None:
    """Remove nodes whose outputs nothing uses, and unused initializers."""
    while True:
        used = {o.name for o in graph.output}
        for g, _ in _graphs(graph):
            used.update(i for n in g.node for i in n.input)
            used.update(o.name for o in g.output if g is not graph)
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)


# ----------------------------------------------------------------------- extracting
def _obstacle(site: LstmSite) -> str:
    """What keeps an LSTM from the main graph, and what the caller can do."""
    branch = site.branches[0]
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
        (B, T, C) sequences; an initial state the model computes from data is not part of
        it (pass it as ``Network.state``, e.g. as :func:`capture` returns it).
    """
    from .onnx import lstm_from_node

    names = [name] if isinstance(name, str) else list(name)
    model = load_model(source)
    sites = {s.name: s for s in list_lstms(model)}
    for n in names:
        if n not in sites:
            raise InputError(f"no LSTM named {n!r}; the model's LSTMs are {sorted(sites)}")
    special = specialise(model, fixed, shapes) if (fixed or shapes) else model
    here = {s.name: s for s in list_lstms(special)}
    for n in names:
        if n not in here or not here[n].in_main_graph:
            raise InputError(_obstacle(here.get(n, sites[n])))
    if len(names) > 1:
        return _chain(special, [here[n] for n in names], dtype)
    site = here[names[0]]
    constants = _constants(special.graph)
    if site.kind == "cell":
        from .onnx_cells import find_cells

        cell = next(c for c in find_cells(special.graph, constants) if c.name == site.name)
        return Network([SequenceInput(cell.layer.input_size), cell.layer]).astype(dtype)
    node = next(n for n in special.graph.node if n.name == site.name)
    data = [
        k
        for k in (4, 5, 6)
        if len(node.input) > k and node.input[k] and node.input[k] not in constants
    ]
    lstm = lstm_from_node(_without(node, data), constants, "sequence", dtype)
    return Network([SequenceInput(directions(lstm)[0].input_size), lstm]).astype(dtype)


def _without(node: Any, positions: Sequence[int]) -> Any:
    import onnx

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    for k in positions:
        copy.input[k] = ""
    return copy


def _chain(model: Any, sites: Sequence[LstmSite], dtype: np.dtype | type) -> Network:
    """A chain of LSTM nodes read by from_onnx from a model cut at the first one's input."""
    import onnx
    from onnx import helper

    from .onnx import from_onnx

    first, last = sites[0], sites[-1]
    graph = model.graph
    start = first.inputs[0]
    wanted = last.outputs[0] if last.outputs[0] else last.outputs[1]
    producers = _producers([graph])
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
    shapes = _inferred_shapes(model)
    elem = onnx.TensorProto.FLOAT
    sub = helper.make_graph(
        nodes,
        "lstm_chain",
        [helper.make_tensor_value_info(start, elem, shapes.get(start))],
        [helper.make_tensor_value_info(wanted, elem, shapes.get(wanted))],
        list(graph.initializer),
    )
    _drop_unused(sub)
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
    model.CopyFrom(load_model(source))
    graph = model.graph
    main = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    main |= {t.name for t in graph.initializer}
    inner = {o for g, _ in _graphs(graph) if g is not graph for n in g.node for o in n.output}
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
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(list(tensor_names), dict(feeds))
    return dict(zip(tensor_names, values, strict=True))
