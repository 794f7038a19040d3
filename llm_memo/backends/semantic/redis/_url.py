"""``redis+semantic://`` URLs: our query parameters apart from the ``redis://`` URL of the entries.

Pure parsing, used by both generated backends' ``from_url``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ....errors import ConfigurationError
from ..._breaker import CircuitBreaker
from ..vectors import configured_embedder

__all__ = ["backend_options", "split_url"]

_URL_QUERY: dict[str, Callable[[str], Any]] = {
    "threshold": float,
    "candidates": int,
    "mode": str,
    "max_partition": int,
    "quantization": str,
}


def split_url(url: str) -> tuple[str, str, dict[str, Any]]:
    """``redis+semantic://...`` -> (scheme, the ``redis://`` URL for the entries, our settings).

    Raises:
        ConfigurationError: another scheme or a bad value.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("redis+semantic", "rediss+semantic"):
        raise ConfigurationError(
            f"{url!r} is not a semantic Redis URL; use redis+semantic://[:password@]host:6379/0"
        )
    rest, _, query = rest.partition("?")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        convert = _URL_QUERY.get(name)
        if convert is None:
            theirs.append((name, value))
            continue
        try:
            ours[name] = convert(value)
        except ValueError:
            raise ConfigurationError(f"query parameter {name}={value!r} is not valid") from None
    base = scheme.partition("+")[0]
    return scheme, f"{base}://{rest}" + (f"?{urlencode(theirs)}" if theirs else ""), ours


def backend_options(
    url: str, options: dict[str, Any]
) -> tuple[str, dict[str, Any], CircuitBreaker]:
    """What ``from_url`` builds a backend with: the entries' ``redis://`` URL, the constructor's
    keyword arguments (the configured embedder unless one is given) and the breaker."""
    scheme, redis_url, ours = split_url(url)
    kwargs = {**ours, **options}
    if kwargs.get("embedder") is None:
        kwargs["embedder"] = configured_embedder(scheme)
    breaker = kwargs.pop("breaker", None) or CircuitBreaker()
    return redis_url, kwargs, breaker
