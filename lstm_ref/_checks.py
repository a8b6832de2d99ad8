"""The one set of input validators every entry point uses, one rule each.

* Integers: Python or NumPy integers; ``bool`` is not an integer here.
* Real numbers: Python or NumPy integers and floats (not bool, not complex).
* Seeds: integers >= 0; flags: bools only (the string ``"no"`` is not False); fractions
  strictly between 0 and 1; training labels of at least two classes.
* Weights and states: real float arrays of float32 or float64 (no float16, no float128).
* Data: arrays of real numbers, cast to the network's dtype, **then** checked finite, so a
  value that overflows float32 is caught, not carried on as Inf.

Each returns the checked value (converted where stated) or raises
:class:`~lstm_ref.errors.InputError` / :class:`~lstm_ref.errors.InputTypeError` with a
message naming ``what`` was checked, what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np

from .errors import InputError, InputTypeError

Array = np.ndarray
T = TypeVar("T")

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MAX_ALLOCATION_BYTES = 2**31  # the largest single array lstm_ref will allocate (2 GiB)


def is_integer(value: object) -> bool:
    """Whether ``value`` is a Python or NumPy integer (not a bool)."""
    return isinstance(value, Integral) and not isinstance(value, bool | np.bool_)


def check_count(value: object, what: str, *, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``."""
    if not is_integer(value) or int(value) < minimum:  # type: ignore[call-overload]
        raise InputError(f"{what} must be an integer >= {minimum}; got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_seed(value: object, what: str = "seed") -> int:
    """``value`` as a seed of NumPy's ``default_rng``: an integer >= 0."""
    return check_count(value, what, minimum=0)


def check_flag(value: object, what: str) -> bool:
    """``value`` if it is a bool (Python's or NumPy's): no string or number stands for one."""
    if not isinstance(value, bool | np.bool_):
        raise InputError(f"{what} must be True or False; got {value!r}")
    return bool(value)


def check_instance(value: T, kind: type, what: str) -> T:
    """``value`` if it is an instance of ``kind``."""
    if not isinstance(value, kind):
        raise InputTypeError(f"{what} must be a {kind.__name__}; got {type(value).__name__}")
    return value


def check_fraction(value: object, what: str) -> float:
    """``value`` as a float strictly between 0 and 1."""
    fraction = check_number(value, what)
    if not 0 < fraction < 1:
        raise InputError(f"{what} must lie strictly between 0 and 1; got {value!r}")
    return fraction


def check_lengths(
    lengths: object, n: int, T: int, what: str = "lengths", minimum: int = 1
) -> np.ndarray:
    """``lengths`` as n sequence lengths (int64), each in minimum..T (the padded length)."""
    a = np.asarray(lengths)
    if a.shape != (n,) or not all(is_integer(v) for v in a.tolist()):
        raise InputError(
            f"{what} must be {n} integers, one per sequence; got {a.dtype} array of shape {a.shape}"
        )
    if n and (a.min() < minimum or a.max() > T):
        raise InputError(f"{what} must lie in {minimum}..{T} (the padded length); got {a.tolist()}")
    return a.astype(np.int64)


def check_index(value: object, what: str, low: int, high: int, meaning: str = "") -> int:
    """``value`` as an int in ``low..high`` (inclusive); ``meaning`` explains the range."""
    if not is_integer(value) or not low <= int(value) <= high:  # type: ignore[call-overload]
        why = f" ({meaning})" if meaning else ""
        raise InputError(f"{what} must be an integer in {low}..{high}{why}; got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_number(value: object, what: str, *, finite: bool = True) -> float:
    """``value`` as a float: a real number (finite unless ``finite=False``)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise InputError(f"{what} must be a real number; got {value!r}")
    number = float(value)
    if finite and not np.isfinite(number):
        raise InputError(f"{what} must be a finite number; got {value!r}")
    return number


def check_choice(value: T, what: str, choices: Collection[T]) -> T:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str | int | float) or value not in choices:
        raise InputError(f"{what} must be one of {list(choices)}; got {value!r}")
    return value


def check_shape(array: Array, what: str, expected: tuple[int, ...], meaning: str) -> Array:
    """``array`` if its shape is ``expected``; ``meaning`` names the axes, e.g. ``"(4H, C)"``."""
    if array.shape != expected:
        raise InputError(f"{what} must have shape {expected} = {meaning}; got {array.shape}")
    return array


def check_allocation(shape: tuple[int, ...], dtype: np.dtype | type, what: str) -> None:
    """Refuse, before allocating, an array of ``shape`` larger than ``MAX_ALLOCATION_BYTES``."""
    nbytes = int(np.prod([int(n) for n in shape], dtype=object)) * np.dtype(dtype).itemsize
    if nbytes > MAX_ALLOCATION_BYTES:
        raise InputError(
            f"{what} of shape {shape} would take {nbytes / 2**30:.3g} GiB; lstm_ref allocates "
            f"at most {MAX_ALLOCATION_BYTES / 2**30:g} GiB at once"
        )


def check_float_array(value: Any, what: str) -> Array:
    """``value`` as an array of finite float32 or float64 values (weights, states)."""
    a = np.asarray(value)
    if a.dtype not in FLOAT_DTYPES:
        raise InputTypeError(f"{what} must hold float32 or float64 values; got dtype {a.dtype}")
    check_finite(a, a, what)
    return a


def check_real_dtype(a: Array, what: str) -> Array:
    """``a`` if it holds real numbers: integers or floats (not bool, complex, timedelta64 —
    an integer to NumPy —, strings or objects)."""
    if a.dtype.kind not in "iuf":
        raise InputTypeError(f"{what}: expected real numbers; got dtype {a.dtype}")
    return a


def check_real_array(
    value: Any, what: str, dtype: np.dtype | type, axes: tuple[str, ...] = ()
) -> Array:
    """``value`` (real numbers: integers or floats) cast to ``dtype``, then checked finite.

    ``axes`` names the axes for the message, e.g. ``("time step", "feature")``; the
    position is counted from 1 there, as every message counts.
    """
    a = check_real_dtype(np.asarray(value), what)
    with np.errstate(over="ignore"):  # an overflow becomes Inf, which the check below names
        cast = a.astype(dtype, copy=False)
    check_finite(cast, a, what, axes)
    return cast


def check_finite(a: Array, given: Array, what: str, axes: tuple[str, ...] = ()) -> None:
    """Raise naming the first element of ``a`` that is not finite (``given``: before a cast)."""
    bad = ~np.isfinite(a)
    if not bad.any():
        return
    where = [int(k) for k in np.argwhere(bad)[0]]
    value = given[tuple(where)]
    if np.isfinite(value):
        problem = f"value {value} overflows {a.dtype}"
    else:
        problem = f"non-finite value {'NaN' if np.isnan(value) else value}"
    if axes:
        position = ", ".join(f"{name} {k + 1}" for name, k in zip(axes, where, strict=True))
    else:
        position = f"index {tuple(where)}"
    raise InputError(f"{what}: {problem} at {position}; values must be finite")


def check_two_classes(labels: Iterable[object], what: str = "the training labels") -> None:
    """Refuse labels that hold fewer than two distinct classes: nothing to tell apart."""
    present = sorted({str(label) for label in labels})
    if len(present) < 2:
        count = f"{len(present)} class" + ("" if len(present) == 1 else "es")
        raise InputError(f"{what} must hold at least two classes; got {count}: {present}")


def check_sequence_arrays(seqs: object) -> None:
    """Refuse anything but what ``as_sequence_list`` returns: a non-empty list of (T_i, C)
    float32 or float64 arrays of one width and one dtype, each of at least one step."""
    if not isinstance(seqs, list | tuple) or not seqs:
        raise InputError(f"expected a non-empty list of (T, C) arrays; got {type(seqs).__name__}")
    first = seqs[0]
    for k, s in enumerate(seqs):
        if not (
            isinstance(s, np.ndarray)
            and isinstance(first, np.ndarray)
            and s.ndim == 2
            and s.shape[0] >= 1
            and s.shape[1:] == first.shape[1:]
            and s.dtype == first.dtype
            and s.dtype in FLOAT_DTYPES
        ):
            got = (
                f"{s.dtype} array of shape {s.shape}"
                if isinstance(s, np.ndarray)
                else type(s).__name__
            )
            raise InputError(
                f"sequence {k + 1}: expected a (T, C) float32 or float64 array like sequence 1 "
                f"(T >= 1); got {got}"
            )


def check_class_names(names: Any, what: str = "class_names") -> tuple[str, ...]:
    """At least two distinct class names, as a tuple of str."""
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise InputError(f"{what} must be a sequence of names; got {names!r}")
    names = tuple(str(c) for c in names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise InputError(f"{what} must be at least two distinct names; got {names}")
    return names


# ------------------------------------------------------ traces, units and steps
def check_trace(
    a: Array, name: str = "h", layout: str = "(T, H), time × units", *, allow_empty: bool = True
) -> Array:
    """``a`` as a 2-D array of real numbers, or a ValueError naming ``name`` and ``layout``.

    ``layout`` describes the expected axes in the message (e.g. ``"(T, C), time ×
    features"``); with ``allow_empty=False`` an axis of length 0 is an error too.
    """
    a = np.asarray(a)
    if a.ndim != 2:
        raise InputError(f"{name} must be a 2-D array {layout}; got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(f"{name} must hold real numbers; got dtype {a.dtype}")
    if not allow_empty and 0 in a.shape:
        raise InputError(f"{name} is empty: shape {a.shape}")
    return a


def _check_step(value: object, name: str) -> int:
    if not is_integer(value):
        raise InputError(f"{name} must be an integer time step; got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_step_range(start: object, stop: object, T: int) -> tuple[int, int]:
    """Validate a 0-based, stop-exclusive range of time steps of a length-T sequence."""
    start, stop = _check_step(start, "start"), _check_step(stop, "stop")
    if not 0 <= start < stop <= T:
        raise InputError(
            f"need 0 <= start < stop <= T = {T} (0-based steps, stop exclusive); "
            f"got start={start}, stop={stop}"
        )
    return start, stop


def check_units(
    units: Array | Sequence[int] | range, H: int, *, allow_empty: bool = False
) -> list[int]:
    """0-based unit indices of a layer of H units, as a list of ints.

    A ValueError unless ``units`` is 1-D, holds integers in 0..H-1, and — unless
    ``allow_empty`` — names at least one unit.
    """
    units = np.asarray(units)
    if units.ndim != 1:
        raise InputError(f"units must be a 1-D list of unit indices; got shape {units.shape}")
    if units.size == 0:
        if allow_empty:
            return []
        raise InputError("no units given: select at least one unit")
    if not np.issubdtype(units.dtype, np.integer):
        raise InputError(f"units must be integer indices (0-based); got dtype {units.dtype}")
    bad = units[(units < 0) | (units >= H)]
    if bad.size:
        raise InputError(f"unit indices {bad.tolist()} out of range 0..{H - 1} (0-based)")
    return units.tolist()
