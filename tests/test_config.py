"""configure(), the LLM_MEMO_* environment, and the embedded default backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from llm_memo import ConfigurationError, MissingDependencyError, configure, llm_cached
from llm_memo import config as config_module
from llm_memo.backends import from_url
from llm_memo.backends.disk import DiskBackend
from llm_memo.backends.memory import MemoryBackend

ROOT = Path(__file__).resolve().parents[1]


class TestEnvironment:
    def test_env_sets_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """LLM_MEMO_* variables are the defaults configure() starts from."""
        monkeypatch.setenv("LLM_MEMO_BACKEND", "memory://")
        monkeypatch.setenv("LLM_MEMO_TTL", "60")
        monkeypatch.setenv("LLM_MEMO_NAMESPACE", "ci")
        monkeypatch.setenv("LLM_MEMO_STRICT", "true")
        monkeypatch.setenv("LLM_MEMO_SIGNING_KEY", "a" * 20 + "," + "b" * 20)
        config_module.reset()
        s = config_module.settings()
        assert (s.directives.backend, s.directives.ttl, s.directives.namespace) == (
            "memory://",
            60.0,
            "ci",
        )
        assert s.strict is True
        assert s.signing_keys == (b"a" * 20, b"b" * 20)

    def test_explicit_configure_wins_over_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LLM_MEMO_TTL", "60")
        config_module.reset()
        configure(ttl=5)
        assert config_module.settings().directives.ttl == 5.0

    def test_env_none_ttl_and_bad_values(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LLM_MEMO_TTL", "none")
        config_module.reset()
        assert config_module.settings().directives.ttl is None
        monkeypatch.setenv("LLM_MEMO_TTL", "soon")
        config_module.reset()
        with pytest.raises(ConfigurationError, match="LLM_MEMO_TTL"):
            config_module.settings()

    def test_env_only_if_cached_for_offline_ci(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from llm_memo import CacheMiss

        monkeypatch.setenv("LLM_MEMO_ONLY_IF_CACHED", "1")
        monkeypatch.setenv("LLM_MEMO_BACKEND", "memory://")
        config_module.reset()

        @llm_cached
        def ask(q: str) -> str:
            raise AssertionError("must not be called")

        with pytest.raises(CacheMiss):
            ask("x")


class TestConfigure:
    def test_configure_backend_object_and_url(self) -> None:
        backend = MemoryBackend()
        configure(backend=backend)

        @llm_cached
        def ask(q: str) -> str:
            return q

        ask("x")
        assert len(backend) == 1

    def test_configure_rejects_bad_input(self) -> None:
        with pytest.raises(ConfigurationError):
            configure(bogus=1)
        with pytest.raises(ConfigurationError):
            configure(signing_keys=["short"])
        with pytest.raises(ConfigurationError):
            configure(compress_threshold=-1)

    def test_configure_changes_apply_to_decorated_functions(self) -> None:
        """Functions decorated before configure() follow it."""
        calls = []

        @llm_cached
        def ask(q: str) -> str:
            calls.append(q)
            return q

        configure(backend="memory://", enabled=False)
        ask("x")
        ask("x")
        configure(enabled=True)
        ask("x")
        ask("x")
        assert len(calls) == 3


class TestRegistry:
    def test_unknown_scheme_names_the_known_ones(self) -> None:
        with pytest.raises(ConfigurationError, match="known schemes"):
            from_url("nosuch://x")

    def test_missing_extra_names_the_install_command(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A scheme whose driver is not installed says which extra to install."""
        import llm_memo.backends._registry as registry

        monkeypatch.setitem(
            registry._ROWS,
            "fakestore",
            registry._Row("llm_memo_missing_driver:Backend", "llm_memo_missing_driver:B", "redis"),
        )
        with pytest.raises(MissingDependencyError, match=r"pip install 'llm-memo\[redis\]'"):
            from_url("fakestore://x")

    def test_register_backend(self) -> None:
        from llm_memo.backends import register_backend

        register_backend("mine", MemoryBackend)
        assert isinstance(from_url("mine://"), MemoryBackend)
        with pytest.raises(ConfigurationError, match="already registered"):
            register_backend("mine", MemoryBackend)


class TestDefaultBackend:
    def test_default_is_disk_in_user_cache_dir(self, tmp_path: Path) -> None:
        """With nothing configured, entries land in a DiskBackend under the user cache dir."""

        @llm_cached
        def ask(q: str) -> str:
            return q

        ask("x")
        backend = config_module.backend_from_spec(
            config_module.settings().directives.backend, False
        )
        assert isinstance(backend, DiskBackend)
        assert backend.directory == str(tmp_path / "xdg-cache" / "llm_memo" / "cache")

    def test_script_run_twice_hits(self, tmp_path: Path) -> None:
        """A script run twice is answered from the embedded default on the second run."""
        script = tmp_path / "script.py"
        script.write_text(
            textwrap.dedent(
                """
                from llm_memo import llm_cached

                @llm_cached
                def ask(q: str) -> dict:
                    print("CALLED")
                    return {"q": q}

                print(ask("hello"), ask.cache.stats().hits)
                """
            )
        )
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
        env.pop("LLM_MEMO_BACKEND", None)
        runs = [
            subprocess.run(
                [sys.executable, str(script)], capture_output=True, text=True, env=env, check=True
            ).stdout
            for _ in range(2)
        ]
        assert runs[0] == "CALLED\n{'q': 'hello'} 0\n"
        assert runs[1] == "{'q': 'hello'} 1\n"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_forked_child_rebuilds_url_backends(tmp_path: Path) -> None:
    """A forked worker gets its own backend objects, not the parent's connections."""
    configure(backend=f"disk://{tmp_path}")

    @llm_cached
    def ask(q: str) -> str:
        return q

    ask("warm")
    parent_backend = config_module._backends.copy()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ok = ask("warm") == "warm" and config_module._backends != parent_backend
            ok = ok and ask.cache.stats().hits >= 1
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"


def _unused(*_: Any) -> None: ...
