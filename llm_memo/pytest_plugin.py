"""The pytest plugin (entry point ``pytest11``): the ``llm_cache`` fixture and record/replay.

Registered automatically when llm_memo is installed. It changes nothing for tests that do not
ask for it: ``llm_cache`` is a fixture, and record/replay applies only to tests that opt in with
the ``llm_memo`` marker (on a test, a class, or a module's ``pytestmark``) or by requesting the
``llm_recording`` fixture.

Record/replay (a thin shell over :mod:`llm_memo.recording`):

* ``--llm-memo-mode=replay|record|rewrite|off`` chooses the mode for the run. Without it, a
  test's marker ``mode=`` applies, else ``replay`` when the ``CI`` environment variable is true
  and ``record`` otherwise.
* ``@pytest.mark.llm_memo(path=None, mode=None, redact=None)``: ``path`` is the recordings
  folder, relative to the test module's folder (default ``recordings/<module name>``).
* ``--llm-memo-prune`` deletes recordings no test used, in folders whose tests all ran and
  passed; without it the unused ones are listed at the end of the run.
* An unrecorded call in ``replay`` fails the test with its function, request and the command
  that records it, even if the code under test swallowed the ``CacheMiss``.

The pattern (an autouse fixture that only acts on marked tests) is pytest-recording's.

It also registers the backend conformance suite (:mod:`llm_memo.testing.conformance`) for
pytest's assertion rewriting, so a third-party backend's failing conformance test shows what
was compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .errors import CacheMiss
from .recording import (
    Mode,
    Recording,
    RecordingBackend,
    Redactor,
    default_mode,
    use_recordings,
)
from .testing import CacheRecorder, recording_cache, restored_settings

__all__ = ["llm_cache", "llm_memo_redact", "llm_recording"]

# The shipped backend conformance suite (llm_memo.testing.conformance) asserts with plain
# ``assert``: have pytest rewrite it, so a failing backend shows the values compared. It must
# be registered before anything imports it (none of the imports above does), and the plugin is
# loaded (entry point pytest11) before any conftest or test module.
pytest.register_assert_rewrite("llm_memo.testing.conformance")

_MARKER = "llm_memo"


@dataclass
class _Folder:
    backend: RecordingBackend
    modes: set[Mode] = field(default_factory=set)
    hits: int = 0
    recorded: int = 0
    unrecorded: int = 0


@dataclass
class _Session:
    """Recordings state for one pytest run."""

    mode_option: Mode | None
    prune: bool
    folders: dict[Path, _Folder] = field(default_factory=dict)
    # Which opted-in tests use each folder, and which of them ran and passed: a folder is
    # pruned only when the two agree (nothing deselected, failed or skipped).
    expected: dict[Path, set[str]] = field(default_factory=dict)
    passed: dict[Path, set[str]] = field(default_factory=dict)
    spoiled: set[Path] = field(default_factory=set)
    pruned: dict[Path, list[str]] = field(default_factory=dict)

    def mode_for(self, marker: pytest.Mark | None) -> Mode:
        if self.mode_option is not None:
            return self.mode_option
        given = marker.kwargs.get("mode") if marker is not None else None
        if given is not None:
            try:
                return Mode(given)
            except ValueError:
                known = ", ".join(m.value for m in Mode)
                raise pytest.UsageError(
                    f"@pytest.mark.llm_memo(mode={given!r}): unknown mode; known: {known}"
                ) from None
        return default_mode()

    def folder(self, directory: Path) -> _Folder:
        found = self.folders.get(directory)
        if found is None:
            found = self.folders[directory] = _Folder(RecordingBackend(directory))
        return found


@dataclass(frozen=True)
class _Crash:
    message: str


class _ReplayFailure:
    """A failure report made of our own text: pytest prints it as is, and ``reprcrash.message``
    is the one-line summary shown by ``-ra`` and JUnit XML. (pytest's own ``TerminalRepr`` base
    is private; reports accept any object with ``toterminal``.)"""

    def __init__(self, text: str, summary: str) -> None:
        self.text = text
        self.reprcrash = _Crash(summary)

    def toterminal(self, tw: Any) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


_SESSION = pytest.StashKey[_Session]()
_RECORDING = pytest.StashKey[Recording]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llm-memo", "llm_memo record/replay")
    group.addoption(
        "--llm-memo-mode",
        choices=[m.value for m in Mode],
        default=None,
        help=(
            "record/replay mode for tests marked llm_memo: replay (never call; default when "
            "CI is set), record (record new calls; default otherwise), rewrite (record every "
            "call again), off (use the configured backend)"
        ),
    )
    group.addoption(
        "--llm-memo-prune",
        action="store_true",
        default=False,
        help="delete recordings no test used (only in folders whose tests all ran and passed)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "llm_memo(path=None, mode=None, redact=None): record/replay this test's cached LLM "
        "calls in a folder of JSON recordings (default: recordings/<module> next to the test)",
    )
    option = config.getoption("--llm-memo-mode", None)
    config.stash[_SESSION] = _Session(
        mode_option=Mode(option) if option else None,
        prune=bool(config.getoption("--llm-memo-prune", False)),
    )


def _opted_in(item: pytest.Item) -> bool:
    return item.get_closest_marker(_MARKER) is not None or "llm_recording" in getattr(
        item, "fixturenames", ()
    )


def _directory(item: pytest.Item, marker: pytest.Mark | None) -> Path:
    base = Path(item.path).parent
    given: Any = None
    if marker is not None:
        given = marker.kwargs.get("path", marker.args[0] if marker.args else None)
    if given is None:
        return (base / "recordings" / Path(item.path).stem).resolve()
    return (base / Path(given)).resolve()


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[_SESSION]
    for item in session.items:
        if _opted_in(item):
            folder = _directory(item, item.get_closest_marker(_MARKER))
            state.expected.setdefault(folder, set()).add(item.nodeid)


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        if _opted_in(item):
            state = item.config.stash[_SESSION]
            state.spoiled.add(_directory(item, item.get_closest_marker(_MARKER)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report: pytest.TestReport = yield
    recording = item.stash.get(_RECORDING, None)
    if recording is None or recording.backend is None:
        return report
    state = item.config.stash[_SESSION]
    directory = recording.backend.directory
    if report.when == "call" and recording.unrecorded:
        text = recording.report(rerun=f"pytest {item.nodeid}")
        excinfo = call.excinfo
        functions = sorted({u.function for u in recording.unrecorded})
        summary = f"no recording for {', '.join(functions)} (record: --llm-memo-mode=record)"
        if report.passed:  # the code under test swallowed the CacheMiss: still a failure
            report.outcome = "failed"
            failure = _ReplayFailure(f"{item.path}: {summary}\n\n{text}", summary)
            report.longrepr = failure  # type: ignore[assignment]  # duck-typed TerminalRepr
        elif excinfo is not None and excinfo.errisinstance(CacheMiss):
            # The traceback would only walk llm_memo's driver; say where and why instead.
            where = next(
                (f"{e.path}:{e.lineno + 1}" for e in excinfo.traceback if e.path == item.path),
                str(item.path),
            )
            failure = _ReplayFailure(f"{where}: CacheMiss\n\n{text}", summary)
            report.longrepr = failure  # type: ignore[assignment]  # duck-typed TerminalRepr
        else:
            report.sections.append(("llm_memo replay", text))
    if report.failed or report.skipped:
        state.spoiled.add(directory)
    elif report.when == "call":
        state.passed.setdefault(directory, set()).add(item.nodeid)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    recording = item.stash.get(_RECORDING, None)
    if recording is not None:
        # A conftest fixture set up after ours may have reset llm_memo's configuration.
        recording.ensure_active()
    return (yield)


@pytest.fixture
def llm_cache() -> Iterator[CacheRecorder]:
    """A fresh in-memory cache for this test, replacing every cached function's backend.

    Yields a :class:`~llm_memo.testing.CacheRecorder` with ``.hits``, ``.misses``,
    ``.events``, ``.entries()`` and ``.advance(seconds)``. Nothing leaks between tests: every
    process-wide setting the test changes (``configure(...)`` calls included) is restored at
    teardown.

    .. versionadded:: 0.1.0
    """
    with recording_cache() as recorder:
        yield recorder


@pytest.fixture
def llm_memo_redact() -> Redactor | None:
    """The redactor applied to recordings before they are written (default: none).

    Override it in a ``conftest.py`` to scrub every recording of a suite::

        @pytest.fixture
        def llm_memo_redact():
            return redact_keys("id", "system_fingerprint")

    A marker's ``redact=`` wins over it.

    .. versionadded:: 0.1.0
    """
    return None


@pytest.fixture
def llm_recording(
    request: pytest.FixtureRequest, llm_memo_redact: Redactor | None
) -> Iterator[Recording]:
    """Record/replay this test's cached calls (see the module docstring for modes and paths).

    Yields a :class:`~llm_memo.recording.Recording` with ``.mode``, ``.directory``,
    ``.events``, ``.hits``, ``.misses``, ``.entries()`` and ``.unrecorded``.

    .. versionadded:: 0.1.0
    """
    if "llm_cache" in request.fixturenames:
        pytest.fail(
            "a test uses either llm_cache (a fresh memory cache) or llm_memo recordings, not both",
            pytrace=False,
        )
    state = request.config.stash[_SESSION]
    marker = request.node.get_closest_marker(_MARKER)
    mode = state.mode_for(marker)
    if mode is Mode.OFF:
        with restored_settings(), use_recordings("", Mode.OFF) as recording:
            request.node.stash[_RECORDING] = recording
            yield recording
        return
    folder = state.folder(_directory(request.node, marker))
    redact = marker.kwargs.get("redact") if marker is not None else None
    folder.backend.redact = redact if redact is not None else llm_memo_redact
    folder.modes.add(mode)
    # restored_settings: whatever the test configures is undone at teardown.
    with restored_settings(), use_recordings(folder.backend, mode) as recording:
        request.node.stash[_RECORDING] = recording
        try:
            yield recording
        finally:
            folder.hits += recording.hits
            if mode is Mode.REPLAY:
                folder.unrecorded += len(recording.unrecorded)
            else:
                folder.recorded += recording.misses


@pytest.fixture(autouse=True)
def _llm_memo_marker(request: pytest.FixtureRequest) -> None:
    """Turn recordings on for tests marked ``llm_memo``; a no-op for every other test."""
    if request.node.get_closest_marker(_MARKER) is not None:
        request.getfixturevalue("llm_recording")


def _complete(state: _Session, directory: Path) -> bool:
    """Whether every test using ``directory`` ran and passed (so "unused" means unused)."""
    if directory in state.spoiled:
        return False
    return state.expected.get(directory, set()) <= state.passed.get(directory, set())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_SESSION, None)
    if state is None or not state.prune or exitstatus != 0:
        return
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker sees only its share of the tests: never prune there
    for directory, folder in state.folders.items():
        if _complete(state, directory):
            doomed = folder.backend.unused()
            for key in doomed:
                folder.backend.delete(key)
            state.pruned[directory] = doomed


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_SESSION, None)
    if state is None or not state.folders:
        return
    tr = terminalreporter
    tr.section("llm_memo recordings")
    root = Path(config.rootpath)
    for directory, folder in sorted(state.folders.items()):
        where = directory.relative_to(root) if directory.is_relative_to(root) else directory
        modes = "/".join(sorted(m.value for m in folder.modes))
        line = f"{where} ({modes}): {folder.hits} replayed, {folder.recorded} recorded"
        if folder.unrecorded:
            line += f", {folder.unrecorded} unrecorded"
        tr.write_line(line)
        if directory in state.pruned:
            tr.write_line(f"  pruned {_plural(len(state.pruned[directory]), 'unused recording')}")
            continue
        unused = folder.backend.unused()
        if not unused:
            continue
        if _complete(state, directory):
            why = (
                "(--llm-memo-prune deletes them)"
                if not state.prune
                else "(not pruned: the run failed)"
            )
        else:
            why = "(some tests using this folder did not run or pass, so some may be in use)"
        tr.write_line(f"  {_plural(len(unused), 'recording')} no test used {why}:")
        for key in unused[:20]:
            tr.write_line(f"    {folder.backend.path_for(key).relative_to(directory)}")
        if len(unused) > 20:
            tr.write_line(f"    ... and {len(unused) - 20} more")
