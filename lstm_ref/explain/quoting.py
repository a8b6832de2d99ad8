"""Quoting the library's own lines of code, read from its source when the quote is made."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any

from ..errors import InputTypeError


def code_line(func: Callable[..., Any], pattern: str) -> str:
    """The one line of ``func``'s code (docstring excluded) matching the regex ``pattern``.

    Read from the source at run time and stripped of its indentation, so a quote of it
    always shows the code that runs.

    Parameters
    ----------
    func : function
        A function defined in Python source (e.g. :func:`lstm_ref.lstm.lstm_step`).
    pattern : str
        A regular expression, searched in each stripped line of the body.

    Returns
    -------
    str
        The matching line, without its indentation.

    Raises
    ------
    InputTypeError
        If ``func`` is not a function.
    RuntimeError
        If no line or several lines match (the explanation is out of date with the code).
    """
    source = textwrap.dedent(inspect.getsource(func))
    definition = ast.parse(source).body[0]
    if not isinstance(definition, ast.FunctionDef):
        raise InputTypeError(f"expected a function; got {func!r}")
    body = definition.body[1:] if ast.get_docstring(definition) else definition.body
    lines = [line.strip() for line in source.splitlines()[body[0].lineno - 1 :]]
    found = [line for line in lines if re.search(pattern, line)]
    if len(found) != 1:
        raise RuntimeError(
            f"expected one line of {func.__name__} matching {pattern!r}; found {len(found)}: "
            "lstm_ref.explain is out of date with the library"
        )
    return found[0]
