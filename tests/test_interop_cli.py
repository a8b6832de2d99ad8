"""``lstm-ref convert`` and ``lstm-ref layers --network`` with imported models."""

from __future__ import annotations


def test_cli_convert_and_layers(tmp_path, capsys):
    from lstm_ref.cli import main

    onnx_file, mat_file = tmp_path / "jv.onnx", tmp_path / "jv.mat"
    assert main(["convert", "JapaneseVowelsNet", str(onnx_file)]) == 0
    assert main(["convert", str(onnx_file), str(mat_file)]) == 0
    capsys.readouterr()
    assert main(["layers", "--network", str(mat_file)]) == 0
    table = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "2 'lstm' LSTM LSTM with 100 hidden units" in table
    # the class names travelled through the ONNX file's metadata into MATLAB's ClassNames
    assert (
        "5 'classoutput' Classification Output crossentropyex with '1' and 8 other classes" in table
    )
    assert main(["layers"]) == 0
    shipped = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert table[2:5] == shipped[2:5]  # input, lstm, fc rows
    assert main(["convert", str(onnx_file), str(tmp_path / "x.tflite")]) == 2
    assert "cannot export a .tflite file; expected one of" in capsys.readouterr().err


def test_convert_replaces_an_existing_file_only_with_overwrite(tmp_path, capsys):
    from lstm_ref.cli import main

    out = tmp_path / "jv.npz"
    out.write_bytes(b"the user's file")
    assert main(["convert", "JapaneseVowelsNet", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"lstm-ref: error: will not replace {out}: pass --overwrite, or another OUT\n"
    )
    assert out.read_bytes() == b"the user's file"
    assert main(["convert", "JapaneseVowelsNet", str(out), "--overwrite"]) == 0
    assert out.read_bytes()[:2] == b"PK"  # the network, an .npz archive
