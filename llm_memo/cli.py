"""The ``llm-memo`` command: look into and manage a cache on any backend URL.

``llm-memo COMMAND [-b URL] [--json] ...`` (also ``python -m llm_memo``):

==========  ========================================================================================
``stats``   entries, bytes and expired entries, by namespace and by function
``ls``      the entries, filtered by ``--namespace``, ``--function`` (a glob), ``--older-than``,
            ``--newer-than``
``show``    one entry: its metadata and its value as JSON (never restored as a type, never
            unpickled)
``rm``      delete entries by key
``purge``   delete ``--expired`` entries, entries ``--older-than 7d``, a ``--namespace``, a
            ``--function``, or ``--all``; ``--dry-run`` lists them
``copy``    copy a cache to another backend (disk to S3, say), resumable: keys already at the
            destination are skipped; a progress bar on stderr
``explain`` why two recorded calls have different keys (recording files, or keys in a
            ``recordings://`` folder)
==========  ========================================================================================

``-b`` takes any backend URL (``disk:///path`` or a bare path, ``file:///path``,
``s3://bucket/prefix``, ``redis://host:6379/0``, ...) or ``recordings://path`` for a folder of
test recordings; the default is ``LLM_MEMO_BACKEND``, else the embedded disk cache.
``-o name=value`` passes an option to the backend's ``from_url`` (dotted names nest:
``-o storage_options.endpoint_url=http://localhost:9000``; values are JSON when they parse).

Listing commands need a backend with ``keys(prefix)`` (the
:class:`~llm_memo.backends.Listing` protocol); others get a clear error.

No command creates a store: every command but ``copy``'s destination first checks that the
cache is there (a disk cache's ``cache.db``, a ``file://`` or ``recordings://`` folder, objects
under an object store's prefix), else it stops with "no cache at ...". ``purge`` deletes by age
or expiry only entries it can read and judge; the others are kept and counted as skipped.

Human-readable output by default; ``--json`` prints one JSON document for scripts.
Exit codes: 0 done; 1 not found or nothing matched ("no cache at ..." included); 2 usage error
(bad arguments or URL, an option the backend does not take, a backend that cannot list); 3 the
backend failed.

Not here: anything the library needs at run time; this module is only imported by the command.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import fnmatch
import inspect
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import orjson

from . import config
from .__about__ import __version__
from ._decorator import Difference, _diff
from ._policy import retained_until
from .backends import MISSING, Listing, from_url
from .backends._registry import scheme_of
from .codec import unseal
from .entry import FLAG_COMPRESSED, Entry
from .errors import BackendError, CodecError, ConfigurationError
from .keys import function_prefix, namespace_prefix
from .recording import RecordedCall, RecordingBackend, read_recording

__all__ = ["main"]

OK, NOT_FOUND, USAGE, BACKEND = 0, 1, 2, 3

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_GLOB = re.compile(r"[*?\[]")


class _Exit(Exception):
    """Stop the command with an exit code and a message for stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- small helpers -------------------------------------------------------------------------------


def _duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90s, 15m, 12h, 7d, 2w)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _human_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class _Key:
    namespace: str
    function: str


def _parse_key(key: str) -> _Key | None:
    parts = key.split(":")
    if len(parts) != 5 or parts[0] != "llm_memo":
        return None
    return _Key(unquote(parts[2]), unquote(parts[3]))


def _option_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _options(pairs: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or ():
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise _Exit(USAGE, f"option {pair!r} is not NAME=VALUE")
        *path, last = name.split(".")
        target = out
        for part in path:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise _Exit(USAGE, f"option {name!r} nests into a value")
        target[last] = _option_value(raw)
    return out


def _open(url: str | None, options: dict[str, Any], *, must_exist: bool = True) -> Any:
    """The backend at ``url``. With ``must_exist`` (every command but copy's destination) a
    store that is not there is "no cache at ..." (exit 1), and nothing is created: a typo in
    ``-b`` must not leave an empty cache behind."""
    url = url or config.default_backend_url()
    scheme = scheme_of(url)
    if scheme == "memory":
        raise _Exit(USAGE, "memory:// lives inside one process; the CLI cannot see it")
    if scheme == "recordings":
        backend: Any = _build(RecordingBackend.from_url, url, scheme, options)
        if must_exist and not backend.directory.is_dir():
            raise _Exit(NOT_FOUND, f"no cache at {backend.directory} (no recordings folder)")
        return backend
    if scheme == "disk" and must_exist:
        # Checked before the backend is built: opening a disk cache creates it.
        directory = _disk_directory(url)
        if not os.path.isfile(os.path.join(directory, _DISK_DB)):
            raise _Exit(NOT_FOUND, f"no cache at {directory} (no disk cache there)")
    backend = _build(from_url, url, scheme, options)
    if _is_async(backend):
        raise _Exit(USAGE, f"{url} gave an async backend; the CLI needs a sync one")
    if must_exist and scheme != "disk":
        where = _missing_store(backend, url)
        if where is not None:
            _close(backend)
            raise _Exit(NOT_FOUND, f"no cache at {where}")
    return backend


def _build(make: Callable[..., Any], url: str, scheme: str, options: dict[str, Any]) -> Any:
    try:
        return make(url, **options)
    except TypeError as exc:  # a keyword the backend's from_url does not take
        if not options:
            raise
        raise _Exit(USAGE, f"{scheme}:// does not take the option(s) given with -o: {exc}") from exc


#: The SQLite file every diskcache directory holds (``diskcache.core.DBNAME``).
_DISK_DB = "cache.db"


def _disk_directory(url: str) -> str:
    """The folder a ``disk://`` URL or a bare path names, as the disk backend reads it."""
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if not path:
        from .backends.disk import default_directory

        return default_directory()
    return path


def _missing_store(backend: Any, url: str) -> str | None:
    """Where an object store's root would be if it does not exist (``None`` when it does, or
    when that cannot be told cheaply): a local folder, or a bucket / prefix with nothing in it."""
    module = sys.modules.get("llm_memo.backends.objectstore")
    if module is None or not isinstance(backend, module.ObjectStoreBackend):
        return None
    root = getattr(backend, "root", None)
    if not isinstance(root, str):
        return None
    if getattr(backend, "protocol", None) in ("file", "local"):
        return None if os.path.isdir(root) else root
    io = getattr(backend, "_sync_io", None)
    fs = getattr(io, "fs", None)
    if fs is None:
        return None
    deadline = getattr(io, "_deadline", {})
    try:
        exists = bool(fs.exists(root, **deadline))
    except (OSError, TimeoutError) as exc:
        raise BackendError(f"cannot look for {url}: {type(exc).__name__}: {exc}") from exc
    return None if exists else url


def _is_async(backend: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(type(backend), "get", None))


def _listing(backend: Any) -> Listing:
    if not isinstance(backend, Listing):
        raise _Exit(
            USAGE,
            f"{type(backend).__name__} cannot list its keys (no keys(prefix) method, the Listing "
            "protocol); this command needs a backend that can: disk, file://, s3://, redis://, "
            "recordings://",
        )
    return backend


def _now() -> float:
    return time.time()


def _expired(entry: Entry, now: float) -> bool:
    """Past its expiry and the larger of its ``stale_if_error`` window and the grace window:
    of no use to anyone (what a read-time ``stale_if_error`` could still serve is kept)."""
    until = retained_until(entry, config.settings().grace)
    return until is not None and until <= now


# -- selecting entries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Filter:
    namespace: str | None = None
    function: str | None = None
    older_than: float | None = None
    newer_than: float | None = None

    @property
    def prefix(self) -> str:
        if self.namespace is None:
            return ""
        if self.function is not None and not _GLOB.search(self.function):
            return function_prefix(self.namespace, self.function)
        return namespace_prefix(self.namespace)

    @property
    def needs_entry(self) -> bool:
        return self.older_than is not None or self.newer_than is not None

    def key_matches(self, parts: _Key | None) -> bool:
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


def _filter_from(args: argparse.Namespace) -> _Filter:
    return _Filter(
        namespace=getattr(args, "namespace", None),
        function=getattr(args, "function", None),
        older_than=getattr(args, "older_than", None),
        newer_than=getattr(args, "newer_than", None),
    )


def _select(
    backend: Any, flt: _Filter, *, with_entries: bool
) -> Iterator[tuple[str, _Key | None, Entry | None]]:
    """The matching keys, with their entries when asked (``None`` for a listed key whose entry
    the backend no longer returns: expired in a store with native expiry, or unreadable)."""
    now = _now()
    for key in sorted(_listing(backend).keys(flt.prefix)):
        parts = _parse_key(key)
        if not flt.key_matches(parts):
            continue
        entry: Entry | None = None
        if with_entries or flt.needs_entry:
            got = backend.get(key)
            entry = None if got is MISSING else got
        if flt.entry_matches(entry, now):
            yield key, parts, entry


# -- output --------------------------------------------------------------------------------------


class _Out:
    def __init__(self, as_json: bool, stream: TextIO) -> None:
        self.as_json = as_json
        self.stream = stream

    def line(self, text: str = "") -> None:
        if not self.as_json:
            print(text, file=self.stream)

    def document(self, data: Any) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, ensure_ascii=False), file=self.stream)


def _describe(key: str, entry: Entry | None, now: float) -> dict[str, Any]:
    parts = _parse_key(key)
    out: dict[str, Any] = {
        "key": key,
        "namespace": parts.namespace if parts else None,
        "function": parts.function if parts else None,
    }
    if entry is None:
        out.update(expired=True)
        return out
    out.update(
        created_at=_iso(entry.created_at),
        age_seconds=round(now - entry.created_at, 3),
        expires_at=_iso(entry.expires_at),
        stale_window=entry.stale_window,
        expired=_expired(entry, now),
        type=entry.type_tag,
        bytes=entry.size,
        tokens=entry.tokens,
        compressed=bool(entry.flags & FLAG_COMPRESSED),
        signed=bool(entry.signature),
    )
    return out


# -- commands ------------------------------------------------------------------------------------


def _cmd_stats(args: argparse.Namespace, backend: Any, out: _Out) -> int:
    now = _now()
    total = size = expired = 0
    by_ns: dict[str, list[int]] = {}
    by_fn: dict[tuple[str, str], list[int]] = {}
    for _key, parts, entry in _select(backend, _filter_from(args), with_entries=True):
        total += 1
        nbytes = entry.size if entry is not None else 0
        size += nbytes
        if entry is None or _expired(entry, now):
            expired += 1
        ns, fn = (parts.namespace, parts.function) if parts else ("?", "?")
        for bucket in (by_ns.setdefault(ns, [0, 0]), by_fn.setdefault((ns, fn), [0, 0])):
            bucket[0] += 1
            bucket[1] += nbytes
    out.document(
        {
            "backend": repr(backend),
            "entries": total,
            "bytes": size,
            "expired": expired,
            "namespaces": [
                {"namespace": ns, "entries": n, "bytes": b} for ns, (n, b) in sorted(by_ns.items())
            ],
            "functions": [
                {"namespace": ns, "function": fn, "entries": n, "bytes": b}
                for (ns, fn), (n, b) in sorted(by_fn.items())
            ],
        }
    )
    out.line(f"backend: {backend!r}")
    out.line(f"entries: {total} ({expired} expired)")
    out.line(f"bytes:   {_human_bytes(size)}")
    if by_fn:
        width = max(len("namespace"), *(len(ns) for ns, _ in by_fn))
        fwidth = max(len("function"), *(len(fn) for _, fn in by_fn))
        out.line()
        out.line(f"{'namespace':<{width}}  {'function':<{fwidth}}  {'entries':>7}  bytes")
        for (ns, fn), (n, b) in sorted(by_fn.items()):
            out.line(f"{ns:<{width}}  {fn:<{fwidth}}  {n:>7}  {_human_bytes(b)}")
    return OK


def _cmd_ls(args: argparse.Namespace, backend: Any, out: _Out) -> int:
    now = _now()
    rows = []
    for key, _, entry in _select(backend, _filter_from(args), with_entries=True):
        rows.append(_describe(key, entry, now))
        if args.limit is not None and len(rows) >= args.limit:
            break
    out.document(rows)
    for row in rows:
        if "created_at" not in row:
            out.line(f"{'expired':>7}  {'-':>9}  {'-':<8}  {row['key']}")
            continue
        age = _human_age(row["age_seconds"])
        out.line(f"{age:>7}  {_human_bytes(row['bytes']):>9}  {row['type'][:8]:<8}  {row['key']}")
    return OK if rows else NOT_FOUND


def _value_json(key: str, entry: Entry) -> tuple[Any, str | None]:
    """The entry's value as JSON, without restoring any type; or a note why not."""
    if entry.type_tag == "pickle":
        return None, f"a pickled value ({len(entry.value)} bytes): never unpickled here"
    try:
        payload = unseal(key, entry)  # no keys: only inflates; signatures are reported apart
        return orjson.loads(payload), None
    except (CodecError, orjson.JSONDecodeError) as exc:
        return None, f"the payload is not JSON ({exc})"


def _cmd_show(args: argparse.Namespace, backend: Any, out: _Out) -> int:
    got = backend.get(args.key)
    if got is MISSING:
        raise _Exit(NOT_FOUND, f"no entry under {args.key} (or it has expired)")
    entry: Entry = got
    now = _now()
    info = _describe(args.key, entry, now)
    value, note = _value_json(args.key, entry)
    if isinstance(backend, RecordingBackend):
        info["request"] = backend.request_for(args.key)
    info["value"] = value
    if note:
        info["note"] = note
    out.document(info)
    for name in ("key", "namespace", "function"):
        out.line(f"{name + ':':<11} {info[name]}")
    out.line(f"{'created:':<11} {info['created_at']} ({_human_age(now - entry.created_at)} ago)")
    if entry.expires_at is None:
        out.line(f"{'expires:':<11} never")
    else:
        left = entry.expires_at - now
        when = f"in {_human_age(left)}" if left > 0 else f"{_human_age(-left)} ago"
        out.line(f"{'expires:':<11} {info['expires_at']} ({when})")
    if entry.stale_window:
        out.line(f"{'stale:':<11} served up to {_human_age(entry.stale_window)} past expiry")
    out.line(f"{'type:':<11} {entry.type_tag}")
    extra = ", compressed" if info["compressed"] else ""
    out.line(f"{'size:':<11} {_human_bytes(entry.size)}{extra}")
    out.line(f"{'tokens:':<11} {entry.tokens}")
    out.line(f"{'signed:':<11} {'yes' if entry.signature else 'no'}")
    if "request" in info:
        out.line("request:")
        out.line(json.dumps(info["request"], indent=2, ensure_ascii=False, sort_keys=True))
    out.line("value:")
    out.line(note or json.dumps(value, indent=2, ensure_ascii=False))
    return OK


def _cmd_rm(args: argparse.Namespace, backend: Any, out: _Out) -> int:
    removed: list[str] = []
    missing: list[str] = []
    for key in args.keys:
        (removed if backend.delete(key) else missing).append(key)
    out.document({"removed": removed, "missing": missing})
    for key in removed:
        out.line(f"removed {key}")
    for key in missing:
        out.line(f"not found {key}")
    return NOT_FOUND if missing else OK


def _cmd_purge(args: argparse.Namespace, backend: Any, out: _Out) -> int:
    flt = _filter_from(args)
    if not (args.expired or args.all or flt.namespace or flt.function or flt.needs_entry):
        raise _Exit(
            USAGE,
            "purge needs a selection: --expired, --older-than AGE, --namespace NS, "
            "--function NAME or --all",
        )
    if args.all and (args.expired or flt.namespace or flt.function or flt.needs_entry):
        raise _Exit(USAGE, "--all selects everything; give it alone")
    purged: list[str] | int
    skipped = 0
    whole = not (args.expired or flt.needs_entry) and (
        flt.function is None or (flt.namespace is not None and not _GLOB.search(flt.function))
    )
    if args.dry_run:
        purged, skipped = _purge_plan(args, backend, flt)
    elif whole:  # a namespace, one function, or everything: a prefix, no listing needed
        purged = int(backend.clear(flt.prefix))
    elif args.expired and flt == _Filter() and callable(getattr(backend, "purge_expired", None)):
        # The backend's own sweep (disk, object stores): it also removes entries past their
        # retention that reads no longer return, and keeps what it cannot read.
        purged = int(backend.purge_expired())
        skipped = _unreadable(backend)
    else:
        doomed, skipped = _purge_plan(args, backend, flt)
        purged = [key for key in doomed if backend.delete(key)]
    count = purged if isinstance(purged, int) else len(purged)
    verb = "would purge" if args.dry_run else "purged"
    out.document(
        {"dry_run": args.dry_run, "purged": count, "skipped": skipped}
        | ({"keys": purged} if isinstance(purged, list) else {})
    )
    if isinstance(purged, list) and args.dry_run:
        for key in purged:
            out.line(key)
    out.line(f"{verb} {count} entr{'y' if count == 1 else 'ies'}")
    if skipped:
        out.line(
            f"skipped {skipped} entr{'y' if skipped == 1 else 'ies'} it cannot read (another "
            "format version or library, or damaged): kept"
        )
    return OK if count else NOT_FOUND


def _purge_plan(args: argparse.Namespace, backend: Any, flt: _Filter) -> tuple[list[str], int]:
    """The keys a purge deletes, and how many listed entries it cannot judge.

    Only an entry this version reads can be judged: one that does not read as an entry (a
    newer format's, a damaged one, another library's value, another Redis type) is never
    deleted by an age or expiry selection, only counted. Expired means past the entry's
    retention, ``expires_at`` plus its stale window (the grace ``stale_if_error`` reads use),
    not merely past ``expires_at``.
    """
    judge = args.expired or flt.needs_entry
    by_key = dataclasses.replace(flt, older_than=None, newer_than=None)
    now = _now()
    doomed: list[str] = []
    skipped = 0
    for key, _, entry in _select(backend, by_key, with_entries=judge):
        if not judge:
            doomed.append(key)
        elif entry is None:
            skipped += 1
        elif flt.entry_matches(entry, now) and (not args.expired or _expired(entry, now)):
            doomed.append(key)
    return doomed, skipped


def _unreadable(backend: Any) -> int:
    """How many listed keys do not read as entries (after a backend's own sweep)."""
    if not isinstance(backend, Listing):
        return 0
    store: Any = backend  # a Backend as well as a Listing
    return sum(store.get(key) is MISSING for key in backend.keys(""))


class _Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, enabled: bool, stream: TextIO) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.stream = stream
        self._last = 0.0

    def update(self, done: int, copied: int, skipped: int, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\rcopy [{bar}] {done}/{self.total}  copied {copied}  skipped {skipped}")
        if final:
            self.stream.write("\n")
        self.stream.flush()


def _cmd_copy(args: argparse.Namespace, out: _Out, err: TextIO) -> int:
    src = _open(args.src, _options(args.src_option))
    try:
        dst = _open(args.dst, _options(args.dst_option), must_exist=False)
    except BaseException:
        _close(src)
        raise
    try:
        flt = _filter_from(args)
        keys = [k for k, _, _ in _select(src, flt, with_entries=False)]
        present: set[str] | None = None
        if not args.overwrite and isinstance(dst, Listing):
            present = set(dst.keys(flt.prefix))  # one listing instead of a GET per key
        progress = _Progress(
            len(keys), args.progress if args.progress is not None else err.isatty(), err
        )
        copied = skipped = expired = 0
        now = _now()
        for done, key in enumerate(keys, 1):
            if not args.overwrite and (
                key in present if present is not None else dst.get(key) is not MISSING
            ):
                skipped += 1
            else:
                got = src.get(key)
                if got is MISSING or _expired(got, now):
                    expired += 1
                else:
                    until = retained_until(got, config.settings().grace)
                    dst.set(key, got, None if until is None else until - now)
                    copied += 1
            progress.update(done, copied, skipped, final=done == len(keys))
        out.document(
            {"listed": len(keys), "copied": copied, "skipped": skipped, "expired": expired}
        )
        out.line(
            f"copied {copied} of {len(keys)} entries from {args.src} to {args.dst}"
            f" ({skipped} already there, {expired} expired)"
        )
        return OK if keys else NOT_FOUND
    finally:
        _close(src)
        _close(dst)


def _load_call(ref: str, backend: Any) -> RecordedCall:
    if os.path.isfile(ref):
        try:
            return read_recording(ref)
        except CodecError as exc:
            raise _Exit(USAGE, f"{ref} is not a recording: {exc}") from exc
    if not isinstance(backend, RecordingBackend):
        raise _Exit(
            USAGE,
            f"{ref!r} is not a recording file, and only recordings keep the request a key was "
            "made from: pass two recording files, or keys with -b recordings://FOLDER",
        )
    path = backend.path_for(ref)
    if not path.is_file():
        raise _Exit(NOT_FOUND, f"no recording of {ref} in {backend.directory}")
    try:
        return read_recording(path)
    except CodecError as exc:
        raise _Exit(USAGE, f"{path} is not a recording: {exc}") from exc


def _cmd_explain(args: argparse.Namespace, out: _Out) -> int:
    backend = _open(args.backend, _options(args.option)) if args.backend else None
    try:
        a, b = _load_call(args.a, backend), _load_call(args.b, backend)
    finally:
        if backend is not None:
            _close(backend)
    for call, ref in ((a, args.a), (b, args.b)):
        if call.request is None:
            raise _Exit(NOT_FOUND, f"{ref}: no request was recorded with this entry")
    diffs = [
        Difference(name, getattr(a, name), getattr(b, name))
        for name in ("function", "namespace")
        if getattr(a, name) != getattr(b, name)
    ]
    _diff(a.request, b.request, "", diffs)
    same = a.key == b.key
    out.document(
        {
            "same": same,
            "key_a": a.key,
            "key_b": b.key,
            "differences": [{"path": d.path, "a": d.a, "b": d.b} for d in diffs],
        }
    )
    if same:
        out.line(f"same key {a.key}: the second call hits the first call's entry")
        return OK
    out.line("different keys:")
    out.line(f"  a: {a.key}")
    out.line(f"  b: {b.key}")
    for d in diffs:
        out.line(f"  {d}")
    if not diffs:
        out.line("  (the requests are equal: the keys come from different library versions)")
    return OK


# -- the parser ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-b",
        "--backend",
        metavar="URL",
        help="backend URL or path (default: $LLM_MEMO_BACKEND, else the embedded disk cache)",
    )
    common.add_argument(
        "-o",
        "--option",
        action="append",
        metavar="NAME=VALUE",
        help="backend option, e.g. -o storage_options.endpoint_url=http://localhost:9000",
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON for scripts")
    select = argparse.ArgumentParser(add_help=False)
    select.add_argument("--namespace", metavar="NS", help="only this namespace")
    select.add_argument("--function", metavar="NAME", help="only functions matching this glob")
    ages = argparse.ArgumentParser(add_help=False)
    ages.add_argument("--older-than", type=_duration, metavar="AGE", help="e.g. 7d, 12h, 30m")
    ages.add_argument("--newer-than", type=_duration, metavar="AGE", help="e.g. 1h")

    parser = argparse.ArgumentParser(
        prog="llm-memo",
        description="Inspect and manage llm_memo caches on any backend.",
        epilog="exit codes: 0 ok, 1 not found / nothing matched, 2 usage error, 3 backend error",
    )
    parser.add_argument("--version", action="version", version=f"llm-memo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "stats", parents=[common, json_flag, select], help="entries and bytes by function"
    )
    p.set_defaults(run=_cmd_stats)
    p = sub.add_parser("ls", parents=[common, json_flag, select, ages], help="list entries")
    p.add_argument("--limit", type=int, metavar="N", help="at most N entries")
    p.set_defaults(run=_cmd_ls)
    p = sub.add_parser("show", parents=[common, json_flag], help="one entry, value as JSON")
    p.add_argument("key")
    p.set_defaults(run=_cmd_show)
    p = sub.add_parser("rm", parents=[common, json_flag], help="delete entries by key")
    p.add_argument("keys", nargs="+", metavar="KEY")
    p.set_defaults(run=_cmd_rm)
    p = sub.add_parser(
        "purge", parents=[common, json_flag, select, ages], help="delete a selection of entries"
    )
    p.add_argument(
        "--expired",
        action="store_true",
        help="entries past their retention (expiry plus stale window); unreadable ones are kept",
    )
    p.add_argument("--all", action="store_true", help="every entry")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    p.set_defaults(run=_cmd_purge)
    p = sub.add_parser(
        "copy", parents=[json_flag, select], help="copy entries to another backend (resumable)"
    )
    p.add_argument("src", metavar="SRC", help="source backend URL")
    p.add_argument("dst", metavar="DST", help="destination backend URL")
    p.add_argument("--src-option", action="append", metavar="NAME=VALUE")
    p.add_argument("--dst-option", action="append", metavar="NAME=VALUE")
    p.add_argument("--overwrite", action="store_true", help="also copy keys DST already has")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    p = sub.add_parser(
        "explain",
        parents=[common, json_flag],
        help="why two recorded calls have different keys",
    )
    p.add_argument("a", metavar="A", help="a recording file, or a key in -b recordings://DIR")
    p.add_argument("b", metavar="B", help="the other one")
    return parser


def _close(backend: Any) -> None:
    close = getattr(backend, "close", None)
    if close is not None:
        with contextlib.suppress(BackendError, OSError):  # closing is best effort
            close()


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the ``llm-memo`` command; return its exit code.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        stdout / stderr: where output goes (default: the process's).

    .. versionadded:: 0.1.0
    """
    out_stream = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    out = _Out(args.json, out_stream)

    def fail(code: int, message: str) -> int:
        print(f"llm-memo: {message}", file=err)
        return code

    try:
        if args.command == "copy":
            return _cmd_copy(args, out, err)
        if args.command == "explain":
            return _cmd_explain(args, out)
        run: Callable[[argparse.Namespace, Any, _Out], int] = args.run
        backend = _open(args.backend, _options(args.option))
        try:
            return run(args, backend, out)
        finally:
            _close(backend)
    except _Exit as exc:
        return fail(exc.code, str(exc))
    except ConfigurationError as exc:  # a bad URL or option, a missing extra
        return fail(USAGE, str(exc))
    except BackendError as exc:
        return fail(BACKEND, f"backend error: {exc}")
    except KeyboardInterrupt:
        return fail(130, "interrupted")
