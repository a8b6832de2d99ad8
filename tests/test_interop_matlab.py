"""MATLAB learnables files: v5 (what MATLAB's save writes, made here with scipy.io.savemat)
and v7.3 (HDF5 in MATLAB's column-major layout, made here with h5py). No MATLAB runs in
CI, so these check the layout and the round trip against lstm_ref's own network."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
from random_nets import random_lstm_params, random_network, random_sequences

from lstm_ref import LSTM, FullyConnected, InputError, Network, Padding
from lstm_ref.interop import load_model
from lstm_ref.interop.matlab import save_matlab
from lstm_ref.layers import BiLSTM

C, H, K = 5, 7, 4


def matlab_variables(net):
    seq, lstm, fc = net.layers[0], net.layers[1], net.layers[2]
    return {
        "InputWeights": lstm.params.W,  # 4H × C
        "RecurrentWeights": lstm.params.R,
        "Bias": lstm.params.b[:, None],  # 4H × 1
        "FcWeights": fc.weights,
        "FcBias": fc.bias[:, None],
        "HiddenState": lstm.initial_state.h[:, None],
        "CellState": lstm.initial_state.c[:, None],
        "Mean": seq.mean[:, None],
        "StandardDeviation": seq.std[:, None],
        "OutputMode": "last",
        "GateActivationFunction": "hard-sigmoid",
        "StateActivationFunction": "softsign",
    }


def write_v73(path, values, class_names):
    """What MATLAB's save -v7.3 writes: a 512-byte user block, every array transposed
    (column-major), char as uint16, a cell as object references into #refs#."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in values.items():
            if isinstance(v, str):
                d = f.create_dataset(k, data=np.array([[ord(ch)] for ch in v], np.uint16))
                d.attrs["MATLAB_class"] = np.bytes_("char")
            else:
                d = f.create_dataset(k, data=np.asarray(v).T)
                d.attrs["MATLAB_class"] = np.bytes_("double")
        refs = f.create_group("#refs#")
        ref_list = []
        for k, name in enumerate(class_names):
            d = refs.create_dataset(f"c{k}", data=np.array([[ord(ch)] for ch in name], np.uint16))
            d.attrs["MATLAB_class"] = np.bytes_("char")
            ref_list.append(d.ref)
        cell = f.create_dataset("ClassNames", data=np.array([ref_list]), dtype=h5py.ref_dtype)
        cell.attrs["MATLAB_class"] = np.bytes_("cell")
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .")


@pytest.fixture
def net(rng):
    return random_network(
        rng,
        C=C,
        H=H,
        K=K,
        normalization="zscore",
        gate_activation="hard-sigmoid",
        state_activation="softsign",
    )


def check_same(net, other, rng):
    seqs = random_sequences(rng, [6, 3, 9], C)
    padding = Padding.matlab(mini_batch_size=2)
    got, want = other.predict(seqs, padding=padding), net.predict(seqs, padding=padding)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)  # the arrays' memory order differs
    assert [x.TYPE for x in other.layers[len(net.layers) :]] in ([], ["Classification Output"])
    for a, b in zip(net.layers, other.layers[: len(net.layers)], strict=True):
        for k, v in a.arrays().items():
            np.testing.assert_array_equal(v, b.arrays()[k], err_msg=f"{a.name}/{k}")


def test_v5_file(net, rng, tmp_path):
    path = tmp_path / "learnables.mat"
    values = dict(
        matlab_variables(net), ClassNames=np.array(net.class_names, dtype=object)[:, None]
    )
    scipy.io.savemat(path, values)
    imported = load_model(path)
    assert imported.class_names == net.class_names
    check_same(net, imported, rng)


def test_v5_file_with_one_struct_variable(net, rng, tmp_path):
    path = tmp_path / "struct.mat"
    scipy.io.savemat(path, {"s": matlab_variables(net)})
    check_same(net, load_model(path), rng)


def test_v73_file(net, rng, tmp_path):
    path = tmp_path / "learnables73.mat"
    write_v73(path, matlab_variables(net), net.class_names)
    imported = load_model(path)
    assert imported.class_names == net.class_names
    check_same(net, imported, rng)


def test_export_round_trips_exactly(net, rng, tmp_path):
    path = tmp_path / "out.mat"
    save_matlab(net, path)
    check_same(net, load_model(path), rng)


def test_bad_files_are_refused(net, tmp_path):
    values = matlab_variables(net)
    del values["RecurrentWeights"]
    scipy.io.savemat(tmp_path / "missing.mat", values)
    with pytest.raises(
        InputError, match=r"missing\.mat: lacks the variable\(s\) \['RecurrentWeights'\]"
    ):
        load_model(tmp_path / "missing.mat")
    values = dict(matlab_variables(net), RecurrentWeights=np.zeros((4 * H, H + 1)))
    scipy.io.savemat(tmp_path / "shape.mat", values)
    with pytest.raises(InputError, match=r"layer 'lstm': R must have shape \(4H, H\)"):
        load_model(tmp_path / "shape.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(InputError, match=r"junk\.mat: not a MATLAB \.mat file"):
        load_model(tmp_path / "junk.mat")


def test_bilstm_file_against_torch_output_at_the_last_padded_step(rng, tmp_path):
    """A bilstmLayer's learnables (8H rows, forward above backward) with OutputMode 'last':
    MATLAB runs the backward direction over the padded mini-batch and reads its output at the
    last step — torch's output[:, -1] of the same padded, unpacked batch."""
    import torch

    module = torch.nn.LSTM(C, H, bidirectional=True, batch_first=True).double()
    fc = torch.nn.Linear(2 * H, K).double()
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    both = ("", "_reverse")
    values = {
        "InputWeights": np.concatenate([sd[f"weight_ih_l0{r}"] for r in both]),
        "RecurrentWeights": np.concatenate([sd[f"weight_hh_l0{r}"] for r in both]),
        "Bias": np.concatenate([sd[f"bias_ih_l0{r}"] + sd[f"bias_hh_l0{r}"] for r in both])[
            :, None
        ],
        "FcWeights": fc.weight.detach().numpy(),
        "FcBias": fc.bias.detach().numpy()[:, None],
        "OutputMode": "last",
    }
    scipy.io.savemat(tmp_path / "bilstm.mat", values)
    net = load_model(tmp_path / "bilstm.mat")
    seqs = random_sequences(rng, [6, 3, 9, 4], C)
    x = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s) for s in seqs], batch_first=True)
    with torch.no_grad():
        out, _ = module(x)
        want = fc(out[:, -1]).softmax(-1).numpy()
    got = net.predict(seqs, padding=Padding.matlab(mini_batch_size=len(seqs)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    save_matlab(net, tmp_path / "again.mat")
    check_same(net, load_model(tmp_path / "again.mat"), rng)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_v73_export_is_matlabs_layout_and_round_trips_exactly(bidirectional, rng, tmp_path):
    """save -v7.3's layout, checked with h5py and scipy's version sniffing (scipy reads v5
    only and recognises the v7.3 header); read back, every array is the same."""
    net = random_network(rng, C=C, H=H, K=K, normalization="zscore")
    if bidirectional:  # MATLAB's bilstmLayer: concatenated, 'last' the output at the last step
        lstm, fc = net.layers[1], net.layers[2]
        back = LSTM(
            random_lstm_params(rng, C, H), output_mode="last", direction="reverse", name="bwd"
        )
        bilstm = BiLSTM(lstm, back, name="bilstm", last="step")
        fc2 = FullyConnected(rng.normal(size=(K, 2 * H)), fc.bias)
        net = Network([net.layers[0], bilstm, fc2, *net.layers[3:]], net.class_names)
    path = tmp_path / "out73.mat"
    save_matlab(net, path, version="7.3")
    assert scipy.io.matlab.matfile_version(str(path)) == (2, 0)
    rows = 8 * H if bidirectional else 4 * H
    with h5py.File(path, "r") as f:
        assert f["InputWeights"].shape == (C, rows)  # column-major: MATLAB's rows × C
        assert f["InputWeights"].attrs["MATLAB_class"] == b"double"
        assert f["OutputMode"].attrs["MATLAB_class"] == b"char"
        assert f["ClassNames"].shape == (1, K) and f["ClassNames"].attrs["MATLAB_class"] == b"cell"
    imported = load_model(path)
    assert imported.class_names == net.class_names
    check_same(net, imported, rng)
    with pytest.raises(InputError, match=r"MAT-file version must be '5' or '7.3'; got '7'"):
        save_matlab(net, tmp_path / "bad.mat", version="7")  # type: ignore[arg-type]


def test_lstm_projected_layer_against_torch(rng, tmp_path):
    """An lstmProjectedLayer's factors (InputWeights 4H × Qi with InputProjector C × Qi,
    RecurrentWeights 4H × Qo with OutputProjector H × Qo) compute W = InputWeights ·
    InputProjectorᵀ and R = RecurrentWeights · OutputProjectorᵀ: torch's nn.LSTM holding
    those products gives the same outputs."""
    import torch

    Qi, Qo = 3, 4
    factors = {
        "InputWeights": rng.normal(size=(4 * H, Qi)),
        "InputProjector": rng.normal(size=(C, Qi)),
        "RecurrentWeights": rng.normal(size=(4 * H, Qo)),
        "OutputProjector": rng.normal(size=(H, Qo)),
        "Bias": rng.normal(size=(4 * H, 1)),
        "FcWeights": rng.normal(size=(K, H)),
        "FcBias": rng.normal(size=(K, 1)),
        "HiddenState": rng.normal(size=(H, 1)),
        "CellState": rng.normal(size=(H, 1)),
    }
    scipy.io.savemat(tmp_path / "projected.mat", factors)
    net = load_model(tmp_path / "projected.mat")
    module = torch.nn.LSTM(C, H, batch_first=True).double()
    with torch.no_grad():
        module.weight_ih_l0.copy_(
            torch.from_numpy(factors["InputWeights"] @ factors["InputProjector"].T)
        )
        module.weight_hh_l0.copy_(
            torch.from_numpy(factors["RecurrentWeights"] @ factors["OutputProjector"].T)
        )
        module.bias_ih_l0.copy_(torch.from_numpy(factors["Bias"][:, 0]))
        module.bias_hh_l0.zero_()
    seqs = random_sequences(rng, [6, 3, 9], C)
    start = tuple(
        torch.from_numpy(factors[k][:, 0]).reshape(1, 1, H).repeat(1, len(seqs), 1)
        for k in ("HiddenState", "CellState")
    )
    packed = torch.nn.utils.rnn.pack_sequence(
        [torch.from_numpy(s) for s in seqs], enforce_sorted=False
    )
    with torch.no_grad():
        _, (h, _) = module(packed, start)
        logits = h[0].numpy() @ factors["FcWeights"].T + factors["FcBias"][:, 0]
    want = np.exp(logits - logits.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(net.predict(seqs), want, rtol=0, atol=1e-12)
    del factors["OutputProjector"]
    scipy.io.savemat(tmp_path / "half.mat", factors)
    with pytest.raises(InputError, match=r"stores both InputProjector and OutputProjector"):
        load_model(tmp_path / "half.mat")
    factors["OutputProjector"] = rng.normal(size=(Qo, H))  # transposed
    scipy.io.savemat(tmp_path / "transposed.mat", factors)
    with pytest.raises(InputError, match=r"OutputProjector H × Qo; got .*\(4, 7\)"):
        load_model(tmp_path / "transposed.mat")
