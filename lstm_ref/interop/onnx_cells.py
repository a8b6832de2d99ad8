"""LSTM cells written out as ONNX ops, recognised (as OpenVINO's and TensorRT's LSTM
fusions recognise them).

A cell is found from its output ``h = o ⊙ tanh(c)`` back to its inputs:

==================================  ==============================================
pattern                             read as
==================================  ==============================================
``Mul(Sigmoid(·), Tanh(c))``        h = o ⊙ tanh(c); the Sigmoid is the output gate
``c = Add(Mul(Sigmoid, c_prev),``   c = f ⊙ c_prev + i ⊙ g: the Mul with a Tanh
``Mul(Sigmoid, Tanh))``             operand holds i and g, the other f and c_prev
each gate's input                   one of four equal blocks of one tensor z, by
                                    ``Split`` (4 outputs) or ``Slice`` on the last
                                    axis — in any order; or each gate its own
                                    sum (as z's terms below, the same two
                                    operands in all four: Keras with dropout)
``z = Add`` tree of                 ``MatMul(u, Wᵀ)``/``Gemm(u, W, transB)`` with a
                                    constant weight, and constant biases (each the
                                    same in every row)
one product                         x · Wᵀ: h_prev was a constant (a first step from
                                    zeros) and h_prev · Rᵀ was folded into the biases,
                                    as torch's dynamo exporter writes it; R reads as 0
                                    and h_prev as "" (the cell's step is exact, R is
                                    the next step's cell's to give)
the two products                    x · Wᵀ and h_prev · Rᵀ: h_prev · Rᵀ is the one
                                    whose weight is H wide; when C = H, the one whose
                                    operand is a state as c_prev is (both graph
                                    inputs, both ConstantOfShape, picked alike from
                                    one tensor, or an earlier cell's h)
==================================  ==============================================

The blocks' order gives the gate order, reordered to lstm_ref's i, f, g, o; the biases
are summed. Anything else is not a cell (no error: the caller lists what is found).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import LSTM
from ..lstm import LSTMParams, reorder_gates
from .onnx_ops import node_attributes, node_name

Array = np.ndarray


@dataclass(frozen=True)
class Cell:
    """One LSTM cell written out as ops: its tensors and the lstm_ref layer (one step)."""

    name: str  # the node that computes h
    x: str
    h_prev: str
    c_prev: str
    h: str
    c: str
    layer: LSTM


def find_cells(graph: Any, constants: Mapping[str, Array]) -> list[Cell]:
    """Every LSTM cell written out as ops in one graph (subgraphs not entered)."""
    producers = {o: n for n in graph.node for o in n.output if o}
    found = (_cell_at(n, producers, constants) for n in graph.node if n.op_type == "Mul")
    return [c for c in found if c is not None]


def _by_op(names: Any, producers: Mapping[str, Any], first: str, second: str) -> Any:
    """(node of op ``first``, node of op ``second``) producing the two names, or None."""
    nodes: list[Any] = [producers.get(n) for n in names]
    if len(nodes) != 2 or any(n is None for n in nodes):
        return None
    for a, b in (nodes, nodes[::-1]):
        if a.op_type == first and b.op_type == second:
            return a, b
    return None


def _cell_at(mul: Any, producers: Mapping[str, Any], constants: Mapping[str, Array]) -> Cell | None:
    out_gate = _by_op(mul.input, producers, "Sigmoid", "Tanh")
    if out_gate is None:
        return None
    o, tanh_c = out_gate
    update = producers.get(tanh_c.input[0])
    if update is None or update.op_type != "Add":
        return None
    muls: list[Any] = [producers.get(n) for n in update.input]
    if any(m is None or m.op_type != "Mul" for m in muls):
        return None
    for keep, write in (muls, muls[::-1]):
        ig = _by_op(write.input, producers, "Sigmoid", "Tanh")
        f_side = [
            n for n in keep.input if (p := producers.get(n)) is not None and p.op_type == "Sigmoid"
        ]
        if ig is None or len(f_side) != 1:
            continue
        c_prev = next(n for n in keep.input if n != f_side[0])
        gates = {"i": ig[0], "f": producers[f_side[0]], "g": ig[1], "o": o}
        return _read_gates(mul, gates, c_prev, tanh_c.input[0], producers, constants)
    return None


def _block(
    name: str, producers: Mapping[str, Any], constants: Mapping[str, Array]
) -> tuple[str, int] | None:
    """(z, k): ``name`` is the k-th of four blocks of z along its last axis."""
    node = producers.get(name)
    if node is None:
        return None
    attrs = node_attributes(node)
    if (
        node.op_type == "Split"
        and len([o for o in node.output]) == 4
        and attrs.get("axis", 0) in (1, -1)
    ):
        return node.input[0], list(node.output).index(name)
    if node.op_type == "Slice" and all(n in constants for n in node.input[1:4]):
        starts, ends, axes = (np.asarray(constants[n]).reshape(-1) for n in node.input[1:4])
        steps = constants.get(node.input[4]) if len(node.input) > 4 and node.input[4] else None
        if (
            len(starts) == 1
            and axes[0] in (1, -1)
            and (steps is None or int(np.asarray(steps).reshape(-1)[0]) == 1)
        ):
            width = int(ends[0] - starts[0])
            if width > 0 and starts[0] % width == 0 and starts[0] // width < 4:
                return node.input[0], int(starts[0] // width)
    return None


def _terms(
    name: str, producers: Mapping[str, Any], constants: Mapping[str, Array]
) -> list[tuple[str | None, Array]] | None:
    """z as a sum: (operand, W (4H, K)) per product, (None, bias) per constant."""
    if name in constants:
        bias = _one_row(constants[name])
        return None if bias is None else [(None, bias)]
    node = producers.get(name)
    if node is None:
        return None
    if node.op_type == "Add":
        parts = [_terms(n, producers, constants) for n in node.input]
        return None if any(p is None for p in parts) else [t for p in parts for t in p]  # type: ignore[union-attr]
    if node.op_type == "MatMul" and node.input[1] in constants:
        return [(node.input[0], np.asarray(constants[node.input[1]], np.float64).T)]
    if node.op_type == "Gemm" and node.input[1] in constants:
        attrs = node_attributes(node)
        if attrs.get("transA", 0):
            return None
        w = np.asarray(constants[node.input[1]], np.float64)
        terms: list[tuple[str | None, Array]] = [
            (node.input[0], attrs.get("alpha", 1.0) * (w if attrs.get("transB", 0) else w.T))
        ]
        if len(node.input) > 2 and node.input[2]:
            bias = _one_row(constants[node.input[2]]) if node.input[2] in constants else None
            if bias is None:
                return None
            terms.append((None, attrs.get("beta", 1.0) * bias))
        return terms
    return None


def _one_row(a: Array) -> Array | None:
    """A constant term of z as one row (the same in every row of a batch), or None."""
    a = np.asarray(a, np.float64)
    rows = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
    return rows[0] if np.array_equal(rows, np.broadcast_to(rows[:1], rows.shape)) else None


def _read_gates(
    mul: Any,
    gates: dict[str, Any],
    c_prev: str,
    c: str,
    producers: Mapping[str, Any],
    constants: Mapping[str, Array],
) -> Cell | None:
    read = _blocks(gates, c_prev, producers, constants) or _per_gate(
        gates, c_prev, producers, constants
    )
    if read is None:
        return None
    x, h_prev, params = read
    return Cell(
        node_name(mul), x, h_prev, c_prev, mul.output[0], c, LSTM(params, name=node_name(mul))
    )


def _blocks(
    gates: dict[str, Any], c_prev: str, producers: Mapping[str, Any], constants: Mapping[str, Array]
) -> tuple[str, str, LSTMParams] | None:
    """(x, h_prev, the weights) when the gates read four blocks of one z (module table)."""
    blocks = {g: _block(node.input[0], producers, constants) for g, node in gates.items()}
    if any(b is None for b in blocks.values()):
        return None
    sources = {b[0] for b in blocks.values()}  # type: ignore[index]
    order_of = {b[1]: g for g, b in blocks.items()}  # type: ignore[index]
    if len(sources) != 1 or sorted(order_of) != [0, 1, 2, 3]:
        return None
    terms = _terms(sources.pop(), producers, constants)
    if terms is None:
        return None
    products = [(u, w) for u, w in terms if u is not None]
    biases = [w for u, w in terms if u is None]
    if len(products) not in (1, 2) or len({w.shape[0] for _, w in products}) != 1:
        return None
    four_h = products[0][1].shape[0]
    H = four_h // 4
    if len(products) == 1:  # h_prev a constant, h_prev · Rᵀ folded into the biases
        (x, W), (h_prev, R) = products[0], ("", np.zeros((four_h, H)))
    else:
        recurrent = _recurrent(products, H, c_prev, producers)
        if recurrent is None:
            return None
        (h_prev, R), (x, W) = products[recurrent], products[1 - recurrent]
    b = np.zeros(four_h)
    for bias in biases:
        b = b + np.broadcast_to(bias, (four_h,))
    order = "".join(order_of[k] for k in range(4))
    return x, h_prev, LSTMParams(*(reorder_gates(a, order) for a in (W, R, b)))


def _per_gate(
    gates: dict[str, Any], c_prev: str, producers: Mapping[str, Any], constants: Mapping[str, Array]
) -> tuple[str, str, LSTMParams] | None:
    """(x, h_prev, the weights) when each gate reads its own sum x · W_gᵀ + h_prev · R_gᵀ
    + b_g (as Keras writes an LSTM with dropout), the same x and h_prev in all four."""
    read = []
    for gate in "ifgo":
        terms = _terms(gates[gate].input[0], producers, constants)
        products = [(u, w) for u, w in terms or [] if u is not None]
        if len(products) != 2 or len({w.shape[0] for _, w in products}) != 1:
            return None
        H = products[0][1].shape[0]
        recurrent = _recurrent(products, H, c_prev, producers)
        if recurrent is None:
            return None
        bias = sum((np.broadcast_to(w, (H,)) for u, w in terms or [] if u is None), np.zeros(H))
        read.append((products[1 - recurrent], products[recurrent], bias))
    if len({(x, h) for (x, _), (h, _), _ in read}) != 1:
        return None
    (x, _), (h_prev, _), _ = read[0]
    W, R = (np.concatenate([part[k][1] for part in read]) for k in (0, 1))
    return x, h_prev, LSTMParams(W, R, np.concatenate([b for _, _, b in read]))


def _recurrent(
    products: list[tuple[Any, Array]], H: int, c_prev: str, producers: Mapping[str, Any]
) -> int | None:
    """Which product is h_prev · Rᵀ (module table), or None if that cannot be told."""
    square = [k for k, (_, w) in enumerate(products) if w.shape[1] == H]
    if len(square) == 1:
        return square[0]
    c_source = producers.get(c_prev)

    def like_c(name: str) -> bool:
        """``name`` is a state as c_prev is: both inputs of the graph, both picked from
        the same tensor by the same op, both made by ConstantOfShape (zeros sized at run
        time), or ``name`` an earlier cell's o ⊙ tanh(c)."""
        p = producers.get(name)
        if p is None or c_source is None:
            return p is None and c_source is None
        if p.op_type == "Mul" and _by_op(p.input, producers, "Sigmoid", "Tanh") is not None:
            return True
        if p.op_type == c_source.op_type == "ConstantOfShape":  # zeros of the batch's size
            return True
        return p.op_type == c_source.op_type and list(p.input[:1]) == list(c_source.input[:1])

    matching = [k for k in square if like_c(products[k][0])]
    return matching[0] if len(matching) == 1 else None


def refuse_gru_blend(nodes: list[Any], constants: Mapping[str, Array], where: str) -> None:
    """An InputError if, where no LSTM cell is found, one of ``nodes`` blends as a GRU's
    update does: ``Mul(Sub(1, Sigmoid(·)), Tanh(·))``, (1 − z) ⊙ n."""
    producers = {o: n for n in nodes for o in n.output if o}
    for node in nodes:
        pair = _by_op(node.input, producers, "Sub", "Tanh") if node.op_type == "Mul" else None
        if pair is None:
            continue
        one, z = pair[0].input
        if (
            one in constants
            and np.all(np.asarray(constants[one]) == 1)
            and (p := producers.get(z)) is not None
            and p.op_type == "Sigmoid"
        ):
            raise InputError(
                f"{where}: no LSTM cell found, and node {node_name(node)!r} computes "
                "(1 − z) ⊙ tanh(·) with z a Sigmoid, as a GRU blends its state (a GRU?); "
                "lstm_ref reads LSTMs only"
            )
