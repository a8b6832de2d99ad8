"""ONNX import, a head on several layers' final states: the LSTM layers it reads become one
:class:`~lstm_ref.layers.LSTMStack`.

PyTorch writes an ``nn.LSTM(num_layers=L)`` as L ``LSTM`` nodes, node k+1 reading node k's
Y, and its ``h_n`` (L·D, B, H) as the Concat of their ``Y_h``. A head on ``h_n`` whole
(``h_n.permute(1, 0, 2).reshape(B, -1)``, ``torch.cat(list(h_n), 1)``) or on rows of it
from several layers (``cat(h_n[-2], h_n[-1])`` of a one-way stack) reads elements of several
bases (:mod:`.onnx_head`), which a chain of layers does not give. When every element read
is a final h (``Y_h``, or an affine map of it) of an LSTM layer, and the layers from the
lowest one read to the last one built are LSTMs each read at every step by the next:

=================================  ==========================================================
before                             after
=================================  ==========================================================
layers k … n (LSTM, BiLSTM), each  one ``LSTMStack(output_mode="last")`` of them, named after
its own base                       their nodes' common folder (PyTorch's module: ``/lstm``)
                                   or ``lstm_stack``; its features every layer's final h in
                                   layer order, forward ‖ reverse (``h_n`` permuted per row)
an element of layer j's ``Y_h``,   an element of the stack's output (a row's), the same map
``R_j[r] · h_j + c_j[r]``          with R_j's columns placed at layer j's features
every other element of layers      retired: reading one later is refused (the stack returns
k … n (their Y, their Y_c)         its layers' final h only)
=================================  ==========================================================

The map the head computes then becomes the FullyConnected over the stack's features as for
one layer: a subset of the layers, in any order, is a map with zero columns where unread.
An initial state read from a graph input becomes the stack's, its layers' in layer order
(:attr:`Chain.stacked` says where each layer went).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import LSTM, BiLSTM, LSTMStack
from .onnx_head import FINAL_C, FINAL_H, RETIRED, ROW, Chain

Array = np.ndarray


def stack_final_states(chain: Chain, ids: Array, where: str) -> bool:
    """Make the layers whose final states ``ids`` read one LSTMStack, the current base, and
    move every element onto it (module table). False if ``ids`` are not final states of
    layers (the chain's refusal applies); an InputError if they are, of layers that do not
    stack."""
    el = chain.el
    bases = np.unique(el.base[ids])
    if bases[0] < 1 or bases[-1] > chain.base:  # the input X, a state input, a retired one
        return False
    kinds = np.unique(el.kind[ids])
    if FINAL_C in kinds:
        base = int(el.base[ids][el.kind[ids] == FINAL_C][0])
        raise InputError(
            f"{where}: reads Y_c of {chain.layers[base - 1].name!r}; lstm_ref's layers return h"
        )
    if kinds.tolist() != [FINAL_H]:
        return False
    first = int(bases[0])
    parts = chain.layers[first - 1 :]
    read = [chain.layers[b - 1].name for b in bases]
    for layer in parts:
        if not isinstance(layer, LSTM | BiLSTM) or layer.output_mode != "sequence":
            raise InputError(
                f"{where}: reads the final states of {read}; lstm_ref stacks LSTM layers "
                f"each read at every step by the next, up to the last one, but {layer.name!r} "
                f"({layer.description()}) lies between or after them"
            )
        chain.check_ends_masked(layer, where)
    stack = _stack(parts, chain)
    _move_elements(chain, first)
    chain.layers[first - 1 :] = [stack]
    chain.base = first
    return True


def _stack(parts: list[Any], chain: Chain) -> LSTMStack:
    """The LSTMStack of ``parts``, named after their nodes' common folder (each part after
    the rest of its node's name, as a stack's parts are named without '/'); each part's
    place recorded in ``chain.stacked``."""
    names = [p.name for p in parts]
    folders = {n.rpartition("/")[0] for n in names}
    folder = folders.pop() if len(folders) == 1 else ""
    stack_name = folder or "lstm_stack"
    own = [n.rpartition("/")[2] if folder else n.replace("/", "_") for n in names]
    renamed = [_renamed(p, name) for p, name in zip(parts, own, strict=True)]
    chain.stacked.update({n: f"{stack_name}/{name}" for n, name in zip(names, own, strict=True)})
    return LSTMStack(renamed, name=stack_name, output_mode="last")


def _renamed(layer: LSTM | BiLSTM, name: str) -> LSTM | BiLSTM:
    if isinstance(layer, LSTM):
        return dataclasses.replace(layer, name=name)
    fwd = dataclasses.replace(layer.fwd, name=name)
    bwd = dataclasses.replace(layer.bwd, name=f"{name}_reverse")
    return BiLSTM(fwd, bwd, name, layer.merge_mode, layer.last)


def _move_elements(chain: Chain, first: int) -> None:
    """Every element of bases ``first`` … ``chain.base``: a final h onto base ``first``, its
    map's columns at its layer's features; every other one retired."""
    el = chain.el
    bases = range(first, chain.base + 1)
    widths = [el.R[b].shape[1] for b in bases]
    column = np.cumsum([0, *widths])
    total = int(column[-1])
    tables = [
        np.pad(el.R[b], [(0, 0), (int(column[k]), total - int(column[k + 1]))])
        for k, b in enumerate(bases)
    ]
    start = np.zeros(chain.base + 1, np.int64)  # where each base's rows begin in the new table
    start[first:] = total + np.cumsum([0, *map(len, tables)])[:-1]
    ops = [op for b in bases for op in el.ops[b]]
    shifts = [el.c[b] for b in bases]
    for b in bases:
        del el.R[b], el.c[b], el.ops[b]
    el.new_base(first, total)
    el.R[first] = np.concatenate([el.R[first], *tables])
    el.c[first] = np.concatenate([el.c[first], *shifts])
    el.ops[first] = ops
    old = (el.base >= first) & (el.base <= bases[-1])
    finals = old & (el.kind == FINAL_H)
    el.row[finals] += start[el.base[finals]]
    el.kind[finals] = ROW
    el.base[old & ~finals] = RETIRED
    el.base[finals] = first
