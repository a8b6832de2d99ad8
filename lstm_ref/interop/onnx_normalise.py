"""ONNX import: a graph brought to the plain form in which :mod:`.onnx_cells` reads an LSTM
cell, for exporters that write the same cell otherwise (Keras 3's ``model.export(…,
format="onnx")`` on an input of fixed length writes every step of an LSTM layer so).

Five rewrites, each leaving what the graph computes unchanged:

==================================================  ============================================
written                                             rewritten
==================================================  ============================================
gate blocks cut by ``Slice`` at positions computed  the positions folded (``specialise``: every
from ``Shape`` (``Shape → Gather → Add → Div →      node of constants and known dimensions is a
Mul``)                                              constant)
``Cast`` to the type its input already has          its input, read directly (a Cast that
                                                    writes a graph output stays for it)
``Where`` whose condition is a constant of one     the value it picks, read directly (when it
value                                               has the output's shape)
``Gather(Add(MatMul(S, W), b), t)``: the input      ``Add(MatMul(Gather(S, t), W), b)``: the
product hoisted over every step, one step read      step's own product (W a constant matrix, b
(the gathered axis not the last); without the       a constant vector); ``MatMul(Gather(S, t),
``Add`` when the layer has no biases                W)``
``Concat`` along axis a of ``Unsqueeze(f(Gather(S,   ``f(S)``: the map applied to every step at
t, a), a)`` for t = 0, 1, …, T − 1, f the same      once, as Keras's TimeDistributed computes it
ops with equal constants in every step, each        (Keras writes one copy of f per step)
acting on the last axis alone (MatMul by a
matrix, a vector added, Softmax on the last axis,
an elementwise activation), S's axis a of T steps
==================================================  ============================================

The rewritten graph is used only when it shows LSTM cells the file as written does not
(:func:`cells_visible`); node positions in messages stay those of the file's graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .onnx_cells import find_cells
from .onnx_graph import dims
from .onnx_ops import node_attributes
from .onnx_specialise import constants_of, drop_unused, specialise

Array = np.ndarray


def cells_visible(model: Any) -> tuple[Any, dict[str, int]]:
    """``model`` rewritten (module table) if that shows LSTM cells it does not show as
    written, else ``model`` itself; and each node's position in the file's graph (a
    rewritten node's: the position of the node it stands for).

    Parameters
    ----------
    model : onnx.ModelProto
        Left unchanged.
    """
    positions = {node.output[0]: k for k, node in enumerate(model.graph.node)}
    ops = {node.op_type for node in model.graph.node}
    if not {"Sigmoid", "Tanh", "Mul"} <= ops or find_cells(model.graph, constants_of(model.graph)):
        return model, positions
    plain = specialise(model)
    inferred = _inferred(plain)  # once: skipping identity Casts changes no type or shape
    _skip_identity_casts(plain.graph, _types(plain, inferred))
    shapes = _shapes(plain, inferred)
    _skip_decided_wheres(plain.graph, constants_of(plain.graph), shapes)
    ranks = {name: len(shape) for name, shape in shapes.items()}
    stands_for = _unhoist_products(plain.graph, constants_of(plain.graph), ranks)
    stands_for.update(_merge_step_maps(plain.graph, constants_of(plain.graph), shapes))
    drop_unused(plain.graph)
    if not find_cells(plain.graph, constants_of(plain.graph)):
        return model, positions
    for node in plain.graph.node:
        first = node.output[0]
        positions.setdefault(first, positions.get(stands_for.get(first, ""), 0))
    return plain, positions


def _inferred(model: Any) -> list[Any]:
    """Every value's type record: inputs, initializers' and inferred intermediates."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(model).graph
    return [*graph.input, *graph.value_info, *graph.output]


def _types(model: Any, inferred: list[Any]) -> dict[str, int]:
    """Each tensor's element type (ONNX's enumeration), where known."""
    types = {t.name: t.data_type for t in model.graph.initializer}
    for value in inferred:
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types[value.name] = value.type.tensor_type.elem_type
    return types


def _shapes(model: Any, inferred: list[Any]) -> dict[str, list[int | str]]:
    """Each tensor's dimensions (a number, or a symbolic name), where its rank is known."""
    shapes: dict[str, list[int | str]] = {t.name: list(t.dims) for t in model.graph.initializer}
    for value in inferred:
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            shapes[value.name] = dims(value)
    return shapes


def _skip_identity_casts(graph: Any, types: Mapping[str, int]) -> None:
    """Every node reads the input of a ``Cast`` that keeps its type instead of its output.
    A Cast that writes a graph output stays, and so keeps the output's name, but the
    nodes reading it read its input too (Keras writes the last cell's c and h so when its
    LSTM returns its states: its tanh(c) reads the Cast)."""
    same: dict[str, str] = {}
    for node in graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        source = same.get(node.input[0], node.input[0]) if node.input else ""
        if node.op_type == "Cast" and to is not None and types.get(source) == to:
            same[node.output[0]] = source
    for node in graph.node:
        for k, name in enumerate(node.input):
            node.input[k] = same.get(name, name)


def _skip_decided_wheres(
    graph: Any, constants: Mapping[str, Array], shapes: Mapping[str, list[int | str]]
) -> None:
    """Every node reads, instead of a ``Where`` whose condition is a constant of one value,
    the input it picks (every element True: the first value; False: the second), when
    the other inputs do not broadcast it (:func:`_covers`; Keras's loop over an LSTM with
    dropout checks each step against the sequence's length, all known)."""
    picked: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "Where" or node.input[0] not in constants:
            continue
        condition = np.asarray(constants[node.input[0]])
        if condition.size == 0 or np.any(condition != condition.flat[0]):
            continue
        chosen, other = node.input[1:] if condition.flat[0] else node.input[:0:-1]
        mine, theirs = shapes.get(chosen), shapes.get(other)
        if mine is not None and theirs is not None and _covers(mine, theirs, condition.ndim):
            picked[node.output[0]] = picked.get(chosen, chosen)
    for node in graph.node:
        for k, name in enumerate(node.input):
            node.input[k] = picked.get(name, name)


def _covers(mine: list[int | str], theirs: list[int | str], condition: int) -> bool:
    """Whether a value of dimensions ``mine`` is not broadcast by one of ``theirs`` or by
    a condition of ``condition`` axes: as many axes, no known size differing, none of
    its own a 1 where the other's is not known 1."""
    return len(mine) == len(theirs) >= condition and all(
        not (isinstance(a, int) and (a == 1 or isinstance(b, int)) and a != b)
        for a, b in zip(mine, theirs, strict=True)
    )


def _unhoist_products(
    graph: Any, constants: Mapping[str, Array], ranks: Mapping[str, int]
) -> dict[str, str]:
    """Each ``Gather`` of one step of a hoisted ``Add(MatMul(S, W), b)`` replaced by the
    step's own product (module table); the new nodes' first outputs and the Gather each
    stands for."""
    from onnx import helper

    producers = {o: n for n in graph.node for o in n.output if o}
    stands_for: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        parts = _hoisted(node, producers, constants, ranks)
        if parts is None:
            nodes.append(node)
            continue
        source, weight, bias, axis = parts
        step, product = f"{node.output[0]}/step", f"{node.output[0]}/product"
        nodes += [
            helper.make_node("Gather", [source, node.input[1]], [step], step, axis=axis),
            helper.make_node(
                "MatMul", [step, weight], [product if bias else node.output[0]], product
            ),
        ]
        if bias:
            nodes.append(
                helper.make_node("Add", [product, bias], [node.output[0]], f"{node.name}/plus_b")
            )
        stands_for.update({step: node.output[0], product: node.output[0]})
    del graph.node[:]
    graph.node.extend(nodes)
    return stands_for


def _hoisted(
    gather: Any, producers: Mapping[str, Any], constants: Mapping[str, Array], ranks: Any
) -> tuple[str, str, str, int] | None:
    """(S, W, b, axis) when ``gather`` reads ``Add(MatMul(S, W), b)`` along an axis of S
    other than the last, W a constant matrix and b a constant vector (b "": ``MatMul(S,
    W)``, a layer without biases); else None."""
    if gather.op_type != "Gather":
        return None
    read = producers.get(gather.input[0])
    rank = ranks.get(gather.input[0])
    if read is None or read.op_type not in ("Add", "MatMul") or rank is None:
        return None
    axis = next((a.i for a in gather.attribute if a.name == "axis"), 0) % rank
    pairs = [(gather.input[0], "")] if read.op_type == "MatMul" else [read.input, read.input[::-1]]
    for product_name, bias in pairs:
        product = producers.get(product_name)
        if (
            product is not None
            and product.op_type == "MatMul"
            and axis < rank - 1
            and product.input[1] in constants
            and np.ndim(constants[product.input[1]]) == 2
            and (not bias or (bias in constants and np.ndim(constants[bias]) <= 1))
        ):
            return product.input[0], product.input[1], bias, axis
    return None


# ops that act on the last axis alone, each row of the other axes apart
_ELEMENTWISE = {"Relu", "Sigmoid", "Tanh", "Softplus", "Softsign", "Elu", "Selu", "LeakyRelu"}
_ELEMENTWISE |= {"HardSigmoid", "Exp", "Identity", "Cast"}
_LAST_AXIS = {"Softmax", "LogSoftmax"}
_BY_A_CONSTANT = {"MatMul", "Add", "Sub", "Mul", "Div"}


def _merge_step_maps(
    graph: Any, constants: Mapping[str, Array], shapes: Mapping[str, list[int | str]]
) -> dict[str, str]:
    """Each ``Concat`` of one map applied to every step apart replaced by the map applied
    to all steps at once (module table); the new nodes' outputs and the node each stands
    for."""
    producers = {o: n for n in graph.node for o in n.output if o}
    stands_for: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        branch = _step_map(node, producers, constants, shapes) if node.op_type == "Concat" else None
        if branch is None:
            nodes.append(node)
            continue
        source, chain = branch
        for k, op in enumerate(chain):
            last = k == len(chain) - 1
            merged = type(op)()
            merged.CopyFrom(op)
            merged.name = f"{op.name}/every_step"
            merged.input[_data_input(op, constants)] = source
            merged.output[0] = node.output[0] if last else f"{op.output[0]}/every_step"
            source = merged.output[0]
            stands_for[source] = op.output[0]
            nodes.append(merged)
    del graph.node[:]
    graph.node.extend(nodes)
    return stands_for


def _step_map(
    concat: Any,
    producers: Mapping[str, Any],
    constants: Mapping[str, Array],
    shapes: Mapping[str, list[int | str]],
) -> tuple[str, list[Any]] | None:
    """(S, the first step's ops after its Gather) when ``concat`` joins, along axis a (not
    the last), ``Unsqueeze(f(Gather(S, t, a)), a)`` for t = 0, 1, …, T − 1, S's axis a
    holding T steps, the same f (op types, attributes, constant values) in every step,
    each op acting on the last axis alone; else None."""
    rank = len(shapes.get(concat.output[0], []))
    if rank < 2:
        return None
    axis = node_attributes(concat).get("axis", 0) % rank
    found = [_branch(name, axis, rank, producers, constants) for name in concat.input]
    branches = [b for b in found if b is not None]
    if axis == rank - 1 or len(branches) != len(found):
        return None
    source = branches[0][0]
    shape = shapes.get(source, [])
    if (
        len(shape) != rank
        or shape[axis] != len(branches)
        or any(b[0] != source for b in branches)
        or [b[1] for b in branches] != list(range(len(branches)))
        or not all(_same_ops(b[2], branches[0][2], constants) for b in branches)
    ):
        return None
    return source, branches[0][2]


def _branch(
    name: str, axis: int, rank: int, producers: Mapping[str, Any], constants: Mapping[str, Array]
) -> tuple[str, int, list[Any]] | None:
    """(S, t, f's ops in order) when ``name`` is ``Unsqueeze(f(Gather(S, t, axis)), axis)``
    with f's every op acting on the last axis alone; else None."""
    unsqueeze = producers.get(name)
    if unsqueeze is None or unsqueeze.op_type != "Unsqueeze":
        return None
    axes = node_attributes(unsqueeze).get("axes")
    if axes is None and len(unsqueeze.input) > 1 and unsqueeze.input[1] in constants:
        axes = np.asarray(constants[unsqueeze.input[1]]).reshape(-1).tolist()
    if axes is None or [a % rank for a in axes] != [axis]:
        return None
    chain: list[Any] = []
    node = producers.get(unsqueeze.input[0])
    while node is not None and node.op_type != "Gather":
        data = _data_input(node, constants)
        if data is None or len(chain) > 8:
            return None
        chain.insert(0, node)
        node = producers.get(node.input[data])
    if node is None or not chain or node.input[1] not in constants:
        return None
    step = np.asarray(constants[node.input[1]])
    gathered = node_attributes(node).get("axis", 0) % rank
    if step.ndim or gathered != axis:
        return None
    return node.input[0], int(step), chain


def _data_input(node: Any, constants: Mapping[str, Array]) -> int | None:
    """Which input of ``node`` is its data, if it acts on the last axis alone: an
    elementwise op's, Softmax's on the last axis, a MatMul's by a constant matrix, an
    arithmetic op's with a constant scalar or vector; else None."""
    if node.op_type in _ELEMENTWISE:
        return 0
    if node.op_type in _LAST_AXIS:
        return 0 if node_attributes(node).get("axis") == -1 else None  # written, not a default
    if node.op_type not in _BY_A_CONSTANT or len(node.input) != 2:
        return None
    if node.op_type == "MatMul":
        weight = constants.get(node.input[1])
        return 0 if weight is not None and np.ndim(weight) == 2 else None
    for k in (0, 1) if node.op_type in ("Add", "Mul") else (0,):
        other = constants.get(node.input[1 - k])
        if node.input[k] not in constants and other is not None and np.ndim(other) <= 1:
            return k
    return None


def _same_ops(chain: list[Any], first: list[Any], constants: Mapping[str, Array]) -> bool:
    """Whether two chains are the same ops: types, attributes, constant inputs' values."""
    return len(chain) == len(first) and all(
        a.op_type == b.op_type
        and [x.SerializeToString() for x in a.attribute]
        == [x.SerializeToString() for x in b.attribute]
        and all(
            (x in constants) == (y in constants)
            and (x not in constants or np.array_equal(constants[x], constants[y]))
            for x, y in zip(a.input, b.input, strict=True)
        )
        for a, b in zip(chain, first, strict=True)
    )
