"""ONNX import: a loop over one LSTM cell, unrolled into ops, fused into one ``LSTM`` node.

``torch.onnx.export`` unrolls ``for t in range(T): h, c = cell(x[t], (h, c))`` over an
``nn.LSTMCell`` into T cells written out as ops (:mod:`.onnx_cells` recognises each). Before
:func:`~lstm_ref.interop.onnx.from_onnx` follows the graph, such a chain of cells is
rewritten into the ONNX ``LSTM`` node it computes (as OpenVINO's fusion passes rewrite
one), so that whatever reads the cells' outputs is read as it is after any LSTM node:

===============================================  ============================================
the cells                                        the fused node
===============================================  ============================================
cell k's h_prev, c_prev are cell k−1's h, c      one forward ``LSTM`` (layout 0)
the same W, R and b in every cell (values         W, R, B (ONNX's blocks i, o, f, c); B's
compared); a first cell from a constant h_prev    recurrent half 0. R is the next cell's
whose h_prev · Rᵀ was folded into its bias (R     (the first cell reads as it computes: its
reads 0) must have the others' bias               h_prev · Rᵀ is 0)
cell k's x: step k of one 3-D tensor S, the       X = S (time-major), or S transposed
nearest every step is moved from by ops that      ``(1, 0, 2)`` when its time axis is 1
only move elements (Gather, Slice, Squeeze,
Split, Transpose, …; checked by running them on
element ids); steps 0, 1, …, T−1 of S's T, in
order
the first cell's h_prev, c_prev: not computed     initial_h, initial_c (reshaped (1, B, H));
from S's values                                   a constant of zeros, or ``""``: left out
cell k's h; the last cell's c                     step k of Y reshaped (T, B, H); Y_c
                                                  reshaped (B, H)
===============================================  ============================================

Chains are fused one at a time, the first in the graph first: in a loop over stacked cells
the second cell's x is then step k of the first's fused Y, and the two become stacked LSTM
nodes. The cells' own nodes stay in the graph, unread. Anything else about a chain is
refused, naming the loop and what was found (cells with different weights, an x that is not
a step of one tensor, steps skipped or reordered, fewer steps than the tensor holds, a state
not carried from the step before, a cell state read before the last step).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError, LstmRefError
from ..lstm import LSTMParams, reorder_gates
from .onnx_cells import Cell, find_cells
from .onnx_graph import AS_IS, MEASURES, MOVES, dims, needed
from .onnx_ops import run_node
from .onnx_specialise import constants_of

Array = np.ndarray


def fuse_cell_loops(model: Any, output: str, opset: int, where: str) -> tuple[Any, dict[str, int]]:
    """The main graph with every chain of cells ``output`` needs fused into one ``LSTM``
    node (module table), and each node's position in the file's graph (a fused node's:
    that of its first cell's h). Chains are fused one at a time, first first, so a loop
    over stacked cells (the second reading the first's h) becomes stacked LSTM nodes.

    Parameters
    ----------
    model : onnx.ModelProto
        Left unchanged.
    output : str
        The graph output to be read.
    opset : int
        The model's version of the default domain.
    where : str
        The file, for messages.
    """
    graph = model.graph
    positions = {node.output[0]: k for k, node in enumerate(graph.node)}
    chains: list[list[Cell]] = []
    done: set[str] = set()  # the fused cells' h, as named before and after
    while True:
        wanted = needed(graph, output)[0]
        made = {o for node in wanted for o in node.output}
        constants = constants_of(graph)
        cells = [
            c
            for c in find_cells(graph, constants)
            if (c.h in made or c.c in made) and c.h not in done
        ]
        if not cells:
            break
        chain = _chains(cells, where)[0]
        graph, nodes = _fuse(chain, graph, model, constants, opset, where)
        at = positions[chain[0].h]
        positions.update((n.output[0], at) for n in nodes)
        done.update(name for c in chain for name in (c.h, f"{c.h}/unfused"))
        chains.append(chain)
    if not chains and not any(node.op_type == "LSTM" for node in wanted):
        _refuse_first_steps(model, output, where)
    _check_unread(graph, output, chains, where)
    return graph, positions


def _fuse(
    chain: list[Cell],
    graph: Any,
    model: Any,
    constants: Mapping[str, Array],
    opset: int,
    where: str,
) -> tuple[Any, list[Any]]:
    """``graph`` with ``chain`` fused, and the new nodes: put before its first cell's h,
    each cell's h and the last c now theirs (the cells' own outputs renamed, unread)."""
    import onnx

    params = _weights(chain, where)
    producers = {o: n for n in graph.node for o in n.output if o}
    source, time_axis = _source(chain, graph, model, producers, constants, opset, where)
    nodes, arrays = _lstm_nodes(chain, params, source, time_axis, constants, producers)
    renamed = {name: f"{name}/unfused" for name in [*(c.h for c in chain), chain[-1].c]}
    fused = onnx.GraphProto()
    fused.CopyFrom(graph)
    del fused.node[:]
    for node in graph.node:
        if node is producers[chain[0].h]:
            fused.node.extend(nodes)
        copy = fused.node.add()
        copy.CopyFrom(node)
        for j, name in enumerate(copy.output):
            copy.output[j] = renamed.get(name, name)
    fused.initializer.extend(onnx.numpy_helper.from_array(a, n) for n, a in arrays.items())
    return fused, nodes


def _chains(cells: list[Cell], where: str) -> list[list[Cell]]:
    """The cells as chains, each cell continuing from the h and c of the one before."""
    by_c = {c.c: c for c in cells}
    after: dict[str, Cell] = {}
    for cell in cells:
        before = by_c.get(cell.c_prev)
        if before is None:
            continue
        if cell.h_prev != before.h:
            raise InputError(
                f"{where}: the LSTM cell {cell.name!r} reads c from cell {before.name!r} but "
                f"h from {cell.h_prev!r}; a loop over one cell reads both from the step before"
            )
        if before.name in after:
            raise InputError(
                f"{where}: the LSTM cells {after[before.name].name!r} and {cell.name!r} both "
                f"continue from cell {before.name!r}; a loop over one cell is one chain"
            )
        after[before.name] = cell
    chains = []
    for cell in cells:
        if cell.c_prev in by_c:
            continue
        chain = [cell]
        while chain[-1].name in after:
            chain.append(after[chain[-1].name])
        chains.append(chain)
    return chains


def _weights(chain: list[Cell], where: str) -> LSTMParams:
    """The one W, R, b of every cell of ``chain`` (module table), or an InputError."""
    full = [c for c in chain if c.h_prev] or chain  # a first cell with h_prev folded: R = 0
    params = full[0].layer.params
    for cell in chain:
        mine = cell.layer.params
        differ = [
            what
            for what, a, b in (
                ("W", mine.W, params.W),
                ("R", mine.R, params.R),
                ("b", mine.b, params.b),
            )
            if (cell.h_prev or what != "R") and not np.array_equal(a, b)
        ]
        if differ:
            folded = "" if cell.h_prev else " (its h_prev · Rᵀ folded into b: a non-zero h_prev)"
            raise InputError(
                f"{where}: the LSTM cells {full[0].name!r} and {cell.name!r} have different "
                f"{' and '.join(differ)}{folded}: each step its own cell is not one LSTM; "
                "lstm_ref reads a loop over one cell"
            )
    return params


def _source(
    chain: list[Cell],
    graph: Any,
    model: Any,
    producers: Mapping[str, Any],
    constants: Mapping[str, Array],
    opset: int,
    where: str,
) -> tuple[str, int]:
    """The tensor S (steps, rows, features in either order of the first two) whose step k
    cell k reads, and which axis of S is time."""
    above = [_moved_from(c.x, producers) for c in chain]
    common = [t for t in above[0] if all(t in a for a in above[1:])]
    names = _named(chain)
    if not common:
        roots = list(dict.fromkeys(a[-1] if a else c.x for a, c in zip(above, chain, strict=True)))
        shown = ", ".join(repr(r) for r in roots[:3]) + (", …" if len(roots) > 3 else "")
        raise InputError(
            f"{where}: {names} reads x from {shown}, not steps of one tensor; a loop over one "
            "cell reads steps of one tensor (its x[t] moved by Gather, Slice, Squeeze, Split, "
            "Transpose, …)"
        )
    # the nearest tensor all steps come from (a fused loop's steps, not its Y); a lone
    # cell's step comes from the farthest
    source = common[0] if len(chain) > 1 else common[-1]
    for which, state in (("h_prev", chain[0].h_prev), ("c_prev", chain[0].c_prev)):
        if _computed_from(state, source, producers):
            raise InputError(
                f"{where}: {names} starts from {which} {state!r}, computed from {source!r} by "
                "ops that are not a cell of the loop; a loop over one cell starts from graph "
                "inputs or zeros"
            )
    shape = _shape_of(source, graph, model)
    if shape is None or len(shape) != 3 or not isinstance(shape[2], int):
        raise InputError(
            f"{where}: {names} reads steps of {source!r} of shape {shape}; "
            "expected 3 axes (steps and rows in either order, then the features)"
        )
    sizes = [d if isinstance(d, int) and d > 0 else len(chain) + 2 + k for k, d in enumerate(shape)]
    ids = np.arange(int(np.prod(sizes))).reshape(sizes)
    steps = [_step(c, source, ids, producers, constants, opset, where) for c in chain]
    axes = {a for a, _ in steps}
    if len(axes) != 1:
        raise InputError(
            f"{where}: {names} reads {source!r} along different axes "
            f"{sorted(axes)}; a loop over one cell reads one axis, time"
        )
    (axis,) = axes
    order = [k for _, k in steps]
    if order != list(range(len(chain))):
        raise InputError(
            f"{where}: {names} reads steps {[k + 1 for k in order]} of "
            f"{source!r}; an LSTM reads steps 1, 2, …, {len(chain)} in order, none skipped"
        )
    if shape[axis] != len(chain):
        length = shape[axis] if isinstance(shape[axis], int) else "any number of"
        raise InputError(
            f"{where}: {names} reads steps 1 to {len(chain)} of {source!r}, whose "
            f"time axis {axis} holds {length} steps: the graph computes the first "
            f"{len(chain)} step(s) only and ignores the rest, while lstm_ref's LSTM reads "
            "every step; export the loop with as many steps as the input has (a fixed time axis)"
        )
    return source, axis


def _named(chain: list[Cell]) -> str:
    """The chain for a message: how many cells, the first and the last."""
    if len(chain) == 1:
        return f"the loop of one LSTM cell ({chain[0].name!r})"
    return f"the loop of {len(chain)} LSTM cells ({chain[0].name!r} … {chain[-1].name!r})"


def _moved_from(name: str, producers: Mapping[str, Any]) -> list[str]:
    """The tensors ``name`` is moved from by ops that only move elements (their first
    input), the nearest first."""
    tensors = []
    node = producers.get(name)
    while node is not None and node.op_type in MOVES + AS_IS:
        tensors.append(node.input[0])
        node = producers.get(node.input[0])
    return tensors


def _computed_from(name: str, source: str, producers: Mapping[str, Any]) -> bool:
    """Whether ``name`` is computed from the values of ``source`` (not its shape alone)."""
    seen, todo = set(), [name]
    while todo:
        name = todo.pop()
        if name == source:
            return True
        node = producers.get(name)
        if node is not None and name not in seen and node.op_type not in MEASURES:
            seen.add(name)
            todo.extend(i for i in node.input if i)
    return False


def _shape_of(name: str, graph: Any, model: Any) -> list[int | str] | None:
    """The dimensions of a graph input, or of a tensor as ONNX's shape inference gives."""
    import onnx

    for value in graph.input:
        if value.name == name:
            return dims(value)
    current = onnx.ModelProto()
    current.CopyFrom(model)
    current.graph.CopyFrom(graph)
    inferred = onnx.shape_inference.infer_shapes(current)
    for value in inferred.graph.value_info:
        if value.name == name and value.type.tensor_type.HasField("shape"):
            return dims(value)
    return None


def _step(
    cell: Cell,
    source: str,
    ids: Array,
    producers: Mapping[str, Any],
    constants: Mapping[str, Array],
    opset: int,
    where: str,
) -> tuple[int, int]:
    """(axis, k): the cell's x is step k of ``source`` along that axis (0 or 1), found by
    running the ops between them on element ids."""
    known: dict[str, Array] = {**constants, source: ids}

    def value(name: str) -> Array:
        if name not in known:
            node = producers[name]  # a KeyError: another graph input
            outs = run_node(node, [value(i) if i else None for i in node.input], opset)
            known.update(zip(node.output, outs, strict=False))
        return known[name]

    try:
        x = np.asarray(value(cell.x))
    except (KeyError, IndexError, ValueError, LstmRefError):
        x = None
    if x is not None and x.ndim == 2 and x.size:
        place = np.unravel_index(int(x.flat[0]), ids.shape)
        for axis in (0, 1):
            if np.array_equal(x, np.take(ids, place[axis], axis=axis)):
                return axis, int(place[axis])
    raise InputError(
        f"{where}: the LSTM cell {cell.name!r} reads x {cell.x!r}, which is not one step "
        f"(rows × features) of {source!r}; a loop over one cell reads steps of one tensor"
    )


def _lstm_nodes(
    chain: list[Cell],
    params: LSTMParams,
    source: str,
    time_axis: int,
    constants: Mapping[str, Array],
    producers: Mapping[str, Any],
) -> tuple[list[Any], dict[str, Array]]:
    """The fused LSTM node, the nodes around it and their constants (module table)."""
    from onnx import helper

    from .onnx import ONNX_ORDER

    H, T = chain[0].layer.hidden_size, len(chain)
    p = _prefix(chain)
    W, R, b = (reorder_gates(a, ONNX_ORDER, inverse=True) for a in params)
    arrays = {
        f"{p}/W": W[None],
        f"{p}/R": R[None],
        f"{p}/B": np.concatenate([b, np.zeros_like(b)])[None],
        f"{p}/state_shape": np.array([1, -1, H], np.int64),
        f"{p}/row_shape": np.array([-1, H], np.int64),
        f"{p}/steps_shape": np.array([T, -1, H], np.int64),
    }
    nodes = []
    x = source
    if time_axis == 1:
        x = f"{p}/X"
        nodes.append(helper.make_node("Transpose", [source], [x], f"{p}/X", perm=[1, 0, 2]))
    states = []
    for which, name in (("h", chain[0].h_prev), ("c", chain[0].c_prev)):
        if _is_zeros(name, constants, producers):
            states.append("")
            continue
        states.append(f"{p}/initial_{which}")
        nodes.append(
            helper.make_node("Reshape", [name, f"{p}/state_shape"], [states[-1]], states[-1])
        )
    Y, Y_c, steps = f"{p}/Y", f"{p}/Y_c", f"{p}/steps"  # steps: Y as (T, B, H)
    inputs = [x, f"{p}/W", f"{p}/R", f"{p}/B", "", *states]
    nodes.append(helper.make_node("LSTM", inputs, [Y, "", Y_c], p, hidden_size=H))
    nodes.append(helper.make_node("Reshape", [Y, f"{p}/steps_shape"], [steps], steps))
    for k, cell in enumerate(chain):
        arrays[f"{p}/step_{k}"] = np.array(k, np.int64)
        nodes.append(helper.make_node("Gather", [steps, f"{p}/step_{k}"], [cell.h], f"{p}/h_{k}"))
    nodes.append(helper.make_node("Reshape", [Y_c, f"{p}/row_shape"], [chain[-1].c], f"{p}/c"))
    return nodes, arrays


def _prefix(chain: list[Cell]) -> str:
    """The names of the fused node and those around it begin so."""
    return f"{chain[0].name}/fused_lstm"


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


def _check_unread(fused: Any, output: str, chains: list[list[Cell]], where: str) -> None:
    """An InputError if ``output`` still needs a cell's own computation: a cell state c
    read before the loop's last step, which the fused node does not return."""
    left = {o for node in needed(fused, output)[0] for o in node.output}
    for chain in chains:
        for cell in reversed(chain[:-1]):  # the last one read (it reads those before)
            if cell.c in left:
                raise InputError(
                    f"{where}: the graph reads the cell state c of the LSTM cell {cell.name!r}, "
                    "before the loop's last step; lstm_ref's LSTM returns h at every step and "
                    "c after the last only"
                )


def _refuse_first_steps(model: Any, output: str, where: str) -> None:
    """An InputError if ``output``, computed with no LSTM node from one input X, reads only
    X's first steps while X's time axis may hold any number — found by running the graph
    (:class:`~.onnx_runner.ReferenceSession`) with the later steps changed. Keras 3's ONNX
    export writes an LSTM over a time axis of unknown length so: its first step only."""
    from .onnx_runner import ReferenceSession

    inputs = [i for i in model.graph.input if i.name not in constants_of(model.graph)]
    if len(inputs) != 1 or len(dims(inputs[0])) != 3:
        return
    x, shape = inputs[0].name, dims(inputs[0])
    varying = [a for a, d in enumerate(shape[:2]) if not (isinstance(d, int) and d > 0)]
    try:
        session = ReferenceSession(model, dtype=np.float64)
        read = {a: _steps_read(session, x, output, shape, a) for a in varying}
    except (LstmRefError, ValueError, IndexError):  # the walk's own refusal says why
        return
    for axis, k in read.items():
        if k < _PROBE_STEPS:
            first = "its first step" if k == 1 else f"its first {k} steps"
            raise InputError(
                f"{where}: output {output!r} reads only {first} of input {x!r}, whose time "
                f"axis {axis} holds any number of steps (changing the later steps changes "
                "nothing), and no LSTM node: an LSTM written out as ops in it runs over "
                "those steps only (Keras 3's ONNX export writes one so over a time axis of "
                "unknown length), while lstm_ref's LSTM reads every step; read the model's "
                "own file (.keras) instead"
            )


_PROBE_STEPS = 6


def _steps_read(session: Any, x: str, output: str, shape: list[int | str], axis: int) -> int:
    """How many first steps along ``axis`` of X ``output`` reads: the fewest k for which
    new values at the steps after k change nothing (``_PROBE_STEPS`` if every step counts)."""
    sizes = [
        _PROBE_STEPS if k == axis else d if isinstance(d, int) and d > 0 else 2
        for k, d in enumerate(shape)
    ]
    rng = np.random.default_rng(0)
    data = rng.normal(size=sizes)
    reference = session.run([output], {x: data})[0]
    for k in range(1, _PROBE_STEPS):
        later = np.moveaxis(data.copy(), axis, 0)
        later[k:] = rng.normal(size=later[k:].shape)
        if np.array_equal(session.run([output], {x: np.moveaxis(later, 0, axis)})[0], reference):
            return k
    return _PROBE_STEPS
