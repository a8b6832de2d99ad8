"""Keras 3's own ONNX export (``model.export(path, format="onnx")``, torch backend) of models
with LSTMs, read by from_onnx and run against onnxruntime on the same file and against
Keras itself.

On an input of fixed length (``keras.Input((T, C))``) Keras writes every step of an LSTM as
ops — the input product hoisted over all steps, the gate blocks cut at positions computed
from shapes, identity Casts between — which from_onnx reads as one LSTM node each: one
LSTM (its last output or every step, the latter also through a TimeDistributed head, which
Keras writes once per step), with dropout (each gate its own sum, each step's state picked
by a Where on a condition known to be True), two stacked, Bidirectional (both directions' steps
chained in opposite orders: one bidirectional node) and go_backwards (a reverse node).
LSTM(return_state=True) and LSTM(use_bias=False) read too. Keras's Masking (written with
Where and If) and a lone go_backwards sequence (its steps from the last) are refused, and
a GRU as a GRU. Each model is exported once.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch_models import distinct_gates, onnx_export

from lstm_ref import LSTM, InputError
from lstm_ref.interop.onnx import from_onnx
from lstm_ref.interop.onnx_cells import find_cells
from lstm_ref.interop.onnx_normalise import cells_visible
from lstm_ref.interop.onnx_specialise import constants_of
from lstm_ref.layers import BiLSTM

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported
keras = pytest.importorskip("keras")

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"  # Keras 3.15's get_weights on NumPy 2
)

T, C, B = 5, 4, 3  # steps, features, rows
HEAD = ["FullyConnected", "Softmax"]
MODELS = {  # each model, and the layers of the network read from its file
    "last": ["SequenceInput", "LSTM", *HEAD],
    "sequence": ["SequenceInput", "LSTM"],
    "stacked": ["SequenceInput", "LSTM", "LSTM", *HEAD],
    "bidirectional": ["SequenceInput", "BiLSTM", *HEAD],
    "bidirectional_sequence": ["SequenceInput", "BiLSTM"],
    "bidirectional_stacked": ["SequenceInput", "BiLSTM", "BiLSTM", *HEAD],
    "backwards": ["SequenceInput", "LSTM", *HEAD],
    "sequence_time_distributed": ["SequenceInput", "LSTM", *HEAD],
    "dropout": ["SequenceInput", "LSTM", *HEAD],  # identity at inference
}


def keras_model(kind: str) -> keras.Model:
    """One of MODELS on keras.Input((T, C)); LSTMs of different sizes, a softmax head after
    a last output."""
    inp = keras.Input((T, C))
    L = keras.layers
    if kind == "states":  # the last output through a Dense, and the final h and c
        out, h, c = L.LSTM(5, return_state=True)(inp)
        return keras.Model(inp, [L.Dense(3)(out), h, c])
    y = {
        "last": lambda x: L.LSTM(6)(x),
        "sequence": lambda x: L.LSTM(5, return_sequences=True)(x),
        "stacked": lambda x: L.LSTM(5)(L.LSTM(6, return_sequences=True)(x)),
        "bidirectional": lambda x: L.Bidirectional(L.LSTM(4))(x),
        "bidirectional_sequence": lambda x: L.Bidirectional(L.LSTM(4, return_sequences=True))(x),
        "bidirectional_stacked": lambda x: L.Bidirectional(L.LSTM(3))(
            L.Bidirectional(L.LSTM(4, return_sequences=True))(x)
        ),
        "backwards": lambda x: L.LSTM(6, go_backwards=True)(x),
        "no_bias": lambda x: L.LSTM(5, use_bias=False)(x),
        "dropout": lambda x: L.LSTM(5, dropout=0.3, recurrent_dropout=0.2)(x),
        "gru": lambda x: L.GRU(5)(x),
        "sequence_time_distributed": lambda x: L.TimeDistributed(L.Dense(3, activation="softmax"))(
            L.LSTM(5, return_sequences=True)(x)
        ),
        "masked": lambda x: L.LSTM(4)(L.Masking(0.0)(x)),
        "backwards_sequence": lambda x: L.LSTM(4, go_backwards=True, return_sequences=True)(x),
        "backwards_into_lstm": lambda x: L.LSTM(3)(
            L.LSTM(4, go_backwards=True, return_sequences=True)(x)
        ),
    }[kind](inp)
    if "sequence" not in kind:
        y = L.Dense(3, activation="softmax")(y)
    return keras.Model(inp, y)


def lstm_layers(model: keras.Model) -> list:
    """The model's Keras LSTMs in order (a Bidirectional's forward then backward)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            found += [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, keras.layers.LSTM):
            found.append(layer)
    return found


def export(kind: str, folder) -> tuple[keras.Model, str]:
    """The model, seeded, every bias random (Keras starts them at 0 and 1), exported."""
    keras.utils.set_random_seed(3)
    model = keras_model(kind)
    rng = np.random.default_rng(5)
    for layer in lstm_layers(model):
        kernel, recurrent, *bias = layer.get_weights()  # no bias: use_bias=False
        random = [rng.uniform(-0.8, 0.8, b.shape).astype("f4") for b in bias]
        layer.set_weights([kernel, recurrent, *random])
    model(np.zeros((1, T, C), np.float32))  # built: Keras exports a called model
    path = str(folder / f"{kind}.onnx")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's own notes
        model.export(path, format="onnx", verbose=False)
    return model, path


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request, tmp_path_factory):
    return request.param, *export(request.param, tmp_path_factory.mktemp("keras_onnx"))


def data(seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(B, T, C)).astype(np.float32)


def test_keras_onnx_export_imports_and_matches_onnxruntime_and_keras(exported):
    """The network read from Keras's file equals onnxruntime on that file and Keras on the
    model (float32, 1e-5), with the layers Keras's model holds."""
    kind, model, path = exported
    net = from_onnx(path, dtype=np.float32)
    assert [type(layer).__name__ for layer in net.layers] == MODELS[kind]
    x = data()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (runtime,) = session.run(None, {session.get_inputs()[0].name: x})
    got = np.asarray(net.predict(list(x)))
    np.testing.assert_allclose(got, runtime, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, np.asarray(model.predict(x, verbose=0)), rtol=0, atol=1e-5)


def test_the_plain_form_computes_what_keras_wrote(exported):
    """The graph as the cell recognition reads it (gate slices folded, identity Casts read
    through, the hoisted input product read per step) runs in onnxruntime to Keras's file's
    outputs (measured: bit for bit), and shows a cell per LSTM step."""
    import onnx

    _, keras_net, path = exported
    model = onnx.load(path)
    plain, _ = cells_visible(model)
    cells = find_cells(plain.graph, constants_of(plain.graph))
    assert plain is not model and len(cells) == T * len(lstm_layers(keras_net))
    x = data()
    outputs = []
    for proto in (model, plain):
        session = ort.InferenceSession(
            proto.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        outputs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-6)


def test_keras_onnx_export_holds_the_keras_weights(exported):
    """Each imported LSTM holds its Keras layer's kernel, recurrent kernel and bias exactly
    (Keras's gate order i, f, c, o is lstm_ref's); go_backwards reads as a reverse LSTM, a
    Bidirectional's backward layer as the BiLSTM's reverse half."""
    _, model, path = exported
    net = from_onnx(path)
    imported = []
    for layer in net.layers:
        imported += [layer.fwd, layer.bwd] if isinstance(layer, BiLSTM) else []
        imported += [layer] if isinstance(layer, LSTM) else []
    keras_lstms = lstm_layers(model)
    assert len(imported) == len(keras_lstms)
    for ours, theirs in zip(imported, keras_lstms, strict=True):
        kernel, recurrent, bias = (a.astype(np.float64) for a in theirs.get_weights())
        np.testing.assert_array_equal(ours.params.W, kernel.T)
        np.testing.assert_array_equal(ours.params.R, recurrent.T)
        np.testing.assert_array_equal(ours.params.b, bias)
        assert ours.direction == ("reverse" if theirs.go_backwards else "forward")


def test_keras_masking_export_is_refused(tmp_path):
    """Keras writes Masking as Where (each row's state kept at a masked step) and If: the
    file runs right in onnxruntime, and from_onnx refuses it, pointing to the .keras file."""
    model, path = export("masked", tmp_path)
    x = data()
    x[1, 3:] = 0.0  # row 2's last two steps masked
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (runtime,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(runtime, model.predict(x, verbose=0), rtol=0, atol=1e-5)
    with pytest.raises(InputError, match=r"reads its state from '.*' \(Where\): a step that some "
                       r"rows skip.* Keras's Masking is written .* Read the Keras model's own "
                       r"file \(.keras\)"):  # fmt: skip
        from_onnx(path)


def test_keras_go_backwards_sequence_export_is_refused(tmp_path):
    """go_backwards with return_sequences: Keras's outputs run from the last step to the
    first, which no ONNX LSTM output holds (lstm_ref reads it from the .keras file as a
    reverse LSTM and a TimeReversal); the steps read in that order are refused."""
    model, path = export("backwards_sequence", tmp_path)
    x = data()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (runtime,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(runtime, model.predict(x, verbose=0), rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="expected every step once along axis 1"):
        from_onnx(path)


def test_keras_go_backwards_sequence_into_an_lstm_is_two_reverse_lstms(tmp_path):
    """The next LSTM reads the go_backwards outputs from the last step to the first: a
    reverse LSTM over the first's outputs in time order — equal to onnxruntime and Keras."""
    model, path = export("backwards_into_lstm", tmp_path)
    net = from_onnx(path, dtype=np.float32)
    assert [layer.direction for layer in net.layers[1:3]] == ["reverse", "reverse"]
    x = data()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (runtime,) = session.run(None, {session.get_inputs()[0].name: x})
    got = np.asarray(net.predict(list(x)))
    np.testing.assert_allclose(got, runtime, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, np.asarray(model.predict(x, verbose=0)), rtol=0, atol=1e-5)


class ReversedLoop(torch.nn.Module):
    """fc(h) after an LSTMCell over the steps of x from the last to the first, from (h0, c0)."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = torch.nn.LSTMCell(C, 6)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x, h, c):
        for t in reversed(range(x.shape[0])):
            h, c = self.cell(x[t], (h, c))
        return self.fc(h)


def test_a_cell_loop_over_reversed_steps_is_a_reverse_lstm():
    """The same reading as Keras's go_backwards, on a torch LSTMCell loop (TorchScript
    export, time-major, non-zero (h0, c0) given): a reverse LSTM, equal to onnxruntime."""
    module = distinct_gates(ReversedLoop().eval(), seed=2)
    rng = np.random.default_rng(8)
    x, h, c = (rng.normal(size=s).astype(np.float32) for s in ((T, B, C), (B, 6), (B, 6)))
    args = tuple(torch.from_numpy(a) for a in (x, h, c))
    proto = onnx_export(module, args, "torchscript", ["x", "h", "c"], ["y"], {})
    net = from_onnx(proto, inputs={"h": h, "c": c}, dtype=np.float32)
    assert net.layers[1].direction == "reverse"
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (runtime,) = session.run(None, {"x": x, "h": h, "c": c})
    np.testing.assert_allclose(net.predict(list(x.transpose(1, 0, 2))), runtime, rtol=0, atol=1e-5)


def test_keras_lstm_returning_its_states_reads_every_step(tmp_path):
    """LSTM(return_state=True): Keras writes the last step's c and h through Casts that are
    graph outputs, and its last cell's tanh(c) reads that Cast; the cell is read through it
    like the others, so the head and the final h read all T steps and equal onnxruntime and
    Keras (float32, 1e-5). The final c is refused: lstm_ref's layers return h."""
    model, path = export("states", tmp_path)
    x = data()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    runtime = session.run(None, {session.get_inputs()[0].name: x})
    expected = model.predict(x, verbose=0)
    for k, layers in (
        (0, ["SequenceInput", "LSTM", "FullyConnected"]),
        (1, ["SequenceInput", "LSTM"]),
    ):
        net = from_onnx(path, output=names[k], dtype=np.float32)
        assert [type(layer).__name__ for layer in net.layers] == layers
        got = np.asarray(net.predict(list(x)))
        np.testing.assert_allclose(got, runtime[k], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got, expected[k], rtol=0, atol=1e-5)
    with pytest.raises(InputError, match=r"reads Y_c of .*; lstm_ref's layers return h"):
        from_onnx(path, output=names[2])


def test_keras_lstm_without_biases_is_an_lstm_whose_bias_is_zero(tmp_path):
    """LSTM(use_bias=False): Keras hoists the input product with no bias to add; read as
    each step's own product, the cells are an LSTM with b = 0 and Keras's kernels, equal to
    onnxruntime and Keras (float32, 1e-5)."""
    model, path = export("no_bias", tmp_path)
    x = data()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (runtime,) = session.run(None, {session.get_inputs()[0].name: x})
    net = from_onnx(path, dtype=np.float32)
    assert [type(layer).__name__ for layer in net.layers] == MODELS["last"]
    got = np.asarray(net.predict(list(x)))
    np.testing.assert_allclose(got, runtime, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=0, atol=1e-5)
    kernel, recurrent = (a.astype(np.float64) for a in lstm_layers(model)[0].get_weights())
    lstm = from_onnx(path).layers[1]
    np.testing.assert_array_equal(lstm.params.W, kernel.T)
    np.testing.assert_array_equal(lstm.params.R, recurrent.T)
    np.testing.assert_array_equal(lstm.params.b, np.zeros(4 * 5))


def test_keras_gru_export_is_refused_as_a_gru(tmp_path):
    """A GRU written as ops: onnxruntime equals Keras on it, and from_onnx, finding no LSTM
    cell, names the GRU's blend of its state, (1 − z) ⊙ tanh(·)."""
    model, path = export("gru", tmp_path)
    x = data()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (runtime,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(runtime, model.predict(x, verbose=0), rtol=0, atol=1e-5)
    with pytest.raises(InputError, match=r"no LSTM cell found, and node .* as a GRU blends its "
                       r"state \(a GRU\?\); lstm_ref reads LSTMs only"):  # fmt: skip
        from_onnx(path)
