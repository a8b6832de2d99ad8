"""Gate and state activation functions, each value beside its derivative.

Every function maps an array to an array of the same shape and dtype, and is
numerically stable for any finite input (no ``exp`` that can overflow). Each
derivative is written through the activation's *output* ``y = f(x)`` — the form
backpropagation uses, since the forward pass has already computed ``y``.

=====================  ===============================  ==============================
name                   value                            used by
=====================  ===============================  ==============================
``sigmoid``            1 / (1 + e^-x)                   every framework's default gate
``hard-sigmoid``       clip(0.2 x + 0.5, 0, 1)          MATLAB, Keras <= 2.15, ONNX
``hard-sigmoid-keras3`` clip(x / 6 + 0.5, 0, 1)          Keras 3 (tf.keras >= 2.16)
``tanh``               tanh(x)                          every framework's default state
``softsign``           x / (1 + |x|)                    MATLAB's other state activation
=====================  ===============================  ==============================
"""

from __future__ import annotations

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


def hard_sigmoid(x: Array) -> Array:
    return np.clip(0.2 * x + 0.5, 0, 1)


def hard_sigmoid_grad(y: Array) -> Array:
    return np.where((y > 0) & (y < 1), 0.2, 0.0).astype(y.dtype)


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


GATE_ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation(sigmoid, sigmoid_grad, "1 / (1 + e^−x)", "{y}·(1 − {y})"),
    "hard-sigmoid": Activation(
        hard_sigmoid, hard_sigmoid_grad, "clip(0.2·x + 0.5, 0, 1)", "(0.2 if 0 < {y} < 1, else 0)"
    ),
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


def lookup(table: dict[str, Activation], name: str, role: str) -> Activation:
    """Return ``table[name]``, or raise an InputError that lists the choices for ``role``."""
    try:
        return table[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown {role} activation {name!r}; expected one of {sorted(table)}"
        ) from None
