"""Keras: ``.keras`` archives (Keras 3) and legacy ``.h5`` files (Keras 2 / tf.keras, or
Keras 3's legacy writer), read with ``h5py`` and ``json`` — the framework is not imported
and no model is built. Export (:mod:`.keras_export`) builds the Keras model (lazily
importing keras) and saves it.

The layout, once (``kernel`` etc. as ``keras/src/layers/rnn/lstm.py`` names them; u units):

=========================  ==============  =====================  =============================
Keras weight               shape           lstm_ref               transform
=========================  ==============  =====================  =============================
LSTM ``kernel``            (C, 4u)         ``LSTM.params.W``      transposed
LSTM ``recurrent_kernel``  (u, 4u)         ``LSTM.params.R``      transposed
LSTM ``bias``              (4u,)           ``LSTM.params.b``      none (zeros if use_bias=False)
CuDNNLSTM ``kernel``       (C, 4u)         ``LSTM.params.W``      gate block k, (C, u), read
                                                                  row-major as (u, C)
CuDNNLSTM ``recurrent``    (u, 4u)         ``LSTM.params.R``      gate block k as stored (u, u)
CuDNNLSTM ``bias``         (8u,)           ``LSTM.params.b``      input half + recurrent half
Dense ``kernel``           (H, K)          ``FullyConnected``     transposed
Dense ``bias``             (K,)            ``FullyConnected``     none
=========================  ==============  =====================  =============================

Gate blocks are i, f, c, o — lstm_ref's i, f, g, o — so nothing is reordered. The legacy
``CuDNNLSTM`` (Keras 2, tf.keras 1.x) handed each gate's kernel block to cuDNN without
transposing it, so cuDNN reads it as a row-major (u, C) matrix (Keras's own loader:
``k.T.reshape(k.shape, order="F")``), and stores cuDNN's two biases; it has sigmoid and tanh
only and no masking. Where the
arrays are: a ``.keras`` archive's ``model.weights.h5`` holds ``layers/<key>/cell/vars/0, 1,
2`` (kernel, recurrent kernel, bias; a Bidirectional's under ``forward_layer``/
``backward_layer``) and ``layers/<key>/vars/0, 1`` for a Dense (``layers/<key>/layer/vars``
inside a TimeDistributed), where ``<key>`` is the
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
go forward).

``Masking(mask_value)`` → the network's ``padding``, ``Padding.keras(mask_value=...)``
(:func:`read_keras_inputs` reads it too): Keras skips every step whose features all equal
``mask_value`` — at the start, in the middle, past the end — carrying the state over it, and
writes there the previous output of a one-direction layer in its processing order (0 before
the first unmasked step), 0 from a Bidirectional with ``return_sequences`` (Keras sets its
``zero_output_for_mask``); the mask reaches every later LSTM, Dense and TimeDistributed.
Refused under Masking: a Masking after a computing layer (Keras would compare computed
values with ``mask_value``); a layer Keras calls without the mask (an ``initial_state``
without ``mask=``: it computes masked steps as data); a ``go_backwards`` sequence feeding
another recurrent layer (Keras writes a sequence of n steps in a batch of T after T − n
zeros but passes the mask on unreversed, so that layer reads zeros and misses outputs: a
result that depends on the padded length); ``zero_output_for_mask`` set by hand where its
zeros reach the output.

``Normalization`` on the last axis (its mean and variance from the config, or adapted
arrays) → a z-scoring ``SequenceInput`` whose std is Keras 3's divisor, max(sqrt(variance),
ε) with ε = ``keras.config.epsilon()``'s default 1e-7 (a setting of the Keras session, not
saved in the file), computed in the layer's dtype. ``Dense`` and ``TimeDistributed(Dense)``
with ``softmax`` (or linear, or an ``Activation('softmax')`` after it) → FullyConnected (+
Softmax); ``Dropout`` is skipped. Anything else (GRU, attention, a custom layer) is refused
with the layer's name and class. The graph (a Functional model's chain, ``return_state``,
``initial_state`` from model inputs): :mod:`lstm_ref.interop.keras_graph`. ``layer=`` imports
one LSTM or Bidirectional of any model alone, ignoring the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
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
from ..padding import MASKED, Padding
from .keras_file import opened, weight_keys
from .keras_graph import (
    RECURRENT,
    RECURRENT_LAYERS,
    Chain,
    chain,
    layer_name,
    model_layers,
    state_inputs,
)

Array = np.ndarray
ACTIVATIONS = {  # Keras activation names -> lstm_ref's (hard_sigmoid depends on the version)
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softsign": "softsign",
    "relu": "Relu",
    "linear": "Affine(alpha=1.0, beta=0.0)",
    None: "Affine(alpha=1.0, beta=0.0)",
}
SKIPPED = ("InputLayer", "Dropout", "Masking")  # nothing to compute
KERAS_EPSILON = 1e-7  # keras.config.epsilon()'s default: Normalization's least divisor


def from_keras(
    path: str | os.PathLike, *, dtype: np.dtype | type = np.float64, layer: str | None = None
) -> Network:
    """A Network from a ``.keras`` archive or a legacy ``.h5`` file (see the module docstring).

    Parameters
    ----------
    path : path
        The file; Keras is not imported.
    dtype : float64 (default) or float32
    layer : str, optional
        The name of one LSTM (or Bidirectional) layer to import alone, the rest of the
        model ignored: a SequenceInput, that layer (and a TimeReversal after a go_backwards
        sequence).

    Returns
    -------
    Network
        SequenceInput (z-scoring for a Normalization layer) → LSTM/BiLSTM layers →
        FullyConnected (→ Softmax), in the model's order; an LSTM without
        ``return_sequences`` has ``output_mode="last"``. Its ``padding`` is the model's
        Masking, ``Padding.keras(mask_value=...)`` (``Padding.masked()`` without one, and
        for one ``layer``), so ``predict`` skips the steps the model skips.
    """
    with opened(path) as (config, version, reader, where):
        keras2 = version.split(".")[0] in ("1", "2")
        keys = weight_keys(model_layers(config))
        if layer is not None:
            return _one_layer(config, layer, keys, reader, where, keras2, dtype)
        padding = masking(_mask_value(config))
        return _network(chain(config, where), keys, reader, where, keras2, dtype, padding)


@dataclass(frozen=True)
class KerasInputs:
    """What a Keras model's inputs mean to lstm_ref.

    Attributes
    ----------
    mask_value : float or None
        Its Masking layer's ``mask_value``; None without one.
    state_inputs : dict of str to list of str
        By layer name, the model inputs its ``initial_state`` reads ([h, c]; a
        Bidirectional's [h_f, c_f, h_b, c_b]): that layer's rows of ``Network.state``,
        ``LSTMState(h, c)`` (a Bidirectional's h = [h_f ‖ h_b], c = [c_f ‖ c_b]).
    """

    mask_value: float | None
    state_inputs: dict[str, list[str]]

    @property
    def padding(self) -> Padding:
        """The Padding that computes as the model: ``Padding.keras(mask_value=…)`` under
        Masking, else ``Padding.masked()`` (every given step is data)."""
        return masking(self.mask_value)


def masking(mask_value: float | None) -> Padding:
    """The Padding of a Keras model whose Masking has ``mask_value`` (None: no Masking)."""
    return MASKED if mask_value is None else Padding.keras(mask_value=mask_value)


def read_keras_inputs(path: str | os.PathLike) -> KerasInputs:
    """The Masking value and the initial-state inputs of the model in ``path``."""
    with opened(path) as (config, _, _, where):
        return KerasInputs(_mask_value(config), state_inputs(config, where))


def _mask_value(config: dict[str, Any]) -> float | None:
    """The model's Masking ``mask_value``; None without Masking."""
    masks = [s for s in model_layers(config) if s["class_name"] == "Masking"]
    return float(masks[0]["config"].get("mask_value", 0.0)) if masks else None


def _one_layer(
    config: dict[str, Any],
    name: str,
    keys: dict[str, str],
    reader: Any,
    where: str,
    keras2: bool,
    dtype: Any,
) -> Network:
    """The LSTM or Bidirectional ``name`` alone (``from_keras(..., layer=name)``)."""
    specs = {layer_name(s): s for s in model_layers(config)}
    recurrent = [n for n, s in specs.items() if s["class_name"] in RECURRENT_LAYERS]
    if name not in recurrent:
        kind = f"a {specs[name]['class_name']}" if name in specs else "no layer"
        raise InputError(f"{where}: layer {name!r} is {kind}; its LSTM layers: {recurrent}")
    spec = specs[name]
    what = f"{where}: layer {name!r} ({spec['class_name']})"
    if spec["class_name"] == "Bidirectional":
        layers: list[Layer] = [_bidirectional(spec, reader, keys[name], what, keras2, dtype, name)]
    else:
        layers = _recurrent(spec, reader.arrays(spec, keys[name]), what, keras2, dtype, 0, [])
    first = layers[0]
    assert isinstance(first, LSTM | BiLSTM)
    return Network([SequenceInput(directions(first)[0].input_size), *layers])


def _network(
    graph: Chain,
    keys: dict[str, str],
    reader: Any,
    where: str,
    keras2: bool,
    dtype: Any,
    padding: Padding,
) -> Network:
    """The chain's layers (the module docstring)."""
    layers: list[Layer] = []
    C = None
    masked = False  # a Masking layer before this one
    for k, spec in enumerate(graph.specs):
        cls, cfg = spec["class_name"], spec["config"]
        name = layer_name(spec)
        key = keys[name]
        what = f"{where}: layer {name!r} ({cls})"
        read = graph.reads.get(name, 0)
        if cls == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            C = shape[-1] if shape else None
        if cls == "Masking" and layers:
            raise InputError(
                f"{what}: after layer {layers[-1].name!r}; Keras compares that layer's outputs "
                "with mask_value, lstm_ref's Padding.keras the data: put Masking first"
            )
        masked = masked or cls == "Masking"
        if masked and cls in RECURRENT_LAYERS and name in graph.unmasked:
            raise InputError(
                f"{what}: called with an initial_state and no mask= under Masking, so Keras "
                "computes its masked steps as data (it passes no mask to a layer given "
                "initial states); pass mask= in Keras, or import without Masking"
            )
        if cls in SKIPPED:
            continue
        if cls in RECURRENT:
            after = graph.specs[k + 1 :]
            _check_masked_outputs(spec, what, masked, after, read)
            layers += _recurrent(spec, reader.arrays(spec, key), what, keras2, dtype, read, after)
            _check_reversal(layers[-1], what, masked, after)
        elif cls == "Bidirectional":
            if read != 0:
                raise InputError(
                    f"{what}: its output {read} (a state of one direction) feeds the next "
                    "layer; lstm_ref's BiLSTM passes on its merged output only"
                )
            layers.append(_bidirectional(spec, reader, key, what, keras2, dtype, name))
        elif cls in ("Dense", "TimeDistributed"):
            layers += _dense(spec, reader.arrays(spec, key), what, dtype, name)
        elif cls == "Normalization":
            layers.append(_normalization(cfg, reader.arrays(spec, key), what, dtype, name))
        elif cls == "Activation" and cfg.get("activation") == "softmax":
            layers.append(Softmax(name=name))
        else:
            raise InputError(
                f"{what}: not supported (LSTM, Bidirectional, Masking, Normalization, Dense, "
                "TimeDistributed(Dense), Dropout, Activation('softmax'))"
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
    return Network([*(head or [SequenceInput(width)]), *layers], padding=padding)


def _check_masked_outputs(
    spec: dict[str, Any], what: str, masked: bool, after: list[dict[str, Any]], read: int
) -> None:
    """Refuse ``zero_output_for_mask`` under Masking where its zeros reach the output: the
    last output of every shorter sequence, or per-step outputs no later LSTM skips."""
    cfg = spec["config"]
    if not (masked and cfg.get("zero_output_for_mask")) or read:
        return
    if not cfg.get("return_sequences"):
        raise InputError(
            f"{what}: zero_output_for_mask under Masking makes its last output 0 for every "
            "sequence shorter than the padded batch; not reproducible per sequence (read its "
            "state h instead)"
        )
    if not any(s["class_name"] in RECURRENT_LAYERS for s in after):
        raise InputError(
            f"{what}: zero_output_for_mask under Masking writes 0 at masked steps; "
            "Padding.keras repeats a one-direction layer's previous output there"
        )


def _check_reversal(layer: Layer, what: str, masked: bool, after: list[dict[str, Any]]) -> None:
    """Refuse a go_backwards sequence feeding a recurrent layer under Masking."""
    later = [s for s in after if s["class_name"] in RECURRENT_LAYERS]
    if isinstance(layer, TimeReversal) and masked and later:
        raise InputError(
            f"{what}: go_backwards with return_sequences under Masking feeds layer "
            f"{layer_name(later[0])!r}: Keras writes a sequence of n steps in a batch of T after "
            "T - n zeros but passes the mask on unreversed (the first n steps valid), so that "
            "layer reads zeros and misses outputs; its result depends on the padded length, "
            "which lstm_ref cannot reproduce"
        )


def _normalization(
    cfg: dict[str, Any], arrays: list[Array], what: str, dtype: Any, name: str
) -> SequenceInput:
    """Keras's Normalization per feature: (x − mean) / max(sqrt(variance), ε), computed in
    the layer's dtype — a z-scoring input (zero-centring when every variance is 1)."""
    if list(cfg.get("axis", [-1])) != [-1] or cfg.get("invert"):
        raise InputError(f"{what}: only axis -1 (per feature), not inverted, is supported")
    mean, variance = cfg.get("mean"), cfg.get("variance")
    if mean is None or variance is None:  # adapted: the arrays mean, variance, count
        if len(arrays) < 2:
            raise InputError(f"{what}: neither mean/variance in its config nor adapted arrays")
        mean, variance = arrays[0], arrays[1]
    own = _keras_dtype(cfg)
    m = np.asarray(mean, own).reshape(-1).astype(dtype)
    v = np.asarray(variance, own).reshape(-1)
    if (v == 1).all():
        return SequenceInput(len(m), name=name, normalization="zerocenter", mean=m)
    std = np.maximum(np.sqrt(v), own.type(KERAS_EPSILON)).astype(dtype)  # Keras's divisor
    return SequenceInput(len(m), name=name, normalization="zscore", mean=m, std=std)


def _keras_dtype(cfg: dict[str, Any]) -> np.dtype:
    """The dtype a layer computes in: its dtype policy's name (Keras 3), or ``dtype``."""
    policy = cfg.get("dtype", "float32")
    name = policy.get("config", {}).get("name") if isinstance(policy, dict) else policy
    return np.dtype("float64" if name == "float64" else "float32")


def _dense(
    spec: dict[str, Any], arrays: list[Array], what: str, dtype: Any, name: str
) -> list[Layer]:
    """A Dense (or a TimeDistributed one: the same on every step) and its softmax."""
    cfg = spec["config"]
    if spec["class_name"] == "TimeDistributed":
        inner = cfg["layer"]
        if inner["class_name"] != "Dense":
            raise InputError(f"{what}: wraps a {inner['class_name']}; expected a Dense")
        cfg = inner["config"]
    if len(arrays) != (2 if cfg.get("use_bias", True) else 1):
        raise InputError(f"{what}: {len(arrays)} arrays; expected kernel and bias")
    kernel = arrays[0]
    bias = arrays[1] if len(arrays) > 1 else np.zeros(kernel.shape[1])
    if kernel.ndim != 2 or bias.shape != kernel.shape[1:]:
        raise InputError(f"{what}: kernel {kernel.shape}, bias {bias.shape}; expected (H, K), (K,)")
    layers: list[Layer] = [FullyConnected(kernel.T.astype(dtype), bias.astype(dtype), name=name)]
    activation = cfg.get("activation")
    if activation == "softmax":
        layers.append(Softmax(name=f"{name}_softmax"))
    elif activation not in ("linear", None):
        raise InputError(f"{what}: activation {activation!r}; expected softmax or linear")
    return layers


def _recurrent(
    spec: dict[str, Any],
    arrays: list[Array],
    what: str,
    keras2: bool,
    dtype: Any,
    read: int,
    after: list[dict[str, Any]],
) -> list[Layer]:
    """An LSTM layer (``read``: which of its outputs flows on) — with a TimeReversal after a
    go_backwards sequence."""
    if read == 2:
        raise InputError(
            f"{what}: its cell state c feeds the next layer; lstm_ref's layers pass on h only "
            "(c is predict(..., return_state=True)'s state)"
        )
    name = layer_name(spec)
    cudnn = spec["class_name"] == "CuDNNLSTM"
    one = _lstm(spec["config"], arrays, what, keras2, dtype, name, cudnn, read == 1)
    if not reverse_sequence(one):
        return [one]
    return [one, TimeReversal(name=f"{name}_reversal")]


def _bidirectional(
    spec: dict[str, Any], reader: Any, key: str, what: str, keras2: bool, dtype: Any, name: str
) -> BiLSTM:
    """A Bidirectional's two LSTMs: ``layer`` (forward) and ``backward_layer`` (saved by
    Keras 3; else ``layer`` with go_backwards)."""
    cfg = spec["config"]
    mode = cfg.get("merge_mode")
    if mode not in MERGE_MODES:
        raise InputError(
            f"{what}: merge_mode {mode!r}; expected concat, sum, mul or ave (None returns the "
            "two directions as two tensors, and lstm_ref's BiLSTM merges them)"
        )
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
