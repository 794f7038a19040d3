"""The key format: ``llm_memo:<format>:<namespace>:<function>:<hash>``, written and read here only.

:func:`key_string` (and the prefixes :func:`namespace_prefix` / :func:`function_prefix`, for
listing and clearing) write keys; :func:`parse_key` is the only parser of them, so backends,
recordings and the CLI never split a key themselves and a future format changes this module
alone. The namespace and function parts are percent-escaped to ``[A-Za-z0-9_.~%-]``: never
``:`` (the separator), ``/`` (object-store paths) or glob characters (Redis ``SCAN``).
:func:`digest` is the hash of canonical bytes that names an entry.

Not here: what is hashed (``canonical_form.py``, ``builder.py``).
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import unquote

import xxhash

from ..entry import FORMAT_VERSION

__all__ = [
    "KEY_ROOT",
    "KeyParts",
    "digest",
    "function_prefix",
    "key_string",
    "namespace_prefix",
    "parse_key",
]

_KEY_PREFIX = "llm_memo"
#: What every key llm_memo writes starts with. Backends list and clear "all of llm_memo's
#: entries" as the keys under this prefix, and call :func:`parse_key` to read one apart.
KEY_ROOT = _KEY_PREFIX + ":"


def digest(data: bytes) -> str:
    """xxh3-128 of ``data`` as 32 hex digits.

    .. versionadded:: 0.1.0
    """
    return xxhash.xxh3_128_hexdigest(data)


def _escape(part: str) -> str:
    # Percent-escape everything but [A-Za-z0-9_.~-] and keep the result ASCII: a key part may
    # not contain ":" (the separator), "/" (object-store paths) or glob characters (Redis SCAN).
    from urllib.parse import quote

    return quote(part, safe="")


@functools.lru_cache(maxsize=4096)
def namespace_prefix(namespace: str) -> str:
    """The key prefix shared by every entry in ``namespace`` (for listing and clearing).

    .. versionadded:: 0.1.0
    """
    return f"{_KEY_PREFIX}:{FORMAT_VERSION}:{_escape(namespace)}:"


@functools.lru_cache(maxsize=4096)
def function_prefix(namespace: str, function: str) -> str:
    """The key prefix shared by one function's entries in ``namespace``.

    .. versionadded:: 0.1.0
    """
    return f"{namespace_prefix(namespace)}{_escape(function)}:"


def key_string(namespace: str, function: str, hexdigest: str) -> str:
    """Assemble a key: ``llm_memo:<format>:<namespace>:<function>:<hash>``.

    .. versionadded:: 0.1.0
    """
    return function_prefix(namespace, function) + hexdigest


# A whole key: the root and four parts as _escape writes them (percent-escaped, ASCII, never
# ":" or "/"). One match per key: parse_key is on every object-store and recording access.
_PART = r"[A-Za-z0-9_.~%-]+"
_KEY_RE = re.compile(rf"{_KEY_PREFIX}:({_PART}):({_PART}):({_PART}):({_PART})")


class KeyParts(NamedTuple):
    """A key read apart by :func:`parse_key`: ``llm_memo:<format>:<namespace>:<function>:<hash>``.

    ``namespace`` and ``function`` are decoded (as the user wrote them); :attr:`escaped` gives
    the four parts as they appear in the key (safe as path segments and glob patterns).

    .. versionadded:: 0.1.0
    """

    format: str
    namespace: str
    function: str
    digest: str
    escaped: tuple[str, str, str, str]

    @property
    def current(self) -> bool:
        """Whether the key was written in this version's key format."""
        return self.format == str(FORMAT_VERSION)


def parse_key(key: str) -> KeyParts | None:
    """The parts of a key :func:`key_string` wrote, or ``None`` for any other string.

    This is the only parser of the key format: object-store layout, recordings and the CLI
    all read keys through it, so a future format changes one place.

    .. versionadded:: 0.1.0
    """
    match = _KEY_RE.fullmatch(key)
    if match is None:
        return None
    fmt, ns, fn, hexdigest = escaped = match.groups()
    return KeyParts(
        fmt,
        unquote(ns) if "%" in ns else ns,
        unquote(fn) if "%" in fn else fn,
        hexdigest,
        escaped,  # type: ignore[arg-type]  # a 4-group pattern gives 4 strings
    )
