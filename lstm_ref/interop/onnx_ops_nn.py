"""ONNX's layer ops in NumPy, registered in :data:`.onnx_ops.OPS`: products, softmax,
reductions, convolution, padding, normalisation and the ``LSTM`` node (lstm_ref's own
:func:`~lstm_ref.interop.onnx.run_lstm_node`)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..errors import InputError
from .onnx_ops import OPS, Array, Inputs, _arg, _axis, _ints, op


@op("MatMul")
def _matmul(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    return [np.matmul(xs[0], xs[1])]


@op("Gemm")
def _gemm(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    a, b = xs[0], xs[1]
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    y = attrs.get("alpha", 1.0) * (a @ b)
    c = xs[2] if len(xs) > 2 else None
    if c is not None:
        y = y + attrs.get("beta", 1.0) * c
    return [np.asarray(y, dtype=a.dtype)]


def _softmax(xs: Inputs, attrs: dict[str, Any], opset: int, log: bool) -> list[Array]:
    x = xs[0]
    if opset < 13:  # the axis splits x into a 2-D matrix; softmax over its rows
        axis = _axis(attrs.get("axis", 1), x.ndim)
        rows = x.reshape(int(np.prod(x.shape[:axis])), -1)
        return [_softmax([rows], {"axis": 1}, 13, log)[0].reshape(x.shape)]
    axis = _axis(attrs.get("axis", -1), x.ndim)
    shifted = x - x.max(axis=axis, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    out = shifted - log_sum if log else np.exp(shifted - log_sum)
    return [out.astype(x.dtype)]


OPS["Softmax"] = lambda xs, attrs, opset: _softmax(xs, attrs, opset, log=False)
OPS["LogSoftmax"] = lambda xs, attrs, opset: _softmax(xs, attrs, opset, log=True)


def _bound(dtype: np.dtype, top: bool) -> Any:
    """The largest (``top``) or smallest value of ``dtype``: what ONNX's ReduceMin and
    ReduceMax give on an empty set."""
    if dtype.kind == "b":
        return top
    if dtype.kind == "f":
        return np.inf if top else -np.inf
    return np.iinfo(dtype).max if top else np.iinfo(dtype).min


_REDUCTIONS: dict[str, tuple[Any, int]] = {
    "ReduceMean": (np.mean, 18),
    "ReduceSum": (np.sum, 13),
    "ReduceMax": (lambda x, **kw: np.max(x, initial=_bound(x.dtype, top=False), **kw), 18),
    "ReduceMin": (lambda x, **kw: np.min(x, initial=_bound(x.dtype, top=True), **kw), 18),
    "ReduceProd": (np.prod, 18),
    "ReduceSumSquare": (lambda x, **kw: np.sum(x * x, **kw), 18),
    "ReduceL2": (lambda x, **kw: np.sqrt(np.sum(x * x, **kw)), 18),
}


def _reduction(name: str) -> Any:
    fn, since = _REDUCTIONS[name]

    def run(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
        x = xs[0]
        axes = _arg(xs, 1, attrs, "axes", opset, since)
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.ndim))
        axis = tuple(_axis(a, x.ndim) for a in axes)
        return [np.asarray(fn(x, axis=axis, keepdims=bool(attrs.get("keepdims", 1))), x.dtype)]

    return run


for _name in _REDUCTIONS:
    OPS[_name] = _reduction(_name)


def _arg_extreme(fn: Any) -> Any:
    def run(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
        x = xs[0]
        axis = _axis(attrs.get("axis", 0), x.ndim)
        if attrs.get("select_last_index", 0):
            k = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis)
        else:
            k = fn(x, axis=axis)
        k = np.asarray(k, dtype=np.int64)
        return [np.expand_dims(k, axis) if attrs.get("keepdims", 1) else k]

    return run


OPS["ArgMax"], OPS["ArgMin"] = _arg_extreme(np.argmax), _arg_extreme(np.argmin)


# -------------------------------------------------------------------- convolution
def _conv_pads(attrs: dict[str, Any], size: list[int], kernel: list[int]) -> list[int]:
    """The begin and end pads of each spatial axis, auto_pad resolved."""
    nd = len(kernel)
    strides = attrs.get("strides", [1] * nd)
    dilations = attrs.get("dilations", [1] * nd)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", "VALID"):
        return list(attrs.get("pads", [0] * 2 * nd)) if auto == "NOTSET" else [0] * 2 * nd
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations, strict=True):
        total = max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
        small, large = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else large)
        end.append(large if auto == "SAME_UPPER" else small)
    return begin + end


@op("Conv")
def _conv(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    """N-D convolution (x (N, C, *S), w (M, C/group, *K), b (M,)), kernel position by
    kernel position."""
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    kernel = list(w.shape[2:])
    nd, group = len(kernel), int(attrs.get("group", 1))
    strides = attrs.get("strides", [1] * nd)
    dilations = attrs.get("dilations", [1] * nd)
    pads = _conv_pads(attrs, list(x.shape[2:]), kernel)
    x = np.pad(x, [(0, 0), (0, 0), *zip(pads[:nd], pads[nd:], strict=True)])
    if x.shape[1] != w.shape[1] * group:
        raise InputError(f"input has {x.shape[1]} channels; the weights take {w.shape[1]}×{group}")
    out = [
        (n - d * (k - 1) - 1) // s + 1
        for n, k, s, d in zip(x.shape[2:], kernel, strides, dilations, strict=True)
    ]
    xg = x.reshape(x.shape[0], group, -1, *x.shape[2:])  # (N, G, C/G, *S)
    wg = w.reshape(group, -1, *w.shape[1:])  # (G, M/G, C/G, *K)
    y = np.zeros((x.shape[0], group, wg.shape[1], *out), dtype=np.result_type(x, w))
    for k in itertools.product(*(range(n) for n in kernel)):
        window = tuple(
            slice(i * d, i * d + s * (n - 1) + 1, s)
            for i, d, s, n in zip(k, dilations, strides, out, strict=True)
        )
        at: tuple[Any, ...] = (Ellipsis, *window)
        y += np.einsum("ngc...,gmc->ngm...", xg[at], wg[(Ellipsis, *k)])
    y = y.reshape(x.shape[0], -1, *out)
    if b is not None:
        y = y + b.reshape(-1, *[1] * nd)
    return [y.astype(x.dtype)]


@op("Pad")
def _pad(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x = xs[0]
    pads: Any
    if opset < 11:
        pads, value = attrs.get("pads", attrs.get("paddings")), attrs.get("value", 0.0)
        axes = None
    else:
        pads = _ints(xs[1])
        value = xs[2] if len(xs) > 2 and xs[2] is not None else 0
        axes = _ints(xs[3]) if len(xs) > 3 else None
    axes = [_axis(a, x.ndim) for a in axes] if axes else list(range(x.ndim))
    n = len(axes)
    widths = [(0, 0)] * x.ndim
    for k, a in enumerate(axes):
        widths[a] = (pads[k], pads[k + n])
    crop = tuple(slice(max(-lo, 0), x.shape[a] - max(-hi, 0)) for a, (lo, hi) in enumerate(widths))
    x = x[crop]  # negative pads remove
    widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    mode = attrs.get("mode", "constant")
    if mode == "constant":
        return [np.pad(x, widths, constant_values=np.asarray(value).item())]
    if mode not in ("reflect", "edge", "wrap"):
        raise InputError(f"Pad mode {mode!r}; expected constant, reflect, edge or wrap")
    return [np.pad(x, widths, mode=mode)]


# ------------------------------------------------------------------ normalisation
@op("BatchNormalization")
def _batch_norm(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x, scale, bias, mean, var = xs[:5]
    if attrs.get("training_mode", 0):
        raise InputError("training mode is not supported; the runner computes inference")
    shape = (-1, *[1] * (x.ndim - 2))
    norm = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + attrs.get("epsilon", 1e-5))
    return [(norm * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype)]


@op("LayerNormalization")
def _layer_norm(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    x, scale = xs[0], xs[1]
    axes = tuple(range(_axis(attrs.get("axis", -1), x.ndim), x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(
        ((x - mean) ** 2).mean(axis=axes, keepdims=True) + attrs.get("epsilon", 1e-5)
    )
    y = (x - mean) * inv_std * scale
    if len(xs) > 2 and xs[2] is not None:
        y = y + xs[2]
    return [y.astype(x.dtype), mean, inv_std]


def _global_pool(fn: Any) -> Any:
    def run(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
        x = xs[0]
        return [np.asarray(fn(x, axis=tuple(range(2, x.ndim)), keepdims=True), x.dtype)]

    return run


OPS["GlobalAveragePool"], OPS["GlobalMaxPool"] = _global_pool(np.mean), _global_pool(np.max)


# --------------------------------------------------------------------------- LSTM
@op("LSTM")
def _lstm(xs: Inputs, attrs: dict[str, Any], opset: int) -> list[Array]:
    """Y, Y_h, Y_c by lstm_ref's engine, in X's dtype."""
    from .onnx import run_lstm_node

    node = attrs["_node"]
    x = xs[0]
    tensors = {name: a for name, a in zip(node.input, xs, strict=False) if name and a is not None}
    return [a.astype(x.dtype) for a in run_lstm_node(node, tensors)]
