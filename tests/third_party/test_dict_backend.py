"""A backend written outside the package passes the shipped conformance suite.

``DictBackend`` (``dict_backend.py``) uses only llm_memo's public protocol; its tests are what a
third-party author writes: subclass :class:`llm_memo.testing.conformance.BackendConformance` and
provide the fixtures. The same suite is run once more in a separate pytest process, in a folder
with nothing of this repository's test setup (no conftest), to show that installing llm_memo is
all it takes, assertion rewriting included.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llm_memo.backends import Listing
from llm_memo.testing import FakeClock
from llm_memo.testing.conformance import BackendConformance, make_entry, make_key

from .dict_backend import DictBackend

pytest_plugins = ["pytester"]


class TestDictBackend(BackendConformance):
    """The whole suite, on the third-party backend, with a fake clock and raw planting."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def backend(self, clock: FakeClock) -> Iterator[DictBackend]:
        backend = DictBackend(clock=clock)
        yield backend
        backend.close()

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Callable[[float], None]:
        return clock.advance

    @pytest.fixture
    def plant(self, backend: DictBackend) -> Callable[[str, bytes], None]:
        def plant(key: str, raw: bytes) -> None:
            backend.data[key] = (raw, None)

        return plant

    def test_it_is_a_listing_backend(self, backend: DictBackend) -> None:
        """The backend's own extra ability (keys) is a protocol the CLI can check."""
        backend.set(make_key(), make_entry(), None)
        assert isinstance(backend, Listing)
        assert list(backend.keys()) == [make_key()]


_OUTSIDE = """
import pytest

from llm_memo.testing import FakeClock
from llm_memo.testing.conformance import BackendConformance

from dict_backend import DictBackend


class TestDictBackend(BackendConformance):
    @pytest.fixture
    def clock(self):
        return FakeClock()

    @pytest.fixture
    def backend(self, clock):
        backend = DictBackend(clock=clock)
        yield backend
        backend.close()

    @pytest.fixture
    def advance(self, clock):
        return clock.advance

    @pytest.fixture
    def plant(self, backend):
        return lambda key, raw: backend.data.__setitem__(key, (raw, None))


class Forgetful(DictBackend):
    def set(self, key, entry, ttl):
        pass  # stores nothing: the suite must say so


class TestForgetful(BackendConformance):
    @pytest.fixture
    def backend(self):
        return Forgetful()
"""


def test_a_backend_in_another_project_runs_the_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a fresh folder (no conftest of ours) and a pytest that loads no plugin but llm_memo's
    (autoload off, ``-p llm_memo.pytest_plugin``), subclassing the shipped suite runs every test:
    the third-party backend passes them all (the bulk-read test skips: it has no get_many), and
    a backend that stores nothing fails with the compared values shown, because the plugin
    registered the suite for assertion rewriting."""
    shutil.copy(Path(__file__).with_name("dict_backend.py"), pytester.path / "dict_backend.py")
    pytester.makepyfile(test_outside=textwrap.dedent(_OUTSIDE))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess(
        "-p",
        "llm_memo.pytest_plugin",
        "-p",
        "no:cacheprovider",
        "-k",
        "TestDictBackend or test_set_replaces",
        "--rootdir",
        str(pytester.path),
    )
    outcomes = result.parseoutcomes()
    suite = [name for name in dir(BackendConformance) if name.startswith("test_")]
    # The tests of abilities DictBackend does not have skip: it has no get_many.
    optional = ["test_bulk_read_answers_each_key_as_get_does"]
    assert set(optional) <= set(suite)
    assert outcomes.get("passed") == len(suite) - len(optional), result.stdout.str()
    assert outcomes.get("skipped") == len(optional), result.stdout.str()
    assert outcomes.get("failed") == 1, result.stdout.str()
    # Rewritten: the failing assert shows what get() returned, not a bare AssertionError.
    result.stdout.fnmatch_lines(["E*assert MISSING is not MISSING"])
