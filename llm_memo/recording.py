"""Record / replay for test suites: each cached call as one JSON file committed next to the tests.

:class:`RecordingBackend` is a backend (get, set, delete, clear, close, plus ``keys`` for
listing) over a folder of recordings, so the decorator drives it like any other store.
:func:`use_recordings` swaps it in for every cached function in the process, the way the
``llm_cache`` fixture swaps in a memory backend, and applies the :class:`Mode`:

=============  ==================================================================================
``replay``     ``only_if_cached``: answer from the recordings, never call; an unrecorded call
               raises :class:`~llm_memo.errors.CacheMiss` and is listed in
               :attr:`Recording.unrecorded`
``record``     answer from the recordings; calls with no recording run and are written
``rewrite``    every recording this run touches is produced again (the store treats recordings
               not yet rewritten in this run as absent; within the run, a repeated call hits)
``off``        nothing is swapped: calls use the configured backend, as without recordings
               (they are still counted in :attr:`Recording.events`)
=============  ==================================================================================

**One file per call**, at ``<folder>/<namespace>/<function>/<hash>.json`` (the escaped key
parts, so the path is the key), holding pretty-printed JSON with sorted top-level keys and no
timestamp, so the same call with the same answer always gives the same bytes and rewriting an
unchanged recording leaves the file untouched. Recordings do not age (``ttl`` and ``max_age`` do
not expire them) and carry no signature (reads are signed with the configured keys). The
layout, the document and the store live in :mod:`llm_memo.backends.recording`; this module is
the public face of record/replay and re-exports their names.

**Secrets.** The ``request`` field never holds a credential (:func:`scrub_request`: never-keyed
and credential parameters left out, header mappings dropped, secret-looking strings replaced by
:data:`SCRUBBED`). Keys are computed from the unscrubbed request, so scrubbing never makes two
requests one recording; credentials are never keyed, so a replay with other credentials finds
every recording. The ``value`` is stored as returned (a replay must return it exactly). What
else could be sensitive is yours: ``redact=`` takes a function from JSON to JSON applied to the
request view and to the value before they are written; :func:`redact_keys` builds one that
blanks named fields.

Not here: the pytest options, marker and fixtures (``pytest_plugin.py``, a thin shell over this
module).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import config
from ._text import FALSE_WORDS
from .backends import recording as _store
from .backends.recording import (
    RECORDING_FORMAT,
    SCRUBBED,
    RecordedCall,
    Redactor,
    read_recording,
    redact_keys,
    scrub_request,
)
from .errors import ConfigurationError
from .events import Event, Outcome, Stats

__all__ = [
    "RECORDING_FORMAT",
    "SCRUBBED",
    "Mode",
    "RecordedCall",
    "Recording",
    "RecordingBackend",
    "Redactor",
    "UnrecordedCall",
    "default_mode",
    "read_recording",
    "redact_keys",
    "scrub_request",
    "use_recordings",
]

# What a CI variable may say for "not CI" (any other value, "true" or a provider's name, is CI).
_NOT_CI = FALSE_WORDS | {""}


class Mode(str, enum.Enum):
    """What a recorded test run does with calls (see the module docstring).

    .. versionadded:: 0.1.0
    """

    REPLAY = "replay"
    RECORD = "record"
    REWRITE = "rewrite"
    OFF = "off"

    def __str__(self) -> str:
        return self.value


def default_mode(environ: dict[str, str] | None = None) -> Mode:
    """``replay`` when the ``CI`` environment variable is set to a true value, else ``record``.

    .. versionadded:: 0.1.0
    """
    env = os.environ if environ is None else environ
    return Mode.REPLAY if env.get("CI", "").strip().lower() not in _NOT_CI else Mode.RECORD


class RecordingBackend(_store.RecordingBackend):
    """The recordings store (:class:`llm_memo.backends.recording.RecordingBackend`, whose
    arguments it takes), with reads that follow ``configure()``.

    A read is stamped as created now by the configured clock and signed with the configured
    signing keys: the backends layer reads no configuration, so this class supplies them as
    its :meth:`default_stamp`. This is the class ``recordings://`` URLs, :func:`use_recordings`
    and the pytest plugin build.

    .. versionadded:: 0.1.0
    """

    @staticmethod
    def default_stamp() -> tuple[float, Sequence[bytes]]:
        """Now by the configured clock, and the configured signing keys."""
        s = config.settings()
        return s.clock(), s.signing_keys


# -- using recordings for a block ------------------------------------------------------------------


@dataclass(frozen=True)
class UnrecordedCall:
    """A call that ``replay`` mode could not answer (the function was not called).

    .. versionadded:: 0.1.0
    """

    function: str
    key: str
    request: Any
    path: Path
    problem: str | None = None

    def describe(self) -> str:
        """A multi-line description: function, key, request, expected file."""
        if self.request is None:
            request = "    (not captured)"
        else:
            text = orjson.dumps(self.request, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
            request = "\n".join("    " + line for line in text.decode().splitlines())
        lines = [
            f"  function: {self.function}",
            f"  key:      {self.key}",
            "  request:",
            request,
            f"  expected: {self.path}",
        ]
        if self.problem:
            lines.append(f"  (the file exists but is unusable: {self.problem})")
        return "\n".join(lines)


class Recording:
    """What :func:`use_recordings` (and the ``llm_recording`` fixture) yields.

    Attributes:
        mode: the :class:`Mode` in force.
        backend: the :class:`RecordingBackend` (``None`` in ``off`` mode).
        events: the first 10,000 cached calls' events in the block (the counts cover all).
        unrecorded: the calls ``replay`` could not answer, in order.

    .. versionadded:: 0.1.0
    """

    def __init__(self, mode: Mode, backend: _store.RecordingBackend | None) -> None:
        self.mode = mode
        self.backend = backend
        self.events: list[Event] = []
        # The counter fn.cache.stats() keeps, over every call in the block (events are capped).
        self._stats = Stats()
        self.unrecorded: list[UnrecordedCall] = []
        self._lock = threading.Lock()
        self._before: tuple[Any, Any] = (None, None)

    def __repr__(self) -> str:
        where = self.backend.directory if self.backend is not None else None
        return f"<Recording mode={self.mode.value} folder={where}>"

    # -- the swap (see use_recordings) ---------------------------------------------------

    def _enter(self) -> None:
        before = config.settings()
        self._before = (before.override_backend, before.directives.only_if_cached)
        self._apply(before)

    def _apply(self, current: config.Settings) -> None:
        changes: dict[str, Any] = {}
        if self._record not in current.observers:
            changes["observers"] = (*current.observers, self._record)
        if self.backend is not None:  # off mode swaps nothing; its calls are still counted
            changes["override_backend"] = self.backend
            self.backend.rewrite = self.mode is Mode.REWRITE
            if self.mode is Mode.REPLAY:
                changes["directives"] = dataclasses.replace(current.directives, only_if_cached=True)
        config._replace(**changes)

    def ensure_active(self) -> bool:
        """Re-apply the swap if llm_memo's configuration was reset since it was made (a
        ``conftest.py`` fixture calling ``config.reset()`` after the plugin's fixture); return
        whether that was needed."""
        s = config.settings()
        active = self._record in s.observers and (
            self.backend is None
            or (
                s.override_backend is self.backend
                and (self.mode is not Mode.REPLAY or s.directives.only_if_cached is True)
            )
        )
        if not active:
            self._apply(s)
        return not active

    def _exit(self) -> None:
        now = config.settings()
        changes: dict[str, Any] = {
            "observers": tuple(o for o in now.observers if o != self._record)
        }
        if self.backend is not None:
            backend_before, only_before = self._before
            changes["override_backend"] = backend_before
            if self.mode is Mode.REPLAY:
                changes["directives"] = dataclasses.replace(
                    now.directives, only_if_cached=only_before
                )
            self.backend.rewrite = False
        config._replace(**changes)

    @property
    def directory(self) -> Path | None:
        """The recordings folder (``None`` in ``off`` mode)."""
        return None if self.backend is None else self.backend.directory

    @property
    def hits(self) -> int:
        """Calls answered from recordings."""
        return self._stats.snapshot().hits

    @property
    def misses(self) -> int:
        """Calls that ran the function (recorded now), or found nothing in ``replay``."""
        counts = self._stats.snapshot()
        return counts.misses + counts.refreshes

    def entries(self) -> list[str]:
        """The keys of the recordings in the folder."""
        return [] if self.backend is None else list(self.backend.keys())

    def _record(self, event: Event) -> None:
        self._stats.record(event.outcome)
        with self._lock:
            if len(self.events) < 10_000:
                self.events.append(event)
        backend = self.backend
        if self.mode is Mode.REPLAY and event.outcome is Outcome.MISS and backend is not None:
            call = UnrecordedCall(
                function=event.function,
                key=event.key,
                request=backend.request_for(event.key),
                path=backend.path_for(event.key),
                problem=backend.problem(event.key),
            )
            with self._lock:
                self.unrecorded.append(call)

    def report(self, rerun: str = "") -> str:
        """Explain the unrecorded calls and how to record them (empty when there are none).

        Args:
            rerun: the command that re-runs the affected test, to show with the record flag.
        """
        if not self.unrecorded:
            return ""
        n = len(self.unrecorded)
        head = (
            f"llm_memo replay: {n} call{'s' if n > 1 else ''} with no recording "
            "(replay mode never calls the function):"
        )
        body = "\n\n".join(u.describe() for u in self.unrecorded)
        how = (
            "To record: run the test once with --llm-memo-mode=record (new calls only) or "
            "--llm-memo-mode=rewrite (everything it touches)"
            + (f", e.g.\n  {rerun} --llm-memo-mode=record" if rerun else "")
            + "\nthen commit the new files. A changed request (model, prompt, parameter) makes a "
            "new key: `llm-memo explain` compares two recordings."
        )
        return f"{head}\n\n{body}\n\n{how}"


@contextlib.contextmanager
def use_recordings(
    directory: str | os.PathLike[str] | _store.RecordingBackend,
    mode: Mode | str = Mode.RECORD,
    *,
    redact: Redactor | None = None,
) -> Iterator[Recording]:
    """Route every cached function's calls through a recordings folder, for a block.

    The folder's :class:`RecordingBackend` replaces every decorator's and ``configure``'s
    backend process-wide (threads included); an explicit ``cache_controls(backend=...)``
    inside the block still wins, as do directives the block sets itself. ``replay`` adds
    ``only_if_cached`` at the ``configure`` level.

    Args:
        directory: the recordings folder, or a :class:`RecordingBackend` to share between
            blocks (it remembers what was used).
        mode: a :class:`Mode` or its name.
        redact: see :func:`redact_keys`; ignored when a backend is passed.

    Raises:
        ConfigurationError: an unknown mode.

    Example::

        with use_recordings("tests/recordings/chat", "replay") as rec:
            assert ask("gpt-4o-mini", messages).choices
        assert not rec.unrecorded

    .. versionadded:: 0.1.0
    """
    try:
        mode = Mode(mode)
    except ValueError:
        known = ", ".join(m.value for m in Mode)
        raise ConfigurationError(f"unknown recording mode {mode!r}; known: {known}") from None
    backend: _store.RecordingBackend | None = None
    if mode is not Mode.OFF:
        if isinstance(directory, _store.RecordingBackend):
            backend = directory
        else:
            backend = RecordingBackend(directory, redact=redact)
    recording = Recording(mode, backend)
    recording._enter()
    try:
        yield recording
    finally:
        recording._exit()
