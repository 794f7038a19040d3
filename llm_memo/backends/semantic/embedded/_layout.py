"""The folder of a ``semantic+local://`` cache, and the format of its index files.

::

    <folder>/
      entries.sqlite3 (+ -wal, -shm)   the entry store (:mod:`._store`): the truth
      index/<xxh3-128 of partition>.usearch
                                       one ANN index per partition, derived and rebuildable

An index file is a header and a usearch serialisation::

    b"LMANN1\\n"  | u32 length of the JSON | JSON | usearch bytes

The JSON says what the bytes are an index *of*: ``store_id`` (the store it was built from),
``partition`` (the full name, so a hash collision is caught), ``seen`` (every live row of the
partition with ``vid <= seen`` is in it), ``generation`` (the store's clear count when it was
saved), the engine settings (``ndim``, ``dtype``, ``connectivity``, ``expansion_add``), and
``digest``, the xxh3-64 of the usearch bytes. A file that is missing, truncated, of another
store, cleared since (a clear of a prefix of its partition after its generation) or made with
other settings is ignored and the index is rebuilt from the store. Files are written to a
temporary name and renamed over the old one (atomic on POSIX and Windows), so a process killed
while saving leaves the previous file, never half of one; several processes saving the same
partition each leave a complete file, any of which is valid (searches check every candidate
against the store anyway).

Pure file handling; the engine's own (de)serialisation is passed in by :mod:`._backend`.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import xxhash

__all__ = ["Header", "index_path", "read_index", "store_path", "write_index"]

MAGIC = b"LMANN1\n"
_LENGTH = struct.Struct("<I")
#: The largest header a reader accepts (a corrupt length must not allocate gigabytes).
_MAX_HEADER = 1 << 20


@dataclass(frozen=True, slots=True)
class Header:
    """What an index file holds (see the module docstring)."""

    store_id: str
    partition: str
    seen: int
    generation: int
    ndim: int
    dtype: str
    connectivity: int
    expansion_add: int
    digest: str = ""


def store_path(folder: str) -> str:
    """The SQLite file of the cache in ``folder``."""
    return os.path.join(folder, "entries.sqlite3")


def index_path(folder: str, partition: str) -> str:
    """The index file of ``partition`` (hashed: partition names are long and hold ``:``)."""
    name = xxhash.xxh3_128_hexdigest(partition.encode("utf-8", "surrogatepass"))
    return os.path.join(folder, "index", name + ".usearch")


def write_index(path: str, header: Header, blob: bytes | bytearray) -> None:
    """Write ``blob`` (the engine's bytes) with ``header`` to ``path`` atomically.

    Raises:
        OSError: the file could not be written (the previous one, if any, stays).
    """
    stamped = Header(**{**asdict(header), "digest": xxhash.xxh3_64_hexdigest(blob)})
    meta = orjson.dumps(asdict(stamped))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".usearch")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(MAGIC + _LENGTH.pack(len(meta)) + meta)
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_index(path: str) -> tuple[Header, bytes] | None:
    """The header and engine bytes of the index file at ``path``; ``None`` if it is missing
    or damaged (wrong magic, truncated, digest mismatch, unreadable header)."""
    try:
        with open(path, "rb") as source:
            data = source.read()
    except OSError:  # missing, or unreadable: rebuilt from the store either way
        return None
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start or not data.startswith(MAGIC):
        return None
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if length > _MAX_HEADER or len(data) < start + length:
        return None
    try:
        fields: Any = orjson.loads(data[start : start + length])
        header = Header(**fields)
    except (orjson.JSONDecodeError, TypeError):
        return None
    blob = data[start + length :]
    if xxhash.xxh3_64_hexdigest(blob) != header.digest:
        return None
    return header, blob
