"""ONNX operators in NumPy: one table keyed by op type, one entry point per node.

:func:`run_node` evaluates one ``NodeProto`` on its input arrays (``None`` for an omitted
optional input) and returns its outputs. Each op is a function ``(inputs, attrs, opset)``
in :data:`OPS`; ``attrs["_node"]`` is the node itself, for the ops that need more (the
number of outputs of ``Split``, the whole ``LSTM`` node). Where an opset moved an argument
from an attribute to an input (Squeeze, Unsqueeze, Split, Slice, Clip, Pad, the
reductions) or changed a default (Softmax's axis before opset 13, which also flattened to
2-D), the function reads the node's own opset. The element-wise activations come from
:mod:`lstm_ref.activations` (ONNX's defaults), ``LSTM`` from
:func:`lstm_ref.interop.onnx.run_lstm_node`, the layer ops (products, softmax,
reductions, ``Conv``, ``Pad``, normalisation) from :mod:`.onnx_ops_nn`. Control flow
(``If``, ``Loop``, ``Scan``) needs a graph and lives in :mod:`.onnx_runner`. An op not in
the table is refused with its type and the node's name; inf and nan come out silently, as
ONNX's runtimes give them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..activations import ONNX_ACTIVATIONS
from ..errors import InputError

Array = np.ndarray
Inputs = list[Any]  # ndarray, or None for an omitted optional input
Op = Callable[[Inputs, dict[str, Any], int], list[Array]]
OPS: dict[str, Op] = {}


def op(*names: str) -> Callable[[Op], Op]:
    """Register a function under one or more op types."""

    def register(fn: Op) -> Op:
        for name in names:
            OPS[name] = fn
        return fn

    return register


def node_name(node: Any) -> str:
    """A node's name, or (unnamed) its first output's, or its op type."""
    return str(node.name or next((o for o in node.output if o), node.op_type))


def node_attributes(node: Any) -> dict[str, Any]:
    """An ONNX node's attributes by name, as Python values (strings and lists of strings
    decoded)."""
    import onnx

    attrs = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if a.type == onnx.AttributeProto.STRING:
            value = value.decode()
        elif a.type == onnx.AttributeProto.STRINGS:
            value = [v.decode() for v in value]
        attrs[a.name] = value
    return attrs


def run_node(
    node: Any, inputs: Inputs, opset: int, float_dtype: np.dtype | type | None = None
) -> list[Array]:
    """The outputs of one ONNX node on NumPy inputs.

    Parameters
    ----------
    node : onnx.NodeProto
        Of the default domain (``""`` or ``"ai.onnx"``).
    inputs : list of ndarray or None
        One per ``node.input``; None where the name is empty (an omitted optional input).
    opset : int
        The model's version of the default domain.
    float_dtype : dtype, optional
        Every floating output cast to it (a float64 run of a float32 model: its Casts and
        constants follow); None keeps the op's own dtype.

    Returns
    -------
    list of ndarray
        One per ``node.output`` (an omitted output may be computed anyway).
    """
    where = f"node {node_name(node)!r} ({node.op_type})"
    if node.domain not in ("", "ai.onnx"):
        raise InputError(f"{where}: domain {node.domain!r} is not supported; expected ONNX's own")
    fn = OPS.get(node.op_type)
    if fn is None:
        raise InputError(f"{where}: op {node.op_type!r} is not supported by lstm_ref's runner")
    attrs = {**node_attributes(node), "_node": node}
    try:
        with np.errstate(all="ignore"):  # inf and nan come out as ONNX's runtimes give them
            outputs = fn(inputs, attrs, opset)
    except (ValueError, IndexError, TypeError) as e:
        if isinstance(e, InputError):
            raise InputError(f"{where}: {e}") from None
        raise InputError(f"{where}: {type(e).__name__}: {e}") from None
    outputs = [np.asarray(y) for y in outputs]
    if float_dtype is not None:
        outputs = [y.astype(float_dtype) if y.dtype.kind == "f" else y for y in outputs]
    return outputs


def _ints(a: Array | None) -> list[int] | None:
    return None if a is None else [int(v) for v in np.asarray(a).reshape(-1)]


def _arg(inputs: Inputs, k: int, attrs: dict[str, Any], name: str, opset: int, since: int) -> Any:
    """An argument given as an attribute before opset ``since`` and as input k from it."""
    if opset < since:
        return attrs.get(name)
    return _ints(inputs[k]) if len(inputs) > k else None


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise InputError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


# ------------------------------------------------------------------- element-wise
_UNARY: dict[str, Callable[[Array], Array]] = {
    "Identity": lambda x: x,
    "Neg": np.negative,
    "Abs": np.abs,
    "Sqrt": np.sqrt,
    "Exp": np.exp,
    "Log": np.log,
    "Reciprocal": np.reciprocal,
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Round": np.round,  # halves to even, as ONNX
    "Sign": np.sign,
    "Not": np.logical_not,
    "Sin": np.sin,
    "Cos": np.cos,
    "Erf": np.vectorize(math.erf, otypes=[float]),
    "IsNaN": np.isnan,
}


def _unary(fn: Callable[[Array], Array]) -> Op:
    def run(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
        x = xs[0]
        y = np.asarray(fn(x))
        return [y.astype(x.dtype) if x.dtype.kind == y.dtype.kind == "f" else y]

    return run


for _name, _fn in _UNARY.items():
    OPS[_name] = _unary(_fn)


def _activation(name: str) -> Op:
    defaults, make = ONNX_ACTIVATIONS[name]

    def run(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
        params = {k: float(attrs.get(k, v)) for k, v in defaults.items()}
        x = xs[0]
        return [np.asarray(make(**params).value(x), dtype=x.dtype)]

    return run


for _name in ("Sigmoid", "Tanh", "Softsign", "Relu", "Softplus", "HardSigmoid", "LeakyRelu"):
    OPS[_name] = _activation(_name)
OPS["ThresholdedRelu"], OPS["Elu"] = _activation("ThresholdedRelu"), _activation("Elu")


def _integer_div(a: Array, b: Array) -> Array:
    if a.dtype.kind in "iu":
        return np.trunc(a / b).astype(np.result_type(a, b))  # ONNX truncates toward zero
    return a / b


_BINARY: dict[str, Callable[[Array, Array], Array]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": _integer_div,
    "Equal": np.equal,
    "Less": np.less,
    "LessOrEqual": np.less_equal,
    "Greater": np.greater,
    "GreaterOrEqual": np.greater_equal,
    "And": np.logical_and,
    "Or": np.logical_or,
    "Xor": np.logical_xor,
}


def _binary(fn: Callable[[Array, Array], Array]) -> Op:
    def run(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
        return [np.asarray(fn(xs[0], xs[1]))]

    return run


for _name, _fn2 in _BINARY.items():
    OPS[_name] = _binary(_fn2)


@op("Pow")
def _pow(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x, y = xs[0], xs[1]
    return [np.power(x, y).astype(x.dtype)]  # the base's type


@op("Mod")
def _mod(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    fn = np.fmod if attrs.get("fmod", 0) else np.mod
    return [fn(xs[0], xs[1])]


def _fold(fn: Callable[[Array, Array], Array], mean: bool = False) -> Op:
    def run(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
        arrays = [x for x in xs if x is not None]
        out = arrays[0]
        for x in arrays[1:]:
            out = fn(out, x)
        return [out / len(arrays) if mean else out]

    return run


OPS["Min"], OPS["Max"] = _fold(np.minimum), _fold(np.maximum)
OPS["Sum"], OPS["Mean"] = _fold(np.add), _fold(np.add, mean=True)


@op("Where")
def _where(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    return [np.asarray(np.where(xs[0], xs[1], xs[2]))]


@op("Clip")
def _clip(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    if opset < 11:
        low, high = attrs.get("min"), attrs.get("max")
    else:
        low, high = (xs[k] if len(xs) > k else None for k in (1, 2))
    out = x if low is None else np.maximum(x, low)
    return [(out if high is None else np.minimum(out, high)).astype(x.dtype)]


@op("PRelu")
def _prelu(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x, slope = xs[0], xs[1]
    return [np.where(x >= 0, x, slope * x).astype(x.dtype)]


# ------------------------------------------------------------------------- tensors
@op("Constant")
def _constant(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    from onnx import numpy_helper

    if "value" in attrs:
        return [numpy_helper.to_array(attrs["value"])]
    kinds: dict[str, Any] = {"value_float": np.float32, "value_floats": np.float32}
    kinds.update({"value_int": np.int64, "value_ints": np.int64})
    for key, dtype in kinds.items():
        if key in attrs:
            return [np.asarray(attrs[key], dtype=dtype)]
    raise InputError(
        f"Constant with attributes {sorted(attrs)}; expected value, value_float(s) or value_int(s)"
    )


def _np_dtype(onnx_type: int) -> np.dtype:
    import onnx

    return _computable(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(onnx_type)))


def _computable(dtype: np.dtype) -> np.dtype:
    """``dtype``, unless it is one of ONNX's float8, 4-bit or 2-bit types (refused)."""
    if dtype.kind == "V" or (dtype.kind == "f" and dtype.itemsize < 2):
        raise InputError(f"type {dtype} is not supported; expected a type NumPy computes in")
    return dtype


@op("Cast")
def _cast(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    return [x.astype(_np_dtype(attrs["to"]))]


@op("CastLike")
def _cast_like(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x, like = xs[0], xs[1]
    return [x.astype(_computable(like.dtype))]


@op("Shape")
def _shape(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    shape = np.asarray(np.shape(xs[0]), dtype=np.int64)
    return [shape[attrs.get("start", 0) : attrs.get("end", len(shape))]]


@op("Size")
def _size(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    return [np.asarray(np.size(xs[0]), dtype=np.int64)]


@op("ConstantOfShape")
def _constant_of_shape(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    from onnx import numpy_helper

    value = attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else numpy_helper.to_array(value)
    return [np.full(_ints(xs[0]) or [], fill.reshape(-1)[0], dtype=fill.dtype)]


@op("Range")
def _range(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    start, limit, delta = xs[0], xs[1], xs[2]
    n = max(math.ceil((limit.item() - start.item()) / delta.item()), 0)
    return [(start + delta * np.arange(n)).astype(start.dtype)]


@op("Reshape")
def _reshape(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    shape = _ints(xs[1] if opset >= 5 else np.asarray(attrs["shape"])) or []
    if not attrs.get("allowzero", 0):
        shape = [x.shape[k] if s == 0 else s for k, s in enumerate(shape)]
    return [x.reshape(shape)]


@op("Flatten")
def _flatten(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


@op("Transpose")
def _transpose(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    return [np.transpose(x, attrs.get("perm"))]


@op("Squeeze")
def _squeeze(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    axes = _arg(xs, 1, attrs, "axes", opset, 13)
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(_axis(a, x.ndim) for a in axes))]


@op("Unsqueeze")
def _unsqueeze(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    axes = _arg(xs, 1, attrs, "axes", opset, 13) or []
    rank = x.ndim + len(axes)
    return [np.expand_dims(x, tuple(sorted(_axis(a, rank) for a in axes)))]


@op("Expand")
def _expand(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    shape = np.broadcast_shapes(x.shape, tuple(_ints(xs[1]) or []))  # both ways, as ONNX
    return [np.broadcast_to(x, shape).copy()]


@op("Tile")
def _tile(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    return [np.tile(xs[0], np.asarray(xs[1], dtype=np.int64))]


@op("Concat")
def _concat(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    arrays = [x for x in xs if x is not None]
    return [np.concatenate(arrays, axis=_axis(attrs["axis"], arrays[0].ndim))]


@op("Split")
def _split(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    axis = _axis(attrs.get("axis", 0), x.ndim)
    sizes = _arg(xs, 1, attrs, "split", opset, 13)
    if sizes is None:
        n = attrs.get("num_outputs", len(attrs["_node"].output))
        chunk = -(-x.shape[axis] // n)  # the last part may be smaller
        sizes = [min(chunk, x.shape[axis] - k * chunk) for k in range(n)]
    if sum(sizes) != x.shape[axis]:
        raise InputError(f"split sizes {sizes} do not add up to axis {axis}'s {x.shape[axis]}")
    return list(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _slice_of(start: int, end: int, step: int, dim: int) -> slice:
    """ONNX's clamping of one axis's start/end, as a Python slice."""
    if step == 0:
        raise InputError("Slice step 0")
    start, end = (v + dim if v < 0 else v for v in (start, end))
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


@op("Slice")
def _slice(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    starts: Any
    ends: Any
    if opset < 10:
        starts, ends, axes, steps = (attrs.get(k) for k in ("starts", "ends", "axes", "steps"))
    else:
        starts, ends, axes, steps = (_ints(xs[k]) if len(xs) > k else None for k in (1, 2, 3, 4))
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
        a = _axis(a, x.ndim)
        index[a] = _slice_of(s, e, st, x.shape[a])
    return [x[tuple(index)]]


@op("Gather")
def _gather(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x, idx = xs[0], xs[1]
    return [np.take(x, idx.astype(np.int64), axis=_axis(attrs.get("axis", 0), x.ndim))]


@op("GatherElements")
def _gather_elements(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x, idx = xs[0], xs[1]
    axis = _axis(attrs.get("axis", 0), x.ndim)
    return [np.take_along_axis(x, np.where(idx < 0, idx + x.shape[axis], idx), axis=axis)]


@op("GatherND")
def _gather_nd(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x, idx = xs[0], xs[1]
    b = attrs.get("batch_dims", 0)
    batch, k = x.shape[:b], idx.shape[-1]
    flat_x = x.reshape(-1, *x.shape[b:])
    flat_i = idx.reshape(-1, *idx.shape[b:-1], k)
    out = np.stack(
        [xb[tuple(np.moveaxis(ib, -1, 0))] for xb, ib in zip(flat_x, flat_i, strict=True)]
    )
    return [out.reshape(*batch, *idx.shape[b:-1], *x.shape[b + k :])]


@op("ScatterND")
def _scatter_nd(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x, idx, updates = xs[0], xs[1], xs[2]
    out = x.copy()
    reduction = attrs.get("reduction", "none")
    for i, u in zip(
        idx.reshape(-1, idx.shape[-1]),
        updates.reshape(-1, *updates.shape[idx.ndim - 1 :]),
        strict=True,
    ):
        at = tuple(i)
        out[at] = (
            u
            if reduction == "none"
            else {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}[
                reduction
            ](out[at], u)
        )
    return [out]


@op("NonZero")
def _nonzero(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    return [np.asarray(np.nonzero(xs[0]), dtype=np.int64)]


@op("CumSum")
def _cumsum(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    axis = _axis(int(np.asarray(xs[1])), x.ndim)
    y = np.flip(x, axis) if attrs.get("reverse", 0) else x
    out = np.cumsum(y, axis=axis, dtype=x.dtype)
    if attrs.get("exclusive", 0):
        out = out - y
    return [np.flip(out, axis) if attrs.get("reverse", 0) else out]


@op("Dropout")
def _dropout(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    if attrs.get("training_mode") or (len(xs) > 2 and xs[2] is not None and xs[2].item()):
        raise InputError("training mode is not supported; the runner computes inference")
    return [x, np.ones(x.shape, dtype=bool)]  # inference: no dropout


from . import onnx_ops_nn  # noqa: E402,F401  (registers the layers' ops in OPS)
