"""Persistent counters (configure(persist_stats=...)): recorded off the hit path, flushed to the
backends that keep them (Redis against a real redis-server, disk, a local object store and the
S3 server), read back across processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llm_memo import _counters, configure, llm_cached
from llm_memo.backends import AsyncCounting, Counting
from llm_memo.backends._counters import day_of, merge
from llm_memo.backends.disk import DiskBackend
from llm_memo.backends.memory import MemoryBackend
from llm_memo.backends.objectstore import AsyncObjectStoreBackend, ObjectStoreBackend
from llm_memo.backends.redis import AsyncRedisBackend, RedisBackend
from llm_memo.errors import ConfigurationError
from llm_memo.metrics import aflush_stats, flush_stats
from llm_memo.testing import FakeClock
from tests.backends.test_redis import _counting
from tests.servers import RedisCluster, RedisServer, S3Server
from tests.test_cli import cli

NOW = 1_764_633_600.0  # 2025-12-02 00:00 UTC
DAY = "2025-12-02"
ROOT = Path(__file__).resolve().parent.parent


def answer(q: str) -> dict[str, Any]:
    return {
        "answer": q,
        "model": "gpt-4o-mini",
        "usage": {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100},
    }


COST = (80 * 0.15 + 20 * 0.6) / 1e6  # one hit at gpt-4o-mini's list price


@pytest.fixture(autouse=True)
def counters_on() -> FakeClock:
    """Counters on, with a flush interval no test reaches (each test flushes itself), a fixed
    clock, the shipped prices, and nothing left pending from another test."""
    clock = FakeClock(NOW)
    configure(
        persist_stats=3600, clock=clock, prices={"gpt-4o-mini": {"input": 0.15, "output": 0.6}}
    )
    _counters._recorder.pending.clear()
    return clock


def calls(backend: Any, name: str, n_hits: int = 2) -> Any:
    @llm_cached(backend=backend, name=name)
    def ask(q: str) -> dict[str, Any]:
        return answer(q)

    for _ in range(n_hits + 1):
        ask("q")  # one miss, then hits
    return ask


def expected(hits: int = 2, misses: int = 1) -> dict[str, int]:
    """The stored counters of ``hits`` hits and ``misses`` misses of :func:`answer` (counters
    never added to are absent)."""
    counts = {
        "hits": hits,
        "misses": misses,
        "tokens_saved": 100 * hits,
        "input_tokens_saved": 80 * hits,
        "output_tokens_saved": 20 * hits,
        "cost_saved_nusd": round(COST * 1e9) * hits,
    }
    return {name: n for name, n in counts.items() if n}


class TestRecording:
    def test_off_by_default_and_validated(self, tmp_path: Path) -> None:
        """persist_stats is off unless asked (no pending sums); bad values are refused."""
        configure(persist_stats=False)
        backend = DiskBackend(tmp_path / "off")
        calls(backend, "app.off")
        assert flush_stats() == 0
        assert backend.read_counters() == {}
        for bad in (-1, "often", float("inf"), 0):
            with pytest.raises(ConfigurationError, match="persist_stats"):
                configure(persist_stats=bad)

    def test_environment_turns_it_on(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """LLM_MEMO_PERSIST_STATS=1 (or seconds) turns counters on."""
        from llm_memo import config

        for raw, interval in (("1", 1.0), ("true", 30.0), ("0", 0.0), ("120", 120.0)):
            monkeypatch.setenv("LLM_MEMO_PERSIST_STATS", raw)
            config.reset()
            assert config.settings().persist_stats == interval
        monkeypatch.setenv("LLM_MEMO_PERSIST_STATS", "sometimes")
        config.reset()
        with pytest.raises(ConfigurationError, match="LLM_MEMO_PERSIST_STATS"):
            config.settings()

    def test_a_backend_without_counters_records_nothing(self) -> None:
        """The memory backend keeps no counters: nothing is pending for it."""
        assert not isinstance(MemoryBackend(), (Counting, AsyncCounting))
        calls(MemoryBackend(), "app.memory")
        assert flush_stats() == 0

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads running
    def test_a_forked_child_flushes_only_its_own_counts(self, tmp_path: Path) -> None:
        """The parent's pending sums are not the child's: the child flushes only its calls."""
        backend = DiskBackend(tmp_path / "forked")
        ask = calls(backend, "app.fork")  # 1 miss + 2 hits pending in the parent
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code, never return into pytest
            code = 1
            try:
                ask("q")  # one hit of its own
                code = 0 if flush_stats() == 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert backend.read_counters()[DAY, "app.fork"] == expected(hits=1, misses=0)
        assert flush_stats() == 1
        assert backend.read_counters()[DAY, "app.fork"] == expected(hits=3, misses=1)

    def test_day_buckets_and_merging(self) -> None:
        """Counts fall in UTC days; merging adds known integer fields only."""
        assert day_of(NOW) == DAY
        assert day_of(NOW - 1) == "2025-12-01"
        merged = merge({}, [{(DAY, "f"): {"hits": 1, "junk": 5}}, {(DAY, "f"): {"hits": 2}}])
        assert merged == {(DAY, "f"): {"hits": 3}}


class TestDisk:
    def test_counts_flushed_and_read_back(self, tmp_path: Path) -> None:
        """Hits, misses, tokens by kind and cost land in the disk backend on flush."""
        backend = DiskBackend(tmp_path / "cache")
        calls(backend, "app.disk")
        assert backend.read_counters() == {}  # nothing before the flush
        assert flush_stats() == 1
        assert backend.read_counters() == {(DAY, "app.disk"): expected()}
        assert backend.read_counters(since="2025-12-03") == {}
        assert len(list(backend.keys())) == 1  # the entry, not the counters
        assert backend.clear() == 1
        assert backend.read_counters() == {(DAY, "app.disk"): expected()}

    def test_processes_add_up_and_exit_flushes(self, tmp_path: Path) -> None:
        """Two processes sharing a directory: each flushes at exit, the counts add up."""
        directory = tmp_path / "shared"
        script = textwrap.dedent(
            f"""
            from llm_memo import configure, llm_cached
            from llm_memo.backends.disk import DiskBackend
            configure(persist_stats=3600)

            @llm_cached(backend=DiskBackend({str(directory)!r}), name="app.shared")
            def ask(q):
                return {{"usage": {{"prompt_tokens": 8, "completion_tokens": 2}}}}

            ask("q"); ask("q")
            """
        )
        for _ in range(2):
            subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=120)
        counts = DiskBackend(directory).read_counters()
        (row,) = counts.values()
        assert row == {
            "hits": 3,  # the second process hits twice
            "misses": 1,
            "tokens_saved": 30,
            "input_tokens_saved": 24,
            "output_tokens_saved": 6,
        }


class TestObjectStore:
    def test_local_files_per_writer_summed_on_read(self, tmp_path: Path) -> None:
        """Each backend instance writes its own file; a reader sums them; entries listing and
        clearing leave the counters alone."""
        root = f"file://{tmp_path / 'store'}"
        first, second = ObjectStoreBackend(root), ObjectStoreBackend(root)
        calls(first, "app.files")
        flush_stats()
        calls(second, "app.files", n_hits=3)  # the entry exists: 4 hits, no miss
        flush_stats()
        files = list((tmp_path / "store" / "llm_memo-stats" / DAY).iterdir())
        assert len(files) == 2
        assert first.read_counters() == {(DAY, "app.files"): expected(hits=6)}
        assert list(first.keys()) == [next(iter(first.keys()))]  # one entry, no counter files
        assert first.clear() == 1
        assert second.read_counters()[DAY, "app.files"]["hits"] == 6

    def test_s3_hit_stays_one_get_and_flush_is_one_put(self, s3_server: S3Server) -> None:
        """With counters on, a hit is still one GET; the flush is one PUT per day."""
        bucket = s3_server.create_bucket()
        backend = ObjectStoreBackend(
            f"s3://{bucket}/llm", storage_options=dict(s3_server.storage_options), timeout=60
        )
        ask = calls(backend, "app.s3", n_hits=0)
        with s3_server.counting(bucket=bucket) as hit:
            ask("q")
        assert dict(hit.counts) == {"GET": 1}
        with s3_server.counting(bucket=bucket) as flushed:
            assert flush_stats() == 1
        assert dict(flushed.counts) == {"PUT": 1}
        assert backend.read_counters() == {(DAY, "app.s3"): expected(hits=1)}

    def test_async_backend_flushes_from_the_loop(self, tmp_path: Path) -> None:
        """An async backend's counts go out with aflush() on the loop (not the thread)."""
        backend = AsyncObjectStoreBackend(f"file://{tmp_path / 'astore'}")

        @llm_cached(backend=backend, name="app.async")
        async def ask(q: str) -> dict[str, Any]:
            return answer(q)

        async def main() -> dict[tuple[str, str], dict[str, int]]:
            for _ in range(3):
                await ask("q")
            assert flush_stats() == 0  # the sync flusher leaves async backends alone
            assert await aflush_stats() == 1
            return await backend.read_counters()

        assert asyncio.run(main()) == {(DAY, "app.async"): expected()}


@pytest.mark.redis
class TestRedis:
    @pytest.fixture
    def url(self, redis_server: RedisServer) -> str:
        redis_server.ensure_running()
        url = redis_server.url_for_db(7)
        RedisBackend.from_url(url).client.flushdb()
        return url

    def test_hit_is_still_one_get_and_the_flush_one_pipeline(
        self, url: str, redis_server: RedisServer
    ) -> None:
        """With counters on, a hit is exactly one GET; the flush sends HINCRBYs and one
        EXPIRE per day, in one pipeline, and the counts read back."""
        backend = RedisBackend.from_url(url)
        backend.get("warm-up")
        name = f"app.redis-{uuid.uuid4().hex[:6]}"
        ask = calls(backend, name, n_hits=0)
        with _counting(redis_server) as hit:
            ask("q")
        assert hit == Counter({"get": 1})
        with _counting(redis_server) as flushed:
            assert flush_stats() == 1
        assert flushed == Counter({"hincrby": 6, "expire": 1})
        assert backend.read_counters() == {(DAY, name): expected(hits=1)}
        assert backend.read_counters(since="2026-01-01") == {}
        assert backend.clear() == 1  # the entry; the counters stay
        assert backend.read_counters()[DAY, name]["hits"] == 1
        backend.close()

    def test_cluster(self, redis_cluster: RedisCluster) -> None:
        """On a cluster, the day hashes spread over the masters and read back whole."""
        backend = RedisBackend.from_url(redis_cluster.url)
        name = f"app.cluster-{uuid.uuid4().hex[:6]}"
        calls(backend, name)
        assert flush_stats() == 1
        assert backend.read_counters()[DAY, name] == expected()
        backend.close()

    def test_async_redis(self, url: str) -> None:
        """AsyncRedisBackend: counted on the loop, flushed by aflush()."""
        backend = AsyncRedisBackend.from_url(url)
        name = f"app.aredis-{uuid.uuid4().hex[:6]}"

        @llm_cached(backend=backend, name=name)
        async def ask(q: str) -> dict[str, Any]:
            return answer(q)

        async def main() -> dict[tuple[str, str], dict[str, int]]:
            for _ in range(3):
                await ask("q")
            assert await aflush_stats() == 1
            counts = await backend.read_counters()
            await backend.close()
            return counts

        assert asyncio.run(main()) == {(DAY, name): expected()}


class TestCli:
    """llm-memo stats: hits, misses, hit ratio, tokens and cost saved per function."""

    def test_stats_prints_and_jsons_the_saved_counters(self, tmp_path: Path) -> None:
        """Counters recorded (at the fake clock's day) show per function; --since 7d (from
        today) leaves them out; --function filters."""
        directory = tmp_path / "cache"
        calls(DiskBackend(directory), "app.ask")
        calls(DiskBackend(directory), "app.other", n_hits=0)
        flush_stats()
        run = cli("stats", "-b", str(directory))
        assert run.code == 0, run.err
        assert f"saved: 200 tokens, ${2 * COST:.4f} (2 hits, 2 misses, hit ratio 50%)" in run.out
        assert "app.ask" in run.out
        saved = cli("stats", "-b", str(directory), "--json").json["saved"]
        assert saved["counters"] is True
        rows = {row["function"]: row for row in saved["functions"]}
        assert rows["app.ask"]["hits"] == 2
        assert rows["app.ask"]["hit_ratio"] == pytest.approx(2 / 3)
        assert rows["app.ask"]["cost_saved_usd"] == pytest.approx(2 * COST)
        assert rows["app.other"]["misses"] == 1
        assert [day["day"] for day in saved["days"]] == [DAY]
        only = cli("stats", "-b", str(directory), "--json", "--function", "app.o*").json
        assert [row["function"] for row in only["saved"]["functions"]] == ["app.other"]
        recent = cli("stats", "-b", str(directory), "--since", "7d")
        assert "saved: no counters recorded since 20" in recent.out

    def test_says_so_when_nothing_was_recorded_or_nothing_is_kept(self, tmp_path: Path) -> None:
        """A fresh disk cache: none recorded (and how to turn them on); recordings keep none."""
        DiskBackend(tmp_path / "empty").open()
        run = cli("stats", "-b", str(tmp_path / "empty"))
        assert "saved: no counters recorded; to record them: configure(persist_stats=True)" in (
            run.out
        )
        (tmp_path / "recs").mkdir()
        run = cli("stats", "-b", f"recordings://{tmp_path / 'recs'}")
        assert run.code == 0, run.err
        assert "saved: this backend keeps no counters" in run.out
        data = cli("stats", "-b", f"recordings://{tmp_path / 'recs'}", "--json").json
        assert data["saved"] == {"counters": False, "since": None}
