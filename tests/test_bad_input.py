"""Bad input gets a clear error naming what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest
from model_files import exportable_network, save_model_quietly
from random_nets import random_lstm_params, random_network

from lstm_ref import (
    LSTM,
    FullyConnected,
    InputError,
    LSTMParams,
    LstmRefError,
    LSTMState,
    Network,
    Padding,
    SequenceInput,
    Softmax,
    load_network,
)


@pytest.fixture
def net(rng):
    return random_network(rng, C=5, H=7, K=4)


@pytest.mark.parametrize(
    ("X", "kwargs", "error", "match"),
    [
        (np.zeros((6, 4)), {}, ValueError, r"expected shape \(T, 5\); got \(6, 4\)"),
        (np.zeros((5, 9)), {}, ValueError, r"got \(5, 9\); it looks transposed — pass layout='CT'"),
        (np.zeros((9, 5)), {"layout": "CT"}, ValueError, r"expected shape \(5, T\); got \(9, 5\)"),
        (np.zeros((0, 5)), {}, ValueError, "expected at least one time step; got 0"),
        (
            np.zeros(5),
            {},
            ValueError,
            r"one sequence of shape \(T, C\) .* got an array of shape \(5,\)",
        ),
        (
            np.zeros((4, 5), dtype=complex),
            {},
            TypeError,
            "expected real numbers; got dtype complex128",
        ),
        (np.zeros((4, 5), dtype=bool), {}, TypeError, "expected real numbers; got dtype bool"),
        (np.array([["a"] * 5] * 3), {}, TypeError, "expected real numbers; got dtype <U1"),
        ([], {}, ValueError, "at least one sequence; got an empty list"),
        ([np.zeros((3, 5)), np.zeros(5)], {}, ValueError, r"sequence 2: expected a 2-D array"),
        ("abc", {}, TypeError, "expected a numpy array or a list of arrays; got str"),
        (np.zeros((4, 5)), {"layout": "NTC"}, ValueError, "layout must be 'TC'"),
        (np.zeros((2, 4, 5)), {"lengths": [4, 5]}, ValueError, r"lengths must lie in 1..4"),
        (np.zeros((2, 4, 5)), {"lengths": [4]}, ValueError, "lengths must be 2 integers"),
        (np.zeros((2, 4, 5)), {"lengths": [4.0, 2.0]}, ValueError, "lengths must be 2 integers"),
        (np.zeros((4, 5)), {"lengths": [4]}, ValueError, "only meaningful for a padded 3-D batch"),
        (np.zeros((4, 5)), {"padding": "matlab"}, ValueError, "padding must be a lstm_ref.Padding"),
        (np.zeros((4, 5)), {"outputs": "lstm2"}, ValueError, r"no layer named 'lstm2'; layers are"),
    ],
)
def test_predict_rejects(net, X, kwargs, error, match):
    with pytest.raises(error, match=match) as caught:
        net.predict(X, **kwargs)
    assert isinstance(caught.value, LstmRefError)  # the CLI's one-line errors


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: Padding("packed"),
            r"padding kind must be one of \['masked', 'pytorch', 'onnx', 'keras', 'matlab'\]",
        ),
        (lambda: Padding.matlab(mini_batch_size=0), "mini_batch_size must be an integer >= 1"),
        (lambda: Padding.matlab(mini_batch_size=True), "mini_batch_size must be an integer >= 1"),
        (lambda: Padding.matlab(mini_batch_size=2.0), "mini_batch_size must be an integer >= 1"),
        (lambda: Padding.matlab(sequence_length="long"), "sequence_length must be one of"),
        (lambda: Padding.matlab(sequence_length=True), "sequence_length must be one of"),
        (lambda: Padding.matlab(sequence_length=0), r"sequence_length \(a number of steps\)"),
        (lambda: Padding.matlab(direction="up"), r"direction must be one of \['right', 'left'\]"),
        (lambda: Padding.matlab(value=np.nan), "padding value must be a finite number; got nan"),
        (lambda: Padding.matlab(value="0"), "padding value must be a real number; got '0'"),
        (lambda: Padding("masked", direction="left"), "apply to MATLAB's padding only"),
    ],
)
def test_padding_is_checked_when_made(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_padding_accepts_numpy_integers_and_keeps_them_plain():
    padding = Padding.matlab(mini_batch_size=np.int64(5), sequence_length=np.int32(4))
    assert padding == Padding.matlab(5, 4)
    assert type(padding.mini_batch_size) is int and type(padding.sequence_length) is int


def test_padding_value_must_be_finite_in_the_networks_dtype(net):
    net32 = net.astype(np.float32)
    seqs = [np.zeros((3, 5)), np.zeros((4, 5))]
    with pytest.raises(InputError, match=r"padding value: value 1e\+39 overflows float32"):
        net32.predict(seqs, padding=Padding.matlab(value=1e39))
    assert np.isfinite(net.predict(seqs, padding=Padding.matlab(value=1e39))).all()


def test_input_that_overflows_float32_is_named(net):
    x = np.zeros((4, 5))
    x[1, 2] = 1e39
    with pytest.raises(
        InputError, match=r"sequence 1: value 1e\+39 overflows float32 at time step 2, feature 3"
    ):
        net.astype(np.float32).predict(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected_with_its_position(net, bad):
    x = np.zeros((4, 5))
    x[2, 3] = bad
    shown = "NaN" if np.isnan(bad) else bad
    with pytest.raises(
        ValueError, match=rf"sequence 2: non-finite value {shown} at time step 3, feature 4"
    ):
        net.predict([np.zeros((3, 5)), x])


def test_weights_of_wrong_shape(rng):
    p = random_lstm_params(rng, 5, 7)
    with pytest.raises(ValueError, match=r"'lstm': R must have shape \(4H, H\).*got \(7, 28\)"):
        LSTM(LSTMParams(p.W, p.R.T, p.b))
    with pytest.raises(
        ValueError, match=r"'lstm': W must have shape \(28, 6\) = \(4H, C\); got \(27, 6\)"
    ):
        LSTM(LSTMParams(np.zeros((27, 6)), p.R, p.b))
    with pytest.raises(
        ValueError, match=r"'lstm': b must have shape \(28,\) = \(4H,\); got \(28, 1\)"
    ):
        LSTM(LSTMParams(p.W, p.R, p.b[:, None]))
    with pytest.raises(ValueError, match=r"'lstm': h0 must have shape \(7,\)"):
        LSTM(p, initial_state=LSTMState(np.zeros(6), np.zeros(7)))
    with pytest.raises(TypeError, match=r"'lstm': W must hold float32 or float64 values; got "):
        LSTM(LSTMParams(p.W.astype(np.int64), p.R, p.b))
    with pytest.raises(TypeError, match=r"'lstm': W must hold float32 or float64 .* float16"):
        LSTM(LSTMParams(p.W.astype(np.float16), p.R, p.b))
    with pytest.raises(ValueError, match=r"'lstm': b: non-finite value NaN at index \(0,\)"):
        LSTM(LSTMParams(p.W, p.R, np.full_like(p.b, np.nan)))
    with pytest.raises(ValueError, match=r"'lstm': R must have shape \(4H, H\).*got \(0, 0\)"):
        LSTM(LSTMParams(np.zeros((0, 5)), np.zeros((0, 0)), np.zeros(0)))
    with pytest.raises(ValueError, match="'fc': bias must have shape"):
        FullyConnected(np.zeros((3, 7)), np.zeros(4))
    with pytest.raises(ValueError, match="unknown gate activation 'relu'"):
        LSTM(p, gate_activation="relu")
    with pytest.raises(ValueError, match=r"output_mode must be one of \['sequence', 'last'\]"):
        LSTM(p, output_mode="all")


def test_network_checks_layer_sizes(rng):
    lstm = LSTM(random_lstm_params(rng, 5, 7))
    with pytest.raises(
        ValueError, match="layer 'lstm' expects 5 inputs but the layer before it gives 6"
    ):
        Network([SequenceInput(6), lstm])
    with pytest.raises(
        ValueError, match="layer 'fc' expects 6 inputs but the layer before it gives 7"
    ):
        Network([SequenceInput(5), lstm, FullyConnected(np.zeros((3, 6)), np.zeros(3))])
    with pytest.raises(ValueError, match="the first layer must be a SequenceInput"):
        Network([lstm])
    with pytest.raises(ValueError, match="layer names must be unique"):
        Network([SequenceInput(5), lstm, LSTM(random_lstm_params(rng, 7, 7))])
    with pytest.raises(ValueError, match="2 class names for 3 outputs"):
        Network([SequenceInput(5), lstm, FullyConnected(np.zeros((3, 7)), np.zeros(3))], ("a", "b"))
    with pytest.raises(ValueError, match="class_names must be a sequence of names; got 'ab'"):
        Network([SequenceInput(5), lstm], "ab")  # not split into 'a', 'b'
    with pytest.raises(ValueError, match="at least two distinct names"):
        Network([SequenceInput(5), lstm, FullyConnected(np.zeros((2, 7)), np.zeros(2))], ["a", "a"])
    with pytest.raises(ValueError, match="'zscore' normalization needs std"):
        SequenceInput(5, normalization="zscore", mean=np.zeros(5))
    for bad in (0, -1, "3", None, True, 2.0):
        with pytest.raises(ValueError, match="input_size must be an integer >= 1"):
            SequenceInput(bad)
    with pytest.raises(TypeError, match="item 1 is a NoneType"):
        Network([SequenceInput(3), None])


def test_state_assignment_is_checked(net):
    with pytest.raises(
        ValueError, match=r"state must name the LSTM layers \['lstm'\]; got \['lstm2'\]"
    ):
        net.state = {"lstm2": (np.zeros(7), np.zeros(7))}
    with pytest.raises(
        ValueError, match=r"h and c must both be \(7,\) or \(N, 7\); got \(6,\) and \(6,\)"
    ):
        net.state = {"lstm": (np.zeros(6), np.zeros(6))}
    with pytest.raises(ValueError, match="state of 'lstm': non-finite value NaN"):
        net.state = {"lstm": (np.full(7, np.nan), np.zeros(7))}


def test_classify_needs_one_score_vector_per_sequence(rng, net):
    with pytest.raises(TypeError, match="outputs"):
        net.classify(np.zeros((3, 5)), outputs="lstm")
    seq_net = random_network(rng, output_mode="sequence")
    with pytest.raises(ValueError, match="one score vector per sequence"):
        seq_net.classify([np.zeros((3, 5)), np.zeros((4, 5))])


def test_mixed_dtypes_and_missing_files(rng, net):
    lstm32 = net.layer("lstm").astype(np.float32)
    with pytest.raises(ValueError, match=r"one dtype; got \['float32', 'float64'\]"):
        Network([net.layers[0], lstm32, *net.layers[2:]])
    with pytest.raises(
        FileNotFoundError, match=r"no weight file 'nowhere/net\.npz' and no bundled"
    ):
        load_network("nowhere/net.npz")


def test_trace_rejects_non_lstm_layer(net):
    with pytest.raises(ValueError, match="layer 'fc' is a Fully Connected layer, not an LSTM"):
        net.trace(np.zeros((3, 5)), layer="fc")


@pytest.mark.parametrize(("dtype", "value"), [(np.float64, 1.7e308), (np.float32, 3e38)])
def test_finite_input_that_overflows_is_refused_not_scored_nan(rng, dtype, value):
    """No NaN scores and no label derived from them: the layer that overflowed is named."""
    base = random_network(rng)
    halve = SequenceInput(5, normalization="zscore", mean=np.zeros(5), std=np.full(5, 0.5))
    net = Network([halve, *base.layers[1:]], base.class_names).astype(dtype)  # x / 0.5 overflows
    x = np.zeros((5, 5))
    x[3] = value
    with pytest.raises(
        InputError,
        match=rf"layer 'sequenceinput' overflowed {np.dtype(dtype)} "
        "on sequence 2 at time step 4",
    ):
        net.classify([np.zeros((2, 5)), x])
    net.classify(np.full((5, 5), 1e30 if dtype == np.float64 else 1e10))  # large, computable


# ------------------------------- model files declaring more than lstm_ref ever reads
@pytest.fixture
def small_net(rng):
    return exportable_network(rng)


def test_a_mat_file_declaring_huge_variables_is_refused_before_reading(tmp_path):
    import scipy.io

    from lstm_ref.interop import load_model

    path = tmp_path / "m.mat"
    scipy.io.savemat(path, {"InputWeights": np.zeros((4, 3))})
    data = bytearray(path.read_bytes())  # the dims of an uncompressed v5 variable: 4 × 3
    at = data.index(np.array([4, 3], "<i4").tobytes())
    data[at : at + 8] = np.array([2**30, 2**30], "<i4").tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"m\.mat: variable 'InputWeights' declares 9223"):
        load_model(path)


@pytest.mark.parametrize("suffix", [".h5", ".mat"])
def test_hdf5_datasets_declaring_huge_sizes_are_refused_before_reading(small_net, tmp_path, suffix):
    import h5py

    from lstm_ref.interop import load_model
    from lstm_ref.interop.matlab import save_matlab

    path = tmp_path / f"m{suffix}"
    if suffix == ".mat":
        save_matlab(small_net, path, version="7.3")
    else:
        save_model_quietly(small_net, path)
    with h5py.File(path, "r+") as f:  # chunked and never written: a few bytes on disk
        f.create_dataset("huge", shape=(2**20, 2**10), dtype="f8", chunks=(4, 4))
    assert path.stat().st_size < 2**20
    with pytest.raises(InputError, match=r"dataset 'huge' declares 8589934592 bytes"):
        load_model(path)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])  # lstm_ref's .mat stores no text
def test_an_hdf5_global_heap_the_hdf5_library_would_loop_on_is_refused(small_net, tmp_path, suffix):
    """One byte inserted into a variable-length string (Keras's model_config) shifts the
    next heap object's header: the free-space entry then reads size 0, on which the HDF5
    library loops forever. The heap is walked first, and refused."""
    import zipfile

    from lstm_ref.formats.safe_numpy import check_hdf5_heaps
    from lstm_ref.interop import load_model

    path = tmp_path / f"m{suffix}"
    save_model_quietly(small_net, path)
    member = "model.weights.h5" if suffix == ".keras" else None
    if member:
        with zipfile.ZipFile(path) as z:
            data, others = z.read(member), {n: z.read(n) for n in z.namelist() if n != member}
    else:
        data = path.read_bytes()
    check_hdf5_heaps(data, "intact")  # the file as written passes
    heap = data.index(b"GCOL\x01\x00\x00\x00")
    first = heap + 16  # the first object: index, reference count, reserved, size, data
    size = int.from_bytes(data[first + 8 : first + 16], "little")
    damaged = data[: first + 16 + size // 2] + b"x" + data[first + 16 + size // 2 : -1]
    with pytest.raises(InputError, match=r"damaged HDF5 file: the global heap at byte \d+"):
        check_hdf5_heaps(damaged, "damaged")
    if member:
        with zipfile.ZipFile(path, "w") as z:
            for name, content in {**others, member: damaged}.items():
                z.writestr(name, content)
    else:
        path.write_bytes(damaged)
    with pytest.raises(InputError, match=r"damaged HDF5 file: the global heap"):
        load_model(path)


def test_a_torch_file_whose_zip_declares_huge_members_is_refused(small_net, tmp_path):
    from lstm_ref.interop import load_model

    path = tmp_path / "m.pt"
    save_model_quietly(small_net, path)
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first central-directory entry
    data[entry + 24 : entry + 28] = (2**31 - 1).to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="declares 2147483647 bytes"):
        load_model(path)


def test_onnx_external_data_declaring_huge_tensors_is_refused_before_reading(small_net, tmp_path):
    import onnx

    from lstm_ref.interop import load_model

    path = tmp_path / "m.onnx"
    save_model_quietly(small_net, path)
    model = onnx.load(path)
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.ClearField("double_data")
    del tensor.dims[:]
    tensor.dims.extend([2**20, 2**10])
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="weights.bin")
    onnx.save(model, path)
    with pytest.raises(InputError, match=r"tensor '.*' declares \d+ bytes"):
        load_model(path)
    assert not (tmp_path / "weights.bin").exists()


# ------------------------------- what the importer and exporter fuzz suite found
def test_imported_models_convert_to_every_format(small_net, tmp_path):
    """ONNX's activations are read as lstm_ref's names where they are one ("Sigmoid" is
    "sigmoid"), and a PyTorch layer's name ("lstm.l0") is one Keras on torch takes."""
    from lstm_ref.interop import load_model

    for source in (".onnx", ".pt"):
        save_model_quietly(small_net, tmp_path / f"m{source}")
        imported = load_model(tmp_path / f"m{source}")
        for target in (".pt", ".keras", ".mat"):
            save_model_quietly(imported, tmp_path / f"out{target}")
            got = load_model(tmp_path / f"out{target}").predict(np.ones((3, 3)))
            np.testing.assert_allclose(got, small_net.predict(np.ones((3, 3))), atol=1e-6)


@pytest.mark.parametrize(
    ("suffix", "backward", "match"),
    [
        (".keras", {"state_activation": "softsign"}, "one pair of activations for both"),
        (".mat", {"gate_activation": "hard-sigmoid"}, "one output mode and pair of activations"),
        (".onnx", {"clip": 2.0}, "one clip for both directions"),
    ],
)
def test_directions_that_differ_where_a_format_stores_one_setting_are_refused(
    rng, tmp_path, suffix, backward, match
):
    from lstm_ref.interop import save_model
    from lstm_ref.layers import BiLSTM

    def one_way(direction, **options):
        return LSTM(
            random_lstm_params(rng, 3, 4), output_mode="last", direction=direction, **options
        )

    last = "step" if suffix == ".mat" else "state"  # MATLAB's bilstmLayer's 'last'
    bilstm = BiLSTM(one_way("forward"), one_way("reverse", **backward), "bilstm", last=last)
    net = Network(
        [SequenceInput(3), bilstm, FullyConnected(rng.normal(size=(2, 8)), np.zeros(2)), Softmax()]
    )
    with pytest.raises(InputError, match=match):
        save_model(net, tmp_path / f"m{suffix}")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("dtype", [bool, complex])
def test_keras_and_matlab_weights_that_are_not_real_numbers_are_refused(small_net, tmp_path, dtype):
    import h5py
    import scipy.io

    from lstm_ref.interop import load_model

    h5, mat = tmp_path / "m.h5", tmp_path / "m.mat"
    save_model_quietly(small_net, h5)
    with h5py.File(h5, "r+") as f:
        group = f["model_weights/fc"]
        (bias,) = (name for name in group.attrs["weight_names"] if name.endswith("/bias"))
        values = group[bias][()]
        del group[bias]
        group.create_dataset(bias, data=(values * 3).astype(dtype))
    with pytest.raises(LstmRefError, match=f"got dtype {np.dtype(dtype)}"):
        load_model(h5)
    save_model_quietly(small_net, mat)
    variables = {k: v for k, v in scipy.io.loadmat(mat).items() if not k.startswith("__")}
    scipy.io.savemat(mat, {**variables, "FcBias": (variables["FcBias"] * 3).astype(dtype)})
    with pytest.raises(InputError, match=f"'FcBias' holds {np.dtype(dtype)} values"):
        load_model(mat)


def test_a_torch_file_with_an_odd_pickle_protocol_byte_loads_without_a_warning(small_net, tmp_path):
    import warnings

    from lstm_ref.interop import load_model

    path = tmp_path / "m.pt"
    save_model_quietly(small_net, path)
    data = bytearray(path.read_bytes())
    data[data.index(b"\x80\x02") + 1] = 18  # torch warns, then reads it all the same
    path.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imported = load_model(path)
    assert not caught, [str(w.message) for w in caught]
    np.testing.assert_allclose(
        imported.predict(np.ones((3, 3))), small_net.predict(np.ones((3, 3)))
    )
