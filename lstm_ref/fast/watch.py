"""How a compiled snapshot knows, on every call and without reading the weights, that the
layers still hold what it was compiled from.

A compilation reads some attributes of each layer (its arrays, its activations, its
options) and folds the values of some arrays into its own (the weights, the input
normalisation). :class:`Watch` keeps what it read and answers :meth:`Watch.current`:

* **Attributes by identity.** Assigning a new array, new parameters, new options or a new
  layer puts a new object in its place: one identity comparison per attribute sees it (a
  list, such as an LSTMStack's layers, item by item: it may be changed in place).
* **Values through the writeable flag.** The folded arrays are made read-only when they are
  compiled (:func:`seal`), with every array they are views of, so that no value can change
  without someone first making an array writeable again (``a.flags.writeable = True``, as
  lstm_ref's own training does: :func:`writeable`). Only an array found writeable is
  compared value by value with the copy kept at compile time, on every call while it stays
  writeable; the next compilation makes it read-only again. An array whose memory belongs
  to something other than an ndarray that cannot be made read-only (a ``bytearray``, a
  writable memory map) is compared on every call.
* **Every snapshot hears of a re-sealing.** Several snapshots may hold one array (a
  network compiles each ``outputs`` layer apart; two networks may share layers). When one
  of them makes a writeable array read-only again, the others could no longer tell that it
  changed: so every sealing that turns a flag off counts in :data:`SEALINGS`, and a
  snapshot that sees the count moved compares all its arrays once.

What this cannot see: a view of a weight made while it was writeable, written through after
it was sealed (NumPy keeps each view's own flag), or an array made read-only again by hand
after an edit, before the next call. Make a weight writeable, change it, then call the
network: never set the flag back yourself.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from ..layers import Layer

Array = np.ndarray


def _chain(a: Array) -> tuple[list[Array], object]:
    """``a`` and the ndarrays it is a view of, in that order, and what owns the memory at the
    end of the chain (None: the last ndarray owns it)."""
    chain: list[Array] = []
    x: object = a
    while isinstance(x, np.ndarray):
        chain.append(x)
        x = x.base
    return chain, x


SEALINGS = [0]  # how many sealings turned a writeable flag off, in this process


def seal(a: Array) -> bool:
    """Make ``a`` and every ndarray it views read-only; whether nothing else can still write
    into its memory (False: a writable buffer that is not an ndarray owns it)."""
    chain, owner = _chain(a)
    if any(x.flags.writeable for x in chain):
        SEALINGS[0] += 1
        for x in chain:
            x.flags.writeable = False
    if owner is None:
        return True
    try:
        return memoryview(owner).readonly  # type: ignore[arg-type]
    except TypeError:  # not a buffer: treat as writable
        return False


def writeable(a: Array) -> Array:
    """``a``, writeable again (with the arrays it views, owner first): what every in-place
    writer of a weight calls first, so that a compiled snapshot compares it on its next
    call."""
    chain, _ = _chain(a)
    for x in reversed(chain):
        if not x.flags.writeable:
            x.flags.writeable = True
    return a


class Watch:
    """What a compilation read of ``layers``: attributes of some objects (by identity) and the
    values of the ``folded`` arrays (sealed here; see the module docstring).

    Parameters
    ----------
    layers : sequence of Layer
    reads : list of (object, tuple of str)
        Each object the compilation read (a layer, a part of one) and the names of the
        attributes it read.
    folded : list of ndarray
        The arrays whose values the compilation copied or folded into its own.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        reads: list[tuple[object, tuple[str, ...]]],
        folded: list[Array],
    ):
        self._layers = tuple(layers)
        self._read: list[tuple[object, Any, tuple[Any, ...], Any]] = []
        for owner, names in reads:
            get = attrgetter(*names, names[0])  # two names at least: always a tuple
            values = tuple(map(_snapshot, get(owner)))
            same = _unchanged if any(isinstance(v, _Items) for v in values) else operator.is_
            self._read.append((owner, get, values, same))
        self._folded = [(a, a.copy(), not seal(a)) for a in folded]
        self._sealings = SEALINGS[0]

    def current(self, layers: Sequence[Layer]) -> bool:
        """Whether ``layers`` are the layers compiled, holding the same attributes, and every
        folded array still holds the values compiled."""
        if len(layers) != len(self._layers) or not all(map(operator.is_, layers, self._layers)):
            return False
        for owner, get, values, same in self._read:  # identities, at C speed without lists
            if not all(map(same, get(owner), values)):
                return False
        everything = self._sealings != SEALINGS[0]  # another snapshot sealed an array
        for a, copy, always in self._folded:
            if (everything or always or a.flags.writeable) and not np.array_equal(a, copy):
                return False
        self._sealings = SEALINGS[0]
        return True


class _Items(tuple):  # type: ignore[type-arg]
    """The items a list held when it was read (each compared by identity)."""


def _snapshot(value: object) -> object:
    return _Items(value) if isinstance(value, list) else value


def _unchanged(now: object, then: object) -> bool:
    """Whether an attribute still holds what was read: the same object, or a list of the
    same items."""
    if isinstance(then, _Items):
        return isinstance(now, list) and len(now) == len(then) and all(map(operator.is_, now, then))
    return now is then
