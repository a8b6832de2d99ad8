"""ONNX import: a loop over one LSTM cell, unrolled into ops, fused into one ``LSTM`` node.

``torch.onnx.export`` unrolls ``for t in range(T): h, c = cell(x[t], (h, c))`` over an
``nn.LSTMCell`` into T cells written out as ops (:mod:`.onnx_cells` recognises each), and
Keras 3's ONNX export so writes an LSTM layer on an input of fixed length (its cells first
brought to the form :mod:`.onnx_cells` reads: :mod:`.onnx_normalise`). Before
:func:`~lstm_ref.interop.onnx.from_onnx` follows the graph, such a chain of cells is
rewritten into the ONNX ``LSTM`` node it computes (as OpenVINO's fusion passes rewrite
one), so that whatever reads the cells' outputs is read as it is after any LSTM node:

===============================================  ============================================
the cells                                        the fused node
===============================================  ============================================
cell k's h_prev, c_prev are cell k−1's h, c      one ``LSTM`` direction (layout 0)
the same W, R and b in every cell (values         W, R, B (ONNX's blocks i, o, f, c); B's
compared); a first cell from a constant h_prev    recurrent half 0. R is the next cell's
whose h_prev · Rᵀ was folded into its bias (R     (the first cell reads as it computes: its
reads 0) must have the others' bias               h_prev · Rᵀ is 0)
cell k's x: step k of one 3-D tensor S, the       X = S (time-major), or S transposed
farthest every step is moved from by ops that     ``(1, 0, 2)`` when its time axis is 1;
only move elements (Gather, Slice, Squeeze,       direction forward
Split, Transpose, …; checked by running them on
element ids); steps 0, 1, …, T−1 of S's T, in
order
… steps T−1, …, 1, 0 (Keras's go_backwards)      direction reverse
a forward and a reverse chain over the same S     one node, direction bidirectional (Keras's
with weights of the same shapes                   Bidirectional)
the first cell's h_prev, c_prev: not computed     initial_h, initial_c (reshaped (1, B, H),
from S's values                                   the directions concatenated); a constant
                                                  of zeros, or ``""``: left out
cell k's h; the last cell's c                     Y of its direction (T, B, H) at the step
                                                  it read; Y_c of its direction
the last cell's h when no other cell's h is read  Y_h of its direction (the final state, as
                                                  Keras's return_sequences=False reads it)
===============================================  ============================================

Chains are fused one at a time (with their partner in the other direction), the first in
the graph first: in a loop over stacked cells the second cell's x is then step k of the
first's fused Y, and the two become stacked LSTM nodes. The node itself is written by
:mod:`.onnx_fuse_node`. The cells' own nodes stay in the graph, unread. Anything else about
a chain is refused, naming the loop and what was found (cells with different weights, an x
that is not a step of one tensor, steps skipped or out of order, fewer steps than the tensor
holds, a state not carried from the step before, a cell state read before the last step, a
state read through a ``Where`` — a step some rows skip, as Keras's Masking is written).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError, LstmRefError
from ..lstm import LSTMParams
from .onnx_cells import Cell, find_cells, refuse_gru_blend
from .onnx_fuse_node import Chain, lstm_nodes, read_final_states
from .onnx_graph import AS_IS, MEASURES, MOVES, dims, needed
from .onnx_normalise import cells_visible
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
    model, positions = cells_visible(model)  # Keras's cells: as onnx_cells reads them
    graph = model.graph
    chains: list[Chain] = []
    final_h: dict[str, tuple[str, str]] = {}  # each chain's last h: its Y_h, direction
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
        producers = {o: n for n in graph.node for o in n.output if o}
        _refuse_kept_states(cells, producers, where)
        group = _directions(_chains(cells, where), graph, model, producers, constants, opset, where)
        graph, nodes = _fuse(group, graph, producers, constants, final_h)
        at = min(positions[chain.cells[0].h] for chain in group)
        positions.update((n.output[0], at) for n in nodes)
        done.update(n for c in group for cell in c.cells for n in (cell.h, f"{cell.h}/unfused"))
        chains += group
    if not chains and not any(node.op_type == "LSTM" for node in wanted):
        refuse_gru_blend(wanted, constants_of(graph), where)
        _refuse_first_steps(model, output, where)
    _check_unread(graph, output, [chain.cells for chain in chains], where)
    read_final_states(graph, output, chains, final_h)
    return graph, positions


def _directions(
    chains: list[list[Cell]],
    graph: Any,
    model: Any,
    producers: Mapping[str, Any],
    constants: Mapping[str, Array],
    opset: int,
    where: str,
) -> list[Chain]:
    """The first of ``chains``, read (module table), and the one chain in the other
    direction over the same steps with weights of the same shapes, if any (forward first:
    one bidirectional node, as Keras's Bidirectional writes one)."""

    def read(cells: list[Cell]) -> Chain:
        params = _weights(cells, where)
        found = _source(cells, graph, model, producers, constants, opset, where)
        return Chain(cells, params, *found)

    first = read(chains[0])
    for other in chains[1:]:
        if len(other) != len(first.cells) or not all(
            first.source in _moved_from(c.x, producers) for c in other
        ):
            continue
        partner = read(other)
        if (
            (partner.source, partner.time_axis) == (first.source, first.time_axis)
            and partner.reverse != first.reverse
            and partner.params.W.shape == first.params.W.shape
        ):
            return sorted([first, partner], key=lambda c: c.reverse)
    return [first]


def _fuse(
    chains: list[Chain],
    graph: Any,
    producers: Mapping[str, Any],
    constants: Mapping[str, Array],
    final_h: dict[str, tuple[str, str]],
) -> tuple[Any, list[Any]]:
    """``graph`` with ``chains`` (one, or a forward and a reverse) fused into one node, and
    the new nodes: put before the first cell's h, each cell's h and each chain's last c now
    theirs (the cells' own outputs renamed, unread)."""
    import onnx

    nodes, arrays = lstm_nodes(chains, constants, producers, final_h)
    renamed = {
        name: f"{name}/unfused"
        for chain in chains
        for name in [*(c.h for c in chain.cells), chain.cells[-1].c]
    }
    firsts = {id(producers[chain.cells[0].h]) for chain in chains}
    fused = onnx.GraphProto()
    fused.CopyFrom(graph)
    del fused.node[:]
    for node in graph.node:
        if id(node) in firsts:
            fused.node.extend(nodes)
            firsts = set()
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


def _refuse_kept_states(cells: list[Cell], producers: Mapping[str, Any], where: str) -> None:
    """An InputError if a cell reads its state through a ``Where``: a step skipped in some
    rows (their state kept), as Keras's Masking is written (``Where``, with ``If``)."""
    for cell in cells:
        for name in (cell.h_prev, cell.c_prev):
            if name in producers and producers[name].op_type == "Where":
                raise InputError(
                    f"{where}: the LSTM cell {cell.name!r} reads its state from "
                    f"{producers[name].name!r} (Where): a step that some rows skip, keeping "
                    "their state, as Keras's Masking is written (Where and If); lstm_ref reads "
                    "a loop whose every step runs the cell. Read the Keras model's own file "
                    "(.keras), whose Masking it imports"
                )


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
) -> tuple[str, int, bool]:
    """The tensor S (steps, rows, features in either order of the first two) whose step k
    cell k reads (or step T − 1 − k: a reverse chain), which axis of S is time, and whether
    the chain is reverse. S is the farthest tensor every x is moved from that has three
    axes and holds each x as a step: the input itself rather than a reversed copy of it
    (Keras's go_backwards reads such a copy in order), a fused loop's steps rather than its
    Y (a loop stacked on a fused one)."""
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
    shapes = _shapes_of(common, graph, model)
    found, errors = None, {}
    for candidate in reversed(common):  # the farthest first
        try:
            found = candidate, _steps(chain, candidate, shapes, producers, constants, opset, where)
            break
        except InputError as e:
            errors[candidate] = e
    source = found[0] if found else common[0] if len(chain) > 1 else common[-1]
    for which, state in (("h_prev", chain[0].h_prev), ("c_prev", chain[0].c_prev)):
        if _computed_from(state, source, producers):
            raise InputError(
                f"{where}: {names} starts from {which} {state!r}, computed from {source!r} by "
                "ops that are not a cell of the loop; a loop over one cell starts from graph "
                "inputs or zeros"
            )
    shape = shapes[source]
    if found is None:
        raise errors[source]  # what reading its steps from the likeliest source met
    steps = found[1]
    axes = {a for a, _ in steps}
    if len(axes) != 1:
        raise InputError(
            f"{where}: {names} reads {source!r} along different axes "
            f"{sorted(axes)}; a loop over one cell reads one axis, time"
        )
    (axis,) = axes
    order = [k for _, k in steps]
    forward = list(range(len(chain)))
    if order not in (forward, forward[::-1]):
        raise InputError(
            f"{where}: {names} reads steps {[k + 1 for k in order]} of "
            f"{source!r}; an LSTM reads steps 1, 2, …, {len(chain)} in order, none skipped (a "
            f"reverse one {len(chain)}, …, 2, 1)"
        )
    if shape is not None and shape[axis] != len(chain):
        length = shape[axis] if isinstance(shape[axis], int) else "any number of"
        raise InputError(
            f"{where}: {names} reads steps 1 to {len(chain)} of {source!r}, whose "
            f"time axis {axis} holds {length} steps: the graph computes the first "
            f"{len(chain)} step(s) only and ignores the rest, while lstm_ref's LSTM reads "
            "every step; export the loop with as many steps as the input has (a fixed time "
            "axis: Keras 3's ONNX export writes every step of an LSTM on keras.Input((T, C)), "
            "its first step only on keras.Input((None, C)))"
        )
    return source, axis, order[0] > 0


def _steps(
    chain: list[Cell],
    source: str,
    shapes: Mapping[str, list[int | str] | None],
    producers: Mapping[str, Any],
    constants: Mapping[str, Array],
    opset: int,
    where: str,
) -> list[tuple[int, int]]:
    """(axis, k) per cell, its x being step k of ``source`` along that axis, or an
    InputError saying why not."""
    shape = shapes[source]
    if shape is None or len(shape) != 3 or not isinstance(shape[2], int):
        raise InputError(
            f"{where}: {_named(chain)} reads steps of {source!r} of shape {shape}; "
            "expected 3 axes (steps and rows in either order, then the features)"
        )
    sizes = [d if isinstance(d, int) and d > 0 else len(chain) + 2 + k for k, d in enumerate(shape)]
    ids = np.arange(int(np.prod(sizes))).reshape(sizes)
    return [_step(c, source, ids, producers, constants, opset, where) for c in chain]


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


def _shapes_of(names: list[str], graph: Any, model: Any) -> dict[str, list[int | str] | None]:
    """The dimensions of each tensor: a graph input's, or as ONNX's shape inference gives
    (None where it knows none)."""
    import onnx

    current = onnx.ModelProto()
    current.CopyFrom(model)
    current.graph.CopyFrom(graph)
    inferred = onnx.shape_inference.infer_shapes(current)
    known = {v.name: dims(v) for v in graph.input}
    known.update(
        (v.name, dims(v))
        for v in inferred.graph.value_info
        if v.name not in known and v.type.tensor_type.HasField("shape")
    )
    return {name: known.get(name) for name in names}


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
