"""The llm-memo command, run in-process through main() against real backends."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from llm_memo import cache_controls, configure, llm_cached
from llm_memo.backends import MISSING, from_url, register_backend
from llm_memo.backends.disk import DiskBackend
from llm_memo.backends.objectstore import ObjectStoreBackend
from llm_memo.cli import main
from llm_memo.codec import seal
from llm_memo.errors import BackendError
from llm_memo.keys import key_string
from llm_memo.recording import use_recordings

from .backends.conformance import make_entry
from .servers import S3Server


class Answer(BaseModel):
    text: str
    score: float


class Run:
    """The result of one command: exit code, stdout, stderr (and stdout as JSON)."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def json(self) -> Any:
        return json.loads(self.out)


def cli(*argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())


def key(ns: str = "default", fn: str = "app.ask", n: int = 0) -> str:
    return key_string(ns, fn, f"{n:032x}")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[str, DiskBackend]]:
    """A disk cache with entries in two namespaces and two functions."""
    path = tmp_path / "disk"
    backend = DiskBackend(path)
    now = time.time()
    backend.set(key(n=1), make_entry(b'{"a":1}', created_at=now - 10, tokens=5), None)
    backend.set(key(n=2), make_entry(b'{"a":2}', created_at=now - 3 * 86400), None)
    backend.set(key(fn="app.summarise", n=3), make_entry(b'"s"', created_at=now - 60), None)
    backend.set(key(ns="v2", n=4), make_entry(b"[1,2]", created_at=now), None)
    yield str(path), backend
    backend.close()


class TestReading:
    """stats, ls and show."""

    def test_stats(self, disk: tuple[str, DiskBackend]) -> None:
        """Counts and bytes, by namespace and function; human and JSON."""
        url, _ = disk
        run = cli("stats", "-b", url)
        assert run.code == 0
        assert "entries: 4 (0 expired)" in run.out
        assert "app.summarise" in run.out
        data = cli("stats", "-b", url, "--json").json
        assert data["entries"] == 4
        assert {(f["namespace"], f["function"], f["entries"]) for f in data["functions"]} == {
            ("default", "app.ask", 2),
            ("default", "app.summarise", 1),
            ("v2", "app.ask", 1),
        }
        assert sum(n["bytes"] for n in data["namespaces"]) == data["bytes"] > 0

    def test_ls_filters(self, disk: tuple[str, DiskBackend]) -> None:
        """--namespace, --function (a glob), --older-than, --newer-than, --limit."""
        url, _ = disk

        def keys(*extra: str) -> list[str]:
            return [row["key"] for row in cli("ls", "-b", url, "--json", *extra).json]

        assert len(keys()) == 4
        assert keys("--namespace", "v2") == [key(ns="v2", n=4)]
        assert keys("--function", "app.sum*") == [key(fn="app.summarise", n=3)]
        assert keys("--namespace", "default", "--function", "app.ask") == [key(n=1), key(n=2)]
        assert keys("--older-than", "2d") == [key(n=2)]
        assert set(keys("--newer-than", "5m")) == {
            key(n=1),
            key(fn="app.summarise", n=3),
            key(ns="v2", n=4),
        }
        assert len(keys("--limit", "2")) == 2
        run = cli("ls", "-b", url, "--namespace", "nope")
        assert (run.code, run.out) == (1, "")
        assert key(n=1) in cli("ls", "-b", url).out

    def test_show_decodes_json_without_restoring_types(self, tmp_path: Path) -> None:
        """A model entry shows as its JSON; a compressed one is inflated; metadata is listed."""
        url = str(tmp_path / "c")

        @llm_cached(backend=url, ttl=3600)
        def grade(q: str) -> Answer:
            return Answer(text=q * 10_000, score=0.5)  # above the 16 KiB compression threshold

        grade("ok")
        k = grade.cache.key("ok")
        run = cli("show", "-b", url, k)
        assert run.code == 0
        assert "type:       model:tests.test_cli:Answer" in run.out
        assert "compressed" in run.out
        assert '"score": 0.5' in run.out
        data = cli("show", "-b", url, k, "--json").json
        assert data["value"] == {"text": "ok" * 10_000, "score": 0.5}
        assert data["compressed"] is True
        assert data["expires_at"] is not None

    def test_show_never_unpickles(self, tmp_path: Path) -> None:
        """A pickled entry is described, not loaded."""
        backend = DiskBackend(tmp_path / "c")
        backend.set(key(), make_entry(b"\x80\x04K\x01.", type_tag="pickle"), None)
        backend.close()
        run = cli("show", "-b", str(tmp_path / "c"), key())
        assert run.code == 0
        assert "never unpickled" in run.out

    def test_show_missing_key(self, disk: tuple[str, DiskBackend]) -> None:
        """Not found is exit code 1 with a message on stderr."""
        run = cli("show", "-b", disk[0], key(n=99))
        assert run.code == 1
        assert "no entry under" in run.err

    def test_default_backend_is_the_environment_or_the_embedded_disk(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without -b: $LLM_MEMO_BACKEND, else the user cache directory's disk cache."""

        @llm_cached
        def ask(q: str) -> str:
            return q

        ask("x")
        assert cli("ls", "--json").json[0]["function"].endswith("ask")
        monkeypatch.setenv("LLM_MEMO_BACKEND", str(tmp_path / "elsewhere"))
        assert cli("ls").code == 1


class TestWriting:
    """rm and purge."""

    def test_rm(self, disk: tuple[str, DiskBackend]) -> None:
        """Deletes the keys given; 1 when one of them was not there."""
        url, backend = disk
        assert cli("rm", "-b", url, key(n=1)).code == 0
        assert backend.get(key(n=1)) is MISSING
        run = cli("rm", "-b", url, key(n=2), key(n=1), "--json")
        assert run.code == 1
        assert run.json == {"removed": [key(n=2)], "missing": [key(n=1)]}

    def test_purge_expired_deletes_only_expired(self, tmp_path: Path) -> None:
        """--expired removes entries past expiry and stale window, keeps everything else."""
        configure(grace=0)  # the grace window is tested below
        url = str(tmp_path / "c")
        backend = DiskBackend(url)
        now = time.time()
        backend.set(key(n=1), make_entry(expires_at=now - 60), None)  # expired
        backend.set(key(n=2), make_entry(expires_at=now + 3600), None)  # fresh
        backend.set(key(n=3), make_entry(expires_at=None), None)  # never expires
        backend.set(key(n=4), make_entry(expires_at=now - 60, stale_window=600), None)  # stale
        backend.close()
        dry = cli("purge", "-b", url, "--expired", "--dry-run", "--json")
        assert dry.json["keys"] == [key(n=1)]
        run = cli("purge", "-b", url, "--expired")
        assert run.code == 0
        assert "purged 1 entry" in run.out
        left = {row["key"] for row in cli("ls", "-b", url, "--json").json}
        assert left == {key(n=2), key(n=3), key(n=4)}
        assert cli("purge", "-b", url, "--expired").code == 1  # nothing matched now

    def test_purge_expired_keeps_the_grace_window(self, tmp_path: Path) -> None:
        """With the default grace window (24 h), an entry expired a minute ago is kept for a
        read-time stale_if_error; one expired past the window is purged."""
        url = str(tmp_path / "c")
        backend = DiskBackend(url)
        now = time.time()
        backend.set(key(n=1), make_entry(expires_at=now - 60), None)
        backend.set(key(n=2), make_entry(expires_at=now - 2 * 86400), None)
        backend.close()
        dry = cli("purge", "-b", url, "--expired", "--dry-run", "--json")
        assert dry.json["keys"] == [key(n=2)], dry.json

    def test_purge_expired_uses_the_object_store_sweep(self, tmp_path: Path) -> None:
        """On file:// (object store), --expired runs the backend's purge_expired()."""
        url = f"file://{tmp_path / 'objects'}"
        past = ObjectStoreBackend.from_url(url, clock=lambda: time.time() - 7200)
        past.set(key(n=1), make_entry(), ttl=60)  # kept until an hour ago
        now = from_url(url)
        now.set(key(n=2), make_entry(), ttl=3600)
        now.set(key(n=3), make_entry(), ttl=None)
        run = cli("purge", "-b", url, "--expired", "--json")
        assert run.json["purged"] == 1
        assert sorted(now.keys()) == [key(n=2), key(n=3)]

    def test_purge_selections(self, disk: tuple[str, DiskBackend]) -> None:
        """--older-than, --namespace, --function (glob), --all; a selection is required."""
        url, backend = disk
        assert cli("purge", "-b", url).code == 2
        assert cli("purge", "-b", url, "--all", "--namespace", "v2").code == 2
        assert cli("purge", "-b", url, "--older-than", "1d").code == 0
        assert backend.get(key(n=2)) is MISSING
        assert cli("purge", "-b", url, "--namespace", "v2").code == 0
        assert backend.get(key(ns="v2", n=4)) is MISSING
        assert cli("purge", "-b", url, "--function", "*summar*").code == 0
        assert list(backend.keys()) == [key(n=1)]
        assert cli("purge", "-b", url, "--all", "--json").json["purged"] == 1
        assert list(backend.keys()) == []


class TestCopy:
    """copy SRC DST: resumable, with a progress bar."""

    def test_disk_to_file_is_resumable(self, disk: tuple[str, DiskBackend], tmp_path: Path) -> None:
        """Copies entries with their metadata; a second run skips what is there."""
        url, backend = disk
        dst_url = f"file://{tmp_path / 'copy'}"
        dst = from_url(dst_url)
        dst.set(key(n=1), make_entry(b'"already"'), None)  # as if an earlier run was cut short
        out, err = io.StringIO(), io.StringIO()
        code = main(["copy", url, dst_url, "--progress", "--json"], stdout=out, stderr=err)
        assert code == 0
        assert json.loads(out.getvalue()) == {"listed": 4, "copied": 3, "skipped": 1, "expired": 0}
        assert "copy [" in err.getvalue()
        assert "4/4" in err.getvalue()
        got = dst.get(key(n=2))
        want = backend.get(key(n=2))
        assert got is not MISSING
        assert want is not MISSING
        assert (got.value, got.created_at, got.tokens) == (want.value, want.created_at, want.tokens)
        assert dst.get(key(n=1)).value == b'"already"'  # type: ignore[union-attr]
        again = cli("copy", url, dst_url, "--json")
        assert again.json["copied"] == 0
        assert again.json["skipped"] == 4
        assert cli("copy", url, dst_url, "--overwrite", "--json").json["copied"] == 4

    def test_filters_and_expired_entries(self, tmp_path: Path) -> None:
        """--namespace limits the copy; entries past their retention (grace 0 here: past
        expiry) are not copied."""
        configure(grace=0)
        src = str(tmp_path / "src")
        backend = DiskBackend(src)
        backend.set(key(n=1), make_entry(expires_at=time.time() - 1), None)
        backend.set(key(n=2), make_entry(), None)
        backend.set(key(ns="other", n=3), make_entry(), None)
        backend.close()
        run = cli("copy", src, str(tmp_path / "dst"), "--namespace", "default", "--json")
        assert run.json == {"listed": 2, "copied": 1, "skipped": 0, "expired": 1}
        assert cli("copy", str(tmp_path / "empty"), str(tmp_path / "dst")).code == 1

    @pytest.mark.s3
    def test_disk_to_s3(self, tmp_path: Path, s3_server: S3Server) -> None:
        """A real disk cache moves to a real S3 bucket (moto), then serves hits from there."""
        src = str(tmp_path / "disk")

        @llm_cached(backend=src)
        def ask(q: str) -> dict:
            return {"answer": q}

        for q in ("a", "b", "c"):
            ask(q)
        bucket = s3_server.create_bucket()
        options = [
            f"--dst-option=storage_options.{name}={value}"
            for name, value in s3_server.storage_options.items()
        ]
        run = cli("copy", src, f"s3://{bucket}/cache", *options, "--json")
        assert run.code == 0, run.err
        assert run.json["copied"] == 3
        assert cli("copy", src, f"s3://{bucket}/cache", *options, "--json").json["skipped"] == 3
        s3 = from_url(f"s3://{bucket}/cache", storage_options=s3_server.storage_options)
        with cache_controls(backend=s3, only_if_cached=True) as scope:
            assert [ask(q) for q in ("a", "b", "c")] == [{"answer": q} for q in "abc"]
        assert scope.hits == 3
        listed = cli(
            "stats",
            "-b",
            f"s3://{bucket}/cache",
            *(f"-o=storage_options.{k}={v}" for k, v in s3_server.storage_options.items()),
            "--json",
        )
        assert listed.json["entries"] == 3


class TestExplain:
    """explain A B over recordings."""

    def _record(self, folder: Path) -> tuple[str, str]:
        @llm_cached(name="app.ask")
        def ask(model: str, messages: list[dict], temperature: float = 0.0) -> str:
            return "ok"

        msgs = [{"role": "user", "content": "hi"}]
        with use_recordings(folder, "record"):
            ask("gpt-4o", msgs)
            ask("gpt-4o", msgs, temperature=0.7)
        return ask.cache.key("gpt-4o", msgs), ask.cache.key("gpt-4o", msgs, temperature=0.7)

    def test_two_recording_files(self, tmp_path: Path) -> None:
        """The differing request fields are named."""
        self._record(tmp_path / "rec")
        files = sorted((tmp_path / "rec").rglob("*.json"))
        run = cli("explain", str(files[0]), str(files[1]))
        assert run.code == 0
        assert "different keys" in run.out
        assert "temperature: 0 != 0.7" in run.out or "temperature: 0.7 != 0" in run.out

    def test_keys_in_a_recordings_folder(self, tmp_path: Path) -> None:
        """Keys are looked up in -b recordings://FOLDER; JSON lists the differences."""
        a, b = self._record(tmp_path / "rec")
        run = cli("explain", "-b", f"recordings://{tmp_path / 'rec'}", a, b, "--json")
        assert run.json["same"] is False
        assert run.json["differences"] == [{"path": "temperature", "a": 0, "b": 0.7}]
        same = cli("explain", "-b", f"recordings://{tmp_path / 'rec'}", a, a)
        assert "same key" in same.out

    def test_needs_recordings(self, disk: tuple[str, DiskBackend]) -> None:
        """Other backends keep no request: a usage error that says what to pass."""
        run = cli("explain", "-b", disk[0], key(n=1), key(n=2))
        assert run.code == 2
        assert "only recordings keep the request" in run.err
        assert cli("explain", "-b", "recordings:///nonexistent", key(n=1), key(n=2)).code == 1


class _NoListing:
    """A backend without keys(): listing commands must refuse it clearly."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> _NoListing:
        return cls()

    def get(self, key: str) -> Any:
        return MISSING

    def set(self, key: str, entry: Any, ttl: Any) -> None:
        pass

    def delete(self, key: str) -> bool:
        return False

    def clear(self, prefix: str = "") -> int:
        return 0

    def close(self) -> None:
        pass


class _Broken(_NoListing):
    @classmethod
    def from_url(cls, url: str, **options: Any) -> _Broken:
        return cls()

    def keys(self, prefix: str = "") -> Iterator[str]:
        raise BackendError("connection refused")


class TestErrors:
    """Exit codes: 2 usage, 3 backend failure."""

    def test_usage_errors(self, tmp_path: Path) -> None:
        """Bad arguments, URLs and options are 2, with a message."""
        assert cli("ls", "--older-than", "soon").code == 2
        assert cli("frobnicate").code == 2
        run = cli("ls", "-b", "memory://")
        assert (run.code, "cannot see it" in run.err) == (2, True)
        assert cli("ls", "-b", "nosuchscheme://x").code == 2
        assert cli("ls", "-b", str(tmp_path), "-o", "novalue").code == 2
        assert cli("ls", "-b", f"file://{tmp_path}", "-o", "bogus=1").code == 2

    def test_backend_without_listing(self) -> None:
        """A clear error naming the Listing protocol."""
        register_backend("test-nolist", _NoListing, replace=True)
        run = cli("ls", "-b", "test-nolist://")
        assert run.code == 2
        assert "cannot list its keys" in run.err
        assert "Listing" in run.err
        assert cli("purge", "-b", "test-nolist://", "--namespace", "x").code == 1  # clear() works

    def test_backend_failure(self) -> None:
        """A BackendError is exit code 3."""
        register_backend("test-broken", _Broken, replace=True)
        run = cli("stats", "-b", "test-broken://")
        assert run.code == 3
        assert "backend error: connection refused" in run.err

    def test_python_dash_m_and_version(self, tmp_path: Path) -> None:
        """python -m llm_memo is the same command."""
        env = {**os.environ, "LLM_MEMO_BACKEND": str(tmp_path / "c")}
        done = subprocess.run(
            [sys.executable, "-m", "llm_memo", "ls"], capture_output=True, text=True, env=env
        )
        assert done.returncode == 1
        version = subprocess.run(
            [sys.executable, "-m", "llm_memo", "--version"], capture_output=True, text=True
        )
        assert version.returncode == 0
        assert version.stdout.startswith("llm-memo ")

    def test_console_script_is_declared(self) -> None:
        """pip installs an llm-memo command that runs main()."""
        from importlib.metadata import entry_points

        (script,) = [e for e in entry_points(group="console_scripts") if e.name == "llm-memo"]
        assert script.value == "llm_memo.cli:main"

    def test_signed_entries_show_as_signed(self, tmp_path: Path) -> None:
        """show reports signatures (the value is still shown)."""
        backend = DiskBackend(tmp_path / "c")
        k = key()
        entry = seal(
            k,
            "json",
            b'{"x":1}',
            created_at=time.time(),
            expires_at=None,
            stale_window=0.0,
            tokens=0,
            signing_keys=[b"s" * 32],
        )
        backend.set(k, entry, None)
        backend.close()
        run = cli("show", "-b", str(tmp_path / "c"), k, "--json")
        assert run.json["signed"] is True
        assert run.json["value"] == {"x": 1}


class TestNeverCreatesAStore:
    """Read commands (and rm / purge, and copy's source) on a store that does not exist say so
    (exit 1, "no cache at ...") and create nothing there."""

    @pytest.mark.parametrize(
        "argv",
        [
            pytest.param(("stats",), id="stats"),
            pytest.param(("ls",), id="ls"),
            pytest.param(("show", key()), id="show"),
            pytest.param(("rm", key()), id="rm"),
            pytest.param(("purge", "--expired"), id="purge"),
            pytest.param(("purge", "--all"), id="purge-all"),
        ],
    )
    @pytest.mark.parametrize("scheme", ["path", "disk", "file", "recordings"])
    def test_mistyped_location(self, tmp_path: Path, argv: tuple[str, ...], scheme: str) -> None:
        """A typo in -b is reported, not turned into an empty cache."""
        where = tmp_path / "typo" / "cache"
        url = {
            "path": str(where),
            "disk": f"disk://{where}",
            "file": f"file://{where}",
            "recordings": f"recordings://{where}",
        }[scheme]
        run = cli(argv[0], "-b", url, *argv[1:])
        assert run.code == 1, (run.code, run.out, run.err)
        assert f"no cache at {where}" in run.err, run.err
        assert not (tmp_path / "typo").exists(), "the command created a store at the typo"

    def test_existing_folder_that_is_not_a_cache(self, tmp_path: Path) -> None:
        """A folder that holds no disk cache stays as it was."""
        (tmp_path / "notes").mkdir()
        (tmp_path / "notes" / "todo.txt").write_text("x")
        run = cli("stats", "-b", str(tmp_path / "notes"))
        assert run.code == 1
        assert "no cache at" in run.err
        assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]

    def test_default_location_without_a_cache(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With nothing given and no cache yet, the embedded default is not created either."""
        from llm_memo.backends.disk import default_directory

        run = cli("stats")
        assert run.code == 1
        assert f"no cache at {default_directory()}" in run.err
        assert not os.path.exists(default_directory())

    def test_copy_source_must_exist(self, tmp_path: Path) -> None:
        """copy from a missing source creates neither source nor destination."""
        run = cli("copy", str(tmp_path / "nope"), str(tmp_path / "dst"))
        assert run.code == 1
        assert f"no cache at {tmp_path / 'nope'}" in run.err
        assert sorted(tmp_path.iterdir()) == []

    def test_copy_destination_is_created(
        self, disk: tuple[str, DiskBackend], tmp_path: Path
    ) -> None:
        """The destination of a copy is written to, so it may be new."""
        run = cli("copy", disk[0], str(tmp_path / "new-dst"), "--json")
        assert (run.code, run.json["copied"]) == (0, 4)

    @pytest.mark.s3
    def test_absent_bucket(self, s3_server: S3Server) -> None:
        """On S3, a bucket that does not exist, or a prefix with nothing in it, is reported
        like a missing folder (an object store has no empty folders to tell them apart)."""
        options = [f"-o=storage_options.{k}={v}" for k, v in s3_server.storage_options.items()]
        run = cli("stats", "-b", "s3://no-such-bucket-llm-memo/cache", *options)
        assert run.code == 1, (run.code, run.err)
        assert "no cache at s3://no-such-bucket-llm-memo/cache" in run.err
        bucket = s3_server.create_bucket()
        run = cli("ls", "-b", f"s3://{bucket}/cache", *options)
        assert run.code == 1, (run.code, run.err)
        assert f"no cache at s3://{bucket}/cache" in run.err
        store = from_url(f"s3://{bucket}/cache", storage_options=s3_server.storage_options)
        store.set(key(), make_entry(), None)
        run = cli("stats", "-b", f"s3://{bucket}/cache", *options, "--json")
        assert (run.code, run.json["entries"]) == (0, 1), run.err


class TestUnknownOptions:
    """-o options a backend does not know are usage errors (exit 2), never stored."""

    def test_object_store(self, tmp_path: Path) -> None:
        """file:// rejects an option it does not know."""
        (tmp_path / "objects").mkdir()
        run = cli("stats", "-b", f"file://{tmp_path / 'objects'}", "-o", "bogus=1")
        assert run.code == 2, (run.code, run.err)

    def test_disk_option_is_not_saved_into_the_cache(self, disk: tuple[str, DiskBackend]) -> None:
        """disk rejects -o bogus=1 instead of saving it into diskcache's settings table."""
        import sqlite3

        url, backend = disk
        backend.close()
        run = cli("stats", "-b", url, "-o", "bogus=1")
        assert run.code == 2, (run.code, run.out, run.err)
        with sqlite3.connect(os.path.join(url, "cache.db")) as db:
            settings = {row[0] for row in db.execute("SELECT key FROM Settings")}
        assert "bogus" not in settings, sorted(settings)

    @pytest.mark.redis
    def test_redis(self, redis_server: Any) -> None:
        """An option the Redis backend's from_url does not take is a usage error, not a crash."""
        run = cli("stats", "-b", redis_server.url, "-o", "bogus=1")
        assert run.code == 2, (run.code, run.err)
        assert "bogus" in run.err


def _foreign_entries(now: float) -> dict[str, bytes]:
    """Listed keys whose bytes this version cannot judge: newer format, corrupt, not ours."""
    newer = bytearray(make_entry(expires_at=now - 3600).to_bytes())
    newer[3] = 99  # the format byte of a future version
    return {
        key(n=11): bytes(newer),
        key(n=12): b"LMM\x01truncated",
        key(n=13): b"some other library's value",
    }


class TestPurgeOnlyWhatItCanJudge:
    """purge --expired deletes entries it can read and judge past their retention (expiry +
    stale window); everything else is kept and counted as skipped."""

    @pytest.mark.redis
    def test_redis(self, redis_server: Any) -> None:
        """Unreadable entries on Redis are kept and reported; stale ones are kept too."""
        configure(grace=0)  # judge by expiry + stale window only
        prefix = f"cli-{time.time_ns()}:"
        url = f"{redis_server.url}?prefix={prefix}"
        backend = from_url(url)
        now = time.time()
        try:
            backend.set(key(n=1), make_entry(expires_at=now - 60), None)  # expired: purged
            backend.set(key(n=2), make_entry(expires_at=now + 3600), None)  # fresh
            backend.set(key(n=3), make_entry(expires_at=now - 60, stale_window=600), None)
            for k, raw in _foreign_entries(now).items():
                redis_server.command("SET", prefix + k, raw)
            redis_server.command("HSET", prefix + key(n=14), "field", "value")  # another type
            dry = cli("purge", "-b", url, "--expired", "--dry-run", "--json")
            assert (dry.json["keys"], dry.json["skipped"]) == ([key(n=1)], 4), dry.json
            run = cli("purge", "-b", url, "--expired", "--json")
            assert run.code == 0, run.err
            assert (run.json["purged"], run.json["skipped"]) == (1, 4), run.json
            human = cli("purge", "-b", url, "--expired")
            assert "skipped 4" in human.out, human.out
            left = sorted(k.decode() for k in redis_server.command("KEYS", prefix + "*"))
            want = [key(n=2), key(n=3), key(n=11), key(n=12), key(n=13), key(n=14)]
            assert left == sorted(prefix + k for k in want)
        finally:
            backend.clear()
            backend.close()

    def test_disk(self, tmp_path: Path) -> None:
        """The same on disk, through the backend's sweep and through a filtered selection."""
        configure(grace=0)  # judge by expiry + stale window only
        url = str(tmp_path / "c")
        backend = DiskBackend(url)
        now = time.time()
        backend.set(key(n=1), make_entry(expires_at=now - 60), None)
        backend.set(key(n=2), make_entry(expires_at=now - 60, stale_window=600), None)
        backend.set(key(ns="other", n=5), make_entry(expires_at=now - 60), None)
        for k, raw in _foreign_entries(now).items():
            backend._cache.set(k, raw)
        filtered = cli("purge", "-b", url, "--expired", "--namespace", "default", "--json")
        assert (filtered.json["purged"], filtered.json["skipped"]) == (1, 3), filtered.json
        run = cli("purge", "-b", url, "--expired", "--json")
        assert (run.json["purged"], run.json["skipped"]) == (1, 3), run.json
        assert sorted(backend.keys()) == sorted([key(n=2), *_foreign_entries(now)])
        backend.close()

    def test_object_store(self, tmp_path: Path) -> None:
        """On file://, objects that are not entries of this version are kept and counted."""
        url = f"file://{tmp_path / 'objects'}"
        store = from_url(url)
        store.set(key(n=2), make_entry(), ttl=3600)
        past = ObjectStoreBackend.from_url(url, clock=lambda: time.time() - 7200)
        past.set(key(n=1), make_entry(), ttl=60)  # kept until an hour ago: purged
        for k, raw in _foreign_entries(time.time()).items():
            store.set(k, make_entry(), ttl=3600)
            Path(store._path(k)).write_bytes(raw)  # then replaced by bytes it cannot read
        run = cli("purge", "-b", url, "--expired", "--json")
        assert (run.json["purged"], run.json["skipped"]) == (1, 3), run.json
        assert sorted(store.keys()) == sorted([key(n=2), *_foreign_entries(time.time())])
