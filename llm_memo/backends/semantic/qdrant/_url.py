"""``qdrant://host:port/collection`` and ``qdrant+local:///path`` URLs, parsed.

Pure parsing for both generated backends' ``from_url``: which settings go to qdrant-client,
which to the backend. Booleans (``?https=``, ``?prefer_grpc=``) are read with
:func:`llm_memo._text.parse_bool`, so a typo is an error naming the parameter, not ``False``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ...._text import parse_bool
from ....errors import ConfigurationError

__all__ = ["DEFAULT_TIMEOUT", "Parsed", "parse_url"]

#: Seconds a server request may take before the store counts as down.
DEFAULT_TIMEOUT = 2


def _flag(name: str) -> Callable[[str], bool]:
    def parse(value: str) -> bool:
        return parse_bool(value, f"?{name}")

    return parse


_QUERY: dict[str, Callable[[str], Any]] = {
    "collection": str,
    "https": _flag("https"),
    "prefer_grpc": _flag("prefer_grpc"),
    "grpc_port": int,
    "timeout": int,
    "prefix": str,
    "threshold": float,
    "candidates": int,
}
_LOCAL_QUERY = ("collection", "threshold", "candidates")
_BACKEND = ("collection", "threshold", "candidates")


@dataclass(frozen=True)
class Parsed:
    """A Qdrant URL's settings."""

    local: str | None  # ":memory:" or a folder, for qdrant+local
    client: dict[str, Any]  # qdrant-client keyword arguments (a server)
    backend: dict[str, Any]  # the backend's keyword arguments


def parse_url(url: str) -> Parsed:
    """Split a ``qdrant://`` / ``qdrant+local://`` URL into client and backend settings.

    Raises:
        ConfigurationError: another scheme, an unknown query parameter, a bad value (a boolean
            that is not one names the parameter).
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("qdrant", "qdrant+local"):
        raise ConfigurationError(
            f"{url!r} is not a Qdrant URL; use qdrant://host:6333/collection or "
            "qdrant+local:///path/to/folder (qdrant+local:// for in-memory)"
        )
    rest, _, query = rest.partition("?")
    settings: dict[str, Any] = {}
    allowed = _LOCAL_QUERY if scheme == "qdrant+local" else tuple(_QUERY)
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            raise ConfigurationError(
                f"unknown query parameter {name!r} in a {scheme}:// URL; known: "
                + ", ".join(allowed)
                + ". Pass other qdrant-client options as from_url(url, client_kwargs={...})"
            )
        try:
            settings[name] = _QUERY[name](value)
        except ValueError as exc:
            detail = f": {exc}" if _QUERY[name] not in (str, int, float) else ""
            raise ConfigurationError(
                f"query parameter {name}={value!r} is not valid{detail}"
            ) from None
    backend: dict[str, Any] = {k: settings.pop(k) for k in _BACKEND if k in settings}
    if scheme == "qdrant+local":
        location = unquote(rest) or ":memory:"
        if location != ":memory:":
            location = os.path.abspath(os.path.expanduser(location))
        return Parsed(location, {}, backend)
    parts = urlsplit(f"//{rest}")
    if parts.username or parts.password:
        raise ConfigurationError(
            "put the Qdrant API key in from_url(url, api_key=...) or the QDRANT_API_KEY "
            "environment variable, not in the URL"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"bad port in {url!r}") from None
    if not parts.hostname:
        raise ConfigurationError(f"{url!r} names no host; e.g. qdrant://localhost:6333/llm_memo")
    collection = unquote(parts.path.strip("/"))
    if "/" in collection:
        raise ConfigurationError(f"{url!r}: the path is one collection name")
    if collection:
        backend.setdefault("collection", collection)
    # No version check at construction: it is a request (and a warning) while Qdrant is down,
    # and the cache must start anyway.
    client = {"host": parts.hostname, "port": port or 6333, "timeout": DEFAULT_TIMEOUT,
              "check_compatibility": False, **settings}  # fmt: skip
    return Parsed(None, client, backend)
