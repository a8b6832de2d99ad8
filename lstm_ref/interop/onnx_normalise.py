"""ONNX import: a graph brought to the plain form in which :mod:`.onnx_cells` reads an LSTM
cell, for exporters that write the same cell otherwise (Keras 3's ``model.export(…,
format="onnx")`` on an input of fixed length writes every step of an LSTM layer so).

Three rewrites, each leaving what the graph computes unchanged:

==================================================  ============================================
written                                             rewritten
==================================================  ============================================
gate blocks cut by ``Slice`` at positions computed  the positions folded (``specialise``: every
from ``Shape`` (``Shape → Gather → Add → Div →      node of constants and known dimensions is a
Mul``)                                              constant)
``Cast`` to the type its input already has          its input, read directly (a Cast that
                                                    writes a graph output stays for it)
``Gather(Add(MatMul(S, W), b), t)``: the input      ``Add(MatMul(Gather(S, t), W), b)``: the
product hoisted over every step, one step read      step's own product (W a constant matrix, b
(the gathered axis not the last); without the       a constant vector); ``MatMul(Gather(S, t),
``Add`` when the layer has no biases                W)``
==================================================  ============================================

The rewritten graph is used only when it shows LSTM cells the file as written does not
(:func:`cells_visible`); node positions in messages stay those of the file's graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .onnx_cells import find_cells
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
    types = _types(plain)
    _skip_identity_casts(plain.graph, types)
    stands_for = _unhoist_products(plain.graph, constants_of(plain.graph), _ranks(plain))
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


def _types(model: Any) -> dict[str, int]:
    """Each tensor's element type (ONNX's enumeration), where known."""
    types = {t.name: t.data_type for t in model.graph.initializer}
    for value in _inferred(model):
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types[value.name] = value.type.tensor_type.elem_type
    return types


def _ranks(model: Any) -> dict[str, int]:
    """Each tensor's rank, where known."""
    ranks = {t.name: len(t.dims) for t in model.graph.initializer}
    for value in _inferred(model):
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            ranks[value.name] = len(value.type.tensor_type.shape.dim)
    return ranks


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
