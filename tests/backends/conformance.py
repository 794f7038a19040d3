"""The conformance suite every backend passes (dogpile's ``testing/fixtures.py`` habit).

Subclass :class:`BackendConformance` in a backend's test module and provide:

* ``backend`` (fixture, required): a fresh, empty, *sync* backend object. An async backend is
  wrapped in :class:`SyncOverAsync`, which runs its coroutines on a private loop thread.
* ``advance`` (fixture, optional): ``advance(seconds)`` makes that much time pass for the
  backend's expiry; the default sleeps (backends with native expiry keep real time).
* ``plant`` (fixture, optional): ``plant(key, raw_bytes)`` stores raw bytes under a key,
  bypassing the entry format, to prove that garbage reads as a miss. Backends that keep
  :class:`Entry` objects (memory) have no raw form and leave it undefined: the test skips.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from llm_memo import cache_controls, llm_cached
from llm_memo.backends import MISSING
from llm_memo.entry import FLAG_COMPRESSED, Entry
from llm_memo.keys import function_prefix, key_string, namespace_prefix

HEX = "0123456789abcdef" * 2


def make_key(namespace: str = "ns", function: str = "mod.fn", digest: str = HEX) -> str:
    return key_string(namespace, function, digest)


def make_entry(value: bytes = b'{"a":1}', **fields: Any) -> Entry:
    base: dict[str, Any] = {
        "type_tag": "json",
        "created_at": 1_700_000_000.25,
        "expires_at": None,
        "stale_window": 0.0,
        "tokens": 0,
    }
    base.update(fields)
    return Entry(value=value, **base)


class SyncOverAsync:
    """Drive an async backend from sync tests: one private event loop on its own thread."""

    def __init__(self, backend: Any) -> None:
        self.inner = backend
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def get(self, key: str) -> Any:
        return self._run(self.inner.get(key))

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        self._run(self.inner.set(key, entry, ttl))

    def delete(self, key: str) -> bool:
        return bool(self._run(self.inner.delete(key)))

    def clear(self, prefix: str = "") -> int:
        return int(self._run(self.inner.clear(prefix)))

    def close(self) -> None:
        try:
            self._run(self.inner.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()


class BackendConformance:
    """Behaviour every backend must show. Subclasses provide the ``backend`` fixture."""

    @pytest.fixture
    def advance(self) -> Callable[[float], None]:
        return time.sleep

    # -- basic storage ---------------------------------------------------------------------

    def test_missing_key_is_missing(self, backend: Any) -> None:
        """A key never written reads as MISSING (not None, not an error)."""
        assert backend.get(make_key()) is MISSING

    def test_roundtrip_keeps_every_field(self, backend: Any) -> None:
        """An entry comes back with its value and all metadata unchanged."""
        entry = Entry(
            value=b"\x00\x01payload\xff",
            type_tag="model:openai.types.chat.chat_completion:ChatCompletion",
            created_at=1_700_000_123.5,
            expires_at=1_700_003_723.5,
            stale_window=60.0,
            tokens=1234,
            flags=FLAG_COMPRESSED,
            signature=b"s" * 32,
        )
        key = make_key()
        backend.set(key, entry, None)
        assert backend.get(key) == entry

    def test_set_replaces(self, backend: Any) -> None:
        """A second write under the same key replaces the first."""
        key = make_key()
        backend.set(key, make_entry(b"one"), None)
        backend.set(key, make_entry(b"two"), None)
        got = backend.get(key)
        assert got is not MISSING
        assert got.value == b"two"

    def test_delete(self, backend: Any) -> None:
        """delete() removes the key and reports whether it was there."""
        key = make_key()
        backend.set(key, make_entry(), None)
        assert backend.delete(key) is True
        assert backend.get(key) is MISSING
        assert backend.delete(key) is False

    def test_large_value(self, backend: Any) -> None:
        """A 1 MiB value round-trips byte for byte."""
        value = bytes(range(256)) * 4096
        key = make_key()
        backend.set(key, make_entry(value), None)
        got = backend.get(key)
        assert got is not MISSING
        assert got.value == value

    def test_escaped_key_parts(self, backend: Any) -> None:
        """Keys built from namespaces and names with separators, globs and unicode work."""
        keys = [
            make_key("tenant:42/eu", "pkg.mod.<locals>.f"),
            make_key("ns*?[x]", "ünï.cødé"),
            make_key("100%", "a b"),
        ]
        for i, key in enumerate(keys):
            backend.set(key, make_entry(str(i).encode()), None)
        for i, key in enumerate(keys):
            got = backend.get(key)
            assert got is not MISSING
            assert got.value == str(i).encode()

    # -- clearing ------------------------------------------------------------------------------

    def test_clear_prefix_removes_only_that_prefix(self, backend: Any) -> None:
        """clear(prefix) removes exactly the keys under the prefix and counts them."""
        a1, a2 = make_key("a", "f", "1" * 32), make_key("a", "g", "2" * 32)
        ab = make_key("ab", "f", "3" * 32)
        glob = make_key("a*", "f", "4" * 32)
        for key in (a1, a2, ab, glob):
            backend.set(key, make_entry(), None)
        assert backend.clear(namespace_prefix("a")) == 2
        assert backend.get(a1) is MISSING
        assert backend.get(a2) is MISSING
        assert backend.get(ab) is not MISSING
        assert backend.get(glob) is not MISSING

    def test_clear_function_prefix(self, backend: Any) -> None:
        """A function's prefix clears that function only."""
        f, g = make_key("n", "f", "1" * 32), make_key("n", "g", "2" * 32)
        backend.set(f, make_entry(), None)
        backend.set(g, make_entry(), None)
        assert backend.clear(function_prefix("n", "f")) == 1
        assert backend.get(f) is MISSING
        assert backend.get(g) is not MISSING

    def test_clear_everything(self, backend: Any) -> None:
        """clear() with no prefix empties the backend."""
        keys = [make_key("n", "f", str(i) * 32) for i in range(5)]
        for key in keys:
            backend.set(key, make_entry(), None)
        assert backend.clear() >= 5
        assert all(backend.get(k) is MISSING for k in keys)

    # -- expiry ----------------------------------------------------------------------------

    def test_ttl_expires(self, backend: Any, advance: Callable[[float], None]) -> None:
        """An entry is gone once its ttl has passed, and there before."""
        key = make_key()
        backend.set(key, make_entry(), 0.5)
        assert backend.get(key) is not MISSING
        advance(1.2)
        assert backend.get(key) is MISSING

    def test_no_ttl_keeps(self, backend: Any, advance: Callable[[float], None]) -> None:
        """ttl=None keeps the entry."""
        key = make_key()
        backend.set(key, make_entry(), None)
        advance(1.2)
        assert backend.get(key) is not MISSING

    def test_zero_ttl_is_not_kept(self, backend: Any) -> None:
        """A ttl of 0 stores nothing usable."""
        key = make_key()
        backend.set(key, make_entry(), 0)
        assert backend.get(key) is MISSING

    # -- damage ---------------------------------------------------------------------------

    def test_garbage_reads_as_missing(self, backend: Any, request: pytest.FixtureRequest) -> None:
        """Bytes that are not an entry (truncated, foreign, random) read as MISSING."""
        try:
            plant = request.getfixturevalue("plant")
        except pytest.FixtureLookupError:
            pytest.skip("this backend keeps Entry objects; there are no raw bytes to damage")
        for i, raw in enumerate(
            [b"", b"LMM", b"\x80\x04\x95garbage", make_entry().to_bytes()[:20]]
        ):
            key = make_key(digest=f"{i:032d}")
            plant(key, raw)
            assert backend.get(key) is MISSING

    # -- concurrency ------------------------------------------------------------------------

    def test_concurrent_writers_never_tear(self, backend: Any) -> None:
        """Readers racing writers of one key see a whole entry from one writer, or MISSING.

        Only a mixed value is a failure. An operation that fails (a timeout on a loaded
        machine, a breaker opened by one) is not a torn read: such failures are tolerated and
        counted, and the test fails only if every write failed (nothing to check), or on an
        exception that is not a backend failure.
        """
        # Imported here so that this test stays one self-contained hunk of the suite.
        from collections import Counter

        from llm_memo.errors import BackendError

        key = make_key()
        values = [bytes([i]) * 50_000 for i in range(4)]
        stop = threading.Event()
        lock = threading.Lock()
        seen: Counter[int] = Counter()  # which writer's value each successful read saw
        torn: list[str] = []
        failed: Counter[str] = Counter()  # tolerated: backend failures, by type and message
        crashes: list[BaseException] = []  # not tolerated: anything else
        done = Counter[str]()

        def describe(value: bytes) -> str:
            return f"{len(value)} bytes, distinct byte values {sorted(set(value))[:8]}"

        def tolerated(exc: BaseException) -> None:
            with lock:
                failed[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
            time.sleep(0.01)  # an open breaker answers at once: do not spin

        def write(v: bytes) -> None:
            while not stop.is_set():
                try:
                    backend.set(key, make_entry(v), None)
                except (BackendError, TimeoutError) as exc:
                    tolerated(exc)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    crashes.append(exc)
                    return
                else:
                    with lock:
                        done["set"] += 1

        def read() -> None:
            while not stop.is_set():
                try:
                    got = backend.get(key)
                except (BackendError, TimeoutError) as exc:
                    tolerated(exc)
                    continue
                except BaseException as exc:  # noqa: BLE001 - reported below
                    crashes.append(exc)
                    return
                with lock:
                    done["get"] += 1
                    if got is MISSING:
                        continue
                    if got.value in values:
                        seen[values.index(got.value)] += 1
                    else:
                        torn.append(describe(got.value))

        threads = [threading.Thread(target=write, args=(v,)) for v in values]
        threads += [threading.Thread(target=read) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(30)
        report = (
            f"operations that succeeded: {dict(done)}; reads by writer: {dict(seen)}; "
            f"torn reads: {torn[:5]} ({len(torn)}); tolerated failures: {dict(failed)}; "
            f"crashes: {crashes[:5]!r}; threads still running: "
            f"{sum(t.is_alive() for t in threads)}"
        )
        assert not crashes, report
        assert not torn, report
        assert done["set"], f"every write failed: {report}"
        # The race is over: the key holds one writer's whole value (a last read, retried past a
        # transient failure, proves reads work after concurrent writes even if none saw one).
        final: Any = MISSING
        for _ in range(20):
            try:
                final = backend.get(key)
                break
            except (BackendError, TimeoutError) as exc:
                tolerated(exc)
                time.sleep(0.1)
        assert final is not MISSING, f"no value after the race; {report}"
        assert final.value in values, f"final read {describe(final.value)}; {report}"

    # -- through the decorator --------------------------------------------------------------

    def test_decorator_miss_then_hit(self, backend: Any) -> None:
        """The backend serves @llm_cached: one call, then answers from the cache."""
        calls = []

        @llm_cached(backend=backend, ttl=60)
        def ask(prompt: str) -> dict[str, Any]:
            calls.append(prompt)
            return {"text": prompt.upper(), "n": [1, 2.5, None, True]}

        with cache_controls() as scope:
            first = ask("hello")
            second = ask("hello")
        assert first == second == {"text": "HELLO", "n": [1, 2.5, None, True]}
        assert calls == ["hello"]
        assert (scope.hits, scope.misses) == (1, 1)
