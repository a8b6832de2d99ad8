"""Keras: ``.keras`` archives (Keras 3) and legacy ``.h5`` files (Keras 2 / tf.keras, or
Keras 3's legacy writer), read with ``h5py`` and ``json`` — the framework is not imported
and no model is built. Export (:mod:`.keras_export`) builds the Keras model (lazily
importing keras) and saves it.

The layout, once (``kernel`` etc. as ``keras/src/layers/rnn/lstm.py`` names them; u units):

=======================  ==============  =====================  =============================
Keras weight             shape           lstm_ref               transform
=======================  ==============  =====================  =============================
LSTM ``kernel``          (C, 4u)         ``LSTM.params.W``      transposed
LSTM ``recurrent_kernel`` (u, 4u)        ``LSTM.params.R``      transposed
LSTM ``bias``            (4u,)           ``LSTM.params.b``      none (zeros if use_bias=False)
CuDNNLSTM ``kernel``     (C, 4u)         ``LSTM.params.W``      gate block k, (C, u), read
                                                                row-major as (u, C)
CuDNNLSTM ``recurrent``  (u, 4u)         ``LSTM.params.R``      gate block k as stored (u, u)
CuDNNLSTM ``bias``       (8u,)           ``LSTM.params.b``      input half + recurrent half
Dense ``kernel``         (H, K)          ``FullyConnected``     transposed
Dense ``bias``           (K,)            ``FullyConnected``     none
=======================  ==============  =====================  =============================

Gate blocks are i, f, c, o — lstm_ref's i, f, g, o — so nothing is reordered. The legacy
``CuDNNLSTM`` (Keras 2, tf.keras 1.x) handed each gate's kernel block to cuDNN without
transposing it, so cuDNN reads it as a row-major (u, C) matrix (Keras's own loader:
``k.T.reshape(k.shape, order="F")``), and stores cuDNN's two biases; it has sigmoid and tanh
only and no masking. Where the
arrays are: a ``.keras`` archive's ``model.weights.h5`` holds ``layers/<key>/cell/vars/0, 1,
2`` (kernel, recurrent kernel, bias; a Bidirectional's under ``forward_layer``/
``backward_layer``) and ``layers/<key>/vars/0, 1`` for a Dense, where ``<key>`` is the
snake-cased class name numbered in model order (``lstm``, ``lstm_1``, …), not the layer's
name; a legacy ``.h5`` file holds ``model_weights/<layer name>/`` with the attribute
``weight_names`` in the same order (a Bidirectional's forward three, then its backward three).

Semantics: ``activation`` → ``state_activation`` and ``recurrent_activation`` →
``gate_activation``, with ``hard_sigmoid`` by the version that wrote the file — Keras 3
clip(x/6 + 0.5) (``"hard-sigmoid-keras3"``), Keras 1/2 and tf.keras ≤ 2.15 clip(0.2x + 0.5)
(``"hard-sigmoid"``) — read from the file's ``keras_version``. ``unit_forget_bias`` only
initialises (the stored bias is used); dropout and recurrent dropout act in training only.
``return_sequences`` → ``output_mode``; ``go_backwards`` with only the last output →
``direction="reverse"`` (the same final state). A ``go_backwards`` *sequence* comes out in
processing order, reversed in time → ``direction="reverse"`` and a :class:`TimeReversal`
after it. ``Bidirectional`` → :class:`BiLSTM` with its ``merge_mode`` (concat, sum, mul, ave),
its halves from ``layer`` and ``backward_layer`` (Keras 3 saves both; the forward one must
go forward). ``Masking`` marks padded steps: Keras carries the state through them and
repeats the previous output there (zeros inside a Bidirectional with ``return_sequences``)
— ``Padding.keras()``, which computes as ``Padding.masked()`` and returns a padded batch
of per-step outputs as Keras writes it (a masked step *inside* a sequence is not
supported). Under Masking a
go_backwards sequence of n steps in a padded batch of T holds T − n zeros (its padding,
processed first) and then its n outputs, which lstm_ref returns; but Keras passes the mask
on *unreversed*, so a recurrent layer after it reads those zeros and misses outputs (a
result that depends on the padded length): refused. ``zero_output_for_mask`` with only the
last output under Masking (0 for every shorter sequence) is refused too. ``Normalization``
on the last axis (its mean and variance from the config, or adapted arrays) → a z-scoring
``SequenceInput``, std = sqrt(variance). ``Dense`` with ``softmax`` (or linear, or an
``Activation('softmax')`` after it) → FullyConnected (+ Softmax); ``Dropout`` is skipped.
Anything else (GRU, attention, a custom layer) is refused with the layer's name and class.

The graph. A Sequential model is its layer list. A Functional model's layers must form one
chain from its one input: each layer called once, on one tensor, which Keras 3 saves as the
node ``{"args": [tensor], "kwargs": {...}}`` with ``tensor["config"]["keras_history"] =
[layer, node, index]`` (Keras 2: ``[[layer, node, index, kwargs]]``); the model's outputs
are ``output_layers``, a list of [layer, node, index]. The mask ops a Masking layer adds to
a Functional model (``NotEqual``, ``Any``, read through ``kwargs["mask"]``) are left out.
``return_state=True`` makes an LSTM's outputs [output, h, c] (a Bidirectional's [output,
h_f, c_f, h_b, c_b]), indices 0 … 4:

- h read by the next layer (or the model's output) → ``output_mode="last"``: h after each
  sequence's last step, which is exactly the last output;
- h and c among the model's other outputs → ``Network.predict(..., return_state=True)``'s
  state of that layer, by its name (a Bidirectional's h = [h_f ‖ h_b], c = [c_f ‖ c_b]);
- c, or a Bidirectional's state, read by a layer → refused (lstm_ref's layers pass on h,
  a BiLSTM its merged output); so are a branching graph, several data outputs, a shared
  layer and an ``initial_state`` from the graph.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections import Counter
from typing import Any

import numpy as np

from .._checks import check_real_dtype
from ..errors import InputError
from ..formats.safe_numpy import check_hdf5_sizes, zip_members
from ..layers import (
    LSTM,
    MERGE_MODES,
    BiLSTM,
    FullyConnected,
    Layer,
    SequenceInput,
    Softmax,
    TimeReversal,
    directions,
    reverse_sequence,
)
from ..lstm import LSTMParams
from ..network import Network

Array = np.ndarray
ACTIVATIONS = {  # Keras activation names -> lstm_ref's (hard_sigmoid depends on the version)
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softsign": "softsign",
    "relu": "Relu",
    "linear": "Affine(alpha=1.0, beta=0.0)",
    None: "Affine(alpha=1.0, beta=0.0)",
}
RECURRENT = ("LSTM", "CuDNNLSTM")
RECURRENT_LAYERS = (*RECURRENT, "Bidirectional")
MASK_OPS = ("NotEqual", "Any")  # a Functional model's Masking computes its mask with these
SKIPPED = ("InputLayer", "Dropout", "Masking")  # nothing to compute


def from_keras(path: str | os.PathLike, *, dtype: np.dtype | type = np.float64) -> Network:
    """A Network from a ``.keras`` archive or a legacy ``.h5`` file (see the module docstring).

    Parameters
    ----------
    path : path
        The file; Keras is not imported.
    dtype : float64 (default) or float32

    Returns
    -------
    Network
        SequenceInput (z-scoring for a Normalization layer) → LSTM/BiLSTM layers →
        FullyConnected (→ Softmax), in the model's order; an LSTM without
        ``return_sequences`` has ``output_mode="last"``.
    """
    import h5py  # type: ignore[import-untyped]

    where = os.fspath(path)
    try:
        if zipfile.is_zipfile(where):
            with zipfile.ZipFile(where) as z:
                zip_members(z, where)  # sizes declared within bounds before any is read
                config = json.loads(z.read("config.json"))
                version = json.loads(z.read("metadata.json")).get("keras_version", "3")
                weights = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
            reader = _ArchiveWeights(weights)
        else:
            weights = h5py.File(where, "r")
            if "model_config" not in weights.attrs:
                raise InputError(f"{where}: an HDF5 file without a Keras model_config")
            config = json.loads(weights.attrs["model_config"])
            version = str(weights.attrs.get("keras_version", "2"))
            reader = _LegacyWeights(weights)  # type: ignore[assignment]
    except (OSError, KeyError, json.JSONDecodeError, zipfile.BadZipFile) as e:
        raise InputError(f"{where}: not a Keras model file (.keras or .h5): {e}") from None
    with weights:
        check_hdf5_sizes(weights, where)
        return _network(config, version, reader, where, dtype)


class _ArchiveWeights:
    """model.weights.h5 of a .keras archive: arrays by class-numbered key."""

    def __init__(self, f: Any):
        self.f = f

    def arrays(self, layer: dict[str, Any], key: str, direction: str = "") -> list[Array]:
        group = f"layers/{key}/{direction + '_layer/' if direction else ''}"
        recurrent = layer["class_name"] in RECURRENT_LAYERS
        path = f"{group}cell/vars" if recurrent else f"{group}vars"
        if path not in self.f:
            return []
        own = self.f[path]
        return [_real(own[str(k)]) for k in range(len(own))]


class _LegacyWeights:
    """A legacy .h5 file: arrays by layer name, in the order of ``weight_names``."""

    def __init__(self, f: Any):
        self.f = f["model_weights"] if "model_weights" in f else f

    def arrays(self, layer: dict[str, Any], key: str, direction: str = "") -> list[Array]:
        name = layer["config"]["name"]
        if name not in self.f:
            return []
        group = self.f[name]
        names = [
            n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]
        ]
        if direction:  # the forward layer's arrays, then the backward layer's
            half = len(names) // 2
            names = names[:half] if direction == "forward" else names[half:]
        return [_real(group[n]) for n in names]


def _real(dataset: Any) -> Array:
    """A weight dataset's values, if they are real numbers (not bool, not complex)."""
    return check_real_dtype(np.asarray(dataset), f"Keras weight {dataset.name!r}")


def _snake(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _network(config: dict[str, Any], version: str, reader: Any, where: str, dtype: Any) -> Network:
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional", "Model"):
        raise InputError(f"{where}: a Keras {kind}; expected a Sequential or Functional model")
    specs, reads = _chain(config, where)
    keras2 = version.split(".")[0] in ("1", "2")
    counts: Counter[str] = Counter()
    layers: list[Layer] = []
    C = None
    masked = False  # a Masking layer before this one
    for k, spec in enumerate(specs):
        cls, cfg = spec["class_name"], spec["config"]
        key = _snake(cls) + (f"_{counts[_snake(cls)]}" if counts[_snake(cls)] else "")
        counts[_snake(cls)] += 1
        name = cfg.get("name", key)
        what = f"{where}: layer {name!r} ({cls})"
        read = reads.get(name, 0)
        if cls == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            C = shape[-1] if shape else None
        masked = masked or cls == "Masking"
        if cls in SKIPPED:
            continue
        if cls in RECURRENT:
            arrays = reader.arrays(spec, key)
            after = specs[k + 1 :]
            layers += _recurrent(spec, arrays, what, name, keras2, dtype, read, masked, after)
        elif cls == "Bidirectional":
            if read != 0:
                raise InputError(
                    f"{what}: its output {read} (a state of one direction) feeds the next "
                    "layer; lstm_ref's BiLSTM passes on its merged output only"
                )
            layers.append(_bidirectional(spec, reader, key, what, keras2, dtype, name))
        elif cls == "Dense":
            arrays = reader.arrays(spec, key)
            if len(arrays) != (2 if cfg.get("use_bias", True) else 1):
                raise InputError(f"{what}: {len(arrays)} arrays; expected kernel and bias")
            kernel = arrays[0]
            bias = arrays[1] if len(arrays) > 1 else np.zeros(kernel.shape[1])
            if kernel.ndim != 2 or bias.shape != kernel.shape[1:]:
                raise InputError(
                    f"{what}: kernel {kernel.shape}, bias {bias.shape}; expected (H, K), (K,)"
                )
            layers.append(FullyConnected(kernel.T.astype(dtype), bias.astype(dtype), name=name))
            activation = cfg.get("activation")
            if activation == "softmax":
                layers.append(Softmax(name=f"{name}_softmax"))
            elif activation not in ("linear", None):
                raise InputError(f"{what}: activation {activation!r}; expected softmax or linear")
        elif cls == "Normalization":
            layers.append(_normalization(cfg, reader.arrays(spec, key), what, dtype, name))
        elif cls == "Activation" and cfg.get("activation") == "softmax":
            layers.append(Softmax(name=name))
        else:
            raise InputError(
                f"{what}: not supported (LSTM, Bidirectional, Masking, Dense, Dropout)"
            )
    if not any(isinstance(x, LSTM | BiLSTM) for x in layers):
        raise InputError(f"{where}: no LSTM layer")
    head: list[Layer] = []
    if isinstance(layers[0], SequenceInput):
        head, layers = [layers[0]], layers[1:]
    first = layers[0]
    if not isinstance(first, LSTM | BiLSTM):
        raise InputError(f"{where}: the first layer with arrays must be an LSTM or Bidirectional")
    width = directions(first)[0].input_size
    if C is not None and C != width:
        raise InputError(f"{where}: the input has {C} features but the first LSTM takes {width}")
    return Network([*(head or [SequenceInput(width)]), *layers])


def _name(spec: dict[str, Any]) -> str:
    return str(spec.get("name") or spec["config"].get("name", ""))


def _chain(config: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The model's layers as one chain from its input to its output (the section "The
    graph" of the module docstring).

    Returns
    -------
    specs : list of dict
        The layers' configs in data-flow order (a Functional model's mask ops left out).
    reads : dict of str to int
        By layer name, which of its outputs flows on — 0 the output, 1 and 2 h and c of
        ``return_state`` (a Bidirectional's 1 … 4 h_f, c_f, h_b, c_b) — where it is not 0.
    """
    model = config["config"]
    specs = [s for s in model["layers"] if s["class_name"] not in MASK_OPS]
    if config["class_name"] == "Sequential":  # each layer reads its predecessor's output
        return specs, {}
    by_name = {_name(s): s for s in specs}
    fed: dict[str, list[tuple[str, int]]] = {n: [] for n in by_name}  # name -> (reader, index)
    for spec in specs:
        what = f"{where}: layer {_name(spec)!r} ({spec['class_name']})"
        for source, index in _inputs(spec, what):
            if source not in fed:
                raise InputError(f"{what}: reads layer {source!r}, which the model lacks")
            fed[source].append((_name(spec), index))
    outputs = [(str(n), int(i)) for n, _, i in _tensor_list(model.get("output_layers"))]
    inputs = [str(n) for n, _, _ in _tensor_list(model.get("input_layers"))]
    if len(inputs) != 1:
        raise InputError(f"{where}: {len(inputs)} model inputs {inputs}; expected one")
    chain, reads = [inputs[0]], {}
    while fed[chain[-1]]:
        if len(fed[chain[-1]]) > 1:
            readers = [n for n, _ in fed[chain[-1]]]
            raise InputError(
                f"{where}: layer {chain[-1]!r} feeds {readers}; lstm_ref's network is one chain"
            )
        ((reader, reads[chain[-1]]),) = fed[chain[-1]]
        chain.append(reader)
    off = [n for n in by_name if n not in chain]
    if off:
        raise InputError(f"{where}: layers {off} are off the path from the input to the output")
    end = chain[-1]
    ends = sorted(i for n, i in outputs if n == end)
    if not ends:
        raise InputError(f"{where}: the last layer {end!r} is not among the outputs {outputs}")
    reads[end] = ends[0]
    for n, i in outputs:
        if (n, i) != (end, ends[0]) and not 1 <= i <= _state_count(by_name[n]):
            raise InputError(
                f"{where}: outputs {outputs}; expected one output (and return_state's states)"
            )
    return [by_name[n] for n in chain], {n: i for n, i in reads.items() if i}


def _state_count(spec: dict[str, Any]) -> int:
    """How many states ``return_state`` adds to a layer's outputs, after the output itself:
    h and c (and, of a Bidirectional, both directions')."""
    cls, cfg = spec["class_name"], spec["config"]
    if cls == "Bidirectional" and cfg["layer"]["config"].get("return_state"):
        return 4
    return 2 if cls in RECURRENT and cfg.get("return_state") else 0


def _inputs(spec: dict[str, Any], what: str) -> list[tuple[str, int]]:
    """The (layer name, output index) a Functional model's layer reads: Keras 3 writes a
    node as ``{"args": [tensor], "kwargs": {"mask": tensor, …}}`` with a tensor's
    ``keras_history`` [layer, node, index]; Keras 2 as ``[[layer, node, index, kwargs]]``."""
    nodes = spec.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise InputError(f"{what}: called {len(nodes)} times (a shared layer); expected once")
    if not nodes:
        return []
    node = nodes[0]
    if isinstance(node, dict):
        refs = [t["config"]["keras_history"] for t in _keras_tensors(node.get("args", []))]
        kwargs = node.get("kwargs") or {}
    else:
        refs = [t[:3] for t in node]
        kwargs = {k: v for t in node if len(t) > 3 for k, v in t[3].items()}
    if kwargs.get("initial_state") is not None:
        raise InputError(f"{what}: an initial_state from the graph; lstm_ref starts from zeros")
    if len(refs) != 1:
        raise InputError(f"{what}: reads {len(refs)} tensors; expected one (one chain)")
    return [(str(refs[0][0]), int(refs[0][2]))]


def _keras_tensors(value: Any) -> list[dict[str, Any]]:
    """Every ``__keras_tensor__`` inside a Keras 3 node's (nested) arguments."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [value]
    items = value.values() if isinstance(value, dict) else value
    if isinstance(value, dict | list | tuple):
        return [t for item in items for t in _keras_tensors(item)]
    return []


def _tensor_list(refs: Any) -> list[list[Any]]:
    """``input_layers``/``output_layers``: one [layer, node, index], or a list (or dict) of
    them, in order."""
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return [refs]
    items = refs.values() if isinstance(refs, dict) else refs or []
    return [r for item in items for r in _tensor_list(item)]


def _normalization(
    cfg: dict[str, Any], arrays: list[Array], what: str, dtype: Any, name: str
) -> SequenceInput:
    """Keras's Normalization per feature: (x − mean) / sqrt(variance) — a z-scoring input
    (zero-centring when every variance is 1)."""
    if list(cfg.get("axis", [-1])) != [-1] or cfg.get("invert"):
        raise InputError(f"{what}: only axis -1 (per feature), not inverted, is supported")
    mean, variance = cfg.get("mean"), cfg.get("variance")
    if mean is None or variance is None:  # adapted: the arrays mean, variance, count
        if len(arrays) < 2:
            raise InputError(f"{what}: neither mean/variance in its config nor adapted arrays")
        mean, variance = arrays[0], arrays[1]
    m = np.asarray(mean, np.float64).reshape(-1).astype(dtype)
    v = np.asarray(variance, np.float64).reshape(-1)
    if (v == 1).all():
        return SequenceInput(len(m), name=name, normalization="zerocenter", mean=m)
    std = np.sqrt(v).astype(dtype)  # sqrt(std²) is std exactly: the export round trips
    return SequenceInput(len(m), name=name, normalization="zscore", mean=m, std=std)


def _recurrent(
    spec: dict[str, Any],
    arrays: list[Array],
    what: str,
    name: str,
    keras2: bool,
    dtype: Any,
    read: int,
    masked: bool,
    after: list[dict[str, Any]],
) -> list[Layer]:
    """An LSTM layer (``read``: which of its outputs flows on; ``masked``: under Masking;
    ``after``: the layers after it) — with a TimeReversal after a go_backwards sequence."""
    cfg = spec["config"]
    if read == 2:
        raise InputError(
            f"{what}: its cell state c feeds the next layer; lstm_ref's layers pass on h only "
            "(c is predict(..., return_state=True)'s state)"
        )
    if masked and cfg.get("zero_output_for_mask") and not cfg.get("return_sequences") and not read:
        raise InputError(
            f"{what}: zero_output_for_mask under Masking makes its last output 0 for every "
            "sequence shorter than the padded batch; not reproducible per sequence (read its "
            "state h instead)"
        )
    one = _lstm(
        cfg, arrays, what, keras2, dtype, name, spec["class_name"] == "CuDNNLSTM", read == 1
    )
    if not reverse_sequence(one):
        return [one]
    later = [s for s in after if s["class_name"] in RECURRENT_LAYERS]
    if masked and later:
        raise InputError(
            f"{what}: go_backwards with return_sequences under Masking feeds layer "
            f"{_name(later[0])!r}: Keras writes a sequence of n steps in a batch of T after "
            "T - n zeros but passes the mask on unreversed (the first n steps valid), so that "
            "layer reads zeros and misses outputs; its result depends on the padded length, "
            "which lstm_ref cannot reproduce"
        )
    return [one, TimeReversal(name=f"{name}_reversal")]


def _bidirectional(
    spec: dict[str, Any], reader: Any, key: str, what: str, keras2: bool, dtype: Any, name: str
) -> BiLSTM:
    """A Bidirectional's two LSTMs: ``layer`` (forward) and ``backward_layer`` (saved by
    Keras 3; else ``layer`` with go_backwards)."""
    cfg = spec["config"]
    mode = cfg.get("merge_mode")
    if mode not in MERGE_MODES:
        raise InputError(f"{what}: merge_mode {mode!r}; expected concat, sum, mul or ave")
    inner = cfg["layer"]
    backward = cfg.get("backward_layer") or dict(
        inner, config=dict(inner["config"], go_backwards=True)
    )
    halves = []
    for sub, half in (("forward", inner), ("backward", backward)):
        if half["class_name"] not in RECURRENT:
            raise InputError(f"{what}: wraps a {half['class_name']}; expected an LSTM")
        backwards = bool(half["config"].get("go_backwards"))
        if backwards != (sub == "backward"):
            raise InputError(
                f"{what}: its {sub} layer has go_backwards={backwards}; expected the forward "
                "layer forward and the backward layer backwards"
            )
        arrays = reader.arrays(spec, key, sub)
        cudnn = half["class_name"] == "CuDNNLSTM"
        halves.append(_lstm(half["config"], arrays, what, keras2, dtype, f"{name}_{sub}", cudnn))
    return BiLSTM(halves[0], halves[1], name=name, merge_mode=mode)


def _lstm(
    cfg: dict[str, Any],
    arrays: list[Array],
    what: str,
    keras2: bool,
    dtype: Any,
    name: str,
    cudnn: bool = False,
    reads_h: bool = False,
) -> LSTM:
    """An LSTM (or legacy CuDNNLSTM) layer's arrays and options (the module docstring);
    ``reads_h``: the next layer reads return_state's h, the last output."""
    use_bias = cudnn or cfg.get("use_bias", True)
    if len(arrays) != (3 if use_bias else 2):
        raise InputError(
            f"{what}: {len(arrays)} weight arrays; expected kernel, recurrent_kernel"
            + (", bias" if use_bias else "")
        )
    u = int(cfg["units"])
    kernel, recurrent = arrays[0], arrays[1]
    bias = arrays[2] if use_bias else np.zeros(4 * u)
    if kernel.ndim != 2 or kernel.shape[1] != 4 * u or recurrent.shape != (u, 4 * u):
        raise InputError(
            f"{what}: kernel {kernel.shape} and recurrent_kernel {recurrent.shape}; expected "
            f"(C, {4 * u}) and ({u}, {4 * u})"
        )
    if bias.shape != ((8 if cudnn else 4) * u,):
        raise InputError(f"{what}: bias {bias.shape}; expected ({(8 if cudnn else 4) * u},)")
    sequences = bool(cfg.get("return_sequences", False)) and not reads_h
    backwards = bool(cfg.get("go_backwards", False))
    gate, state = (
        _activation(cfg.get(k, d), keras2, what)
        for k, d in (("recurrent_activation", "sigmoid"), ("activation", "tanh"))
    )
    if cudnn:  # sigmoid and tanh, fixed; each gate's kernel block reinterpreted (docstring)
        gate, state = "sigmoid", "tanh"
        C = kernel.shape[0]
        blocks = [np.ascontiguousarray(kernel[:, k * u : (k + 1) * u]) for k in range(4)]
        W = np.concatenate([block.reshape(u, C) for block in blocks])  # (4u, C)
        R = np.concatenate([recurrent[:, k * u : (k + 1) * u] for k in range(4)])  # (4u, u)
        params = LSTMParams(W, R, bias[: 4 * u] + bias[4 * u :])
    else:
        params = LSTMParams(kernel.T, recurrent.T, bias)
    return LSTM(
        LSTMParams(*(a.astype(dtype) for a in params)),
        name=name,
        output_mode="sequence" if sequences else "last",
        gate_activation=gate,
        state_activation=state,
        direction="reverse" if backwards else "forward",
    )


def _activation(name: Any, keras2: bool, what: str) -> str:
    if name == "hard_sigmoid":
        return "hard-sigmoid" if keras2 else "hard-sigmoid-keras3"
    if name not in ACTIVATIONS:
        raise InputError(
            f"{what}: activation {name!r}; expected one of {sorted(map(str, ACTIVATIONS))}"
        )
    return ACTIVATIONS[name]
