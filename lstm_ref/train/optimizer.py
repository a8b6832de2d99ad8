"""What turns gradients into updates: MATLAB's L2 regularisation, its three gradient-clipping
methods, and Adam."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from .._checks import check_choice
from ..errors import InputError
from ..fast import writeable
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
    """Adam with bias correction (MATLAB's defaults: β1 0.9, β2 0.999, ε 1e-8).

    The moments ``m`` and ``v`` are kept by parameter name, one array of the parameter's
    shape and dtype each, and :meth:`step` updates them and the parameters in place, in
    buffers kept from step to step (no temporaries).
    """

    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    m: Arrays = field(default_factory=dict)
    v: Arrays = field(default_factory=dict)
    t: int = 0
    _scratch: dict[tuple[tuple[int, ...], np.dtype], tuple[Array, Array]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )  # two arrays per shape and dtype of parameter, for the terms of one update

    def step(self, params: Arrays, grads: Arrays) -> None:
        """Update ``params`` in place: one Adam step with ``grads`` (each of its parameter's
        shape and dtype).

        Each line below is one operation of these equations, in their order and association,
        so the numbers are bit for bit those of the expressions evaluated with temporaries:

            m ← β1 m + (1 − β1) g
            v ← β2 v + ((1 − β2) g) g
            p ← p − (α m̂) / (√v̂ + ε),  m̂ = m / (1 − β1ᵗ),  v̂ = v / (1 − β2ᵗ)

        Raises
        ------
        InputError
            A gradient whose shape or dtype is not its parameter's, or a parameter that is
            no longer of the shape and dtype of its moments (a changed network needs a new
            Adam); then nothing is updated.
        """
        work = [(p, grads[k], *self._buffers(k, p, grads[k])) for k, p in params.items()]
        for p, *_ in work:  # a compiled snapshot sees a writeable weight (lstm_ref.fast.watch)
            writeable(p)
        self.t += 1  # every array checked: nothing changes when one does not fit
        m_correction, v_correction = 1 - self.beta1**self.t, 1 - self.beta2**self.t
        for p, g, m, v, term, root in work:
            np.multiply(g, 1 - self.beta1, out=term)  # (1 − β1) g
            np.multiply(m, self.beta1, out=m)  # β1 m
            np.add(m, term, out=m)  # m = β1 m + (1 − β1) g
            np.multiply(g, 1 - self.beta2, out=term)  # (1 − β2) g
            np.multiply(term, g, out=term)  # (1 − β2) g g
            np.multiply(v, self.beta2, out=v)  # β2 v
            np.add(v, term, out=v)  # v = β2 v + (1 − β2) g g
            np.divide(m, m_correction, out=term)  # m̂ = m / (1 − β1ᵗ)
            np.multiply(term, self.learning_rate, out=term)  # α m̂
            np.divide(v, v_correction, out=root)  # v̂ = v / (1 − β2ᵗ)
            np.sqrt(root, out=root)  # √v̂
            np.add(root, self.epsilon, out=root)  # √v̂ + ε
            np.divide(term, root, out=term)  # α m̂ / (√v̂ + ε)
            np.subtract(p, term, out=p)  # p −= α m̂ / (√v̂ + ε)

    def _buffers(self, k: str, p: Array, g: Array) -> tuple[Array, Array, Array, Array]:
        """Parameter ``k``'s moments m and v (zeros at its first step) and two scratch arrays,
        each of ``p``'s shape and dtype; checks ``g`` and the moments against ``p``."""
        if g.shape != p.shape or g.dtype != p.dtype:
            raise InputError(
                f"the gradient of {k!r} is {g.shape} {g.dtype}; the parameter is "
                f"{p.shape} {p.dtype}"
            )
        if k not in self.m:
            self.m[k], self.v[k] = np.zeros_like(p), np.zeros_like(p)
        m, v = self.m[k], self.v[k]
        for a in (m, v):
            if a.shape != p.shape or a.dtype != p.dtype:
                raise InputError(
                    f"Adam's moments of {k!r} are {a.shape} {a.dtype}, but the parameter is "
                    f"now {p.shape} {p.dtype}: a network whose parameters changed needs a new "
                    "Adam"
                )
        scratch = self._scratch.get((p.shape, p.dtype))
        if scratch is None:
            scratch = self._scratch[p.shape, p.dtype] = (np.empty_like(p), np.empty_like(p))
        return m, v, *scratch
