"""The API reference (docs/api, Sphinx autodoc + numpydoc) builds from the docstrings with
warnings as errors, so a broken docstring fails the test command."""

from pathlib import Path

import pytest

sphinx_build = pytest.importorskip("sphinx.cmd.build")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"


def test_api_reference_builds_without_warnings(tmp_path):
    args = ["-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees")]
    assert sphinx_build.build_main([*args, str(DOCS), str(tmp_path / "html")]) == 0


def test_every_public_module_is_in_the_reference():
    """Each public package's module appears in one page of the reference."""
    pages = "".join(p.read_text() for p in DOCS.glob("*.rst"))
    public = ["lstm_ref", "lstm_ref.network", "lstm_ref.layers", "lstm_ref.formats"]
    public += ["lstm_ref.interop", "lstm_ref.train", "lstm_ref.verify", "lstm_ref.explain"]
    public += ["lstm_ref.scale", "lstm_ref.datasets", "lstm_ref.padding", "lstm_ref.estimator"]
    for module in public:
        assert f".. automodule:: {module}\n" in pages, module
