"""LSTMs in models torch.onnx.export wrote, by both exporters (dynamo, the default, and
TorchScript): listed, extracted and compared with onnxruntime on the tensors it computed
(lstm_ref.interop.onnx_models)."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from test_onnx_models import _assert_same_run
from torch_models import Classifier, distinct_gates

from lstm_ref import InputError
from lstm_ref.interop.onnx import from_onnx
from lstm_ref.interop.onnx_models import capture, extract_lstm, list_lstms
from lstm_ref.lstm import LSTMState


# ------------------------------------------ torch's LSTMCell loop, as both exporters write it
class CellLoop(torch.nn.Module):
    """nn.LSTMCell over the steps of x (T, B, C): both exporters unroll it into ops."""

    def __init__(self, C: int, H: int) -> None:
        super().__init__()
        self.cell = torch.nn.LSTMCell(C, H)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor | None = None, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if h is None or c is None:  # from zeros, made inside the model for x's batch
            h = c = torch.zeros(x.shape[1], self.cell.hidden_size)
        for t in range(x.shape[0]):
            h, c = self.cell(x[t], (h, c))
        return h, c


@pytest.mark.parametrize(
    ("dynamo", "C", "H", "from_zeros"),
    [(False, 3, 4, False), (True, 4, 4, False), (False, 3, 4, True), (True, 3, 4, True)],
)
def test_torch_lstmcell_loop_is_recognised(
    tmp_path, dynamo: bool, C: int, H: int, from_zeros: bool
) -> None:
    """Every step's cell is found. From zeros made inside the model, the dynamo exporter
    folds the first step's h_prev · Rᵀ into its bias: that cell reads with R = 0."""
    T, batch = 5, 2
    module = distinct_gates(CellLoop(C, H).eval(), seed=C + H)
    g = torch.Generator().manual_seed(5)
    args = (
        torch.randn(T, batch, C, generator=g),
        torch.randn(batch, H, generator=g),
        torch.randn(batch, H, generator=g),
    )
    names = ["x", "h", "c"][: 1 if from_zeros else 3]
    args = args[: len(names)]
    path = tmp_path / "cell.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # progress lines
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, and what we want
        torch.onnx.export(
            module, args, str(path), dynamo=dynamo, input_names=names, output_names=["h_T", "c_T"]
        )
    cells = [s for s in list_lstms(path) if s.kind == "cell"]
    assert len(cells) == T
    if not from_zeros:
        assert cells[0].inputs[1:] == ("h", "c")
    feeds = {k: a.numpy() for k, a in zip(names, args, strict=True)}
    cell = module.cell
    for site in cells:  # each step's cell is the module's own, on its own tensors
        net = extract_lstm(path, site.name)
        W, R, b = (net.layers[1].params.W, net.layers[1].params.R, net.layers[1].params.b)
        np.testing.assert_array_equal(W, cell.weight_ih.detach().double().numpy())  # i, f, g, o
        folded = site.inputs[1] == ""
        assert folded == (dynamo and from_zeros and site is cells[0])
        expected_R = np.zeros((4 * H, H)) if folded else cell.weight_hh.detach().double().numpy()
        np.testing.assert_array_equal(R, expected_R)
        np.testing.assert_allclose(
            b, (cell.bias_ih + cell.bias_hh).detach().double().numpy(), rtol=1e-6
        )
        named = [n for n in (*site.inputs, *site.outputs) if n]
        seen = capture(path, feeds, named)
        x, c0, h, c = (seen[n] for n in (site.inputs[0], site.inputs[2], *site.outputs))
        h0 = np.zeros_like(c0) if folded else seen[site.inputs[1]]
        _assert_same_run(net, x[:, None], LSTMState(h0, c0), h[:, None], h, c)


# ------------------------------- a conv front end and an LSTM, as both exporters write it
class ConvLSTM(torch.nn.Module):
    """Conv1d + ReLU → nn.LSTM (batch first) → Linear on the last step. ``start``: the
    LSTM's initial state — "zeros" (none given), "learned" (a parameter the same in every
    row) or "rows" (a buffer, one row per sequence of the export's batch)."""

    def __init__(self, start: str, batch: int, bidirectional: bool) -> None:
        super().__init__()
        C, F, H = 3, 5, 4
        D = 2 if bidirectional else 1
        self.start = start
        self.conv = torch.nn.Conv1d(C, F, 3, padding=1)
        self.lstm = torch.nn.LSTM(F, H, batch_first=True, bidirectional=bidirectional)
        self.fc = torch.nn.Linear(D * H, 2)
        g = torch.Generator().manual_seed(batch)
        self.h0 = torch.nn.Parameter(torch.randn(D, 1, H, generator=g))
        self.register_buffer("rows", torch.randn(2, D, batch, H, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        z = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        if self.start == "zeros":
            y, _ = self.lstm(z)
        elif self.start == "learned":
            h0 = self.h0.expand(-1, x.shape[0], -1).contiguous()
            y, _ = self.lstm(z, (h0, torch.tanh(h0)))
        else:
            y, _ = self.lstm(z, (self.rows[0], self.rows[1]))
        return self.fc(y[:, -1])


@pytest.mark.parametrize("dynamo", [True, False])
@pytest.mark.parametrize(
    ("start", "bidirectional"), [("zeros", False), ("learned", True), ("rows", True)]
)
def test_conv_lstm_export_extracts_equal_onnxruntime(
    tmp_path, dynamo: bool, start: str, bidirectional: bool
) -> None:
    """torch.onnx.export (dynamo, the default, and TorchScript) of a conv front end + LSTM:
    the extracted LSTM on the tensor that reaches it gives onnxruntime's Y, its initial
    state read from the constant the export holds for its batch — or, with a dynamic batch
    ("learned"), computed from the input's shape."""
    T, batch = 6, 3
    module = distinct_gates(ConvLSTM(start, batch, bidirectional).eval(), seed=batch)
    x = torch.randn(batch, T, 3, generator=torch.Generator().manual_seed(7))
    path = tmp_path / "conv_lstm.onnx"
    dynamic: dict = {}
    if start == "learned":
        dynamic = (
            {"dynamic_shapes": ({0: torch.export.Dim("B"), 1: torch.export.Dim("T")},)}
            if dynamo
            else {"dynamic_axes": {"x": {0: "B", 1: "T"}}}
        )
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated
        torch.onnx.export(module, (x,), str(path), dynamo=dynamo, input_names=["x"], **dynamic)
    if start == "learned":  # the state is built from the shape of x, not a constant
        assert not {i.name for i in onnx.load(str(path)).graph.initializer} & set(
            list_lstms(path)[0].inputs[5:]
        )
    with pytest.raises(
        InputError,
        match=r"op Conv on the data path is not supported; .*; if an LSTM follows, take the "
        r"LSTM out with lstm_ref\.interop\.onnx_models\.extract_lstm\(path, name\)",
    ):
        from_onnx(path)
    (site,) = list_lstms(path)
    net = extract_lstm(path, site.name)
    X, Y = capture(path, {"x": x.numpy()}, [site.inputs[0], site.outputs[0]]).values()
    D = 2 if bidirectional else 1
    expected = Y.transpose(2, 0, 1, 3).reshape(batch, T, D * 4)  # (T, D, B, H) → (B, T, D·H)
    np.testing.assert_allclose(
        net.predict(X.transpose(1, 0, 2).astype(np.float64)), expected, rtol=1e-5, atol=1e-5
    )
    (state,) = net.state.values()
    if start == "zeros":
        assert not np.any(state.h) and not np.any(state.c)  # no state: zeros in every row
    if start == "rows":  # the buffer's rows, one per sequence: [forward ‖ reverse]
        rows = module.rows.numpy().transpose(0, 2, 1, 3).reshape(2, batch, D * 4)
        np.testing.assert_array_equal(state.h, rows[0])
        np.testing.assert_array_equal(state.c, rows[1])


@pytest.mark.parametrize("dynamo", [True, False])
def test_extract_lstm_agrees_with_from_onnx(tmp_path, dynamo: bool) -> None:
    """Where both read a file (LSTMs and a head only), each LSTM extracted is the layer
    from_onnx reads: the same weights, initial state and configuration."""
    module = distinct_gates(Classifier(3, 4, 2, num_layers=2, bidirectional=True).eval(), seed=4)
    path = tmp_path / "classifier.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated
        torch.onnx.export(module, (torch.randn(3, 5, 3),), str(path), dynamo=dynamo)
    read = [layer for layer in from_onnx(path).layers if layer.initial_state is not None]
    sites = list_lstms(path)
    assert len(sites) == len(read) == 2
    for site, layer in zip(sites, read, strict=True):
        extracted = extract_lstm(path, site.name).layers[1]
        assert _but_output_mode(extracted.config()) == _but_output_mode(layer.config())
        a, b = extracted.arrays(), layer.arrays()
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def _but_output_mode(config: dict) -> dict:
    """A layer's configuration but for its output mode (extract_lstm's gives every step)."""
    return {
        k: _but_output_mode(v) if isinstance(v, dict) else v
        for k, v in config.items()
        if k != "output_mode"
    }


# ------------------------------ a front end from_onnx reads as ops on X, as both exporters write it
class DenseFrontLSTM(torch.nn.Module):
    """Linear + ReLU on each step → nn.LSTM (batch first) → Linear on the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.front = torch.nn.Linear(3, 5)
        self.lstm = torch.nn.LSTM(5, 4, batch_first=True)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C)
        y, _ = self.lstm(torch.relu(self.front(x)))
        return self.fc(y[:, -1])


@pytest.mark.parametrize("dynamo", [True, False])
def test_a_front_end_before_the_lstm_points_to_extract_lstm(tmp_path, dynamo: bool) -> None:
    """from_onnx refuses ops on X before the LSTM node and names extract_lstm; the LSTM so
    taken out gives onnxruntime's Y on the tensor that reaches it."""
    module = distinct_gates(DenseFrontLSTM().eval(), seed=11)
    x = torch.randn(3, 6, 3, generator=torch.Generator().manual_seed(5))
    path = tmp_path / "front.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated
        torch.onnx.export(module, (x,), str(path), dynamo=dynamo, input_names=["x"])
    with pytest.raises(
        InputError,
        match=r"computes on the input X before any LSTM node; .* take the LSTM out with "
        r"lstm_ref\.interop\.onnx_models\.extract_lstm\(path, name\) \(list_lstms lists them\)$",
    ):
        from_onnx(path)
    (site,) = list_lstms(path)
    net = extract_lstm(path, site.name)
    X, Y = capture(path, {"x": x.numpy()}, [site.inputs[0], site.outputs[0]]).values()
    np.testing.assert_allclose(
        net.predict(X.transpose(1, 0, 2).astype(np.float64)),
        Y[:, 0].transpose(1, 0, 2),  # (T, 1, B, H) → (B, T, H)
        rtol=1e-5,
        atol=1e-5,
    )


class EmbeddingLSTM(torch.nn.Module):
    """Token ids → nn.Embedding → nn.LSTM → a Linear on h_n[-1]: a float-free input."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(7, 3)
        self.lstm = torch.nn.LSTM(3, 4, batch_first=True)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) integers
        return self.fc(self.lstm(self.embed(tokens))[1][0][-1])


def test_an_integer_input_names_itself_and_points_to_extract_lstm(tmp_path) -> None:
    """An Embedding front end: no float input; the refusal says so, and the LSTM taken out
    as it says gives onnxruntime's Y on the embedded tensor that reaches it."""
    module = distinct_gates(EmbeddingLSTM().eval(), seed=13)
    tokens = torch.randint(0, 7, (3, 5), generator=torch.Generator().manual_seed(2))
    path = tmp_path / "embed.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated
        torch.onnx.export(module, (tokens,), str(path), dynamo=False, input_names=["tokens"])
    with pytest.raises(
        InputError,
        match=r"no float input X: \['tokens'\] hold integers \(token ids for an Embedding\?\).*"
        r"if an LSTM follows, take the LSTM out with lstm_ref\.interop\.onnx_models\.extract_lstm",
    ):
        from_onnx(path)
    (site,) = list_lstms(path)
    X, Y = capture(path, {"tokens": tokens.numpy()}, [site.inputs[0], site.outputs[0]]).values()
    got = extract_lstm(path, site.name).predict(X.transpose(1, 0, 2).astype(np.float64))
    np.testing.assert_allclose(got, Y[:, 0].transpose(1, 0, 2), rtol=1e-5, atol=1e-5)
