"""Every file lstm_ref writes: atomically, and only inside the folder it was given.

A file is either its old self or wholly the new one, never half written; a name taken from
a file's contents (a ``.ts`` file's ``@problemName``) is reduced to a plain file name first.
A wrong destination (no such folder, a file where the folder should be) is named as the
caller gave it, never by the temporary file.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import stat
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"  # write_atomically's temporary: ".<name>.<random>.tmp" beside the file


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file in ``path``'s folder, then rename it to ``path``.

    The file gets the mode a plain ``open(path, "w")`` would give it: a new file
    ``0o666`` less the umask (the temporary is created with that mode, so the kernel applies
    the umask), a replaced file its old mode. If ``write`` fails (a full disk, an
    exception), ``path`` is left as it was and the temporary file is removed.

    Raises
    ------
    OSError
        ``path``'s folder is missing, not a folder or not writable, or ``path`` is a folder:
        the error names the user's path, never the temporary file.
    """
    target = Path(path)
    check_destination(target)
    fd, temp = _new_temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            if target.exists():
                os.chmod(temp, stat.S_IMODE(target.stat().st_mode))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise


def check_destination(path: str | os.PathLike) -> None:
    """Raise the error :func:`write_atomically` would for ``path`` if its folder is missing or
    not a folder, or ``path`` is a folder: a command checks where it will write before its work.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target}: a folder, not a file")
    folder = target.parent
    if not folder.is_dir():
        error = NotADirectoryError if folder.exists() else FileNotFoundError
        raise error(f"{folder}: {_FOLDER_ERRORS[error]}")


_FOLDER_ERRORS = {FileNotFoundError: "no such folder", NotADirectoryError: "not a folder"}


def _new_temporary(target: Path) -> tuple[int, Path]:
    """A new file ``.<name>.<random>.tmp`` beside ``target``, open for writing, created
    with mode ``0o666`` as ``open`` creates files (``mkstemp``'s ``0o600`` would stay on
    the renamed file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = target.parent / f".{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:  # 2**48 names: another writer drew the same one
            continue
        except OSError as e:  # the folder: missing, a file, or not writable
            reason = _FOLDER_ERRORS.get(type(e)) or (e.strerror or str(e)).lower()
            raise type(e)(f"{target.parent}: {reason}") from None


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
