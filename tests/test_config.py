"""configure(), the LLM_MEMO_* environment, and the embedded default backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_memo import (
    ConfigurationError,
    MissingDependencyError,
    cache_controls,
    configure,
    llm_cached,
)
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

    @pytest.mark.parametrize(
        "name",
        ["LLM_MEMO_ENABLED", "LLM_MEMO_NO_CACHE", "LLM_MEMO_ONLY_IF_CACHED", "LLM_MEMO_STRICT"],
    )
    def test_env_booleans_are_strict_and_name_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, name: str
    ) -> None:
        """A boolean variable takes 1/0, true/false, yes/no, on/off in any case; anything else
        (a typo such as ``ture``) is a ConfigurationError that names the variable and the value."""
        for text, expected in [(" YES ", True), ("on", True), ("No", False), ("off", False)]:
            monkeypatch.setenv(name, text)
            config_module.reset()
            current = config_module.settings()
            field = name.removeprefix("LLM_MEMO_").lower()
            value = current.strict if field == "strict" else getattr(current.directives, field)
            assert value is expected, (name, text)
        monkeypatch.setenv(name, "ture")
        config_module.reset()
        with pytest.raises(ConfigurationError, match=f"{name}='ture' is not a boolean") as info:
            config_module.settings()
        assert isinstance(info.value, ValueError)


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


def test_fork_hook_goes_through_the_one_fork_registry() -> None:
    """config re-creates its lock and forgets URL-built backends in a forked child through
    ``_fork.on_fork`` (the only caller of ``os.register_at_fork``), not a hook of its own."""
    from llm_memo import _fork

    assert config_module._after_fork_in_child in _fork._callbacks
    source = Path(config_module.__file__).read_text()
    assert "register_at_fork" not in source


def _unused(*_: Any) -> None: ...


# -- configuration errors are raised where given (issue 9, section 1) ------------------------

BAD_URLS = {
    "unknown scheme": "bogus://x",
    "memory option": "memory://?bogus=1",
    "memory value": "memory://?max_entries=lots",
    "memory zero": "memory://?max_entries=0",
    "memory path": "memory://somewhere/else",
    "disk option": "disk:///srv/cache?bogus=1",
    "disk value": "disk:///srv/cache?size_limit=big",
    "redis port": "redis://localhost:notaport/0",
    "redis option": "redis://localhost:6379/0?bogus=1",
    "redis db": "redis://localhost:6379/zero",
    "object store query": "s3://bucket/prefix?region=x",
    "file query": "file:///srv/cache?x=1",
    "recordings without a folder": "recordings://",
}

WHERE: dict[str, Callable[[str], Any]] = {
    "configure": lambda url: configure(backend=url),
    "decorator": lambda url: llm_cached(backend=url)(lambda q: q),
    "cache_controls": lambda url: cache_controls(backend=url),
}


class TestConfigurationErrorsWhereGiven:
    @pytest.mark.parametrize("where", sorted(WHERE))
    @pytest.mark.parametrize("case", sorted(BAD_URLS))
    def test_bad_url_raises_where_given(self, where: str, case: str) -> None:
        """A malformed URL, an unknown scheme or option is a ConfigurationError at configure,
        the decorator and cache_controls, never later inside a call."""
        with pytest.raises(ConfigurationError):
            WHERE[where](BAD_URLS[case])

    @pytest.mark.parametrize("case", sorted(BAD_URLS))
    def test_bad_env_url_raises_at_first_read(
        self, case: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """LLM_MEMO_BACKEND is checked when settings are first read (decoration at the latest)."""
        monkeypatch.setenv("LLM_MEMO_BACKEND", BAD_URLS[case])
        config_module.reset()
        with pytest.raises(ConfigurationError):
            llm_cached(lambda q: q)

    @pytest.mark.parametrize("where", sorted(WHERE))
    def test_missing_extra_raises_where_given(
        self, where: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A scheme whose driver is not installed names the extra, where the URL is given."""
        from llm_memo.backends import _registry

        real = _registry._installed
        monkeypatch.setattr(_registry, "_installed", lambda name: name != "s3fs" and real(name))
        with pytest.raises(MissingDependencyError, match=r"llm-memo\[s3\]"):
            WHERE[where]("s3://bucket/prefix")

    def test_validation_creates_nothing(self, tmp_path: Path) -> None:
        """Validating a disk URL or path opens nothing: no directory appears."""
        for spec in (str(tmp_path / "a"), f"disk://{tmp_path / 'b'}?size_limit=1000000"):
            configure(backend=spec)
            llm_cached(backend=spec)(lambda q: q)
            with cache_controls(backend=spec):
                pass
        assert sorted(os.listdir(tmp_path)) == []

    def test_unknown_disk_option_never_reaches_diskcache(self, tmp_path: Path) -> None:
        """``-o bogus=1`` on disk (an option to from_url) is refused before diskcache could
        save it in its Settings table."""
        with pytest.raises(ConfigurationError, match="bogus"):
            from_url(f"disk://{tmp_path / 'c'}", bogus=1)
        with pytest.raises(ConfigurationError, match="bogus"):
            DiskBackend(tmp_path / "c", bogus=1)
        with pytest.raises(ConfigurationError, match="eviction_policy"):
            DiskBackend(tmp_path / "c", eviction_policy="sometimes")
        assert not (tmp_path / "c").exists()
        DiskBackend(tmp_path / "c", cull_limit=5).open()  # a real diskcache setting passes

    def test_unknown_memory_option(self) -> None:
        with pytest.raises(ConfigurationError, match="bogus"):
            from_url("memory://", bogus=1)

    def test_every_registered_scheme_validates(self) -> None:
        """Each built-in scheme's well-formed URL passes check_url (no scheme is forgotten)."""
        from llm_memo.backends._registry import _ROWS, check_url

        good = {
            "memory": "memory://?max_entries=5",
            "disk": "disk:///srv/llm?size_limit=10&timeout=1&async_timeout=0.05",
            "file": "file:///srv/llm",
            "redis": "redis://localhost:6379/0?socket_timeout=1",
            "rediss": "rediss://localhost:6380/0",
            "unix": "unix:///run/redis.sock?db=1",
            "redis+cluster": "redis+cluster://a:7000,b:7001/",
            "rediss+cluster": "rediss+cluster://a:7000,b:7001/",
            "redis+sentinel": "redis+sentinel://s1:26379,s2:26379/mymaster/0",
            "qdrant+local": "qdrant+local:///srv/q",
            "recordings": "recordings:///srv/recordings",
        }
        for scheme in sorted(_ROWS):
            url = good.get(scheme, f"{scheme}://host/bucket")
            check_url(url)
        with pytest.raises(ConfigurationError):
            check_url("redis://localhost:6379/0", bogus=1)

    def test_network_checks_do_not_import_heavy_drivers(self) -> None:
        """Validating a qdrant or object-store URL looks the driver up without importing it."""
        code = textwrap.dedent(
            """
            import sys
            from llm_memo import configure
            configure(backend="qdrant://localhost:6333/c")
            configure(backend="s3://bucket/prefix")
            configure(backend="gs://bucket/prefix")
            heavy = [m for m in ("qdrant_client", "s3fs", "gcsfs", "fsspec") if m in sys.modules]
            print(heavy)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]", done.stdout


class TestGraceSetting:
    def test_default_env_and_configure(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """grace defaults to 24 h; LLM_MEMO_GRACE and configure(grace=...) set it."""
        import datetime

        monkeypatch.delenv("LLM_MEMO_GRACE", raising=False)
        config_module.reset()
        assert config_module.settings().grace == 86400.0
        monkeypatch.setenv("LLM_MEMO_GRACE", "600")
        config_module.reset()
        assert config_module.settings().grace == 600.0
        assert configure(grace=0).grace == 0.0
        assert configure(grace=datetime.timedelta(hours=1)).grace == 3600.0
        for bad in (-1, "soon", None, float("inf")):
            with pytest.raises(ConfigurationError):
                configure(grace=bad)  # type: ignore[arg-type]
        monkeypatch.setenv("LLM_MEMO_GRACE", "a while")
        config_module.reset()
        with pytest.raises(ConfigurationError, match="LLM_MEMO_GRACE"):
            config_module.settings()
