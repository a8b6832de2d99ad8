"""ONNX import: the ``LSTM`` node a chain of cells is fused into (:mod:`.onnx_fuse` finds
and checks the chains; its module table says what each part of the node is).

One chain is one direction: forward when its cells read the steps 0, 1, …, T−1, reverse
when they read T−1, …, 1, 0 (Keras's go_backwards). A forward and a reverse chain over the
same steps of one tensor, with weights of the same shapes, are one bidirectional node (as
Keras's Bidirectional writes them). Each cell's h is step t of its direction's ``Y``
(``Gather(Y, d, axis=1)``: (T, B, H)), t the step it read — so the cells of a loop stacked
on this one read steps of one tensor; when only the last cell's h of a chain is read (a
network returning its final state), it is read from ``Y_h`` instead, so the reader takes
the layer's "last" as its final state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..lstm import LSTMParams
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


def read_final_states(
    fused: Any, output: str, chains: list[Chain], final_h: Mapping[str, tuple[str, str]]
) -> None:
    """Each chain whose last h alone is read (no step before it): that h read from Y_h, as
    a network returning its final state (Keras's return_sequences=False) reads it."""
    wanted = {o for node in needed(fused, output)[0] for o in node.output}
    lasts = {c.cells[-1].h for c in chains if not wanted & {cell.h for cell in c.cells[:-1]}}
    for node in fused.node:
        if node.output[0] in lasts:  # Gather(one direction's steps, the last cell's step)
            Y_h, which = final_h[node.output[0]]
            node.input[0], node.input[1] = Y_h, which


def lstm_nodes(
    chains: list[Chain],
    constants: Mapping[str, Array],
    producers: Mapping[str, Any],
    final_h: dict[str, tuple[str, str]],
) -> tuple[list[Any], dict[str, Array]]:
    """The fused LSTM node of one chain or of a forward and a reverse one (module table),
    the nodes around it and their constants; ``final_h`` gets each chain's last h's
    (Y_h, direction) to be read from when no other step is."""
    from onnx import helper

    from .onnx import onnx_weights

    H, T = chains[0].cells[0].layer.hidden_size, len(chains[0].cells)
    p = prefix(chains[0].cells)
    W, R, B = onnx_weights([c.params for c in chains])
    arrays = {
        f"{p}/W": W,
        f"{p}/R": R,
        f"{p}/B": B,
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
    for t in range(T):
        arrays[f"{p}/step_{t}"] = np.array(t, np.int64)
    for d, chain in enumerate(chains):
        which, steps = f"{p}/direction_{d}", f"{p}/steps_{d}"  # Y of one direction (T, B, H)
        arrays[which] = np.array(d, np.int64)
        nodes.append(helper.make_node("Gather", [Y, which], [steps], steps, axis=1))
        for k, cell in enumerate(chain.cells):
            t = T - 1 - k if chain.reverse else k
            step = f"{p}/step_{t}"
            nodes.append(helper.make_node("Gather", [steps, step], [cell.h], f"{p}/h_{d}_{t}"))
        final_h[chain.cells[-1].h] = (Y_h, which)
        c = chain.cells[-1].c
        nodes.append(helper.make_node("Gather", [Y_c, which], [c], f"{p}/c_{d}", axis=0))
    return nodes, arrays


def prefix(cells: list[Cell]) -> str:
    """The names of the fused node and those around it begin so."""
    return f"{cells[0].name}/fused_lstm"


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
