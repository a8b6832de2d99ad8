"""A reference runner for whole ONNX graphs, shaped like onnxruntime's session.

``ReferenceSession(model).run(output_names, feeds)`` takes the graph's own input names,
layouts and dtypes and returns the outputs it names (every graph output for ``None``),
as ``onnxruntime.InferenceSession`` does — so a port is compared with the same call on
both. Each node is computed by :func:`.onnx_ops.run_node` (``LSTM`` by lstm_ref's
engine) in the graph's order; ``If``, ``Loop`` and ``Scan`` run their subgraphs here,
which see every tensor of the scopes around them. ``dtype=np.float64`` computes a
float32 model in float64 (its float inputs, initializers and every floating result
widened); ``None`` keeps the model's own types. Nodes of other domains are refused.
"""

from __future__ import annotations

import math
import os
from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .._checks import check_allocation
from ..errors import InputError, InputTypeError
from ..formats.safe_numpy import check_declared_sizes
from .onnx_ops import node_attributes, node_name, run_node

Array = np.ndarray
Scope = MutableMapping[str, Array]
_ORT_TYPE_NAMES = {"float32": "float", "float64": "double"}


class TensorInfo(NamedTuple):
    """A graph input or output as onnxruntime's ``NodeArg`` shows it."""

    name: str
    shape: list[int | str | None] | None  # each dimension's size, symbolic name or None
    type: str  # "tensor(float)", "tensor(int64)", ...
    dtype: np.dtype


def read_model(source: Any) -> Any:
    """An ``onnx.ModelProto`` from a path, bytes or a model (local functions inlined)."""
    import onnx

    if isinstance(source, str | os.PathLike | bytes):
        where = "model bytes" if isinstance(source, bytes) else os.fspath(source)
        try:
            model = (
                onnx.load_from_string(source)
                if isinstance(source, bytes)
                else load_within_bounds(where)
            )
        except InputError:
            raise
        except Exception as e:  # protobuf's DecodeError and friends: not an ONNX file
            raise InputError(f"{where}: not an ONNX model: {e}") from None
    elif isinstance(source, onnx.ModelProto):
        model = source
    else:
        raise InputTypeError(
            f"expected a path, bytes or an onnx.ModelProto; got {type(source).__name__}"
        )
    if model.functions:
        import onnx.inliner

        model = onnx.inliner.inline_local_functions(model)
    return model


def load_within_bounds(where: str) -> Any:
    """``onnx.load``, with lstm_ref's bounds checked first: the file (read whole) at most
    2 GiB, and the sizes its tensors stored outside it (external data) declare."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data
    from onnx.helper import tensor_dtype_to_np_dtype

    check_allocation((os.path.getsize(where),), np.uint8, f"{where}: the ONNX file")
    model = onnx.load(where, load_external_data=False)
    outside = [t for t in model.graph.initializer if uses_external_data(t)]
    check_declared_sizes(
        (
            (
                f"tensor {t.name!r}",
                math.prod(t.dims) * tensor_dtype_to_np_dtype(t.data_type).itemsize,
            )
            for t in outside
        ),
        where,
    )
    if outside:
        load_external_data_for_model(model, os.path.dirname(os.path.abspath(where)))
    return model


def default_opset(model: Any) -> int:
    """The model's version of ONNX's own operator set."""
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def dims_of(tensor_type: Any) -> list[int | str | None]:
    """Each dimension of an ONNX tensor type's shape: its size, symbolic name or None."""
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
        for d in tensor_type.shape.dim
    ]


def _info(value_info: Any) -> TensorInfo:
    import onnx

    if not value_info.type.HasField("tensor_type"):
        kind = value_info.type.WhichOneof("value")
        raise InputError(f"{value_info.name!r} is of type {kind}; the runner takes tensors only")
    t = value_info.type.tensor_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))
    shape = dims_of(t) if t.HasField("shape") else None  # None: the rank is not given
    return TensorInfo(
        value_info.name, shape, f"tensor({_ORT_TYPE_NAMES.get(dtype.name, dtype.name)})", dtype
    )


class ReferenceSession:
    """Run an ONNX model with lstm_ref's NumPy operators, as ``onnxruntime`` would.

    Parameters
    ----------
    source : path, bytes or onnx.ModelProto
    dtype : None, float32 or float64
        None computes in the model's own types; float64 widens every floating tensor.
    """

    def __init__(self, source: Any, dtype: np.dtype | type | None = None) -> None:
        self.model = read_model(source)
        self.opset = default_opset(self.model)
        self.float_dtype = None if dtype is None else np.dtype(dtype)
        if self.float_dtype is not None and self.float_dtype not in (np.float32, np.float64):
            raise InputTypeError(f"dtype {self.float_dtype}; expected None, float32 or float64")
        graph = self.model.graph
        self._initializers = _initializers(graph, self.float_dtype)
        self._inputs = [_info(i) for i in graph.input if i.name not in self._initializers]
        self._outputs = [_info(o) for o in graph.output]

    def get_inputs(self) -> list[TensorInfo]:
        """The inputs a caller feeds (graph inputs that are not initializers)."""
        return list(self._inputs)

    def get_outputs(self) -> list[TensorInfo]:
        """The graph's outputs, in its order."""
        return list(self._outputs)

    def run(
        self,
        output_names: Sequence[str] | None,
        feeds: Mapping[str, Any],
        run_options: Any = None,
    ) -> list[Array]:
        """The named graph outputs (every one for None), in that order.

        Parameters
        ----------
        output_names : list of str or None
        feeds : dict of str to ndarray
            Every input :meth:`get_inputs` lists, of its dtype (any float dtype when the
            session computes in float64 or float32) and its fixed dimensions.
        run_options : ignored
            Taken so that onnxruntime's calls run unchanged.
        """
        names = [o.name for o in self._outputs] if output_names is None else list(output_names)
        known = {o.name for o in self._outputs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InputError(f"unknown output(s) {unknown}; the model's are {sorted(known)}")
        values = run_graph(
            self.model.graph,
            {**self._initializers, **self._checked_feeds(feeds)},
            self.opset,
            self.float_dtype,
        )
        return [values[n] for n in names]

    def _checked_feeds(self, feeds: Mapping[str, Any]) -> dict[str, Array]:
        expected = {i.name: i for i in self._inputs}
        overridable = {i.name for i in self.model.graph.input} & set(self._initializers)
        extra = sorted(set(feeds) - set(expected) - overridable)
        missing = sorted(set(expected) - set(feeds))
        if extra or missing:
            raise InputError(
                f"feeds {sorted(feeds)}; the model takes {sorted(expected)}"
                + (f" (unknown: {extra})" if extra else "")
                + (f" (missing: {missing})" if missing else "")
            )
        checked = {}
        for name, value in feeds.items():
            a = np.asarray(value)
            info = expected.get(name) or _info(
                next(i for i in self.model.graph.input if i.name == name)
            )
            widen = self.float_dtype is not None and a.dtype.kind == info.dtype.kind == "f"
            if a.dtype != info.dtype and not widen:
                raise InputTypeError(f"input {name!r} has dtype {a.dtype}; expected {info.type}")
            if info.shape is not None and (
                a.ndim != len(info.shape)
                or any(
                    isinstance(d, int) and d not in (0, n)
                    for d, n in zip(info.shape, a.shape, strict=True)
                )
            ):
                raise InputError(f"input {name!r} has shape {a.shape}; expected {info.shape}")
            checked[name] = a.astype(self.float_dtype) if widen else a
        return checked


def _initializers(graph: Any, float_dtype: np.dtype | None) -> dict[str, Array]:
    from onnx import numpy_helper

    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    if float_dtype is not None:
        arrays = {k: a.astype(float_dtype) if a.dtype.kind == "f" else a for k, a in arrays.items()}
    return arrays


def run_graph(
    graph: Any, scope: Mapping[str, Array], opset: int, float_dtype: np.dtype | None = None
) -> Scope:
    """Every tensor of ``graph`` computed from ``scope`` (its inputs, initializers and
    outer scopes), as a mapping that also sees ``scope``."""
    values: Scope = ChainMap({}, scope)  # type: ignore[arg-type]
    for node in graph.node:
        missing = [n for n in node.input if n and n not in values]
        if missing:
            raise InputError(
                f"node {node_name(node)!r} ({node.op_type}) takes {missing}, which "
                "no earlier node computes and no input gives"
            )
        xs = [values[n] if n else None for n in node.input]
        control = CONTROL_FLOW.get(node.op_type)
        if control is not None and node.domain in ("", "ai.onnx"):
            ys = control(node, xs, values, opset, float_dtype)
        else:
            ys = run_node(node, xs, opset, float_dtype)
        for name, y in zip(node.output, ys, strict=False):
            if name:
                values[name] = y
    return values


def _run_body(
    body: Any, feeds: list[Array], scope: Scope, opset: int, float_dtype: np.dtype | None
) -> list[Array]:
    """A subgraph's outputs from its inputs in order, seeing ``scope`` around it."""
    own = {i.name: a for i, a in zip(body.input, feeds, strict=True)}
    inner = ChainMap(own, _initializers(body, float_dtype), scope)  # type: ignore[arg-type]
    values = run_graph(body, inner, opset, float_dtype)
    return [values[o.name] for o in body.output]


def _if(node: Any, xs: list[Any], scope: Scope, opset: int, fd: np.dtype | None) -> list[Array]:
    cond = np.asarray(xs[0])
    if cond.size != 1:
        raise InputError(
            f"node {node_name(node)!r} (If): condition of shape {cond.shape}; expected one value"
        )
    branch = node_attributes(node)["then_branch" if cond.reshape(-1)[0] else "else_branch"]
    return _run_body(branch, [], scope, opset, fd)


def _loop(node: Any, xs: list[Any], scope: Scope, opset: int, fd: np.dtype | None) -> list[Array]:
    body = node_attributes(node)["body"]
    trips, cond, carried = xs[0], xs[1], list(xs[2:])
    keep = True if cond is None else bool(np.asarray(cond).reshape(-1)[0])
    scans: list[list[Array]] = []
    i = 0
    while keep and (trips is None or i < int(np.asarray(trips).reshape(-1)[0])):
        feeds = [np.asarray(i, np.int64), np.asarray(keep), *carried]
        out = _run_body(body, feeds, scope, opset, fd)
        keep, carried = bool(np.asarray(out[0]).reshape(-1)[0]), out[1 : 1 + len(carried)]
        scans.append(out[1 + len(carried) :])
        i += 1
    n_scan = len(body.output) - 1 - len(carried)
    stacked = [np.stack([s[k] for s in scans]) if scans else np.zeros((0,)) for k in range(n_scan)]
    return [*carried, *stacked]


def _scan(node: Any, xs: list[Any], scope: Scope, opset: int, fd: np.dtype | None) -> list[Array]:
    if opset < 9:
        raise InputError(
            f"node {node_name(node)!r} (Scan): opset {opset}'s Scan (with a batch axis) is not "
            "supported; expected opset >= 9"
        )
    attrs = node_attributes(node)
    body, m = attrs["body"], int(attrs["num_scan_inputs"])
    n = len(xs) - m
    states, inputs = list(xs[:n]), xs[n:]
    in_axes = [
        a % x.ndim for a, x in zip(attrs.get("scan_input_axes", [0] * m), inputs, strict=True)
    ]
    in_dirs = attrs.get("scan_input_directions", [0] * m)
    steps = inputs[0].shape[in_axes[0]]
    collected: list[list[Array]] = []
    for t in range(steps):
        slices = [
            np.take(x, steps - 1 - t if d else t, axis=a)
            for x, a, d in zip(inputs, in_axes, in_dirs, strict=True)
        ]
        out = _run_body(body, [*states, *slices], scope, opset, fd)
        states, step_outputs = out[:n], out[n:]
        collected.append(step_outputs)
    k = len(body.output) - n
    out_axes = attrs.get("scan_output_axes", [0] * k)
    out_dirs = attrs.get("scan_output_directions", [0] * k)
    scanned = []
    for j in range(k):
        parts = [c[j] for c in collected]
        if out_dirs[j]:
            parts = parts[::-1]
        rank = parts[0].ndim + 1
        scanned.append(np.stack(parts, axis=out_axes[j] % rank))
    return [*states, *scanned]


CONTROL_FLOW = {"If": _if, "Loop": _loop, "Scan": _scan}
