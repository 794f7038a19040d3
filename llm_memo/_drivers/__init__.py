"""The runners of cached calls: plain function, coroutine function, generator, async generator.

The map:

* ``_async.py``: the runners, the recording stream and the ``fn.cache`` handle's backend
  operations, written once in async (:func:`run_async`, :func:`run_async_generator`,
  :class:`AsyncRecordingStream`, ``cached_value`` / ``delete_entry`` / ``clear_function``).
* ``_sync.py``: their sync twins (:func:`run_sync`, :func:`run_generator`,
  :class:`RecordingStream`, ...), GENERATED from ``_async.py`` by ``scripts/unasync``; never
  edited by hand.
* ``_judge.py``: what a found entry means for the call (fresh hit, stale fallback, a failed
  read), applying the decisions of :mod:`llm_memo._policy`; no I/O, shared by both twins.
* ``_streams.py``: recognising a returned stream, the recording state both recorders share, and
  the replay streams; no I/O.

The async runner always awaits its backend: :class:`~llm_memo._memo.Memo` hands it an async
view of a sync backend (:mod:`llm_memo._async_view`), so there is one runner per shape of
function and no sync/async branching inside it. The decorator (``_decorator.py``) picks the
runner once per function; a runner only sequences fetch, call, store and events.
"""

from __future__ import annotations

from ._async import (
    AsyncRecordingStream,
    run_async,
    run_async_generator,
)
from ._async import cached_value as acached_value
from ._async import clear_function as aclear_function
from ._async import delete_entry as adelete_entry
from ._streams import AsyncReplayStream, ReplayStream, as_returned, is_async_stream, is_stream
from ._sync import (
    RecordingStream,
    cached_value,
    clear_function,
    delete_entry,
    run_generator,
    run_sync,
)

__all__ = [
    "AsyncRecordingStream",
    "AsyncReplayStream",
    "RecordingStream",
    "ReplayStream",
    "acached_value",
    "aclear_function",
    "adelete_entry",
    "as_returned",
    "cached_value",
    "clear_function",
    "delete_entry",
    "is_async_stream",
    "is_stream",
    "run_async",
    "run_async_generator",
    "run_generator",
    "run_sync",
]
