"""The recording backend: a folder of recording files, driven by the decorator like any store.

:class:`RecordingBackend` has the :class:`~llm_memo.backends.Backend` methods (get, set,
delete, clear, close), ``keys(prefix)`` for listing (:class:`~llm_memo.backends.Listing`) and
``describe(key, request)``, the hook through which the decorator hands it the request behind a
key, so the file shows what was asked. It also remembers what it served and what it could not
(:attr:`~RecordingBackend.touched`, :meth:`~RecordingBackend.unused`,
:meth:`~RecordingBackend.request_for`, :meth:`~RecordingBackend.problem`) for the replay reports.

One mechanism for sync and async: there is only this sync implementation, and async callers use
it inline (no thread hop), as they use the memory and disk backends: each operation reads or
writes one small local file. Recordings do not age: ``ttl`` and ``max_age`` do not expire them
(a read is served as created "now"). They carry no signature: they are reviewed repository
content, and a read is signed with the keys the owner's :data:`Stamp` gives.

Not here: configuration. The clock and signing keys a read is sealed with come from ``stamp=``
or the class's ``default_stamp`` (:func:`unsigned_now` here);
:class:`llm_memo.recording.RecordingBackend`, the public class, defines one that reads
``configure()``'s.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from ..._files import write_atomically
from ...codec import seal
from ...entry import Entry
from ...errors import BackendError, CodecError, ConfigurationError
from .. import MISSING, Missing
from .document import parse, read_recording, render
from .layout import SUFFIX, key_of, path_for, prune_empty
from .scrub import Redactor, scrub_request

__all__ = ["RecordingBackend", "Stamp", "unsigned_now"]

#: What a read asks for when it seals a recording as an entry: the time to stamp it as created
#: and the keys to sign it with (the first signs).
Stamp = Callable[[], tuple[float, Sequence[bytes]]]


def unsigned_now() -> tuple[float, Sequence[bytes]]:
    """The default :data:`Stamp`: the wall clock, and no signature."""
    return time.time(), ()


#: Requests noted by describe() and not yet used, kept at most (oldest dropped first).
_MAX_PENDING = 1024


class RecordingBackend:
    """A backend over a folder of recording files (:mod:`.layout` says where each one lives).

    Args:
        directory: the folder (created on first write).
        redact: applied to the request view and the value before writing.
        rewrite: treat recordings not yet written by this backend object as absent (the
            ``rewrite`` mode); can be toggled between tests.
        stamp: the clock and signing keys a read is sealed with (:data:`Stamp`; default: the
            class's :meth:`default_stamp`, the wall clock and no signature here).

    Besides the :class:`~llm_memo.backends.Backend` methods and ``keys(prefix)``, it remembers
    which recordings were used (:attr:`touched`, :meth:`unused`) and the request of each call it
    could not answer (:meth:`request_for`), for reports.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        redact: Redactor | None = None,
        rewrite: bool = False,
        stamp: Stamp | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.redact = redact
        self.rewrite = rewrite
        self.stamp: Stamp = self.default_stamp if stamp is None else stamp
        self._lock = threading.Lock()
        self._touched: set[str] = set()
        self._written: set[str] = set()
        self._requests: dict[str, Any] = {}
        self._describers: dict[str, Callable[[], Any]] = {}
        self._problems: dict[str, str] = {}

    @staticmethod
    def default_stamp() -> tuple[float, Sequence[bytes]]:
        """The :data:`Stamp` used when none is given (a subclass may define another)."""
        return unsigned_now()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RecordingBackend:
        """Build from ``recordings:///abs/path`` or ``recordings://relative/path``.

        Raises:
            ConfigurationError: no folder in the URL.
        """
        _, sep, rest = url.partition("://")
        if not sep or not rest:
            raise ConfigurationError("recordings:// needs a folder: recordings:///path/to/dir")
        return cls(rest, **options)

    def __repr__(self) -> str:
        return f"RecordingBackend({str(self.directory)!r})"

    # -- paths ---------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file that holds (or would hold) ``key``'s recording."""
        return path_for(self.directory, key)

    # -- the backend protocol ------------------------------------------------------------

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """The recording of ``key`` as a fresh, unexpiring entry, or :data:`MISSING`.

        An unreadable file is a miss; :meth:`problem` says what was wrong with it.
        """
        if self.rewrite:
            with self._lock:
                rewritten = key in self._written
            if not rewritten:
                self._remember(key)
                return MISSING
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self._remember(key)
            return MISSING
        except OSError as exc:
            raise BackendError(f"cannot read recording {path}: {exc}") from exc
        try:
            call = parse(data, path)
            if call.key != key:
                raise CodecError(f"it holds the key {call.key}, not {key}")
        except CodecError as exc:
            with self._lock:
                self._problems[key] = f"{path}: {exc}"
            self._remember(key)
            return MISSING
        with self._lock:
            self._touched.add(key)
        now, signing_keys = self.stamp()
        # Served as created now and never expiring: recordings do not age (module docstring).
        return seal(
            key,
            call.type_tag,
            call.payload(),
            created_at=now,
            expires_at=None,
            stale_window=0.0,
            tokens=call.tokens,
            signing_keys=signing_keys,
        )

    def describe(self, key: str, request: Callable[[], Any]) -> None:
        """Note the request behind ``key`` (the decorator calls this before every lookup)."""
        with self._lock:
            self._describers[key] = request
            while len(self._describers) > _MAX_PENDING:  # calls that never got to get/set
                self._describers.pop(next(iter(self._describers)))

    def _request_for(self, key: str) -> Any:
        with self._lock:
            request = self._requests.pop(key, None)
            describer = self._describers.pop(key, None)
        if request is None and describer is not None:
            try:
                # Kept for reports and the file: scrubbed now, so no credential is held here.
                request = scrub_request(describer())
            except (TypeError, ValueError):  # not keyable as a view: the file shows null
                request = None
        return request

    def _remember(self, key: str) -> None:
        request = self._request_for(key)
        if request is not None:
            with self._lock:
                self._requests[key] = request

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Write ``entry`` as ``key``'s recording (``ttl`` is ignored: recordings do not age).

        An unchanged recording is not rewritten, so its file keeps its bytes and its mtime.

        Raises:
            BackendError: the file cannot be written.
        """
        path = self.path_for(key)
        request = self._request_for(key)
        if request is None:  # keep what an earlier recording of the same key captured
            with contextlib.suppress(OSError, CodecError):
                request = read_recording(path).request
        try:
            data = render(key, entry, request, self.redact)
        except CodecError as exc:
            raise BackendError(f"cannot record {key}: {exc}") from exc
        try:
            if not (path.is_file() and path.read_bytes() == data):
                write_atomically(path, data)
        except OSError as exc:
            raise BackendError(f"cannot write recording {path}: {exc}") from exc
        with self._lock:
            self._touched.add(key)
            self._written.add(key)
            self._problems.pop(key, None)

    def delete(self, key: str) -> bool:
        """Remove ``key``'s recording; return whether there was one."""
        path = self.path_for(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BackendError(f"cannot delete recording {path}: {exc}") from exc
        prune_empty(path.parent, self.directory)
        return True

    def clear(self, prefix: str = "") -> int:
        """Remove every recording whose key starts with ``prefix``; return how many."""
        return sum(self.delete(key) for key in list(self.keys(prefix)))

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The keys of the recordings in the folder that start with ``prefix``, sorted."""
        if not self.directory.is_dir():
            return iter(())
        found = []
        try:
            for path in self.directory.rglob("*" + SUFFIX):
                key = key_of(self.directory, path)
                if key is not None and key.startswith(prefix):
                    found.append(key)
        except OSError as exc:
            raise BackendError(f"cannot list recordings in {self.directory}: {exc}") from exc
        return iter(sorted(found))

    def close(self) -> None:
        """Nothing to release: files are opened per operation."""

    # -- reports -------------------------------------------------------------------------

    @property
    def touched(self) -> frozenset[str]:
        """Keys of the recordings read or written through this object."""
        with self._lock:
            return frozenset(self._touched)

    def unused(self) -> list[str]:
        """Keys of recordings in the folder that nothing read or wrote through this object."""
        touched = self.touched
        return [k for k in self.keys() if k not in touched]

    def request_for(self, key: str) -> Any:
        """The request of a call this store saw (from a miss, or from its file), or ``None``."""
        with self._lock:
            request = self._requests.get(key)
        if request is None:
            with contextlib.suppress(OSError, CodecError):
                request = read_recording(self.path_for(key)).request
        return scrub_request(request)  # a file written before scrubbing existed, too

    def problem(self, key: str) -> str | None:
        """Why ``key``'s file could not be used, if it exists but was unreadable."""
        with self._lock:
            return self._problems.get(key)
