"""Recordings as a backend: a folder of JSON files, one per cached call, committed with the tests.

The ``recordings://`` scheme (``recordings:///abs/path`` or ``recordings://relative/path``) is
a registry row like any other; it names :class:`llm_memo.recording.RecordingBackend`, this
store with reads stamped by ``configure()``'s clock and signing keys (this layer reads no
configuration: the public subclass supplies them as its ``default_stamp``). The package, one
room per concern:

=================  =============================================================================
``layout.py``      where each key's file lives (``<namespace>/<function>/<hash>.json``)
``document.py``    the file's JSON document (:class:`RecordedCall`, :func:`read_recording`)
``scrub.py``       what never reaches a file: credentials (:func:`scrub_request`) and what
                   users redact (:func:`redact_keys`)
``backend.py``     the store (:class:`RecordingBackend`): get, set, delete, clear, keys
=================  =============================================================================

Record / replay for test suites (modes, ``use_recordings``, the pytest plugin) is built on top
of it in :mod:`llm_memo.recording`, the public module that re-exports these names; its
``RecordingBackend`` follows ``configure()``'s clock and signing keys.
"""

from __future__ import annotations

from .backend import RecordingBackend, Stamp, unsigned_now
from .document import RECORDING_FORMAT, RecordedCall, read_recording
from .scrub import SCRUBBED, Redactor, redact_keys, scrub_request

__all__ = [
    "RECORDING_FORMAT",
    "SCRUBBED",
    "RecordedCall",
    "RecordingBackend",
    "Redactor",
    "Stamp",
    "read_recording",
    "redact_keys",
    "scrub_request",
    "unsigned_now",
]
