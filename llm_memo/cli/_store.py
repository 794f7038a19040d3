"""Which store the command works on, and which of its entries: opening ``-b URL``, selecting keys.

:func:`open_backend` builds the backend a URL names through :func:`llm_memo.backends.from_url`
(``recordings://`` included: it is a registered scheme like any other) and refuses to create
one: a store that is not there is "no cache at ...". :class:`Filter` and :func:`select` turn
``--namespace`` / ``--function`` / ``--older-than`` / ``--newer-than`` into a listing prefix and
per-key tests; key strings are read only through :func:`llm_memo.keys.parse_key`.
:func:`is_expired` is the one judgement of "of no use to anyone" (retention, grace window
included) that ``stats``, ``ls``, ``purge --expired`` and ``copy`` share.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from .. import config
from .._policy import retained_until
from ..backends import MISSING, Listing, from_url, is_async_backend
from ..backends._registry import scheme_of
from ..backends.recording import RecordingBackend
from ..entry import Entry
from ..errors import BackendError
from ..keys import KeyParts, function_prefix, namespace_prefix, parse_key
from ._output import NOT_FOUND, USAGE, Exit

__all__ = [
    "GLOB",
    "Filter",
    "close_backend",
    "filter_from",
    "is_expired",
    "listing",
    "open_backend",
    "select",
    "wall_clock",
]

#: Characters that make ``--function`` a glob rather than one function's name.
GLOB = re.compile(r"[*?\[]")


def open_backend(url: str | None, options: dict[str, Any], *, must_exist: bool = True) -> Any:
    """The backend at ``url``. With ``must_exist`` (every command but copy's destination) a
    store that is not there is "no cache at ..." (exit 1), and nothing is created: a typo in
    ``-b`` must not leave an empty cache behind."""
    url = url or config.default_backend_url()
    scheme = scheme_of(url)
    if scheme == "memory":
        raise Exit(USAGE, "memory:// lives inside one process; the CLI cannot see it")
    if scheme == "disk" and must_exist:
        # Checked before the backend is built: opening a disk cache creates it.
        directory = _disk_directory(url)
        if not os.path.isfile(os.path.join(directory, _DISK_DB)):
            raise Exit(NOT_FOUND, f"no cache at {directory} (no disk cache there)")
    if scheme == "disk":
        # purge --expired keeps what configure(grace=...) keeps: the backend judges with it.
        options = {"grace": config.settings().grace, **options}
    backend: Any = _build(url, scheme, options)
    if is_async_backend(backend):
        raise Exit(USAGE, f"{url} gave an async backend; the CLI needs a sync one")
    if must_exist and scheme != "disk":
        where = _missing_store(backend, url)
        if where is not None:
            close_backend(backend)
            raise Exit(NOT_FOUND, f"no cache at {where}")
    return backend


def _build(url: str, scheme: str, options: dict[str, Any]) -> Any:
    try:
        return from_url(url, **options)
    except TypeError as exc:  # a keyword the backend's from_url does not take
        if not options:
            raise
        raise Exit(USAGE, f"{scheme}:// does not take the option(s) given with -o: {exc}") from exc


#: The SQLite file every diskcache directory holds (``diskcache.core.DBNAME``).
_DISK_DB = "cache.db"


def _disk_directory(url: str) -> str:
    """The folder a ``disk://`` URL or a bare path names, as the disk backend reads it."""
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if not path:
        from ..backends.disk import default_directory

        return default_directory()
    return path


def _missing_store(backend: Any, url: str) -> str | None:
    """Where an object store's root would be if it does not exist (``None`` when it does, or
    when that cannot be told cheaply): a recordings folder, a local folder, or a bucket / prefix
    with nothing in it."""
    if isinstance(backend, RecordingBackend):
        folder = backend.directory
        return None if folder.is_dir() else f"{folder} (no recordings folder)"
    module = sys.modules.get("llm_memo.backends.objectstore")
    if module is None or not isinstance(backend, module.ObjectStoreBackend):
        return None
    root = backend.root
    if backend.protocol in ("file", "local"):
        return None if os.path.isdir(root) else root
    fs = backend.fs
    if fs is None:
        return None
    try:
        exists = bool(fs.exists(root))
    except (OSError, TimeoutError) as exc:
        raise BackendError(f"cannot look for {url}: {type(exc).__name__}: {exc}") from exc
    return None if exists else url


def listing(backend: Any) -> Listing:
    """``backend`` as a :class:`~llm_memo.backends.Listing`, or a usage error saying why not."""
    if not isinstance(backend, Listing):
        raise Exit(
            USAGE,
            f"{type(backend).__name__} cannot list its keys (no keys(prefix) method, the Listing "
            "protocol); this command needs a backend that can: disk, file://, s3://, redis://, "
            "recordings://",
        )
    return backend


def wall_clock() -> float:
    """Now, in seconds since the epoch (what entries' ``created_at`` is measured in)."""
    return time.time()


def is_expired(entry: Entry, now: float) -> bool:
    """Past its expiry and the larger of its ``stale_if_error`` window and the grace window:
    of no use to anyone (what a read-time ``stale_if_error`` could still serve is kept)."""
    until = retained_until(entry, config.settings().grace)
    return until is not None and until <= now


# -- selecting entries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """The selection flags of a command: a listing prefix plus per-key and per-entry tests."""

    namespace: str | None = None
    function: str | None = None
    older_than: float | None = None
    newer_than: float | None = None

    @property
    def prefix(self) -> str:
        if self.namespace is None:
            return ""
        if self.function is not None and not GLOB.search(self.function):
            return function_prefix(self.namespace, self.function)
        return namespace_prefix(self.namespace)

    @property
    def needs_entry(self) -> bool:
        return self.older_than is not None or self.newer_than is not None

    def key_matches(self, parts: KeyParts | None) -> bool:
        if self.namespace is None and self.function is None:
            return True
        if parts is None:
            return False
        if self.namespace is not None and parts.namespace != self.namespace:
            return False
        return self.function is None or fnmatch.fnmatchcase(parts.function, self.function)

    def entry_matches(self, entry: Entry | None, now: float) -> bool:
        if not self.needs_entry:
            return True
        if entry is None:
            return False
        age = now - entry.created_at
        if self.older_than is not None and age < self.older_than:
            return False
        return self.newer_than is None or age <= self.newer_than


def filter_from(args: argparse.Namespace) -> Filter:
    """The :class:`Filter` the parsed flags describe (flags a command lacks count as absent)."""
    return Filter(
        namespace=getattr(args, "namespace", None),
        function=getattr(args, "function", None),
        older_than=getattr(args, "older_than", None),
        newer_than=getattr(args, "newer_than", None),
    )


def select(
    backend: Any, flt: Filter, *, with_entries: bool
) -> Iterator[tuple[str, KeyParts | None, Entry | None]]:
    """The matching keys, with their entries when asked (``None`` for a listed key whose entry
    the backend no longer returns: expired in a store with native expiry, or unreadable)."""
    now = wall_clock()
    for key in sorted(listing(backend).keys(flt.prefix)):
        parts = parse_key(key)
        if not flt.key_matches(parts):
            continue
        entry: Entry | None = None
        if with_entries or flt.needs_entry:
            got = backend.get(key)
            entry = None if got is MISSING else got
        if flt.entry_matches(entry, now):
            yield key, parts, entry


def close_backend(backend: Any) -> None:
    """Close ``backend`` if it can be closed; a failure to close is not the command's failure."""
    close = getattr(backend, "close", None)
    if close is not None:
        with contextlib.suppress(BackendError, OSError):  # closing is best effort
            close()
