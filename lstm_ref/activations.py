"""Activation functions, each value beside its derivative.

Every function maps an array to an array of the same shape and dtype, and is
numerically stable for any finite input (no ``exp`` that can overflow). Each
derivative is written through the activation's *output* ``y = f(x)`` — the form
backpropagation uses, since the forward pass has already computed ``y``.

lstm_ref's own names (MATLAB's and Keras's):

=======================  ===========================  ===============================
name                     value                        used by
=======================  ===========================  ===============================
``sigmoid``              ``1 / (1 + e^-x)``           every framework's default gate
``hard-sigmoid``         ``clip(0.2 x + 0.5, 0, 1)``  MATLAB, Keras <= 2.15, ONNX
``hard-sigmoid-keras3``  ``clip(x / 6 + 0.5, 0, 1)``  Keras 3 (tf.keras >= 2.16)
``tanh``                 ``tanh(x)``                  every framework's default state
``softsign``             ``x / (1 + |x|)``            MATLAB's other state activation
=======================  ===========================  ===============================

ONNX's names (the LSTM operator's ``activations``), with ``alpha``/``beta`` where they take
them and ONNX's defaults: ``Sigmoid``, ``Tanh``, ``Softsign``, ``Relu``,
``HardSigmoid(alpha=0.2, beta=0.5)`` = clip(αx + β, 0, 1), ``Affine(alpha=1, beta=0)`` =
αx + β, ``ScaledTanh(alpha=1, beta=1)`` = α tanh(βx), ``LeakyRelu(alpha=0.01)`` = x or αx,
``ThresholdedRelu(alpha=1)`` = x if x > α else 0, ``Elu(alpha=1)`` = x or α(eˣ − 1),
``Softplus`` = log(1 + eˣ). An activation is named by one string, e.g. ``"Affine"`` or
``"HardSigmoid(alpha=0.3, beta=0.5)"`` (:func:`activation_spec` writes it,
:func:`parse_activation` reads it), so a layer's config stays plain JSON.

One spelling per function: where an ONNX activation is one of lstm_ref's own
(``ONNX_SPELLINGS``: ``Sigmoid``, ``Tanh``, ``Softsign``, ``HardSigmoid`` with 0.2, 0.5 or
with 1/6, 0.5 — parameters compared as float32, the precision ONNX stores them in), an
importer stores lstm_ref's name (:func:`own_name`), so every part of the library recognises
it; :func:`onnx_spelling` turns it back for an exporter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .errors import InputError

Array = np.ndarray


def sigmoid(x: Array) -> Array:
    # 0.5 tanh(x/2) + 0.5 is the logistic function exactly, and cannot overflow.
    return 0.5 * np.tanh(0.5 * x) + 0.5


def sigmoid_grad(y: Array) -> Array:
    return y * (1 - y)


def hard_sigmoid_keras3(x: Array) -> Array:
    return np.clip(x / 6 + 0.5, 0, 1)


def hard_sigmoid_keras3_grad(y: Array) -> Array:
    return np.where((y > 0) & (y < 1), 1 / 6, 0.0).astype(y.dtype)


def tanh(x: Array) -> Array:
    return np.tanh(x)


def tanh_grad(y: Array) -> Array:
    return 1 - y**2


def softsign(x: Array) -> Array:
    return x / (1 + np.abs(x))


def softsign_grad(y: Array) -> Array:
    # y = x / (1 + |x|)  =>  1 - |y| = 1 / (1 + |x|)  and  f'(x) = 1 / (1 + |x|)^2
    return (1 - np.abs(y)) ** 2


class Activation(NamedTuple):
    """An activation ``y = value(x)``, its derivative ``dy/dx = grad(y)``, and both as text.

    ``formula`` reads in x; ``derivative`` reads in the output, with ``{y}`` standing for it.
    """

    value: Callable[[Array], Array]
    grad: Callable[[Array], Array]
    formula: str
    derivative: str


def _hard_sigmoid(alpha: float, beta: float) -> Activation:
    return Activation(
        lambda x: np.clip(alpha * x + beta, 0, 1),
        lambda y: np.where((y > 0) & (y < 1), alpha, 0.0).astype(y.dtype),
        f"clip({alpha}·x + {beta}, 0, 1)",
        f"({alpha} if 0 < {{y}} < 1, else 0)",
    )


GATE_ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation(sigmoid, sigmoid_grad, "1 / (1 + e^−x)", "{y}·(1 − {y})"),
    "hard-sigmoid": _hard_sigmoid(0.2, 0.5),  # MATLAB's, Keras <= 2.15's, ONNX's default
    "hard-sigmoid-keras3": Activation(
        hard_sigmoid_keras3,
        hard_sigmoid_keras3_grad,
        "clip(x / 6 + 0.5, 0, 1)",
        "(1/6 if 0 < {y} < 1, else 0)",
    ),
}

STATE_ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(tanh, tanh_grad, "tanh(x)", "(1 − {y}²)"),
    "softsign": Activation(softsign, softsign_grad, "x / (1 + |x|)", "(1 − |{y}|)²"),
}


def _affine(alpha: float, beta: float) -> Activation:
    return Activation(
        lambda x: alpha * x + beta,
        lambda y: np.full_like(y, alpha),
        f"{alpha}·x + {beta}",
        f"{alpha}",
    )


def _scaled_tanh(alpha: float, beta: float) -> Activation:
    # y = α tanh(βx)  =>  dy/dx = αβ (1 − tanh²) = β (α − y²/α)
    return Activation(
        lambda x: alpha * np.tanh(beta * x),
        lambda y: beta * (alpha - y**2 / alpha),
        f"{alpha}·tanh({beta}·x)",
        f"{beta}·({alpha} − {{y}}²/{alpha})",
    )


def _leaky_relu(alpha: float) -> Activation:
    return Activation(
        lambda x: np.where(x >= 0, x, alpha * x),
        lambda y: np.where(y >= 0, 1.0, alpha).astype(y.dtype),
        f"x if x ≥ 0, else {alpha}·x",
        f"(1 if {{y}} ≥ 0, else {alpha})",
    )


def _thresholded_relu(alpha: float) -> Activation:
    return Activation(
        lambda x: np.where(x > alpha, x, 0).astype(x.dtype),
        lambda y: (y != 0).astype(y.dtype),
        f"x if x > {alpha}, else 0",
        "(1 if {y} ≠ 0, else 0)",
    )


def _elu(alpha: float) -> Activation:
    # below 0: y = α(eˣ − 1)  =>  dy/dx = α eˣ = y + α
    return Activation(
        lambda x: np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0))),
        lambda y: np.where(y >= 0, 1.0, y + alpha).astype(y.dtype),
        f"x if x ≥ 0, else {alpha}·(eˣ − 1)",
        f"(1 if {{y}} ≥ 0, else {{y}} + {alpha})",
    )


def _relu_value(x: Array) -> Array:
    return np.maximum(x, 0)


def _softplus_value(x: Array) -> Array:
    # log(1 + eˣ) = max(x, 0) + log1p(e^−|x|): no overflow
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


ONNX_ACTIVATIONS: dict[str, tuple[dict[str, float], Callable[..., Activation]]] = {
    # name: (its parameters with ONNX's defaults, how to make it)
    "Sigmoid": ({}, lambda: GATE_ACTIVATIONS["sigmoid"]),
    "Tanh": ({}, lambda: STATE_ACTIVATIONS["tanh"]),
    "Softsign": ({}, lambda: STATE_ACTIVATIONS["softsign"]),
    "Relu": (
        {},
        lambda: Activation(
            _relu_value, lambda y: (y > 0).astype(y.dtype), "max(x, 0)", "(1 if {y} > 0, else 0)"
        ),
    ),
    "Softplus": (
        {},
        lambda: Activation(_softplus_value, lambda y: -np.expm1(-y), "log(1 + eˣ)", "(1 − e^−{y})"),
    ),
    "HardSigmoid": ({"alpha": 0.2, "beta": 0.5}, _hard_sigmoid),
    "Affine": ({"alpha": 1.0, "beta": 0.0}, _affine),
    "ScaledTanh": ({"alpha": 1.0, "beta": 1.0}, _scaled_tanh),
    "LeakyRelu": ({"alpha": 0.01}, _leaky_relu),
    "ThresholdedRelu": ({"alpha": 1.0}, _thresholded_relu),
    "Elu": ({"alpha": 1.0}, _elu),
}

NAMED_ACTIVATIONS = {**GATE_ACTIVATIONS, **STATE_ACTIVATIONS}  # lstm_ref's own names
ACTIVATION_NAMES = (*NAMED_ACTIVATIONS, *ONNX_ACTIVATIONS)
_SPEC = re.compile(r"^([\w-]+)(?:\((.*)\))?$")


def activation_spec(name: str, **params: float) -> str:
    """The one string that names an activation: ``"Elu(alpha=0.5)"``; no parameters: the name."""
    if not params:
        return name
    return f"{name}({', '.join(f'{k}={float(v)!r}' for k, v in params.items())})"


def split_spec(spec: str, what: str = "activation") -> tuple[str, dict[str, float]]:
    """A spec string's name and parameters: ``"Elu(alpha=0.5)"`` → ``("Elu", {"alpha": 0.5})``.

    Checks the form only (numbers as name=number); :func:`parse_activation` checks the rest.
    """
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise InputError(f"unknown {what} {spec!r}; expected one of {list(ACTIVATION_NAMES)}")
    params: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (match.group(2) or "").split(","))):
        key, eq, value = part.partition("=")
        try:
            params[key.strip()] = float(value) if eq else float("nan")
        except ValueError:
            params[key.strip()] = float("nan")
        if not np.isfinite(params[key.strip()]):
            raise InputError(f"{what} {spec!r}: parameters are name=number")
    return match.group(1), params


ONNX_SPELLINGS: dict[str, tuple[str, dict[str, float]]] = {
    # lstm_ref's own name: ONNX's name and parameters for the same function
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "softsign": ("Softsign", {}),
    "hard-sigmoid": ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}),
    "hard-sigmoid-keras3": ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}),
}


def onnx_spelling(spec: str) -> tuple[str, dict[str, float]]:
    """An activation spec as ONNX's name and every parameter that name takes.

    ``"hard-sigmoid"`` → ``("HardSigmoid", {"alpha": 0.2, "beta": 0.5})``; an ONNX spec
    keeps its name, its parameters completed with the op's defaults.
    """
    name, params = ONNX_SPELLINGS.get(spec) or split_spec(spec)
    if name not in ONNX_ACTIVATIONS:
        raise InputError(f"activation {spec!r} has no ONNX spelling")
    return name, {**ONNX_ACTIVATIONS[name][0], **params}


def own_name(spec: str) -> str:
    """lstm_ref's own name for an ONNX spec that computes one of its functions, else ``spec``.

    ``"Sigmoid"`` → ``"sigmoid"``, ``"HardSigmoid(alpha=0.1666666716337204, beta=0.5)"``
    (1/6 as float32) → ``"hard-sigmoid-keras3"``; ``"HardSigmoid(alpha=0.3, beta=0.5)"``
    and every other spec come back unchanged. Parameters are compared as float32.
    """
    name, params = split_spec(spec)
    if name not in ONNX_ACTIVATIONS or set(params) - set(ONNX_ACTIVATIONS[name][0]):
        return spec  # already lstm_ref's name, or one parse_activation refuses
    given = {**ONNX_ACTIVATIONS[name][0], **params}
    for own, (onnx_name, onnx_params) in ONNX_SPELLINGS.items():
        if onnx_name == name and all(
            np.float32(given[k]) == np.float32(v) for k, v in onnx_params.items()
        ):
            return own
    return spec


def parse_activation(spec: str, role: str = "") -> Activation:
    """The activation a spec string names (see the module docstring).

    ``role`` (e.g. ``"gate"``) only words the error; any activation may serve any role.
    """
    what = f"{role} activation" if role else "activation"
    name, given = split_spec(spec, what)
    if name in NAMED_ACTIVATIONS:
        if "(" not in spec:
            return NAMED_ACTIVATIONS[name]
        raise InputError(f"{what} {spec!r}: {name!r} takes no parameters")
    if name not in ONNX_ACTIVATIONS:
        raise InputError(f"unknown {what} {spec!r}; expected one of {list(ACTIVATION_NAMES)}")
    defaults, make = ONNX_ACTIVATIONS[name]
    if set(given) - set(defaults):
        raise InputError(
            f"{what} {spec!r}: expected parameters {list(defaults) or 'none'} as name=number"
        )
    return make(**{**defaults, **given})
