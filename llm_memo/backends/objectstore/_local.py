"""Local files (``file://``) for both backends, through ``os`` with no fsspec in the way.

:class:`_LocalIO` is the sync I/O; :class:`_InlineIO` gives async callers the same calls inline
(each is microseconds, so no thread hop). Both have the method names of ``_io.SyncIO`` /
``_io.AsyncIO``, so the backend body is one text for both. Writes replace the whole file
atomically (``_files.write_atomically``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

from ..._files import write_atomically


class _LocalIO:
    """Local files through ``os``: a read is one open+read; a write goes to a hidden temporary
    file in the target's directory and is renamed over it (``_files.write_atomically``:
    atomic on POSIX and Windows), so readers in any process see the old entry or the new one,
    never a torn one."""

    def read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as file:
                return file.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return [self.read(path) for path in paths]

    def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]:
        heads: list[bytes | None] = []
        for path in paths:
            try:
                with open(path, "rb") as file:
                    heads.append(file.read(size))
            except OSError:
                heads.append(None)
        return heads

    def write(self, path: str, data: bytes) -> None:
        # The temporary file's leading "." keeps it out of listings (layout never maps it).
        write_atomically(path, data)

    def remove(self, path: str, *, report: bool) -> bool:
        try:
            os.remove(path)
        except FileNotFoundError:
            return False
        return True

    def remove_many(self, paths: Sequence[str]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def find(self, top: str) -> list[str]:
        found: list[str] = []
        for directory, _, names in os.walk(top or "/"):
            base = directory.replace(os.sep, "/").rstrip("/")
            found.extend(f"{base}/{name}" for name in names if not name.startswith("."))
        return found

    def close(self) -> None:
        pass


class _InlineIO:
    """Local files for async callers: microseconds each, so inline, with no thread hop."""

    def __init__(self, io: _LocalIO) -> None:
        self._io = io

    async def read(self, path: str) -> bytes | None:
        return self._io.read(path)

    async def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return self._io.read_many(paths)

    async def read_heads(self, paths: Sequence[str], size: int) -> list[bytes | None]:
        return self._io.read_heads(paths, size)

    async def write(self, path: str, data: bytes) -> None:
        self._io.write(path, data)

    async def remove(self, path: str, *, report: bool) -> bool:
        return self._io.remove(path, report=report)

    async def remove_many(self, paths: Sequence[str]) -> None:
        self._io.remove_many(paths)

    async def find(self, top: str) -> list[str]:
        return self._io.find(top)

    async def close(self) -> None:
        pass
