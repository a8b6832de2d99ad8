"""Sphinx configuration of lstm_ref's API reference (built from the docstrings)."""

import lstm_ref

project = "lstm_ref"
release = version = lstm_ref.__version__
extensions = ["sphinx.ext.autodoc", "numpydoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections give the types and shapes
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
