"""Rate-limited warnings for backend failures: one log line per burst per backend, with how
many more failed since the last line. Every failure is still counted by the caller; only the
logging is thinned, so an outage does not flood the log with one line per call.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from . import _fork

__all__ = ["ErrorLog"]

# Backend failures are logged at most once per this many seconds per backend ("per burst");
# every one is still counted.
_ERROR_LOG_INTERVAL = 30.0


class ErrorLog:
    """Rate-limited warning for backend failures: one line per burst, with a count."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._lock = threading.Lock()
        self._last: dict[int, float] = {}
        self._suppressed: dict[int, int] = {}
        _fork.register(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def log(self, function_id: str, backend: Any, exc: BaseException, during: str) -> None:
        ident = id(backend)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(ident)
            if last is not None and now - last < _ERROR_LOG_INTERVAL:
                self._suppressed[ident] = self._suppressed.get(ident, 0) + 1
                return
            self._last[ident] = now
            suppressed = self._suppressed.pop(ident, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        self._logger.warning(
            "%r failed during %s for %s; calling through: %s%s",
            backend,
            during,
            function_id,
            exc,
            more,
        )
