"""The element-wise Activation and the LogSoftmax layers (an imported ONNX head's Relu,
Sigmoid, Tanh, LogSoftmax): forward against torch's functions, backward against central
differences, and through a weight file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_ref.formats.native import load_network, save_network
from lstm_ref.layers import Activation, FullyConnected, LogSoftmax, SequenceInput
from lstm_ref.network import Network
from lstm_ref.train.loss import central_difference

TORCH = {
    "Relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "LeakyRelu(alpha=0.1)": lambda x: torch.nn.functional.leaky_relu(x, 0.1),
}


@pytest.mark.parametrize("layer", [*(Activation(f) for f in TORCH), LogSoftmax()], ids=repr)
def test_forward_is_torchs_and_backward_its_derivative(rng, layer):
    x = rng.normal(size=(3, 4, 5)) * 2
    want = (
        torch.log_softmax(torch.from_numpy(x), dim=-1)
        if isinstance(layer, LogSoftmax)
        else TORCH[layer.function](torch.from_numpy(x))
    )
    y, cache = layer.forward(x)
    np.testing.assert_allclose(y, want.numpy(), rtol=0, atol=1e-12)
    dy = rng.normal(size=y.shape)
    dx, grads = layer.backward(dy, cache)
    assert grads == {}

    def loss() -> float:
        return float((layer.forward(x)[0] * dy).sum())

    for idx in [(0, 0, 1), (2, 3, 4), (1, 2, 0)]:
        assert dx[idx] == pytest.approx(central_difference(loss, x, idx, 1e-6), abs=1e-6)


def test_weight_file_keeps_them(rng, tmp_path):
    net = Network(
        [
            SequenceInput(3),
            FullyConnected(rng.normal(size=(4, 3)), rng.normal(size=4)),
            Activation("LeakyRelu(alpha=0.1)", name="leaky"),
            LogSoftmax(),
        ]
    )
    save_network(net, tmp_path / "net.npz")
    back = load_network(tmp_path / "net.npz")
    x = rng.normal(size=(6, 3))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    assert back.layers[2].function == "LeakyRelu(alpha=0.1)"
