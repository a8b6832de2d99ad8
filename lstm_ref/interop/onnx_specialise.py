"""An ONNX model specialised for inputs the caller fixes: constants folded, ``If`` nodes
with a constant condition inlined.

:func:`specialise` makes the fixed inputs initializers and writes the given input shapes
into the graph, then repeats one pass until nothing changes: every node whose inputs are
all constants is computed by :func:`.onnx_ops.run_node` (in the model's own types, as
onnxruntime would) and becomes an initializer; ``Shape``/``Size`` of a tensor whose shape
ONNX's shape inference then knows become constants too (a ``Gather`` of known dimensions
of a partly known shape as well — PyTorch's exporter asks for the batch that way); and an
``If`` whose condition is constant is replaced by the nodes of the branch it takes (its
initializers moved up, its outputs renamed to the ``If``'s by ``Identity``). Only ops of
the runner's table are folded (random ops are not in it; nor are ``Loop`` and ``Scan``),
and other domains' nodes are kept as they are. Nodes and initializers nothing uses are
dropped.
The result computes what the model computes on those inputs (tests hold onnxruntime's
outputs of both equal).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from .onnx_ops import OPS, node_attributes, run_node
from .onnx_runner import default_opset, dims_of, read_model

Array = np.ndarray
Shape = tuple[int | str | None, ...] | None
SUBGRAPHS = ("then_branch", "else_branch", "body")


def graphs(
    graph: Any, branches: tuple[tuple[Any, str, Any], ...] = ()
) -> Iterator[tuple[Any, tuple[tuple[Any, str, Any], ...]]]:
    """Every graph of the model with the (node, subgraph name, graph) chain around it."""
    yield graph, branches
    for node in graph.node:
        for a in node.attribute:
            if a.name in SUBGRAPHS and a.g is not None and a.g.node:
                yield from graphs(a.g, (*branches, (node, a.name, graph)))


def producers_of(scopes: Sequence[Any]) -> dict[str, Any]:
    """The node computing each tensor of the given graphs."""
    return {o: n for g in scopes for n in g.node for o in n.output if o}


def inferred_shapes(model: Any) -> dict[str, Shape]:
    """Every tensor's shape ONNX's shape inference finds (in every graph), None per unknown
    dimension; initializers' too."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, Shape] = {}
    for graph, _ in graphs(inferred.graph):
        shapes.update({t.name: tuple(t.dims) for t in graph.initializer})
        for vi in (*graph.input, *graph.value_info, *graph.output):
            t = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and t.HasField("shape"):
                shapes[vi.name] = tuple(dims_of(t))
    return shapes


def constants_of(graph: Any) -> dict[str, Array]:
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
    model.CopyFrom(read_model(source))
    graph = model.graph
    fixed, shapes = dict(fixed or {}), dict(shapes or {})
    declared = {i.name: i for i in graph.input}
    unknown = sorted((set(fixed) | set(shapes)) - set(declared))
    if unknown:
        raise InputError(
            f"{unknown} are not inputs of the model; its inputs are {sorted(declared)}"
        )
    both = sorted(set(fixed) & set(shapes))
    if both:
        raise InputError(f"{both} given both in fixed and in shapes; a fixed value has its shape")
    for name, value in fixed.items():
        dtype = helper.tensor_dtype_to_np_dtype(declared[name].type.tensor_type.elem_type)
        given = np.asarray(value)
        cast = given.astype(dtype)
        if cast.shape != given.shape or not np.array_equal(cast, given):
            raise InputError(f"fixed {name!r} = {value!r} is not a {np.dtype(dtype)} value")
        _check_shape(declared[name], cast.shape)
        graph.initializer.append(numpy_helper.from_array(cast, name))
        graph.input.remove(declared[name])
    for name, shape in shapes.items():
        _check_shape(declared[name], tuple(shape))
        for d, n in zip(declared[name].type.tensor_type.shape.dim, shape, strict=True):
            d.Clear()
            d.dim_value = int(n)
    opset = default_opset(model)
    while _fold_once(graph, inferred_shapes(model), opset):
        pass
    drop_unused(graph)
    return model


def _check_shape(value_info: Any, shape: tuple[int, ...]) -> None:
    """``shape`` fits the input's declared rank and fixed dimensions."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if len(dims) != len(shape) or any(
        d not in (None, n) for d, n in zip(dims, shape, strict=False)
    ):
        declared = [d if d is not None else "?" for d in dims]
        raise InputError(f"input {value_info.name!r} is {declared}; got shape {shape}")


def _fold_once(graph: Any, shapes: Mapping[str, Shape], opset: int) -> bool:
    """One pass over the main graph; True if anything changed."""
    from onnx import numpy_helper

    values = constants_of(graph)
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
        elif _foldable(node) and all(n in values for n in known):
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


def _foldable(node: Any) -> bool:
    """An op of ONNX's own in the runner's table (all deterministic: no random op is)."""
    return node.domain in ("", "ai.onnx") and node.op_type in OPS


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


def drop_unused(graph: Any) -> None:
    """Remove nodes whose outputs nothing uses, and unused initializers."""
    while True:
        used = {o.name for o in graph.output}
        for g, _ in graphs(graph):
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
