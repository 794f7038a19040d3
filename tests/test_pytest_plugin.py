"""The llm_cache fixture, exercised through pytester as users would run it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_fixture_isolates_tests_and_records(pytester: pytest.Pytester) -> None:
    """Each test gets a fresh cache; hits/misses/events/entries reflect only that test."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import threading
        from llm_memo import llm_cached, cache_controls
        from llm_memo.backends.memory import MemoryBackend

        calls = []

        @llm_cached(backend="memory://", ttl=60)
        def ask(q):
            calls.append(q)
            return {"a": q}

        def test_first(llm_cache):
            assert ask("x") == ask("x") == {"a": "x"}
            assert (llm_cache.misses, llm_cache.hits) == (1, 1)
            assert len(llm_cache.entries()) == 1
            assert [e.outcome.value for e in llm_cache.events] == ["miss", "hit"]

        def test_second_starts_empty(llm_cache):
            ask("x")
            assert llm_cache.misses == 1
            assert len(calls) == 2

        def test_threads_are_covered(llm_cache):
            t = threading.Thread(target=ask, args=("t",))
            t.start(); t.join()
            assert llm_cache.misses == 1

        def test_ttl_with_advance(llm_cache):
            ask("y"); llm_cache.advance(61); ask("y")
            assert llm_cache.misses == 2

        def test_explicit_backend_block_wins(llm_cache):
            other = MemoryBackend()
            with cache_controls(backend=other):
                ask("z")
            assert len(other) == 1
            assert llm_cache.entries() == []
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_tests_without_the_fixture_are_untouched(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A test that does not request llm_cache uses the configured backend as usual."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        f"""
        from llm_memo import llm_cached
        from llm_memo.backends.disk import DiskBackend

        backend = DiskBackend({str(tmp_path / "disk")!r})

        @llm_cached(backend=backend)
        def ask(q):
            return q

        def test_plain():
            ask("x")
            assert list(backend.keys())
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_configure_inside_a_test_does_not_leak(pytester: pytest.Pytester) -> None:
    """Whatever configure() changes inside a test using llm_cache (or recordings) is undone at
    teardown, override backend included: the next tests see the settings from before."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import dataclasses
        import pytest
        from llm_memo import config, configure, llm_cached
        from llm_memo.backends.memory import MemoryBackend

        def snapshot():
            s = config.settings()
            return {
                f.name: getattr(s, f.name)
                for f in dataclasses.fields(s)
                if f.name != "generation"
            }

        BEFORE = snapshot()
        plain = MemoryBackend()
        elsewhere = MemoryBackend()

        @llm_cached(backend=plain)
        def ask(q):
            return {"a": q}

        def test_1_configures_everything(llm_cache):
            configure(
                backend=elsewhere,
                ttl=5,
                max_age=9,
                namespace="leaked",
                no_store=True,
                strict=True,
                signing_keys=["k" * 16],
                on_event=lambda event: None,
                allow_pickle=True,
                wait_timeout=1,
                lock=True,
                lock_ttl=3,
                compress_threshold=10,
                clock=lambda: 0.0,
                embedder=object(),
            )
            ask("x")
            assert llm_cache.misses == 1

        def test_2_sees_the_settings_from_before():
            after = snapshot()
            changed = {k: (BEFORE[k], after[k]) for k in BEFORE if BEFORE[k] != after[k]}
            assert not changed, f"settings leaked from the previous test: {changed}"
            ask("y")
            assert [k.split(":")[2] for k in plain.keys()] == ["default"]
            assert len(elsewhere) == 0

        @pytest.mark.llm_memo(mode="record")
        def test_3_recorded_test_configures():
            configure(namespace="leaked-too", strict=True, only_if_cached=True)

        def test_4_after_a_recorded_test(llm_cache):
            after = snapshot()
            changed = {
                k: (BEFORE[k], after[k])
                for k in BEFORE
                if BEFORE[k] != after[k] and k not in ("override_backend", "observers", "clock")
            }
            assert not changed, f"settings leaked from the recorded test: {changed}"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


class TestTestingKit:
    """llm_memo.testing is importable without pytest; its conformance suite says what it needs."""

    def _run(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def test_the_kit_imports_no_test_framework(self) -> None:
        """Importing llm_memo.testing (fixtures helpers, record/replay) loads neither pytest nor
        hypothesis: only the conformance suite needs the testing extra."""
        done = self._run(
            """
            import sys
            import llm_memo.testing as kit
            assert kit.use_recordings and kit.Mode.REPLAY and kit.FakeClock
            print(sorted(m for m in ("pytest", "hypothesis") if m in sys.modules))
            """
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]"

    def test_conformance_without_the_extra_names_the_fix(self) -> None:
        """Without hypothesis installed, importing the suite is a MissingDependencyError that
        names the extra to install."""
        done = self._run(
            """
            import sys
            sys.modules["hypothesis"] = None  # as if it were not installed
            from llm_memo.errors import MissingDependencyError
            try:
                import llm_memo.testing.conformance
            except MissingDependencyError as exc:
                print(exc)
            """
        )
        assert done.returncode == 0, done.stderr
        assert "pip install 'llm-memo[testing]'" in done.stdout
