"""Every file lstm_ref writes: atomically, and only inside the folder it was given.

A file is either its old self or wholly the new one, never half written; a name taken from
a file's contents (a ``.ts`` file's ``@problemName``) is reduced to a plain file name first.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"  # write_atomically's temporary: ".<name>.<random>.tmp" beside the file


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file in ``path``'s folder, then rename it to ``path``.

    If ``write`` fails (a full disk, an exception), ``path`` is left as it was and the
    temporary file is removed.
    """
    target = Path(path)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise


def temporaries(folder: str | os.PathLike, names: Collection[str]) -> list[Path]:
    """The temporary files :func:`write_atomically` left in ``folder`` when a write of one of
    the files ``names`` was killed (``.<name>.<random>.tmp``); the folder is listed once."""
    found = Path(folder).glob(f".*{TEMP_SUFFIX}")
    return sorted(
        p for p in found if p.name[1:].removesuffix(TEMP_SUFFIX).rsplit(".", 1)[0] in names
    )


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_atomically(path, lambda f: f.write(text.encode()))


def write_csv_atomically(path: str | os.PathLike, rows: Iterable[Sequence[object]]) -> None:
    """Write ``rows`` (the first one the header) as CSV, ``\\n`` line ends, atomically."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    write_text_atomically(path, text.getvalue())


def safe_file_name(name: str, fallback: str) -> str:
    """``name`` reduced to letters, digits, ``_``, ``-`` and ``.`` (no folders, no leading
    dot), or ``fallback`` if nothing is left: a name from a file's contents can never point
    outside the output folder."""
    plain = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return plain or fallback
