"""Observed outputs from a model's own framework: torch (``.pt``), onnxruntime (``.onnx``),
Keras (``.keras``, ``.h5``), each imported only when asked for.

Every runner takes the padded batch ``x`` (N, T, C), float64, with ``lengths`` (N,), and
the initial state (:mod:`.layouts`' lstm_ref form, rows (N, ·)), and returns ``{"output":
y}`` — (N, K) or (N, T, W), batch first, in the model's own dtype — and the padding
semantics it computed under (a key of :data:`~.reference.SEMANTICS`).

- torch: the state_dict is loaded into the ``nn.LSTM`` (and ``nn.Linear`` head) its shapes
  describe, run on packed sequences from ``(h_0, c_0)``; the head reads ``h_n`` (the top
  layer's, or every layer's when it is that wide: an LSTMStack) and applies softmax (the
  classifier of :mod:`lstm_ref.interop.torch`); without a head, the padded outputs.
  Semantics "masked".
- onnxruntime: the graph's first input gets X (T, N, C) (time first, as ONNX's LSTM) — or
  (N, T, C) when the graph transposes it to time first — an integer second input
  ``sequence_lens``; its one output (or the one ``options["output"]`` names), a
  (T, N, ·) output of a time-first graph or a (T, D, N, H) one brought to (N, T, ·), an
  LSTM's Y_h or Y_c (D, N, H) to (N, D·H).
  Semantics "masked" with ``sequence_lens``; without it onnxruntime computes over the
  padding: "matlab".
- Keras: ``model.predict`` on the zero-padded batch: semantics "keras" under a ``Masking``
  layer, else the padding is data: "matlab".

onnxruntime and Keras start from the model's own initial state; a different one is refused
(give the outputs observed from it instead).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..interop import framework_needed
from ..network import Network
from .layouts import onnx_steps

Array = np.ndarray


Run = tuple[dict[str, Array], str]
Start = Callable[[], tuple[Array, Array]]  # torch's (h_0, c_0), (L·D, N, ·) each


def run_torch(
    path: Path, x: Array, lengths: Array, start: Start, options: Mapping[str, Any]
) -> Run:
    """The ``nn.LSTM`` the importer reads (with ``options``: ``prefix``, ``head``,
    ``softmax``, ``last``) run on packed sequences, its head on ``h_n`` (or each sequence's
    last step)."""
    import torch

    from ..interop.torch import from_torch, torch_lstm_options
    from ..interop.torch_checkpoint import find_lstms, pick_lstm, read_tensors

    net = from_torch(path, **options)  # what the importer reads, and its errors
    tensors, where = read_tensors(path)
    found = pick_lstm(find_lstms(tensors), where, options.get("prefix"))
    if found.kind != "LSTM":
        raise InputError(f"{path}: {found} is no nn.LSTM; only an nn.LSTM is run here")
    first = tensors[f"{found.prefix}weight_ih_l0"]
    dtype = first.dtype if isinstance(first, torch.Tensor) else torch.from_numpy(first).dtype
    lstm = torch.nn.LSTM(**torch_lstm_options(net)).to(dtype).eval()
    lstm.load_state_dict({k[len(found.prefix) :]: torch.as_tensor(tensors[k]) for k in found.keys})
    head = options.get("head")
    if head is not None:
        keys = [f"{head.rstrip('.')}.weight", f"{head.rstrip('.')}.bias"]
    elif options.get("prefix") is None:  # the one nn.Linear beside the LSTM, if any
        keys = [k for k in tensors if k not in found.keys]
    else:
        keys = []  # the LSTM alone, as the importer reads it
    linear = {k: torch.as_tensor(tensors[k]).to(dtype) for k in keys if k in tensors}
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x).to(dtype),
        torch.as_tensor(lengths),
        batch_first=True,
        enforce_sorted=False,
    )
    h_0, c_0 = (torch.from_numpy(np.ascontiguousarray(a)).to(dtype) for a in start())
    with torch.no_grad():
        out, (h_n, _) = lstm(packed, (h_0, c_0))
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=x.shape[1]
        )
        if not linear:
            return {"output": y.numpy()}, "masked"
        weight = next(v for k, v in linear.items() if k.endswith("weight"))
        bias = next((v for k, v in linear.items() if k.endswith("bias")), 0)
        D = 2 if lstm.bidirectional else 1  # a head on every layer's h_n (L·D·H) or the top's
        every = weight.shape[1] == h_n.shape[0] * h_n.shape[2]
        if options.get("last") == "step":  # each sequence's output at its last step
            last = y[torch.arange(len(lengths)), torch.as_tensor(lengths) - 1]
        else:
            last = torch.cat(list(h_n if every else h_n[-D:]), dim=1)
        logits = last @ weight.T + bias
        probs = logits.softmax(dim=1) if options.get("softmax", True) else logits
        return {"output": probs.numpy()}, "masked"


def run_onnx(path: Path, x: Array, lengths: Array, start: Start, options: Mapping[str, Any]) -> Run:
    import onnxruntime as ort  # type: ignore[import-untyped]

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    chosen = options.get("output")
    if chosen is None and len(outputs) > 1:
        raise InputError(
            f"{path}: the graph has outputs {outputs}; choose one (--graph-output NAME, "
            "API options={'output': name})"
        )
    if chosen is not None and chosen not in outputs:
        raise InputError(f"{path}: no graph output {chosen!r}; it has {outputs}")
    states = onnx_state_inputs(path)
    inputs = [i for i in session.get_inputs() if i.name not in states]
    batch_first = _batch_first(path, inputs[0].name)
    X = x if batch_first else x.transpose(1, 0, 2)
    fixed = _fixed_shape_error(
        path,
        "the ONNX file",
        inputs[0].shape,
        X.shape,
        0 if batch_first else 1,
        "export it with dynamic axes (torch.onnx.export's dynamic_shapes or dynamic_axes)",
    )
    if fixed is not None:  # onnxruntime refuses any other size of a fixed dimension
        raise fixed
    feeds = {inputs[0].name: np.ascontiguousarray(X, dtype=np.float32)}
    for name, k in states.items():  # torch's (L·D, N, H), as torch.onnx.export takes h_0
        feeds[name] = np.ascontiguousarray(start()[k], dtype=np.float32)
    for extra in inputs[1:]:
        if "int" not in extra.type:
            raise InputError(
                f"{path}: input {extra.name!r} ({extra.type}) is neither sequence_lens nor an "
                "LSTM's initial state"
            )
        feeds[extra.name] = lengths.astype(np.int32 if "int32" in extra.type else np.int64)
    (y,) = session.run([chosen or outputs[0]], feeds)
    if y.ndim == 4:  # (T, D, N, H) → (N, T, D·H)
        y = onnx_steps(y)
    elif y.ndim == 3 and _is_lstm_state(path, chosen or outputs[0]):  # (D, N, H) → (N, D·H)
        y = y.transpose(1, 0, 2).reshape(y.shape[1], -1)
    elif y.ndim == 3 and not batch_first:  # (T, N, K) → (N, T, K)
        y = y.transpose(1, 0, 2)
    return {"output": y}, "masked" if len(inputs) > 1 else "matlab"


def onnx_state_inputs(path: Path) -> dict[str, int]:
    """The graph inputs an LSTM's initial_h (0) or initial_c (1) is computed from (their
    shapes aside), by name."""
    from ..interop.onnx_runner import read_model

    graph = read_model(path).graph
    runtime = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    found = {}
    for k in (0, 1):
        want = {n.input[5 + k] for n in graph.node if n.op_type == "LSTM" and len(n.input) > 5 + k}
        for node in reversed(graph.node):
            if node.op_type not in ("Shape", "Size") and any(o in want for o in node.output):
                want.update(node.input)
        found.update({name: k for name in sorted(want & runtime)})
    return found


def zero_state_inputs(path: Path) -> dict[str, Array]:
    """Zeros for each of an ONNX graph's state inputs (:func:`onnx_state_inputs`) in its
    declared shape, a size the graph leaves open 1 (what its weights are read with)."""
    from ..interop.onnx_runner import read_model

    declared = {i.name: i.type.tensor_type.shape.dim for i in read_model(path).graph.input}
    return {
        name: np.zeros([d.dim_value or 1 for d in declared[name]], np.float32)
        for name in onnx_state_inputs(path)
    }


def read_reference(
    path: Path, options: Mapping[str, Any], class_names: list[str] | None = None
) -> Network:
    """The model file ``path`` read as the reference with the importer ``options`` (and
    ``class_names``, :func:`~lstm_ref.interop.load_model`'s); an ONNX graph whose LSTMs
    read their initial state from graph inputs is read with zeros there, and starts from
    zeros (the state verify is given replaces it)."""
    from ..interop import load_model

    zeros = zero_state_inputs(path) if path.suffix.lower() == ".onnx" else {}
    if not zeros:
        return load_model(path, class_names=class_names, **options)
    net = load_model(path, class_names=class_names, inputs=zeros, **options)
    net.reset_state()
    return net


def _is_lstm_state(path: Path, name: str) -> bool:
    """Whether the graph output ``name`` is an LSTM node's Y_h or Y_c (D, N, H)."""
    import onnx

    nodes = onnx.load(path).graph.node
    return any(n.op_type == "LSTM" and name in list(n.output)[1:3] for n in nodes)


def _batch_first(path: Path, name: str) -> bool:
    """Whether the graph takes X batch first: its first use (but for reading its Shape) is a
    Transpose to time first (torch.onnx.export of a ``batch_first`` module)."""
    import onnx

    uses = (n for n in onnx.load(path).graph.node if name in n.input and n.op_type != "Shape")
    first = next(uses, None)
    if first is None or first.op_type != "Transpose":
        return False
    perm = next((list(a.ints) for a in first.attribute if a.name == "perm"), None)
    return perm == [1, 0, 2]


def run_keras(
    path: Path, x: Array, lengths: Array, start: Start, options: Mapping[str, Any]
) -> Run:
    import keras  # type: ignore[import-untyped]

    try:
        model = keras.models.load_model(path, compile=False)
    except ValueError as e:  # a layer or op it wrote and cannot deserialise
        raise InputError(
            f"{path}: Keras cannot load this file back ({str(e).split('. ')[0]}); save it as "
            ".keras, or run it where it was made and give its outputs with --observed"
        ) from None
    try:
        y = np.asarray(model.predict(x.astype(np.float32), verbose=0))
    except ValueError:  # a functional model checks its Input's shape (a Sequential may not)
        remedy = "build the model with Input(shape=(None, features)) to take any length"
        declared = tuple(model.inputs[0].shape)
        fixed = _fixed_shape_error(path, "the Keras model", declared, x.shape, 0, remedy)
        if fixed is None:
            raise
        raise fixed from None
    masked = any(isinstance(layer, keras.layers.Masking) for layer in model.layers)
    return {"output": y}, "keras" if masked else "matlab"


def _fixed_shape_error(
    path: Path, what: str, declared: object, shape: tuple[int, ...], batch_axis: int, remedy: str
) -> InputError | None:
    """The error for inputs of ``shape`` given to a model declaring the input shape
    ``declared`` (ints fixed, names or None free), naming the batch and steps it takes;
    None when they fit."""
    dims = list(declared) if isinstance(declared, list | tuple) else []
    if len(dims) != len(shape) or all(
        not isinstance(d, int) or d == n for d, n in zip(dims, shape, strict=True)
    ):
        return None
    batch, steps = dims[batch_axis], dims[1 - batch_axis]
    wants = [
        *([f"a batch of {batch}"] if isinstance(batch, int) else []),
        *([f"{steps} steps"] if isinstance(steps, int) else []),
    ]
    sizes = [f"--batch {batch}"] * isinstance(batch, int) + [
        f"--length-range {steps}-{steps}"
    ] * isinstance(steps, int)
    return InputError(
        f"{path}: {what} takes inputs of fixed shape {dims} ({' and '.join(wants)}); the "
        f"inputs are {list(shape)}: give inputs of that shape (--inputs, or "
        f"{' '.join(sizes)}), or {remedy}"
    )


RUNNERS: dict[str, tuple[str, Callable[..., Run]]] = {
    ".pt": ("torch", run_torch),
    ".pth": ("torch", run_torch),
    ".onnx": ("onnxruntime", run_onnx),
    ".keras": ("keras", run_keras),
    ".h5": ("keras", run_keras),
    ".hdf5": ("keras", run_keras),
}


def own_semantics(path: Path | None, net: Network) -> str:
    """The padding semantics the model ``net`` (read from ``path``, None: given as a
    Network) computes under in its own framework — what :func:`run_framework` reports for
    it — read without running it: an ONNX graph without an integer ``sequence_lens`` input
    and a Keras model without ``Masking`` compute over the padding ("matlab"), as MATLAB
    does; otherwise the network's own padding ("masked" for PyTorch's packed sequences)."""
    suffix = path.suffix.lower() if path is not None else ""
    if path is not None and suffix == ".onnx":
        from onnx.helper import tensor_dtype_to_np_dtype

        from ..interop.onnx_runner import read_model

        graph = read_model(path).graph
        constants = {t.name for t in graph.initializer}
        types = [i.type.tensor_type.elem_type for i in graph.input if i.name not in constants]
        lengths = any(tensor_dtype_to_np_dtype(t).kind in "iu" for t in types)
        return "masked" if lengths else "matlab"
    if suffix == ".mat" or net.padding.kind == "matlab":
        return "matlab-left" if net.padding.direction == "left" else "matlab"
    if net.padding.kind == "keras":
        return "keras"
    return "matlab" if suffix in (".keras", ".h5", ".hdf5") else "masked"


TORCH_OPTIONS = ("prefix", "head", "softmax", "last")
FORMAT_OPTIONS = {  # the importer options (load_model's) each format takes
    ".pt": TORCH_OPTIONS,
    ".pth": TORCH_OPTIONS,
    ".safetensors": TORCH_OPTIONS,
    ".onnx": ("output",),
}


def options_for(path: Path | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """The importer options of ``options`` that the format of ``path`` takes."""
    taken = FORMAT_OPTIONS.get(path.suffix.lower(), ()) if path is not None else ()
    return {k: v for k, v in options.items() if k in taken}


def run_framework(
    path: Path,
    x: Array,
    lengths: Array,
    start: Start,
    own_start: bool,
    options: Mapping[str, Any],
) -> tuple[str, dict[str, Array], str]:
    """The framework's name, its outputs for the model file ``path`` and the padding
    semantics they follow. ``start()``: torch's (h_0, c_0) (L·D, N, ·), asked for by the
    torch run and an ONNX graph with state inputs (:func:`onnx_state_inputs`); ``own_start``
    whether that is the model's own initial state (the only one another ONNX graph and
    Keras runs take); ``options`` the importer options the file's format takes
    (:data:`FORMAT_OPTIONS`)."""
    suffix = path.suffix.lower()
    if suffix not in RUNNERS:
        raise InputError(
            f"{path}: no framework runs {suffix or 'suffix-less'} files here; expected one of "
            f"{sorted(RUNNERS)} (or give the outputs with --observed)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no model file {str(path)!r}")
    name, run = RUNNERS[suffix]
    if name == "torch" and not lengths.all():
        raise InputError(f"{path}: torch's packed sequences take no zero-length sequence")
    takes_state = name == "torch" or (name == "onnxruntime" and bool(onnx_state_inputs(path)))
    if not takes_state and not own_start:
        raise InputError(
            f"{path}: running it from another initial state than its own is not supported "
            f"here; run {name} on it yourself and give the outputs it observed"
        )
    with framework_needed(path, "running", "or give the outputs with --observed"):
        outputs, semantics = run(path, x, lengths, start, options_for(path, options))
    return name, outputs, semantics
