"""Object-store failures: "the store is unreachable" versus "this request was refused".

Only the first counts as a circuit-breaker failure (SPEC 6): one tenant's name the store
refuses, a value too large or an error reply on one object must never stop everyone caching.
:func:`_guarded` is the one BackendError boundary of both backends: whatever a driver raises
(botocore, aiohttp, the Azure SDK, ``OSError``, timeouts, a driver's own bug) becomes a
:class:`~llm_memo.errors.BackendError`, and the breaker's guard counts only
:class:`_UnreachableError`. Driver exception classes are looked up only in modules already
imported, so an S3 user never imports the Azure SDK for an isinstance check. No I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import sys
from collections.abc import Iterator, Mapping
from typing import Final

from ...errors import BackendError
from .._breaker import CircuitBreaker

# Driver exceptions that mean no answer came: connection refused, reset or dropped mid-reply,
# DNS failure, timeouts. Looked up only in modules already imported (building a filesystem
# imports its driver), so an S3 user never imports the Azure SDK for an isinstance check.
_UNREACHABLE: Final = (
    ("botocore.exceptions", ("ConnectionError", "HTTPClientError")),
    ("aiohttp", ("ClientConnectionError", "ClientPayloadError")),
    ("azure.core.exceptions", ("ServiceRequestError", "ServiceResponseError")),
    ("google.auth.exceptions", ("TransportError",)),
    # gcsfs turns a 502 into requests' ProxyError, a requests ConnectionError.
    ("requests.exceptions", ("ConnectionError", "Timeout")),
)
# OSError codes of an unreachable store (a network filesystem too); every other code (a name
# too long, permission denied, file too large, no space, EIO for an unknown S3 error) is about
# the one request.
_UNREACHABLE_ERRNOS: Final = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH",
        "EHOSTDOWN", "ENETUNREACH", "ENETDOWN", "ENETRESET", "ENOTCONN", "ESTALE",
    )
    if hasattr(errno, name)
)  # fmt: skip


def _unreachable_classes() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [ConnectionError, TimeoutError, asyncio.TimeoutError]
    for module_name, names in _UNREACHABLE:
        module = sys.modules.get(module_name)
        for name in names:
            cls = getattr(module, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found.append(cls)
    return tuple(found)


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a driver's error reply (botocore, Azure SDK, gcsfs, aiohttp)."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    for name in ("status_code", "status", "code"):
        status = getattr(exc, name, None)
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status < 600:
            return status
    return None


def _is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it: s3fs and adlfs re-raise driver errors ``from``
    them) says the store did not answer, or answered 5xx after the driver's retries."""
    kinds = _unreachable_classes()
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, kinds):
            return True
        if isinstance(cause, OSError) and cause.errno in _UNREACHABLE_ERRNOS:
            return True
        status = _status(cause)
        if status is not None and status >= 500:
            return True
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return False


class _UnreachableError(BackendError):
    """The store did not answer: the one kind of failure the circuit breaker counts."""


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


@contextlib.contextmanager
def _guarded(breaker: CircuitBreaker, url: str, op: str) -> Iterator[None]:
    """One operation on the store: driver errors become BackendError, and the breaker
    (through its guard) counts only "the store is unreachable" as a failure. A refusal of
    this one request, a cancelled task or KeyboardInterrupt counts as neither, which still
    ends a half-open probe."""
    with breaker.guard(url, outage=_UnreachableError):
        try:
            yield
        except BackendError:
            raise
        except Exception as exc:
            # The BackendError boundary: whatever a driver raises (aiohttp, botocore, the
            # Azure SDK, OSError, a driver's own bug) fails open for this call.
            if _is_unreachable(exc):
                raise _UnreachableError(
                    f"{url}: {op} failed, store unreachable: {_describe(exc)}"
                ) from exc
            raise BackendError(f"{url}: {op} refused: {_describe(exc)}") from exc
