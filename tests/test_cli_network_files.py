"""Every command that takes a network runs on every kind of model file a user brings: the
bundled network as .npz and .mat, PyTorch state_dicts (2 layers; bidirectional), the same
2-layer model through torch.onnx.export (input batch first and time first), a Keras
Sequential — each as its tool wrote it, with --classes for a file that names no classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from framework_files import FRAMEWORK_WARNINGS, C, all_files

from lstm_ref.cli import main
from lstm_ref.interop import load_model, save_model
from lstm_ref.scale import scores_path

pytestmark = FRAMEWORK_WARNINGS
pytest.importorskip("torch")
pytest.importorskip("keras")
pytest.importorskip("onnxruntime")

FILES = [
    "jv.npz",
    "jv.mat",
    "torch_2layer.pt",
    "torch_2layer_batch_first.onnx",
    "torch_2layer_time_first.onnx",
    "torch_bilstm.pt",
    "keras_sequential.keras",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    found = all_files(folder)
    save_model(load_model(found["jv.npz"]), folder / "jv.onnx")  # the port of the native files
    x = np.random.default_rng(1).normal(size=(3, 5, C))
    np.save(folder / "x.npy", x)
    return folder


def classes(files, name: str) -> list[str] | None:
    """Names for the outputs of a file that has none (as a user gives them: --classes)."""
    net = load_model(files / name)
    return None if net.class_names else [f"c{k}" for k in range(net.output_size)]


def network_args(files, name: str) -> list[str]:
    """--network, and --classes for a file without class names."""
    names = classes(files, name)
    return ["--network", str(files / name), *(["--classes", ",".join(names)] if names else [])]


@pytest.mark.parametrize("name", FILES)
def test_every_command_takes_the_file(files, name, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    network = network_args(files, name)
    data = ["--data", str(files / "x.npy")]
    out = ["--out", str(tmp_path / "figs")]

    assert main(["layers", *network]) == 0
    assert "LSTM" in capsys.readouterr().out

    assert main(["predict", str(files / "x.npy"), *network]) == 0
    printed = capsys.readouterr().out.splitlines()[1:]
    net = load_model(files / name, class_names=classes(files, name))
    labels, _ = net.classify(list(np.load(files / "x.npy")))
    assert [line.split("\t")[1] for line in printed] == [str(v) for v in labels]

    assert main(["plot", "heatmap", *network, *data, *out]) == 0
    assert (tmp_path / "figs" / "heatmap_observation1.png").is_file()
    if name == "torch_bilstm.pt":  # explain follows one one-way LSTM's equations
        assert main(["explain", *network, *data, "--step", "3"]) == 2
        assert "is a BiLSTM layer" in capsys.readouterr().err
    else:
        assert main(["explain", *network, *data, "--step", "3"]) == 0
        assert "step 3" in capsys.readouterr().out
    assert main(["walkthrough", *network, *data, *out]) == 0
    assert f"class {labels[0]} (score" in capsys.readouterr().out
    port = [str(files / "jv.onnx")] if name.startswith("jv") else []
    # a Sequential without Masking computes the padded steps of a batch like data; MATLAB's
    # network too, whose ONNX port (with sequence_lens) stops each sequence at its length
    padding = {".keras": ["--padding", "matlab"], ".mat": ["--padding", "masked"]}.get(
        Path(name).suffix, []
    )
    assert main(["verify", str(files / name), "--run-framework", *port, *padding]) == 0


def test_score_takes_every_file(files, tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "a.npy", np.load(files / "x.npy"))
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        for name in [f for f in FILES if isinstance(f, str)]:
            out = tmp_path / name
            argv = ["score", str(shards), *network_args(files, name), "--out", str(out)]
            assert main([*argv, "--scheduler", cluster.scheduler_address]) == 0, name
            net = load_model(files / name, class_names=classes(files, name))
            labels, _ = net.classify(list(np.load(files / "x.npy")))
            assert [
                line.split(",")[2]
                for line in scores_path(shards / "a.npy", out).read_text().splitlines()[1:]
            ] == list(map(str, labels))
    capsys.readouterr()


def test_class_names_from_the_command_line(files, capsys):
    x = str(files / "x.npy")
    assert main(["predict", x, "--network", str(files / "torch_2layer.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--classes a,b,c (4 names, in output order)" in err
    wrong = ["--network", str(files / "jv.npz"), "--classes", "a,b,c,d,e,f,g,h,i"]
    assert main(["predict", x, *wrong]) == 2
    assert "the file names its classes ['1', '2'," in capsys.readouterr().err
    torch_file = ["--network", str(files / "torch_2layer.pt")]
    assert main(["predict", x, *torch_file, "--classes", "a,b"]) == 2
    assert "2 class names for 4 outputs" in capsys.readouterr().err
    assert main(["predict", x, "--classes", "a,a"]) == 2
    assert "two distinct" in capsys.readouterr().err


def test_a_checkpoint_of_two_lstms_by_prefix_and_head(files, tmp_path, capsys):
    import torch
    from torch_models import distinct_gates

    class EncoderDecoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.LSTM(C, 4, batch_first=True)
            self.decoder = torch.nn.Module()
            self.decoder.rnn = torch.nn.LSTM(C, 5, batch_first=True)
            self.decoder.fc = torch.nn.Linear(5, 3)

    path = tmp_path / "encdec.pt"
    torch.save(distinct_gates(EncoderDecoder(), seed=6).state_dict(), path)
    x = str(files / "x.npy")
    picked = ["--prefix", "decoder.rnn", "--head", "decoder.fc", "--classes", "u,v,w"]
    assert main(["predict", x, "--network", str(path), *picked]) == 0
    printed = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()[1:]]
    net = load_model(path, prefix="decoder.rnn", head="decoder.fc", class_names=["u", "v", "w"])
    assert printed == list(map(str, net.classify(list(np.load(x)))[0]))
    assert main(["convert", str(path), str(tmp_path / "dec.onnx"), *picked]) == 0
    assert load_model(tmp_path / "dec.onnx").class_names == ("u", "v", "w")
    assert main(["layers", "--network", str(path)]) == 2  # two LSTMs: which one?
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["layers", "--network", str(tmp_path / "dec.onnx"), "--prefix", "x"]) == 2
    assert ".onnx files take no option prefix" in capsys.readouterr().err
