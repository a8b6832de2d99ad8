"""The exceptions lstm_ref raises for input it cannot use.

Every check of a caller's arguments, data or files raises one of these, with a message that
names what was expected and what came. They subclass the built-in ValueError and TypeError,
so ``except ValueError`` keeps working; the ``lstm-ref`` command prints them as one line and
exits 2, while any other exception (a bug) shows its traceback.
"""

from __future__ import annotations


class LstmRefError(Exception):
    """Base class: a caller's input that lstm_ref refuses."""


class InputError(LstmRefError, ValueError):
    """A value out of range, of the wrong shape, or inconsistent with the rest."""


class InputTypeError(LstmRefError, TypeError):
    """A value of the wrong type or dtype."""


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun`` for a message: "1 sequence", "3 sequences"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
