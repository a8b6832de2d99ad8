"""How the fuzz suites judge one case: a valid case must work and give finite results, an
invalid one must raise an ``LstmRefError`` (or, on the command line, exit 2 with one line),
a case of unknown validity (damaged bytes) may do either — never anything else, and no
warning may escape (warnings are recorded as users get them, not raised)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lstm_ref import LstmRefError
from lstm_ref.cli import main


@contextmanager
def recorded_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def judge(
    call: Callable[[], Any], valid: bool | None, check: Callable[[Any], str | None] = lambda r: None
) -> str | None:
    """None if ``call()`` behaved as a case of its class must, else what went wrong.

    ``valid``: True (must work; ``check(result)`` then names any problem with the result),
    False (must raise an LstmRefError), None (either).
    """
    with recorded_warnings() as caught:
        try:
            result = call()
        except LstmRefError as e:
            problem = f"refused a valid case: {e}" if valid else None
        except Exception as e:
            problem = f"{type(e).__name__}: {e}"
        else:
            problem = "accepted an invalid case" if valid is False else check(result)
    if problem is None and caught:
        problem = f"{caught[0].category.__name__} escaped: {caught[0].message}"
    return None if problem is None else problem[:300]


def judge_cli(
    argv: list[str], valid: bool | None, capsys: Any, ok: tuple[int, ...] = (0,)
) -> str | None:
    """:func:`judge` for ``lstm-ref argv``: a valid case exits with a code in ``ok``, an
    invalid one exits 2 with exactly one line on standard error."""
    capsys.readouterr()
    with recorded_warnings() as caught:
        try:
            code = main(argv)
        except BaseException as e:  # SystemExit too: main returns its code
            return f"{argv}: {type(e).__name__}: {e}"[:300]
    err = capsys.readouterr().err
    if caught:
        return f"{argv}: {caught[0].category.__name__} escaped: {caught[0].message}"[:300]
    if code == 2 and valid is not True and len(err.strip().splitlines()) == 1:
        return None
    if code in ok and valid is not False:
        return None
    return f"{argv}: exit {code}, stderr {err!r}"[:300]


def finite(result: Any) -> str | None:
    """A check: every array in ``result`` (nested in tuples, lists, dicts) is finite."""
    if isinstance(result, dict):
        result = list(result.values())
    if isinstance(result, tuple | list):
        return next((p for p in map(finite, result) if p), None)
    if (
        isinstance(result, np.ndarray)
        and result.dtype.kind in "fc"
        and not np.isfinite(result).all()
    ):
        return f"non-finite values in a result of shape {result.shape}"
    return None


def pick(pool, rng, valid: bool | None = None):
    """A (value, valid?) pair of ``pool``: any, or one of the valid or invalid ones."""
    among = [p for p in pool if valid is None or p[1] == valid]
    return among[rng.integers(len(among))]


def draw(pools, rng, hostile: bool | None = None):
    """One (value, valid?) pair per pool: all valid, or one invalid (``hostile``; None:
    half the time)."""
    if hostile is None:
        hostile = bool(rng.integers(2))
    bad = rng.integers(len(pools)) if hostile else -1
    return [pick(pool, rng, valid=k != bad) for k, pool in enumerate(pools)]


def snapshot(folder: Path) -> dict[str, float]:
    """Every file under ``folder`` with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*") if p.is_file()}


def report(seed: int, count: int, failures: list[str]) -> str:
    return f"seed {seed}: {len(failures)} of {count} cases:\n" + "\n".join(failures[:10])
