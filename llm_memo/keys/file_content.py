"""File inputs keyed by their content: file objects anywhere, paths where a parameter is a file.

Transcription, vision and upload calls take a file object, a ``pathlib.Path``, ``bytes`` or a
``(name, file, mime)`` tuple (SPEC §6). Here is how each keys:

* a **seekable file object** (``open(path, "rb")``, ``io.BytesIO``, a temporary file), anywhere
  in the arguments, keys as ``{"$file": <xxh3-128 of its content>, "name": <base name>}``: the
  content from the start (httpx rewinds a file to 0 before it uploads it, so that is what the
  server gets), read in chunks of :data:`CHUNK_SIZE` so a 1 GB file is never in memory, and the
  caller's position restored afterwards, on error too. The base name is there when the object
  has one (``f.name``): the SDKs send it as the upload's file name, and a model may read the
  format from its extension; inside a ``(name, file, mime)`` tuple the tuple's name is what is
  sent, so the file's own is left out. A text file's content is hashed as UTF-8.
* a **non-seekable stream** (a pipe, a socket, ``sys.stdin``, an HTTP response body) cannot be
  read without consuming it: :class:`~llm_memo.errors.UnkeyableArgumentError` saying to pass
  bytes, a path or a seekable file instead.
* a **path** passed to a parameter that is a file (one the SDK profile names, ``file=`` of
  ``audio.transcriptions.create``, or one declared with ``file_params=``), alone or inside a
  tuple or list there, keys by content exactly as the same file opened would (the SDKs send
  ``(path.name, path.read_bytes())``). Anywhere else a path keys by its name, as it always has;
  a ``str`` is always text.

Not here: the canonical walk that calls these (``canonical_form.py``), which parameters are
files for an SDK (``llm_memo.sdks``), the error wording (``_unkeyable.py``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
from pathlib import PurePath
from typing import Any

import xxhash

from ._unkeyable import NotSeekable, Unkeyable

__all__ = [
    "CHUNK_SIZE",
    "ContentPath",
    "file_form",
    "is_file_object",
    "path_form",
    "paths_as_content",
]

#: How much of a file is read at a time while hashing it (1 MiB): large enough that the
#: hash, not the calls, is the cost; small enough to never matter for memory.
CHUNK_SIZE = 1 << 20


def is_file_object(obj: Any) -> bool:
    """Whether ``obj`` is a file object (anything with a ``read()`` method)."""
    return callable(getattr(obj, "read", None))


def _sync(obj: Any, value: Any) -> Any:
    # An async file object (aiofiles) answers with coroutines: close them (never awaited
    # otherwise, which warns) and refuse, since a key is built without awaiting.
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if callable(close):
            close()
        raise Unkeyable(
            obj,
            "it is an async file object, which cannot be read while the key is built; pass "
            "its bytes, a pathlib.Path to the file, or a sync file object",
        )
    return value


def _seekable(obj: Any) -> bool:
    seekable = getattr(obj, "seekable", None)
    if callable(seekable):
        return bool(_sync(obj, seekable()))
    return callable(getattr(obj, "seek", None)) and callable(getattr(obj, "tell", None))


def _base_name(obj: Any) -> str | None:
    name = getattr(obj, "name", None)
    if isinstance(name, (str, bytes, os.PathLike)):
        base = os.path.basename(os.fsdecode(name))
        return base or None
    return None  # an int (a file descriptor) or nothing: the SDKs send no name either


def _hash_into(hasher: Any, obj: Any) -> None:
    read = obj.read
    while True:
        chunk = _sync(obj, read(CHUNK_SIZE))
        if not chunk:
            return
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8", "surrogatepass")
        elif not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise Unkeyable(obj, f"its read() returned a {type(chunk).__qualname__}")
        hasher.update(chunk)


def file_form(obj: Any, named: bool = True) -> dict[str, str]:
    """The key form of a file object: the digest of its whole content and, when ``named``
    (not inside a ``(name, file, mime)`` tuple, whose own name the SDK sends), its base name.

    The object is rewound to its start, read in :data:`CHUNK_SIZE` chunks and put back where
    it was, also when reading fails.

    Raises:
        NotSeekable: it cannot seek back (a pipe, a socket, a response body), or is closed.
        Unkeyable: reading it failed, or it is an async file object.
    """
    try:
        if not _seekable(obj):
            raise NotSeekable(obj)
        position = _sync(obj, obj.tell())
    except (OSError, ValueError) as exc:  # closed, or a stream whose tell() refuses
        raise NotSeekable(obj, str(exc)) from None
    hasher = xxhash.xxh3_128()
    try:
        _sync(obj, obj.seek(0))
        _hash_into(hasher, obj)
    except (OSError, ValueError) as exc:
        raise Unkeyable(obj, f"reading it failed: {exc}") from None
    finally:
        # Put the caller's stream back where it was, whatever happened; a failure here has
        # nothing better to report than the one already raised (or the key already made).
        with contextlib.suppress(OSError, ValueError):
            obj.seek(position)
    form = {"$file": hasher.hexdigest()}
    name = _base_name(obj) if named else None
    if name is not None:
        form["name"] = name
    return form


def path_form(path: os.PathLike[str], named: bool = True) -> dict[str, str] | None:
    """The key form of the file at ``path``, the same as the file opened would have; ``None``
    when it cannot be read (then it keys by name and the call reports the problem itself)."""
    try:
        with open(path, "rb") as f:
            return file_form(f, named)
    except (OSError, Unkeyable):
        return None


def key_form(obj: Any, named: bool = True) -> dict[str, str]:
    """The key form of a file object or a :class:`ContentPath`, with the file's own base name
    when ``named``. A path that cannot be read keys by name (the call itself then says why).

    Raises:
        NotSeekable, Unkeyable: as :func:`file_form`.
    """
    if type(obj) is not ContentPath:
        return file_form(obj, named=named)
    form = path_form(obj.path, named=named)
    if form is not None:
        return form
    path = obj.path
    return {"$path": path.as_posix() if isinstance(path, PurePath) else os.fsdecode(path)}


class ContentPath:
    """A path in a file parameter, marked to be keyed by the content of its file."""

    __slots__ = ("path",)

    def __init__(self, path: os.PathLike[str]) -> None:
        self.path = path


def paths_as_content(value: Any, depth: int = 2) -> Any:
    """``value`` of a file parameter with each path in it (alone, or in a tuple or list, two
    levels deep: ``[("a.wav", path, "audio/wav")]``) marked :class:`ContentPath`."""
    if isinstance(value, os.PathLike):
        return ContentPath(value)
    if depth > 0 and type(value) in (tuple, list):
        return type(value)(paths_as_content(v, depth - 1) for v in value)
    return value
