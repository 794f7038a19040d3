"""``semantic+local:///path`` URLs, parsed without importing the engine (the registry's check
calls :func:`check_url` when a URL is configured)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ....errors import ConfigurationError

__all__ = ["DTYPES", "SCHEME", "check_settings", "check_url", "default_directory", "parse_url"]

SCHEME = "semantic+local"
#: Storage of the vectors inside the ANN index (scores are always computed in float32 from the
#: entry store): half floats by default, see the package docstring for the measurements.
DTYPES = ("f32", "f16", "i8")

_QUERY: dict[str, Callable[[str], Any]] = {
    "threshold": float,
    "candidates": int,
    "dtype": str,
    "connectivity": int,
    "expansion_add": int,
    "expansion_search": int,
    "widen": int,
    "timeout": float,
    "async_timeout": float,
}
#: Options ``from_url`` accepts beside the query parameters.
_OPTIONS = frozenset(_QUERY) | {"embedder", "guard", "clock"}


def default_directory() -> str:
    """``<user cache dir>/llm_memo/semantic`` (next to the disk backend's ``cache``)."""
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("llm_memo", appauthor=False), "semantic")


def parse_url(url: str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``semantic+local:///path?...`` -> (folder, constructor keyword arguments).

    Raises:
        ConfigurationError: another scheme, an unknown parameter or option, a bad value.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise ConfigurationError(
            f"{url!r} is not a {SCHEME}:// URL; use {SCHEME}:///path/to/folder"
        )
    if parts.fragment:
        raise ConfigurationError(f"{SCHEME}:// URLs take no fragment ({url!r})")
    folder = unquote(parts.netloc + parts.path)
    folder = os.path.abspath(os.path.expanduser(folder)) if folder else default_directory()
    kwargs: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        convert = _QUERY.get(name)
        if convert is None:
            raise ConfigurationError(
                f"unknown {SCHEME}:// parameter {name!r}; known: {', '.join(_QUERY)}"
            )
        try:
            kwargs[name] = convert(value)
        except ValueError:
            raise ConfigurationError(f"query parameter {name}={value!r} is not valid") from None
    unknown = sorted(set(options).difference(_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"unknown {SCHEME}:// option(s) {', '.join(unknown)}; known: "
            + ", ".join(sorted(_OPTIONS))
        )
    kwargs.update(options)
    return folder, kwargs


def check_settings(
    dtype: Any,
    connectivity: Any,
    expansion_add: Any,
    expansion_search: Any,
    waits: Any,
    widen: Any = 1,
) -> None:
    """The engine and lock settings, checked before anything is opened.

    Raises:
        ConfigurationError: a value out of range, naming the setting.
    """
    if dtype not in DTYPES:
        raise ConfigurationError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    ranges = [
        ("connectivity", connectivity, 2),
        ("expansion_add", expansion_add, 1),
        ("expansion_search", expansion_search, 1),
        ("widen", widen, 1),
    ]
    for name, value, low in ranges:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigurationError(f"{name} must be an int of at least {low}, not {value!r}")
    for name, value in waits:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ConfigurationError(f"{name} must be a non-negative number of seconds")


def check_url(url: str, **options: Any) -> None:
    """Validate a ``semantic+local://`` URL and options as ``from_url`` would, touching nothing.

    Raises:
        ConfigurationError: see :func:`parse_url` and :func:`check_settings`.
    """
    _, kwargs = parse_url(url, options)
    check_settings(
        kwargs.get("dtype", "f16"),
        kwargs.get("connectivity", 32),
        kwargs.get("expansion_add", 128),
        kwargs.get("expansion_search", 64),
        [(n, kwargs[n]) for n in ("timeout", "async_timeout") if n in kwargs],
        kwargs.get("widen", 1),
    )
