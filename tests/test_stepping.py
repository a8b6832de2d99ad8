"""Stepping a network one time step at a time: refused where a layer reads a sequence from its
end, and the walkthrough's step-wise check says which units a step-wise loop can compute —
measured against PyTorch's nn.LSTM(bidirectional=True)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from random_nets import random_lstm_params, random_network

from lstm_ref import LSTM, InputError, LSTMState, Network, SequenceInput
from lstm_ref.layers import BiLSTM, LSTMStack, TimeReversal
from lstm_ref.walkthrough import run_walkthrough

torch = pytest.importorskip("torch")
from torch_models import Classifier, distinct_gates  # noqa: E402

from lstm_ref.interop.torch import from_torch  # noqa: E402

C, H = 4, 5


def lstm(rng, name, direction="forward", C=C, H=H) -> LSTM:
    start = LSTMState(rng.uniform(-0.5, 0.5, H), rng.normal(size=H))
    return LSTM(random_lstm_params(rng, C, H), name=name, direction=direction, initial_state=start)


def networks(rng) -> dict[str, tuple[Network, str]]:
    """Each way a network reads a sequence from its end, and the layer that does."""
    bi = BiLSTM(lstm(rng, "f", C=H), lstm(rng, "b", "reverse", C=H), name="bi")
    stack = LSTMStack(
        [lstm(rng, "one"), BiLSTM(lstm(rng, "f", C=H), lstm(rng, "b", "reverse", C=H))]
    )
    return {
        "reverse LSTM": (Network([SequenceInput(C), lstm(rng, "rev", "reverse")]), "rev"),
        "BiLSTM": (Network([SequenceInput(C), lstm(rng, "first"), bi]), "bi"),
        "LSTMStack": (Network([SequenceInput(C), stack]), "lstm_stack"),
        "TimeReversal": (Network([SequenceInput(C), lstm(rng, "fwd"), TimeReversal()]), "reversal"),
    }


@pytest.mark.parametrize("kind", ["reverse LSTM", "BiLSTM", "LSTMStack", "TimeReversal"])
def test_a_stepper_refuses_a_layer_that_reads_from_the_end(rng, kind):
    net, name = networks(rng)[kind]
    with pytest.raises(InputError, match=f"cannot be stepped: layer '{name}'"):
        net.stepper()
    _, state = net.predict(rng.normal(size=(6, C)), return_state=True)  # whole sequences: fine
    net.state = state


def test_the_layers_before_a_reverse_direction_still_step(rng):
    net, _ = networks(rng)["BiLSTM"]
    xs = rng.normal(size=(6, C))
    stepper = net.stepper("first")
    steps = np.stack([stepper.step(x) for x in xs])
    np.testing.assert_allclose(steps, net.predict(xs, "first"), rtol=0, atol=1e-12)


def with_start(layer: BiLSTM, rng) -> BiLSTM:
    """``layer`` with random, non-zero initial states in both directions."""
    fwd, bwd = (
        dataclasses.replace(
            d, initial_state=LSTMState(rng.uniform(-0.8, 0.8, H), rng.normal(size=H))
        )
        for d in (layer.fwd, layer.bwd)
    )
    return dataclasses.replace(layer, fwd=fwd, bwd=bwd)


def test_walkthrough_compares_the_forward_units_and_says_why_the_reverse_differ(rng, tmp_path):
    model = distinct_gates(Classifier(C, H, 3, bidirectional=True).double(), seed=7).eval()
    imported = from_torch(model)
    bi = with_start(imported.layers[1], rng)
    net = Network([imported.layers[0], bi, *imported.layers[2:]])
    x = rng.normal(size=(6, C))
    h0, c0 = (np.stack([bi.fwd.initial_state[k], bi.bwd.initial_state[k]])[:, None] for k in (0, 1))
    with torch.no_grad():
        torch_out = (
            model.lstm(torch.from_numpy(x)[None], (torch.from_numpy(h0), torch.from_numpy(c0)))[0][
                0
            ]
            .numpy()
            .T
        )  # (2H, T)
    lines: list[str] = []
    result = run_walkthrough(tmp_path, network=net, sequences=[x], log=lines.append)
    assert np.abs(result.activations[:H] - torch_out[:H]).max() <= 1e-12
    reverse_gap = np.abs(result.activations[H:] - torch_out[H:]).max()
    assert reverse_gap > 1e-2
    assert result.max_abs_diff <= 1e-12
    assert result.reverse_diff == pytest.approx(reverse_gap, abs=1e-12)
    text = "\n".join(lines)
    assert f"over the units a step-wise loop can compute (units 1-{H}); the others (units " in text
    assert f"{H + 1}-{2 * H}) differ by {reverse_gap:.1e}, as they must: layer 'lstm.l0'" in text


def test_walkthrough_of_a_reverse_lstm_has_no_unit_to_compare(rng, tmp_path):
    net = random_network(rng, C=C, H=H, direction="reverse")
    lines: list[str] = []
    result = run_walkthrough(
        tmp_path, network=net, sequences=[rng.normal(size=(5, C))], log=lines.append
    )
    assert np.isnan(result.max_abs_diff) and result.reverse_diff > 1e-2
    assert (
        f"= {result.reverse_diff:.1e}, as it must be: layer 'lstm' (LSTM) has a reverse"
        in "\n".join(lines)
    )


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("return_sequences", [True, False])
def test_a_stepper_skips_what_keras_masking_skips(rng, tmp_path, return_sequences):
    from test_keras_semantics import keras, seeded  # KERAS_BACKEND=torch, set before keras

    from lstm_ref.interop import load_model

    layers = [keras.Input((None, C)), keras.layers.Masking(0.0)]
    layers += [keras.layers.LSTM(H, return_sequences=return_sequences), keras.layers.Dense(3)]
    model = seeded(keras.Sequential(layers), seed=3)
    model.save(tmp_path / "m.keras")
    net = load_model(tmp_path / "m.keras")
    x = rng.normal(size=(7, C)).astype(np.float32)
    x[[2, 4, 5]] = 0.0  # skipped by Masking(0.0)
    if return_sequences:  # Keras's output at each step repeats the last unmasked one
        want = model.predict(x[None], verbose=0)[0]
    else:  # the model's output after each prefix
        want = np.stack([model.predict(x[None, : t + 1], verbose=0)[0] for t in range(len(x))])
    stepper = net.stepper()
    steps = np.stack([stepper.step(x_t) for x_t in x])
    np.testing.assert_allclose(steps, want, rtol=0, atol=1e-5)
    stepper.reset()
    chunks = [stepper.run(x[:3]), stepper.step(x[3]), stepper.run(x[4:])]
    last = chunks[-1] if return_sequences else chunks[-1][None]
    np.testing.assert_allclose(last, want[4:] if return_sequences else want[-1:], atol=1e-5)
    np.testing.assert_allclose(chunks[1], want[3], rtol=0, atol=1e-5)
    stepper.reset()
    with pytest.raises(InputError, match="equals the mask value 0 of the network's Masking"):
        stepper.step(np.zeros(C))
