"""Redis URLs: what ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://`` and
``redis+sentinel://`` name, parsed into a :class:`_Target` (deployment kind, hosts, connection
settings) without touching the network.

Pure code shared by both backends: the generated pair (``_async.py`` / ``_sync.py``) turns a
target into a redis-py client of its own flavour. Not here: building clients, the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from ..._text import parse_bool
from ...errors import ConfigurationError

_DEFAULT_PORT = 6379
_DEFAULT_SENTINEL_PORT = 26379
_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel")


def _flag(name: str) -> Callable[[str], bool]:
    # The one strict boolean parser; its ValueError becomes the ConfigurationError below.
    return lambda text: parse_bool(text, name)


# Query parameters a URL may carry, with their converters. Everything else goes in
# ``client_kwargs`` (the error for an unknown one says so).
_QUERY: dict[str, Callable[[str], Any]] = {
    "prefix": str,
    "db": int,
    "username": str,
    "password": str,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "max_connections": int,
    "client_name": str,
}
_TLS_QUERY: dict[str, Callable[[str], Any]] = {
    "ssl_cert_reqs": str,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_check_hostname": _flag("ssl_check_hostname"),
}


@dataclass(frozen=True)
class _Target:
    """What a URL names: the kind of deployment, where it is, and connection settings."""

    kind: Literal["standalone", "unix", "cluster", "sentinel"]
    label: str
    hosts: tuple[tuple[str, int], ...] = ()
    path: str = ""
    service: str = ""
    prefix: str = ""
    connection: dict[str, Any] = field(default_factory=dict)


def _hosts(text: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [::1]:6379
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise ConfigurationError(f"bad port {port_text!r} in {_redact(url)}") from None
        hosts.append((unquote(host), port))
    if not hosts:
        raise ConfigurationError(f"{_redact(url)} names no host; e.g. redis://localhost:6379/0")
    return tuple(hosts)


def _redact(url: str) -> str:
    """``url`` without its password, for messages and reprs."""
    parts = urlsplit(url)
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    if not at:
        return url
    user = userinfo.partition(":")[0]
    netloc = f"{user}:***@{hostlist}" if ":" in userinfo else f"{user}@{hostlist}"
    return parts._replace(netloc=netloc).geturl()


def _db(text: str, url: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(
            f"the database in {_redact(url)} must be a number (redis://host:6379/0)"
        ) from None


def _parse_url(url: str) -> _Target:
    """Parse any Redis URL llm_memo accepts into a :class:`_Target`.

    Raises:
        ConfigurationError: unknown scheme or query parameter, malformed host, port or db.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"{scheme}:// is not a Redis URL; use one of " + ", ".join(f"{s}://" for s in _SCHEMES)
        )
    tls = scheme.startswith("rediss")
    connection: dict[str, Any] = {}
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    if userinfo:
        user, has_password, password = userinfo.partition(":")
        if user:
            connection["username"] = unquote(user)
        if has_password:
            connection["password"] = unquote(password)
    known = {**_QUERY, **_TLS_QUERY}
    prefix = ""
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        convert = known.get(name)
        if convert is None:
            raise ConfigurationError(
                f"unknown query parameter {name!r} in a {scheme}:// URL; known: "
                + ", ".join(sorted(known))
                + ". Pass other redis-py options as from_url(url, client_kwargs={...})"
            )
        if name in _TLS_QUERY and not tls:
            raise ConfigurationError(
                f"{name} is a TLS option; use a rediss:// URL (or rediss+cluster://) for TLS"
            )
        try:
            converted = convert(value)
        except ValueError:
            raise ConfigurationError(f"query parameter {name}={value!r} is not valid") from None
        if name == "prefix":
            prefix = converted
        else:
            connection[name] = converted
    if tls:
        connection["ssl"] = True
    label = _redact(url).partition("?")[0]
    path = parts.path

    if scheme == "unix":
        if not path:
            raise ConfigurationError("a unix:// URL needs a socket path: unix:///run/redis.sock")
        return _Target("unix", label, path=unquote(path), prefix=prefix, connection=connection)
    if scheme in ("redis+cluster", "rediss+cluster"):
        if path.strip("/") not in ("", "0") or connection.get("db", 0) != 0:
            raise ConfigurationError(
                "Redis Cluster has only database 0; drop the /db from the URL "
                "(redis+cluster://host1:port1,host2:port2/)"
            )
        connection.pop("db", None)
        hosts = _hosts(hostlist, _DEFAULT_PORT, url)
        return _Target("cluster", label, hosts=hosts, prefix=prefix, connection=connection)
    if scheme == "redis+sentinel":
        segments = [unquote(s) for s in path.split("/") if s]
        if not segments or len(segments) > 2:
            raise ConfigurationError(
                "a redis+sentinel:// URL names the service and optionally the database: "
                "redis+sentinel://sentinel1:26379,sentinel2:26379/mymaster/0"
            )
        if len(segments) == 2:
            connection["db"] = _db(segments[1], url)
        hosts = _hosts(hostlist, _DEFAULT_SENTINEL_PORT, url)
        return _Target(
            "sentinel", label, hosts=hosts, service=segments[0], prefix=prefix,
            connection=connection,
        )  # fmt: skip
    hosts = _hosts(hostlist, _DEFAULT_PORT, url)
    if len(hosts) != 1:
        raise ConfigurationError(
            f"{scheme}:// takes one host; for several use redis+cluster:// or redis+sentinel://"
        )
    if path.strip("/"):
        connection["db"] = _db(path.strip("/"), url)
    return _Target("standalone", label, hosts=hosts, prefix=prefix, connection=connection)
