"""ONNX import: the ``LSTM`` node a chain of cells is fused into (:mod:`.onnx_fuse` finds
and checks the chains; its module table says what each part of the node is).

One chain is one direction: forward when its cells read the steps 0, 1, …, T−1, reverse
when they read T−1, …, 1, 0 (Keras's go_backwards). A forward and a reverse chain over the
same steps of one tensor, with weights of the same shapes, are one bidirectional node (as
Keras's Bidirectional writes them). Each cell's h is ``Y`` at the step it read, in its
direction; when only the last cell's h of a chain is read (a network returning its final
state), it is read from ``Y_h`` instead, so the reader takes the layer's "last" as its
final state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..lstm import LSTMParams, reorder_gates
from .onnx_cells import Cell
from .onnx_graph import needed

Array = np.ndarray


@dataclass(frozen=True)
class Chain:
    """A chain of cells as one LSTM direction reads it."""

    cells: list[Cell]
    params: LSTMParams
    source: str  # the tensor S whose steps the cells read
    time_axis: int  # of S
    reverse: bool  # the cells read S's steps from the last


def pair_directions(chains: list[Chain]) -> list[list[Chain]]:
    """The chains grouped by fused node: a forward and a reverse chain over the same steps
    of one tensor with the same weight shapes make one bidirectional node (forward first,
    as Keras's Bidirectional writes them), every other chain a node of its own."""
    groups: list[list[Chain]] = []
    for chain in chains:
        pair = next(
            (
                group
                for group in groups
                if len(group) == 1
                and (group[0].source, group[0].time_axis) == (chain.source, chain.time_axis)
                and group[0].reverse != chain.reverse
                and len(group[0].cells) == len(chain.cells)
                and group[0].params.W.shape == chain.params.W.shape
            ),
            None,
        )
        if pair is None:
            groups.append([chain])
        else:
            pair.append(chain)
            pair.sort(key=lambda c: c.reverse)
    return groups


def read_final_states(
    fused: Any, output: str, chains: list[Chain], final_h: Mapping[str, str]
) -> None:
    """Each chain whose last h alone is read (no step before it): that h read from Y_h, as
    a network returning its final state (Keras's return_sequences=False) reads it."""
    wanted = {o for node in needed(fused, output)[0] for o in node.output}
    lasts = {c.cells[-1].h for c in chains if not wanted & {cell.h for cell in c.cells[:-1]}}
    for node in fused.node:
        if node.output[0] in lasts:  # Gather(Y at the last cell's step, its direction)
            node.input[0] = final_h[node.output[0]]


def lstm_nodes(
    chains: list[Chain],
    constants: Mapping[str, Array],
    producers: Mapping[str, Any],
    final_h: dict[str, str],
) -> tuple[list[Any], dict[str, Array]]:
    """The fused LSTM node of one or two chains (forward, reverse: module table), the nodes
    around it and their constants; ``final_h`` gets each chain's last h's Y_h."""
    from onnx import helper

    from .onnx import ONNX_ORDER

    first = chains[0].cells[0]
    H = first.layer.hidden_size
    p = f"{first.name}/fused_lstm"
    weights = [[reorder_gates(a, ONNX_ORDER, inverse=True) for a in c.params] for c in chains]
    arrays = {
        f"{p}/W": np.stack([W for W, _, _ in weights]),
        f"{p}/R": np.stack([R for _, R, _ in weights]),
        f"{p}/B": np.stack([np.concatenate([b, np.zeros_like(b)]) for _, _, b in weights]),
        f"{p}/state_shape": np.array([1, -1, H], np.int64),
    }
    nodes = []
    x = chains[0].source
    if chains[0].time_axis == 1:
        x = f"{p}/X"
        nodes.append(helper.make_node("Transpose", [chains[0].source], [x], x, perm=[1, 0, 2]))
    states = []
    for which in ("h", "c"):
        names = [getattr(c.cells[0], f"{which}_prev") for c in chains]
        if all(_is_zeros(name, constants, producers) for name in names):
            states.append("")
            continue
        parts = [f"{p}/initial_{which}_{d}" for d in range(len(chains))]
        for name, part in zip(names, parts, strict=True):
            nodes.append(helper.make_node("Reshape", [name, f"{p}/state_shape"], [part], part))
        states.append(f"{p}/initial_{which}")
        nodes.append(helper.make_node("Concat", parts, [states[-1]], states[-1], axis=0))
    Y, Y_h, Y_c = f"{p}/Y", f"{p}/Y_h", f"{p}/Y_c"
    inputs = [x, f"{p}/W", f"{p}/R", f"{p}/B", "", *states]
    direction = "reverse" if chains[0].reverse else "forward"
    direction = "bidirectional" if len(chains) == 2 else direction
    nodes.append(
        helper.make_node("LSTM", inputs, [Y, Y_h, Y_c], p, hidden_size=H, direction=direction)
    )
    T = len(chains[0].cells)
    for t in range(T):  # Y_t (D, B, H)
        arrays[f"{p}/step_{t}"] = np.array(t, np.int64)
        nodes.append(helper.make_node("Gather", [Y, f"{p}/step_{t}"], [f"{p}/Y_{t}"], axis=0))
    for d, chain in enumerate(chains):
        direction = f"{p}/direction_{d}"
        arrays[direction] = np.array(d, np.int64)
        for k, cell in enumerate(chain.cells):
            step = f"{p}/Y_{T - 1 - k if chain.reverse else k}"
            nodes.append(helper.make_node("Gather", [step, direction], [cell.h], axis=0))
        final_h[chain.cells[-1].h] = Y_h
        nodes.append(helper.make_node("Gather", [Y_c, direction], [chain.cells[-1].c], axis=0))
    return nodes, arrays


def _is_zeros(name: str, constants: Mapping[str, Array], producers: Mapping[str, Any]) -> bool:
    """Whether a cell's first state is zeros: left out (""), a constant, or ConstantOfShape
    of a zero (zeros of a shape computed at run time)."""
    if not name:
        return True
    if name in constants:
        return not np.any(constants[name])
    node = producers.get(name)
    if node is None or node.op_type != "ConstantOfShape":
        return False
    from onnx import numpy_helper

    value = [numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"]
    return not value or not np.any(value[0])
