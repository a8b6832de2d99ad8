"""verify on ports the real frameworks run: initial states in and final states out in each
framework's layout, each porting bug planted in a torch, onnxruntime or Keras model and run
there, pairs of bugs, the first diverging layer, verdicts that cannot lie, and the
false-diagnosis rate over many correct ports."""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import numpy as np
import pytest
import torch
from torch_models import distinct_gates, packed

from lstm_ref.errors import InputError, InputTypeError
from lstm_ref.interop.torch import from_torch
from lstm_ref.lstm import reorder_gates
from lstm_ref.verify import generate_inputs, verify
from lstm_ref.verify.report import dumps, text

C, H, K = 3, 4, 3
INPUTS = generate_inputs(C, seed=3, batch=4, length_range=(3, 6))  # lengths 6, ·, ·, 3
N, T = INPUTS.x.shape[:2]


def bilstm(seed: int = 1, layers: int = 1) -> tuple[torch.nn.LSTM, torch.nn.Linear]:
    """A float32 bidirectional LSTM and a head on its final states, every gate different."""
    lstm = distinct_gates(torch.nn.LSTM(C, H, layers, batch_first=True, bidirectional=True), seed)
    head = torch.nn.Linear(2 * H, K)
    with torch.no_grad():
        head.weight.copy_(torch.randn(K, 2 * H, generator=torch.Generator().manual_seed(seed)))
    return lstm.eval(), head.eval()


def start(layers: int = 1, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A non-zero (h_0, c_0), (L·D, N, H) each."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2 * layers, N, H, generator=g) * 0.6 for _ in range(2))  # type: ignore[return-value]


def save(lstm: torch.nn.LSTM, head: torch.nn.Linear, path):
    """The model as a state_dict file (what verify reads as the reference)."""
    state = {f"lstm.{k}": v for k, v in lstm.state_dict().items()}
    torch.save({**state, **{f"fc.{k}": v for k, v in head.state_dict().items()}}, path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    lstm, head = bilstm()
    return lstm, head, save(lstm, head, tmp_path_factory.mktemp("real") / "model.pt")


def check(path, observed, h_0, c_0, **options):
    """verify on torch's observed outputs, from torch's (h_0, c_0)."""
    state = {"h_0": h_0.numpy(), "c_0": c_0.numpy()}
    return verify(
        path, INPUTS, observed=observed, layout="torch-batch-first", initial_state=state, **options
    )


BUGS = (
    "bias-twice",
    "head-last-step",
    "state-zeros",
    "state-swapped",
    "unpacked",
    "reshaped",
    "gate-iofg",
)
NAMED = {  # the planted bug: the cause verify must name
    "bias-twice": "bias:bias_ih-added-twice",
    "head-last-step": "bilstm-head:last-step",
    "state-zeros": "state:zeros",
    "state-swapped": "state:h-c-swapped",
    "unpacked": "padding:matlab",
    "reshaped": "input:reshaped",
    "gate-iofg": "gate-order:iofg",
}


def torch_port(lstm, head, h_0, c_0, bugs=(), x=INPUTS.x, lengths=INPUTS.lengths):
    """What torch computes for the model's port with ``bugs`` in it: the head's
    probabilities, ``output`` (batch first, zeros past each length when packed), h_n, c_n."""
    port = torch.nn.LSTM(
        C, H, lstm.num_layers, batch_first="reshaped" not in bugs, bidirectional=True
    ).eval()
    weights = {k: v.clone() for k, v in lstm.state_dict().items()}
    for k in weights:
        if "bias-twice" in bugs and k.startswith("bias_ih"):
            weights[k] = 2 * weights[k]  # b_ih counted twice: 2·b_ih + b_hh
        if "gate-iofg" in bugs:  # ONNX's i,o,f,c blocks read as i,f,g,o
            weights[k] = torch.from_numpy(reorder_gates(weights[k].numpy(), "iofg", inverse=True))
    port.load_state_dict(weights)
    if "state-zeros" in bugs:
        h_0, c_0 = torch.zeros_like(h_0), torch.zeros_like(c_0)
    if "state-swapped" in bugs:
        h_0, c_0 = c_0, h_0
    data = torch.from_numpy(x).float()
    with torch.no_grad():
        if "reshaped" in bugs:  # (N, T, C) reshaped, not transposed, to time first
            out, (h_n, c_n) = port(data.reshape(x.shape[1], x.shape[0], C), (h_0, c_0))
            output = out.reshape(x.shape[0], x.shape[1], -1)
        elif "unpacked" in bugs:
            output, (h_n, c_n) = port(data, (h_0, c_0))
        else:
            in_packed = torch.nn.utils.rnn.pack_padded_sequence(
                data, torch.as_tensor(lengths), batch_first=True, enforce_sorted=False
            )
            out, (h_n, c_n) = port(in_packed, (h_0, c_0))
            output, _ = torch.nn.utils.rnn.pad_packed_sequence(
                out, batch_first=True, total_length=x.shape[1]
            )
        last = torch.cat([h_n[-2], h_n[-1]], dim=1)
        if "head-last-step" in bugs:  # the output at the last step, not the final states
            if "reshaped" in bugs:
                last = out[-1]  # the port's own time-first output
            elif "unpacked" in bugs:
                last = output[:, -1]
            else:  # each sequence's last step of the padded output
                last = output[torch.arange(len(x)), torch.as_tensor(lengths) - 1]
        probs = head(last).softmax(dim=1)
    return {
        "model": probs.numpy(),
        "output": output.numpy(),
        "h_n": h_n.numpy(),
        "c_n": c_n.numpy(),
    }


# ------------------------------------------------------------------- states in and out
def test_a_correct_port_from_a_non_zero_state_matches_in_every_torch_output(model):
    lstm, head, path = model
    h_0, c_0 = start()
    got = torch_port(lstm, head, h_0, c_0)
    report = check(path, got, h_0, c_0)
    assert report.verdict == "match" and report.initial_state == "non-zero"
    assert [c.name for c in report.comparisons] == ["model", "output", "h_n", "c_n"]
    steps = next(c for c in report.comparisons if c.name == "output")
    assert steps.compared == sum(INPUTS.lengths) * 2 * H  # padded steps counted apart
    assert steps.padded_compared == (N * T - sum(INPUTS.lengths)) * 2 * H
    time_first = {"output": got["output"].transpose(1, 0, 2), "h_n": got["h_n"]}
    state = {"h_0": h_0.numpy(), "c_0": c_0.numpy()}
    assert verify(path, INPUTS, observed=time_first, layout="torch", initial_state=state).passed
    assert check(path, got, 0 * h_0, 0 * c_0).verdict != "match"  # the state is used


def test_a_networks_assigned_state_is_its_initial_state(model):
    lstm, head, path = model
    h_0, c_0 = start()
    from lstm_ref.interop import load_model

    net = load_model(path)
    net.state = {
        "lstm.l0": (torch.cat([h_0[0], h_0[1]], 1).numpy(), torch.cat([c_0[0], c_0[1]], 1).numpy())
    }
    got = torch_port(lstm, head, h_0, c_0)
    assert verify(net, INPUTS, observed={"output": got["model"]}).verdict == "match"


def onnx_lstm(lstm, path, activations=None, states=True, outputs=("Y", "Y_h", "Y_c")):
    """An ONNX graph of one bidirectional LSTM node (X, sequence_lens and, with ``states``,
    initial_h, initial_c in; ``outputs`` out) with torch's weights, i,o,f,c blocks."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    s = {k: v.numpy() for k, v in lstm.state_dict().items()}
    blocks = lambda a: reorder_gates(a, "iofg", inverse=True)  # noqa: E731  to ONNX i,o,f,c
    W = np.stack([blocks(s["weight_ih_l0"]), blocks(s["weight_ih_l0_reverse"])])
    R = np.stack([blocks(s["weight_hh_l0"]), blocks(s["weight_hh_l0_reverse"])])
    B = np.stack(
        [
            np.concatenate([blocks(s[f"bias_ih_l0{d}"]), blocks(s[f"bias_hh_l0{d}"])])
            for d in ("", "_reverse")
        ]
    )
    attrs = {"hidden_size": H, "direction": "bidirectional"}
    if activations:
        attrs["activations"] = activations
    inputs = ["X", "W", "R", "B", "lens", *(["h0", "c0"] if states else [])]
    node = helper.make_node("LSTM", inputs, list(outputs), **attrs)
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "lstm",
        [
            helper.make_tensor_value_info("X", f, ["T", "N", C]),
            helper.make_tensor_value_info("lens", TensorProto.INT32, ["N"]),
            *(helper.make_tensor_value_info(n, f, [2, "N", H]) for n in inputs[5:]),
        ],
        [helper.make_tensor_value_info(n, f, None) for n in outputs],
        [
            numpy_helper.from_array(a.astype(np.float32), n)
            for n, a in (("W", W), ("R", R), ("B", B))
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.save(model, path)
    return path


def run_onnx(path, states=None):
    """onnxruntime's Y, Y_h, Y_c on the inputs (and initial states, (D, N, H) each)."""
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"X": INPUTS.x.transpose(1, 0, 2).astype(np.float32)}
    feeds["lens"] = INPUTS.lengths.astype(np.int32)
    if states is not None:
        feeds |= {"h0": states[0].numpy(), "c0": states[1].numpy()}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def test_onnx_outputs_and_states_in_onnx_layouts(model, tmp_path):
    """onnxruntime's Y (T, D, N, H), Y_h, Y_c from initial_h, initial_c (D, N, H): the
    reference is the torch model the graph holds the weights of."""
    lstm, _, path = model
    h_0, c_0 = start()
    graph = onnx_lstm(lstm, tmp_path / "lstm.onnx")
    got = run_onnx(graph, (h_0, c_0))
    assert got["Y"].shape == (T, 2, N, H)
    state = {"initial_h": h_0.numpy(), "initial_c": c_0.numpy()}
    report = verify(path, INPUTS, observed=got, layout="onnx", initial_state=state)
    assert report.verdict == "match" and [c.name for c in report.comparisons] == ["Y", "Y_h", "Y_c"]
    zeros = run_onnx(graph, (0 * h_0, 0 * c_0))
    dropped = verify(path, INPUTS, observed=zeros, layout="onnx", initial_state=state)
    assert [f.key for f in dropped.causes] == ["state:zeros"]


def test_onnx_imported_hard_sigmoid_gates_computed_with_sigmoid(model, tmp_path):
    """The reference: an ONNX LSTM with HardSigmoid gates, imported; the port's graph uses
    Sigmoid, run by onnxruntime."""
    lstm, _, _ = model
    hard = ["HardSigmoid", "Tanh", "Tanh"] * 2
    reference = onnx_lstm(lstm, tmp_path / "hard.onnx", hard, states=False, outputs=("Y",))
    port = onnx_lstm(lstm, tmp_path / "sigmoid.onnx", ["Sigmoid", "Tanh", "Tanh"] * 2, False)
    assert verify(reference, INPUTS, observed=run_onnx(reference), layout="onnx").passed
    report = verify(reference, INPUTS, observed=run_onnx(port), layout="onnx")
    assert [f.key for f in report.causes] == ["gate-activation:sigmoid"]


# ------------------------------------------------------------------- the causes, planted
@pytest.mark.parametrize("bug", BUGS)
def test_each_planted_bug_is_named(model, bug):
    lstm, head, path = model
    h_0, c_0 = start()
    report = check(path, torch_port(lstm, head, h_0, c_0, {bug}), h_0, c_0)
    assert report.verdict == "cause" and [f.key for f in report.causes] == [NAMED[bug]]
    assert report.pairs_tried == 0


PAIRS = [
    pair
    for pair in itertools.combinations(BUGS, 2)
    if set(pair) not in ({"state-zeros", "state-swapped"}, {"unpacked", "reshaped"})
]


@pytest.mark.parametrize("pair", PAIRS, ids="+".join)
def test_two_bugs_at_once_are_both_named(model, pair):
    lstm, head, path = model
    h_0, c_0 = start()
    report = check(path, torch_port(lstm, head, h_0, c_0, set(pair)), h_0, c_0)
    named = [set(f.key.split("+")) for f in report.causes]
    assert {NAMED[b] for b in pair} in named, (pair, [f.key for f in report.nearest])
    assert report.pairs_tried > 0 and "two bugs at once" in text(report)


def test_state_carried_over_from_the_batch_before(model):
    """A loop that passes torch's hidden state on from one call to the next."""
    lstm, head, path = model
    h_0, c_0 = start()
    inputs = packed(INPUTS.sequences, torch.float32)
    with torch.no_grad():
        _, carried = lstm(inputs, (h_0, c_0))
        _, (h_n, _) = lstm(inputs, carried)
        probs = head(torch.cat([h_n[0], h_n[1]], 1)).softmax(1)
    report = check(path, {"model": probs.numpy(), "h_n": h_n.numpy()}, h_0, c_0)
    assert [f.key for f in report.causes] == ["state:carried"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_rounding_not_a_bug(model, dtype):
    lstm, _, path = model
    h_0, c_0 = start()
    half = getattr(torch, dtype)
    inputs = packed(INPUTS.sequences, half)
    low = torch.nn.LSTM(C, H, batch_first=True, bidirectional=True).eval()
    low.load_state_dict(lstm.state_dict())
    with torch.no_grad():
        _, (h_n, c_n) = low.to(half)(inputs, (h_0.to(half), c_0.to(half)))
    got = {"h_n": h_n.float().numpy(), "c_n": c_n.float().numpy()}
    if dtype == "float16":
        got = {k: v.astype(np.float16) for k, v in got.items()}  # the precision seen
    report = check(path, got, h_0, c_0, precision=None if dtype == "float16" else dtype)
    assert report.verdict == "rounding" and report.precision == dtype
    assert 1e-4 < max(c.max_abs for c in report.comparisons) < 1e-1


# ------------------------------------------------------------------- which layer first
def test_the_first_diverging_layer_is_named_and_the_bug_found_in_it_alone(tmp_path):
    lstm, head = bilstm(seed=4, layers=2)
    path = save(lstm, head, tmp_path / "two.pt")
    h_0, c_0 = start(layers=2)
    port = torch.nn.LSTM(C, H, 2, batch_first=True, bidirectional=True).eval()
    weights = dict(lstm.state_dict())
    for k in [k for k in weights if k.endswith("_l1") or k.endswith("_l1_reverse")]:
        weights[k] = torch.from_numpy(reorder_gates(weights[k].numpy(), "iofg", inverse=True))
    port.load_state_dict(weights)  # the second layer read with ONNX's blocks
    inputs = packed(INPUTS.sequences, torch.float32)
    with torch.no_grad():
        _, (h_n, c_n) = port(inputs, (h_0, c_0))
    report = check(path, {"h_n": h_n.numpy(), "c_n": c_n.numpy()}, h_0, c_0)
    assert [c.passed for c in report.comparisons] == [True, False, True, False]
    assert report.first_layer == "lstm.l1" and "first diverging layer: 'lstm.l1'" in text(report)
    assert [f.key for f in report.causes] == ["gate-order:iofg@lstm.l1"]


# ------------------------------------------------------------------- verdicts that cannot lie
def test_verdicts_cannot_lie(model):
    lstm, head, path = model
    h_0, c_0 = start()
    good = torch_port(lstm, head, h_0, c_0)
    for bad in (float("nan"), float("inf"), -1e-5):
        with pytest.raises(InputError, match="atol"):
            check(path, good, h_0, c_0, atol=bad)
    with pytest.raises(InputTypeError, match="real floating-point"):
        check(path, {"model": good["model"] + 0j}, h_0, c_0)
    with pytest.raises(InputError, match=r"\(L·D, N, H\)"):
        check(path, {"h_n": good["h_n"][:1]}, h_0, c_0)
    broken = {k: v.copy() for k, v in good.items()}
    broken["output"][0, 0, 0] = np.inf
    broken["output"][1, 1, 1] = np.nan
    report = check(path, broken, h_0, c_0)
    steps = next(c for c in report.comparisons if c.name == "output")
    assert (steps.nan, steps.infinite, steps.failed) == (1, 1, 2) and np.isnan(steps.max_abs)
    assert steps.nan_at == [(1, 1, 1)] and "1 NaN at (sequence, step, unit) (1, 1, 1), 1 " in text(
        report
    )
    assert report.verdict == "nan" and report.tried == 0 and not report.nearest  # no cause hunt
    assert dumps(report)  # strict JSON: non-finite numbers written as null


# ------------------------------------------------------------------- no false diagnosis
def test_no_false_diagnosis_over_many_correct_ports():
    """240 random correct ports — one or two layers, one or two directions, time or batch
    first, mixed lengths, random non-zero initial states, torch's outputs and states —
    each 'match' (tolerance 1e-5) or 'rounding' (tolerance 0): never a cause."""
    rng = np.random.default_rng(20)
    verdicts = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: torch's thread pool only waits on a busy machine
    for k in range(240):
        layers, bidirectional, batch_first = int(rng.integers(1, 3)), bool(k % 2), bool(k % 3)
        D, width = 1 + bidirectional, int(rng.integers(2, 6))
        lstm = torch.nn.LSTM(2, width, layers, batch_first=batch_first, bidirectional=bidirectional)
        distinct_gates(lstm, seed=k).eval()
        n, steps = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        lengths = rng.integers(1, steps + 1, size=n)
        lengths[0] = steps
        x = rng.normal(size=(n, steps, 2)) * (
            np.arange(steps)[None, :, None] < lengths[:, None, None]
        )
        h_0, c_0 = (
            torch.from_numpy(rng.normal(size=(layers * D, n, width)) * 0.5).float() for _ in "hc"
        )
        data = torch.from_numpy(x if batch_first else x.transpose(1, 0, 2).copy()).float()
        in_packed = torch.nn.utils.rnn.pack_padded_sequence(
            data, torch.as_tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
        with torch.no_grad():
            out, (h_n, c_n) = lstm(in_packed, (h_0, c_0))
            output, _ = torch.nn.utils.rnn.pad_packed_sequence(
                out, batch_first=batch_first, total_length=steps
            )
        from lstm_ref.verify import Inputs

        report = verify(
            from_torch(lstm),
            Inputs(x, lengths, "random"),
            observed={"output": output.numpy(), "h_n": h_n.numpy(), "c_n": c_n.numpy()},
            layout="torch-batch-first" if batch_first else "torch",
            initial_state={"h_0": h_0.numpy(), "c_0": c_0.numpy()},
            atol=1e-5 if k % 4 else 0.0,
            rtol=1e-5 if k % 4 else 0.0,
        )
        verdicts.append(report.verdict)
    torch.set_num_threads(threads)
    counts = {v: verdicts.count(v) for v in set(verdicts)}
    assert set(counts) <= {"match", "rounding"}, counts  # the false-diagnosis rate is 0
    assert counts.get("rounding", 0) >= 40 and counts["match"] >= 150


# ------------------------------------------------------------------- Keras
def keras_lstm(keras, stateful=False):
    """Masking → LSTM returning its sequence and its states [output, h, c]."""
    inputs = keras.Input((T, C), batch_size=N if stateful else None)
    masked = keras.layers.Masking(0.0)(inputs)
    lstm = keras.layers.LSTM(H, return_sequences=True, return_state=True, stateful=stateful)
    model = keras.Model(inputs, lstm(masked))
    rng = np.random.default_rng(6)
    scale = np.repeat([0.6, 0.9, 1.2, 0.5], H)
    lstm.set_weights([rng.normal(size=w.shape) * scale for w in lstm.get_weights()])
    return model


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_returned_states_and_a_stateful_port(tmp_path):
    """Keras's [output, h, c] in Keras's names; the port a stateful=True copy that ran the
    batch once before (its state not reset): the state carried over is named."""
    keras = pytest.importorskip("keras")
    model = keras_lstm(keras)
    model.save(tmp_path / "model.keras")
    names = ("output", "h", "c")
    x = INPUTS.x.astype(np.float32)
    got = dict(zip(names, (np.asarray(a) for a in model.predict(x, verbose=0)), strict=True))
    report = verify(tmp_path / "model.keras", INPUTS, observed=got, layout="keras")
    assert report.verdict == "match" and report.semantics == "keras"
    assert [c.name for c in report.comparisons] == list(names)
    port = keras_lstm(keras, stateful=True)
    port.set_weights(model.get_weights())
    port.predict(x, verbose=0)  # a batch before, its state kept
    again = dict(zip(names, (np.asarray(a) for a in port.predict(x, verbose=0)), strict=True))
    report = verify(tmp_path / "model.keras", INPUTS, observed=again, layout="keras")
    assert [f.key for f in report.causes] == ["state:carried"]


def test_zero_length_rows_as_onnxruntime_computes_them(model, tmp_path):
    """sequence_lens 0: onnxruntime's Y is 0 at every step and Y_h = Y_c = 0 whatever the
    initial state; the row's data counts nothing, its padded values are checked."""
    from lstm_ref.verify import Inputs

    lstm, _, path = model
    h_0, c_0 = start()
    graph = onnx_lstm(lstm, tmp_path / "lstm.onnx")
    lengths = INPUTS.lengths.copy()
    lengths[1] = 0
    x = INPUTS.x.copy()
    x[1] = 0
    inputs = Inputs(x, lengths, "one row empty")
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    feeds = {"X": x.transpose(1, 0, 2).astype(np.float32), "lens": lengths.astype(np.int32)}
    feeds |= {"h0": h_0.numpy(), "c0": c_0.numpy()}
    got = dict(zip(("Y", "Y_h", "Y_c"), session.run(None, feeds), strict=True))
    assert not got["Y_h"][:, 1].any()  # the empty row's state is 0, not the initial one
    state = {"initial_h": h_0.numpy(), "initial_c": c_0.numpy()}
    report = verify(path, inputs, observed=got, layout="onnx", initial_state=state)
    assert report.verdict == "match"
    steps = report.comparisons[0]
    assert steps.compared == sum(lengths) * 2 * H
    assert steps.padded_compared == (N * T - sum(lengths)) * 2 * H


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_bidirectional_states_in_and_out(tmp_path):
    """A Keras Bidirectional returning [output, h_f, c_f, h_b, c_b], called from an initial
    state [h_f, c_f, h_b, c_b]: all in Keras's names; the model file is the one without the
    state inputs (lstm_ref takes the state from verify). Called so, Keras 3 computes over the
    padding (its mask is not applied): on mixed lengths verify names that."""
    keras = pytest.importorskip("keras")
    names = ("h_forward", "c_forward", "h_backward", "c_backward")
    inputs = keras.Input((T, C))
    masked = keras.layers.Masking(0.0)(inputs)
    both = keras.layers.Bidirectional(keras.layers.LSTM(H, return_state=True))
    model = keras.Model(inputs, both(masked))
    rng = np.random.default_rng(8)
    model.set_weights([rng.normal(size=w.shape) * 0.7 for w in model.get_weights()])
    model.save(tmp_path / "model.keras")
    states = [keras.Input((H,)) for _ in names]
    started = keras.Model([inputs, *states], both(masked, initial_state=states))
    start = {n: rng.normal(size=(N, H)).astype(np.float32) * 0.5 for n in names}

    def check(inputs, **options):
        x = inputs.x.astype(np.float32)
        outputs = started.predict([x, *start.values()], verbose=0)
        got = dict(zip(("output", *names), (np.asarray(a) for a in outputs), strict=True))
        path = tmp_path / "model.keras"
        return verify(path, inputs, observed=got, layout="keras", initial_state=start, **options)

    full = check(generate_inputs(C, seed=3, batch=N, length_range=(T, T)))
    assert full.verdict == "match" and full.initial_state == "non-zero"
    labels = ["output", "h_forward ‖ h_backward", "c_forward ‖ c_backward"]
    assert [c.name for c in full.comparisons] == labels
    assert [f.key for f in check(INPUTS, pairs=False).causes] == ["padding:matlab"]


def test_batch_first_data_read_as_time_major(model):
    """A port whose nn.LSTM is time-major (batch_first=False) fed the batch-first batch; with
    N = T the shapes agree and torch runs it: the same reading as a reshape to time first."""
    lstm, head, path = model
    inputs = generate_inputs(C, seed=5, batch=5, length_range=(3, 5))  # N = T = 5, mixed
    h_0, c_0 = (torch.randn(2, 5, H, generator=torch.Generator().manual_seed(k)) for k in (1, 2))
    port = torch.nn.LSTM(C, H, bidirectional=True).eval()  # time major
    port.load_state_dict(lstm.state_dict())
    with torch.no_grad():
        _, (h_n, c_n) = port(torch.from_numpy(inputs.x).float(), (h_0, c_0))
        probs = head(torch.cat([h_n[0], h_n[1]], 1)).softmax(1)
    state = {"h_0": h_0.numpy(), "c_0": c_0.numpy()}
    seen = {"model": probs.numpy(), "h_n": h_n.numpy(), "c_n": c_n.numpy()}
    report = verify(path, inputs, observed=seen, layout="torch", initial_state=state)
    assert [f.key for f in report.causes] == ["input:reshaped"]
