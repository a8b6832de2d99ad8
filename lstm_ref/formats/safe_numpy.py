"""Reading ``.npy`` and ``.npz`` files without pickle — and text files — within bounds, with
clear errors.

``np.load`` on a hostile or damaged file can raise almost anything (EOFError, BadZipFile,
zlib.error, MemoryError for a header that claims 2**40 elements) or suggest loading it
"unsafely". These readers parse the ``.npy`` header themselves, refuse object arrays and
anything that is not a plain numeric array, check every size against the file's own length
and the bound below **before** allocating, and turn every failure into an
:class:`~lstm_ref.errors.InputError` that names the file (and the archive member). Every
file is opened by :func:`open_to_read`: a missing file, a folder or an unreadable file is
one plain line, ``"<path>: no such file"``.

Bounds: one array holds at most ``MAX_ARRAY_BYTES`` (1 GiB) and an archive at most
``MAX_ARCHIVE_BYTES`` (2 GiB, uncompressed) in at most ``MAX_MEMBERS`` arrays; a compressed
member may not claim more than deflate can produce from its compressed size. A text file
(CSV, ``.ts``) holds at most ``MAX_TEXT_BYTES`` (256 MiB) of UTF-8. The framework importers
apply the same bounds to what their files' headers declare (:func:`zip_members`,
:func:`check_declared_sizes`, :func:`check_hdf5_sizes`) before their parsers read them, and
:func:`check_hdf5_heaps` walks an HDF5 file's global heaps, on which the HDF5 library can
loop forever.
"""

from __future__ import annotations

import mmap
import os
import tokenize
import warnings
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable
from typing import IO, Any, BinaryIO, TypeVar

import numpy as np

from ..errors import InputError

Array = np.ndarray
T = TypeVar("T")

MAX_ARRAY_BYTES = 2**30
MAX_ARCHIVE_BYTES = 2**31
MAX_MEMBERS = 10_000
MAX_TEXT_BYTES = 2**28
NUMERIC_KINDS = "biufc"  # bool, signed and unsigned integers, floats, complex
_DEFLATE_MAX_RATIO = 1032  # deflate expands at most ~1032:1


_OPEN_ERRORS = {
    FileNotFoundError: "no such file",
    IsADirectoryError: "a folder, not a file",
    PermissionError: "not readable (permission denied)",
}


def open_to_read(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened to read bytes. A missing file, a folder or an unreadable file raises
    the OSError of that kind in one plain line, ``"<path>: no such file"``."""
    try:
        return open(path, "rb")
    except OSError as e:
        reason = _OPEN_ERRORS.get(type(e)) or (e.strerror or str(e)).lower()
        raise type(e)(f"{os.fspath(path)}: {reason}") from None


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The text of a file of at most ``MAX_TEXT_BYTES``, decoded as ``encoding`` (UTF-8,
    or ``"utf-8-sig"`` to drop a byte-order mark)."""
    with open_to_read(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_TEXT_BYTES:
            raise InputError(f"{path}: {size} bytes; at most {MAX_TEXT_BYTES} read")
        data = f.read()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}); is it a binary file?") from None


def read_npy(path: str | os.PathLike) -> Array:
    """The array in an ``.npy`` file."""
    with open_to_read(path) as f:
        size = os.fstat(f.fileno()).st_size
        return _guarded(path, lambda: _read_array(f, size, os.fspath(path)))


def read_npz(path: str | os.PathLike, only: Collection[str] | None = None) -> dict[str, Array]:
    """Every array of an ``.npz`` archive — or those named in ``only`` that it holds — by
    name (without the ``.npy`` suffix), in order."""
    where = os.fspath(path)

    def read(file: BinaryIO) -> dict[str, Array]:
        if not zipfile.is_zipfile(file):
            file.seek(0)
            kind = "a single .npy array" if file.read(6) == b"\x93NUMPY" else "not a zip archive"
            raise InputError(f"{where}: {kind}, not an .npz archive")
        with zipfile.ZipFile(file) as archive:
            arrays = {}
            for member in zip_members(archive, where):
                name = member.filename.removesuffix(".npy")
                if only is not None and name not in only:
                    continue
                with archive.open(member) as f:
                    arrays[name] = _read_array(f, member.file_size, f"{where}: array {name!r}")
            return arrays

    with open_to_read(path) as file:
        return _guarded(path, lambda: read(file))


def zip_members(archive: zipfile.ZipFile, where: str) -> list[zipfile.ZipInfo]:
    """The members of a zip archive (``.npz``, and the ``.pt`` and ``.keras`` files the
    importers read) if what its directory declares is within bounds: at most
    ``MAX_MEMBERS`` members, the sizes of :func:`check_declared_sizes`, and none claiming
    more than its compressed size can hold — checked before anything is decompressed."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise InputError(f"{where}: {len(members)} members; at most {MAX_MEMBERS} allowed")
    check_declared_sizes(((f"member {m.filename!r}", m.file_size) for m in members), where)
    for member in members:
        _check_claimed_size(member, f"{where}: member {member.filename!r}")
    return members


def check_declared_sizes(sizes: Iterable[tuple[str, int]], where: str) -> None:
    """Refuse a file whose headers declare more than lstm_ref reads: each part (an array,
    an archive member, a dataset, a variable; ``(name, bytes)``) at most ``MAX_ARRAY_BYTES``,
    all together at most ``MAX_ARCHIVE_BYTES``."""
    total = 0
    for name, nbytes in sizes:
        if nbytes > MAX_ARRAY_BYTES:
            raise InputError(f"{where}: {name} declares {nbytes} bytes; at most {MAX_ARRAY_BYTES}")
        total += nbytes
    if total > MAX_ARCHIVE_BYTES:
        raise InputError(f"{where}: declares {total} bytes in all; at most {MAX_ARCHIVE_BYTES}")


def check_hdf5_sizes(f: Any, where: str) -> None:
    """:func:`check_declared_sizes` on every dataset of an open h5py file ``f`` (Keras's
    ``.h5`` and ``model.weights.h5``, MATLAB's v7.3 ``.mat``), before any is read."""
    sizes: list[tuple[str, int]] = []

    def visit(name: str, item: Any) -> None:
        if hasattr(item, "shape") and hasattr(item, "dtype"):  # a dataset, not a group
            count = int(np.prod(item.shape, dtype=object)) if item.shape else 1
            sizes.append((f"dataset {name!r}", count * item.dtype.itemsize))

    f.visititems(visit)
    check_declared_sizes(sizes, where)


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_hdf5_heaps(data: bytes | mmap.mmap, where: str) -> None:
    """Refuse an HDF5 file whose global heap collections do not add up, before h5py reads it.

    Variable-length strings (Keras's ``model_config``, MATLAB's text) live in global heap
    collections: ``"GCOL"``, version 1, the collection's size, then objects (index, reference
    count, size, data padded to 8 bytes) and a free-space object (index 0) holding the rest.
    On a damaged collection — a free-space object of size 0, say — the HDF5 library loops
    forever instead of raising, so each collection is walked here first: every object ends
    inside it and the free space is exactly what remains.
    """
    lengths = _hdf5_length_size(data)
    header = 8 + lengths  # index (2), reference count (2), reserved (4), size
    start = data.find(b"GCOL\x01\x00\x00\x00")
    while start != -1:
        end = start + 8 + lengths
        if end > len(data):
            raise InputError(f"{where}: damaged HDF5 file: a global heap at byte {start} is cut")
        end = start + int.from_bytes(data[start + 8 : end], "little")
        p = start + 8 + lengths
        while p + header <= end:
            index = int.from_bytes(data[p : p + 2], "little")
            size = int.from_bytes(data[p + 8 : p + header], "little")
            if index == 0 and size != end - p:
                raise InputError(
                    f"{where}: damaged HDF5 file: the global heap at byte {start} declares "
                    f"{size} bytes of free space where {end - p} remain"
                )
            if index == 0:
                break
            p += header + -(-size // 8) * 8
        if p > end or end > len(data):
            raise InputError(
                f"{where}: damaged HDF5 file: the global heap at byte {start} runs past its end"
            )
        start = data.find(b"GCOL\x01\x00\x00\x00", start + 4)


def _hdf5_length_size(data: bytes | mmap.mmap) -> int:
    """The superblock's "size of lengths" (8 unless a file says otherwise), found where HDF5
    looks for the signature: at byte 0, 512, 1024, 2048, …"""
    offset = 0
    while offset + 16 <= len(data):
        if data[offset : offset + 8] == HDF5_SIGNATURE:
            version = data[offset + 8]
            size = data[offset + (14 if version < 2 else 10)]
            return size if size in (2, 4, 8) else 8
        offset = 512 if offset == 0 else 2 * offset
    return 8


def check_hdf5_file(path: str | os.PathLike) -> None:
    """:func:`check_hdf5_heaps` on the file at ``path``, mapped rather than read."""
    with open_to_read(path) as f:
        if os.fstat(f.fileno()).st_size == 0:
            return  # h5py says what an empty file is
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            check_hdf5_heaps(data, os.fspath(path))


def _guarded(path: str | os.PathLike, read: Callable[[], T]) -> T:
    """``read()``, with a damaged file's low-level errors turned into an InputError."""
    try:
        return read()
    except InputError:
        raise
    except (  # what zipfile and zlib raise for damaged, encrypted or exotic archives
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        ValueError,
        NotImplementedError,
        RuntimeError,
        OSError,
    ) as e:
        if isinstance(e, FileNotFoundError | IsADirectoryError | PermissionError):
            raise
        raise InputError(f"{os.fspath(path)}: damaged or not a NumPy file ({e})") from None


def _check_claimed_size(member: zipfile.ZipInfo, what: str) -> None:
    """A member may not claim more bytes than its compressed size can hold."""
    if member.compress_type == zipfile.ZIP_STORED:
        limit = member.compress_size
    else:
        limit = _DEFLATE_MAX_RATIO * member.compress_size + 1024
    if member.file_size > limit:
        raise InputError(
            f"{what}: claims {member.file_size} bytes from {member.compress_size} compressed; "
            "the file is damaged or crafted"
        )


def _read_array(f: IO[bytes], size: int, what: str) -> Array:
    """One ``.npy`` array from ``f`` whose whole length is ``size`` bytes."""
    try:
        version = np.lib.format.read_magic(f)
        with warnings.catch_warnings():  # a damaged header's odd escape: an error, not a warning
            warnings.simplefilter("error")
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise InputError(f"{what}: .npy format version {version} is not supported")
    except (ValueError, SyntaxError, TypeError, tokenize.TokenError, Warning) as e:  # numpy's
        raise InputError(f"{what}: not a valid .npy header ({type(e).__name__}: {e})") from None
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise InputError(
            f"{what}: holds {dtype} values; only plain numeric arrays are read (never pickled "
            "Python objects)"
        )
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    nbytes = count * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise InputError(f"{what}: claims {nbytes} bytes; at most {MAX_ARRAY_BYTES} allowed")
    header = f.tell() if f.seekable() else None
    if header is not None and size - header != nbytes:
        raise InputError(
            f"{what}: its header promises {nbytes} bytes of data for shape {shape} but the file "
            f"holds {size - header}: truncated or damaged"
        )
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise InputError(f"{what}: truncated: {len(data)} of {nbytes} bytes of data")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.copy(order="K")  # its own memory, writeable (the fast path seals it)
