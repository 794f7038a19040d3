"""What the ``llm-memo`` command prints and returns: exit codes, human and JSON output.

:class:`Out` prints human lines or one JSON document (``--json``), never both;
:func:`describe` is the one view of an entry that ``ls``, ``show`` and ``--json`` share; the
progress bar of ``copy`` writes to stderr. Values are shown as JSON, never restored as a type and
never unpickled (:func:`value_json`).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from typing import Any, TextIO

import orjson

from ..codec import unseal
from ..entry import FLAG_COMPRESSED, Entry
from ..errors import CodecError
from ..keys import parse_key

__all__ = [
    "BACKEND",
    "NOT_FOUND",
    "OK",
    "USAGE",
    "Exit",
    "Out",
    "Progress",
    "describe",
    "human_age",
    "human_bytes",
    "iso",
    "value_json",
]

#: Exit codes: done; not found or nothing matched; usage error; the backend failed.
OK, NOT_FOUND, USAGE, BACKEND = 0, 1, 2, 3


class Exit(Exception):
    """Stop the command with an exit code and a message for stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def human_age(seconds: float) -> str:
    """``90`` -> ``"1.5m"``: the largest unit that fits, one decimal."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def iso(ts: float | None) -> str | None:
    """A timestamp as ISO 8601 UTC to the second (``None`` stays ``None``)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="seconds")


class Out:
    """Human lines, or (``--json``) one JSON document: each command calls both, one prints."""

    def __init__(self, as_json: bool, stream: TextIO) -> None:
        self.as_json = as_json
        self.stream = stream

    def line(self, text: str = "") -> None:
        if not self.as_json:
            print(text, file=self.stream)

    def document(self, data: Any) -> None:
        if self.as_json:
            print(json.dumps(data, indent=2, ensure_ascii=False), file=self.stream)


def describe(key: str, entry: Entry | None, now: float, expired: bool) -> dict[str, Any]:
    """The fields ``ls`` and ``show`` report for ``key`` (``entry`` ``None``: listed but no
    longer returned, shown as expired; ``expired``: the caller's judgement of ``entry``)."""
    parts = parse_key(key)
    out: dict[str, Any] = {
        "key": key,
        "namespace": parts.namespace if parts else None,
        "function": parts.function if parts else None,
    }
    if entry is None:
        out.update(expired=True)
        return out
    out.update(
        created_at=iso(entry.created_at),
        age_seconds=round(now - entry.created_at, 3),
        expires_at=iso(entry.expires_at),
        stale_window=entry.stale_window,
        expired=expired,
        type=entry.type_tag,
        bytes=entry.size,
        tokens=entry.tokens,
        compressed=bool(entry.flags & FLAG_COMPRESSED),
        signed=bool(entry.signature),
    )
    return out


def value_json(key: str, entry: Entry) -> tuple[Any, str | None]:
    """The entry's value as JSON, without restoring any type; or a note why not."""
    if entry.type_tag == "pickle":
        return None, f"a pickled value ({len(entry.value)} bytes): never unpickled here"
    try:
        payload = unseal(key, entry)  # no keys: only inflates; signatures are reported apart
        return orjson.loads(payload), None
    except (CodecError, orjson.JSONDecodeError) as exc:
        return None, f"the payload is not JSON ({exc})"


class Progress:
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
