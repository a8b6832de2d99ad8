"""What turns gradients into updates: MATLAB's L2 regularisation, its three gradient-clipping
methods, and Adam."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from .._checks import check_choice
from ..network import Network

Array = np.ndarray
Arrays = dict[str, Array]
ClipMethod = Literal["l2norm", "global-l2norm", "absolute-value"]
CLIP_METHODS: tuple[str, ...] = get_args(ClipMethod)


def add_l2(net: Network, grads: Arrays, factor: float) -> None:
    """grads += factor · L2-factor · weights, in place (MATLAB's L2Regularization; each layer
    states its factors in ``L2_FACTORS``: weights 1, biases 0)."""
    for layer in net.layers:
        learnables = layer.learnables()
        for name, scale in layer.L2_FACTORS.items():
            if scale:
                grads[f"{layer.name}/{name}"] += factor * scale * learnables[name]


def clip_gradients(grads: Arrays, threshold: float, method: ClipMethod = "l2norm") -> Arrays:
    """MATLAB's GradientThreshold.

    ``"l2norm"``: rescale each parameter's gradient whose own L2 norm exceeds the threshold
    (MATLAB's default); ``"global-l2norm"``: rescale all gradients together when their joint
    norm exceeds it; ``"absolute-value"``: clip each element to ±threshold.
    """
    check_choice(method, "gradient threshold method", CLIP_METHODS)
    if method == "l2norm":
        return {k: g * min(1.0, threshold / max(l2_norm([g]), 1e-300)) for k, g in grads.items()}
    if method == "global-l2norm":
        norm = l2_norm(list(grads.values()))
        return {k: g * min(1.0, threshold / max(norm, 1e-300)) for k, g in grads.items()}
    return {k: np.clip(g, -threshold, threshold) for k, g in grads.items()}


def l2_norm(arrays: list[Array]) -> float:
    """sqrt(Σ a²) over all elements of ``arrays``, without overflow for huge values."""
    scale = max((float(np.abs(a).max()) for a in arrays if a.size), default=0.0)
    if scale == 0.0 or not np.isfinite(scale):
        return scale
    return scale * float(np.sqrt(sum(float(np.sum((a / scale) ** 2)) for a in arrays)))


@dataclass
class Adam:
    """Adam with bias correction (MATLAB's defaults: β1 0.9, β2 0.999, ε 1e-8)."""

    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    m: Arrays = field(default_factory=dict)
    v: Arrays = field(default_factory=dict)
    t: int = 0

    def step(self, params: Arrays, grads: Arrays) -> None:
        """Update ``params`` in place."""
        self.t += 1
        for k, p in params.items():
            g = grads[k]
            m = self.m[k] = self.beta1 * self.m.get(k, 0) + (1 - self.beta1) * g
            v = self.v[k] = self.beta2 * self.v.get(k, 0) + (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1**self.t)
            v_hat = v / (1 - self.beta2**self.t)
            p -= self.learning_rate * m_hat / (np.sqrt(v_hat) + self.epsilon)
