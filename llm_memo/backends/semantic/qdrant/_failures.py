"""Which exceptions are Qdrant failures, and which of them say the server is unreachable.

What a failed client call raises: API and transport errors, a rate limit (429 with a retry
delay), and local mode's ValueError ("collection not found") / RuntimeError ("instance is
closed"). The breaker counts only :func:`unreachable` ones.
"""

from __future__ import annotations

from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import (
    ApiException,
    ResponseHandlingException,
    UnexpectedResponse,
)

from ....errors import BackendError

__all__ = ["FAILURES", "unreachable"]

FAILURES: tuple[type[BaseException], ...] = (
    ApiException, QdrantException, ValueError, RuntimeError, OSError,
)  # fmt: skip
# HTTP statuses that say "nobody is there to answer" (a proxy or load balancer in front), and
# the gRPC codes that do.
_UNAVAILABLE_STATUS = frozenset({502, 503, 504})
_UNAVAILABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
_RPC_ERROR: type[BaseException] | None = None
try:  # gRPC transport errors, when grpc is installed
    from grpc import RpcError  # type: ignore[import-untyped, import-not-found, unused-ignore]

    FAILURES = (*FAILURES, RpcError)
    _RPC_ERROR = RpcError
except ImportError:  # pragma: no cover - grpcio is a qdrant-client dependency
    pass


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the Qdrant server cannot be reached, the only thing the breaker
    counts: a transport failure (refused, reset, timed out), a 502/503/504 from whatever stands
    in front of it, gRPC ``UNAVAILABLE`` / ``DEADLINE_EXCEEDED``. An answer that refuses this
    request (any other status, a rate limit, local mode's "collection not found", a reply that
    does not parse) is not. A ``BackendError`` is judged by its cause."""
    if isinstance(exc, BackendError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, ResponseHandlingException):
        # Transport errors arrive wrapped; a response that does not validate is wrapped too.
        return not isinstance(exc.source, ValueError)  # pydantic's ValidationError is one
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _UNAVAILABLE_STATUS
    if _RPC_ERROR is not None and isinstance(exc, _RPC_ERROR):
        code = getattr(exc, "code", None)  # grpc.Call errors carry a status code
        return callable(code) and getattr(code(), "name", "") in _UNAVAILABLE_CODES
    return isinstance(exc, OSError)
