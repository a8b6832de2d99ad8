"""PyTorch checkpoints as users save them: the LSTM picked out of a bigger model — a
convolutional front end with an LSTMCell decoder, an encoder–decoder with two LSTMs — from a
state_dict, a checkpoint dict, a .safetensors file and a TorchScript archive, each matched
against the picked module's own forward; and a float32 state_dict written back as it was."""

from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch_models import assert_matches_nn_lstm, distinct_gates

from lstm_ref import InputError
from lstm_ref.interop import load_model, save_model
from lstm_ref.interop.torch import from_torch, to_state_dict
from lstm_ref.interop.torch_checkpoint import list_torch_lstms, load_state_dict

C_IN, C, H, K = 3, 4, 6, 3
LENGTHS = [5, 2, 7, 3]
DTYPES = {"float32": (torch.float32, 1e-5), "float64": (torch.float64, 1e-10)}


class Decoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = torch.nn.LSTMCell(C, H)
        self.fc = torch.nn.Linear(H, K)


class ConvCellDecoder(torch.nn.Module):
    """A convolutional front end, then an LSTMCell decoder run over the steps, a Linear on
    each h."""

    def __init__(self):
        super().__init__()
        self.front = torch.nn.Sequential(
            torch.nn.Conv1d(C_IN, C, 3, padding=1), torch.nn.BatchNorm1d(C), torch.nn.ReLU()
        )
        self.decoder = Decoder()

    def forward(self, x):  # x (B, C_IN, T)
        z = self.front(x).transpose(1, 2)
        h = torch.zeros([z.shape[0], self.decoder.cell.hidden_size], dtype=z.dtype)
        c = torch.zeros_like(h)
        ys = []
        for t in range(z.shape[1]):
            h, c = self.decoder.cell(z[:, t], (h, c))
            ys.append(self.decoder.fc(h))
        return torch.stack(ys, 1)


def trained(model, dtype):
    """``model`` in ``dtype`` after one Adam step (so its optimizer holds state), and that
    optimizer's state_dict."""
    model = distinct_gates(model.to(dtype), seed=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.randn(2, C_IN, 5, generator=torch.Generator().manual_seed(1)).to(dtype)
    model(x).sum().backward()
    optimizer.step()
    return model.eval(), optimizer.state_dict()


def as_source(kind, model, optimizer, tmp_path):
    """``model`` saved as ``kind`` says, the way users save theirs."""
    state = model.state_dict()
    checkpoint = {"model": state, "optimizer": optimizer, "epoch": 3}
    if kind == "state_dict":
        return state
    if kind == "numpy":
        return {k: v.numpy() for k, v in state.items()}
    if kind == "checkpoint":
        return checkpoint
    path = tmp_path / f"model.{'safetensors' if kind == 'safetensors' else 'pt'}"
    if kind == "checkpoint.pt":
        torch.save(checkpoint, path)
    elif kind == "safetensors":
        save_file(state, path)
    else:  # a TorchScript archive
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script's notice
            torch.jit.save(torch.jit.script(model), path)
    return path


def cell_forward(cell, seqs, h0, c0):
    """The cell's own forward over each sequence from its row of (h0, c0): every h, the
    final c."""
    hs, cs = [], []
    dtype = cell.weight_ih.dtype
    with torch.no_grad():
        for b, x in enumerate(seqs):
            h, c = (torch.from_numpy(s[b : b + 1]).to(dtype) for s in (h0, c0))
            steps = []
            for t in range(len(x)):
                h, c = cell(torch.from_numpy(x[t : t + 1]).to(dtype), (h, c))
                steps.append(h[0].numpy())
            hs.append(np.stack(steps))
            cs.append(c[0].numpy())
    return hs, np.stack(cs)


SOURCES = ["state_dict", "numpy", "checkpoint", "checkpoint.pt", "safetensors", "torchscript"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", SOURCES)
def test_lstm_cell_decoder_picked_out_of_a_conv_model(rng, tmp_path, kind, dtype):
    torch_dtype, atol = DTYPES[dtype]
    model, optimizer = trained(ConvCellDecoder(), torch_dtype)
    source = as_source(kind, model, optimizer, tmp_path)
    (found,) = list_torch_lstms(source)
    assert str(found) == f"'decoder.cell.' (LSTMCell, C={C}, H={H})"
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    h0, c0 = rng.uniform(-0.8, 0.8, size=(2, len(seqs), H))
    want_h, want_c = cell_forward(model.decoder.cell, seqs, h0, c0)

    net = from_torch(source, prefix="decoder.cell")
    assert net.dtype == np.dtype(dtype)
    lstm = net.layers[1].name
    net.state = {lstm: (h0, c0)}
    got, final = net.predict(seqs, outputs=lstm, return_state=True)
    for g, w in zip(got, want_h, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=atol)
    np.testing.assert_allclose(final[lstm].c, want_c, rtol=0, atol=atol)

    with_head = from_torch(source, prefix="decoder.cell.", head="decoder.fc")
    with_head.state = {lstm: (h0, c0)}
    last_h = torch.from_numpy(np.stack([h[-1] for h in want_h]))
    with torch.no_grad():
        probabilities = model.decoder.fc(last_h).softmax(dim=1).numpy()
    np.testing.assert_allclose(with_head.predict(seqs), probabilities, rtol=0, atol=atol)


class EncoderDecoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.ModuleDict(
            {"rnn": torch.nn.LSTM(C, H, 2, batch_first=True, bidirectional=True)}
        )
        self.decoder = torch.nn.ModuleDict(
            {"rnn": torch.nn.LSTM(2 * H, H, proj_size=2, batch_first=True)}
        )
        self.decoder["fc"] = torch.nn.Linear(2, K)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("prefix", ["encoder.rnn", "decoder.rnn"])
def test_each_lstm_of_an_encoder_decoder_by_prefix(rng, tmp_path, prefix, dtype):
    torch_dtype, atol = DTYPES[dtype]
    model = distinct_gates(EncoderDecoder().to(torch_dtype), seed=8).eval()
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "epoch": 7}, path)
    module = model.get_submodule(prefix)
    seqs = [rng.normal(size=(T, module.input_size)) for T in LENGTHS]
    net = from_torch(path, prefix=prefix)
    assert net.dtype == np.dtype(dtype)
    assert_matches_nn_lstm(net, module, seqs, rng, atol=atol)


def test_several_state_dicts_in_one_checkpoint_are_named_by_their_entry(rng):
    model = distinct_gates(EncoderDecoder().double(), seed=8)
    ema = distinct_gates(EncoderDecoder().double(), seed=9)
    checkpoint = {"model": model.state_dict(), "ema": ema.state_dict(), "step": 100}
    prefixes = [lstm.prefix for lstm in list_torch_lstms(checkpoint)]
    assert prefixes == [
        "ema.decoder.rnn.",
        "ema.encoder.rnn.",
        "model.decoder.rnn.",
        "model.encoder.rnn.",
    ]
    net = from_torch(checkpoint, prefix="ema.decoder.rnn")
    seqs = [rng.normal(size=(T, 2 * H)) for T in LENGTHS]
    assert_matches_nn_lstm(net, ema.decoder["rnn"], seqs, rng, atol=1e-10)


def saved_tensors(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_float32_state_dict_round_trips_as_it_was(rng, tmp_path):
    """A float32 state_dict → lstm_ref → .pt: the same tensors (float32, both biases), which
    load into the original nn.LSTM with strict=True and give identical outputs."""
    module = distinct_gates(torch.nn.LSTM(C, H, 2, bidirectional=True, batch_first=True), 6)
    x = torch.from_numpy(rng.normal(size=(3, 5, C)).astype(np.float32))
    with torch.no_grad():
        before = module(x)[0]
    original = {k: v.clone() for k, v in module.state_dict().items()}
    first, again = tmp_path / "lstm.pt", tmp_path / "again.pt"
    torch.save(original, first)
    net = load_model(first)
    assert net.dtype == np.float32
    save_model(net, again)
    written = saved_tensors(again)
    assert list(written) == list(original)
    for key, tensor in original.items():
        assert written[key].dtype == torch.float32
        assert torch.equal(written[key], tensor), key
    # the same tensors; the zip's folder is named "archive" (torch.save to an open file)
    assert again.stat().st_size < 1.05 * first.stat().st_size
    module.load_state_dict(written, strict=True)
    with torch.no_grad():
        assert torch.equal(module(x)[0], before)
    # through lstm_ref's own format, the split kept too
    save_model(net, tmp_path / "net.npz")
    save_model(load_model(tmp_path / "net.npz"), tmp_path / "third.pt")
    third = saved_tensors(tmp_path / "third.pt")
    assert all(torch.equal(third[k], v) for k, v in original.items())


def test_lstm_and_head_round_trip_under_their_own_names(tmp_path):
    model = distinct_gates(EncoderDecoder(), seed=2)
    path = tmp_path / "decoder.pt"
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith("decoder.")}, path)
    save_model(load_model(path), tmp_path / "again.pt")
    original, written = saved_tensors(path), saved_tensors(tmp_path / "again.pt")
    assert list(written) == list(original)
    for key, tensor in original.items():
        assert torch.equal(written[key], tensor), key


def test_a_changed_bias_is_written_as_b_minus_the_stored_bias_hh():
    module = distinct_gates(torch.nn.LSTM(C, H).double(), 3)
    net = from_torch(module)
    lstm = net.layers[1]
    lstm.params.b[:] += 0.25
    written = {k: v.numpy() for k, v in to_state_dict(net).items()}
    np.testing.assert_array_equal(written["bias_hh_l0"], module.bias_hh_l0.detach().numpy())
    np.testing.assert_allclose(
        written["bias_ih_l0"] + written["bias_hh_l0"], lstm.params.b, rtol=0, atol=1e-15
    )


def test_torchscript_archive_is_read_without_its_code(rng, tmp_path):
    """The archive's code is never compiled: with it replaced by garbage, torch.jit.load
    fails and from_torch still reads the tensors."""
    model, optimizer = trained(ConvCellDecoder(), torch.float64)
    path = as_source("torchscript", model, optimizer, tmp_path)
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            code = "/code/" in info.filename and info.filename.endswith(".py")
            dst.writestr(info, b"raise SystemExit('ran')\n" if code else src.read(info))
    with pytest.raises(Exception):  # noqa: B017 - torch's own parse error, whatever its type
        torch.jit.load(broken)
    net = from_torch(broken, prefix="decoder.cell", head="decoder.fc")
    seqs = [rng.normal(size=(T, C)) for T in LENGTHS]
    np.testing.assert_array_equal(
        net.predict(seqs), from_torch(path, prefix="decoder.cell", head="decoder.fc").predict(seqs)
    )
    with pytest.raises(InputError, match=r"broken\.pt: a TorchScript archive; read it with"):
        load_state_dict(broken)


def test_refusals_name_the_obstacle_and_the_option(tmp_path):
    two = EncoderDecoder().state_dict()
    listed = (
        r"'decoder\.rnn\.' \(LSTM, 1 layer, C=12, H=6, P=2\), "
        r"'encoder\.rnn\.' \(LSTM, 2 layers, bidirectional, C=4, H=6\)"
    )
    with pytest.raises(
        InputError, match=rf"state_dict: more than one LSTM module: {listed}; pass prefix="
    ):
        from_torch(two)
    with pytest.raises(InputError, match=rf"no LSTM module 'decoder\.cell\.'; it holds {listed}"):
        from_torch(two, prefix="decoder.cell")
    with pytest.raises(
        InputError,
        match=r"no nn\.Linear 'decoder\.out' \(decoder\.out\.weight missing\); the modules "
        r"beside the LSTM: \['encoder\.rnn', 'decoder\.fc'\]",
    ):
        from_torch(two, prefix="decoder.rnn", head="decoder.out")
    conv = ConvCellDecoder().state_dict()
    with pytest.raises(
        InputError,
        match=r"state_dict: modules 'front\.0', 'front\.1', 'decoder\.fc' beside the LSTM "
        r"'decoder\.cell\.' \(LSTMCell, C=4, H=6\); pass prefix='decoder\.cell' to import the "
        r"LSTM alone \(and head='<name>' for an nn\.Linear head; --prefix, --head on the "
        r"command line\)",
    ):
        from_torch(conv)
    ints = {k: v.numpy().astype(np.int64) for k, v in torch.nn.LSTMCell(C, H).state_dict().items()}
    with pytest.raises(InputError, match=r"'weight_ih' holds int64 values; expected floating"):
        from_torch(ints)
    with pytest.raises(InputError, match=r"no tensors and no state_dict .* entries \['epoch'\]"):
        from_torch({"epoch": 3})
    with pytest.raises(InputError, match=r"expected an nn\.Module, a state_dict, .*got list"):
        from_torch([1, 2])
    damaged = tmp_path / "cut.safetensors"
    save_file(torch.nn.LSTM(C, H).state_dict(), damaged)
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(InputError, match=r"cut\.safetensors: not a \.safetensors file NumPy can"):
        load_model(damaged)
