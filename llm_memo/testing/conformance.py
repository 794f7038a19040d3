"""The backend conformance suite: the behaviour every llm_memo backend shows, as a base class.

Every backend llm_memo ships passes this suite (dogpile.cache ships its own the same way, as
``dogpile.testing.fixtures``). A third-party backend, registered with
:func:`llm_memo.backends.register_backend` or passed as ``backend=`` to the decorator, proves
that it behaves like ours by subclassing :class:`BackendConformance` in its own tests. It needs
pytest and hypothesis: ``pip install 'llm-memo[testing]'``.

Example (a complete test module for a backend with a ``clock=`` argument)::

    import pytest
    from llm_memo.testing import FakeClock
    from llm_memo.testing.conformance import BackendConformance

    from my_pkg.cache import MyBackend


    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def clock(self):
            return FakeClock()

        @pytest.fixture
        def backend(self, clock):
            backend = MyBackend(clock=clock)
            yield backend
            backend.close()

        @pytest.fixture
        def advance(self, clock):
            return clock.advance

What a subclass provides, as pytest fixtures (methods of the class, or from a ``conftest.py``):

* ``backend`` (required): a fresh, empty, *sync* backend object (the
  :class:`~llm_memo.backends.Backend` protocol: ``get``, ``set``, ``delete``, ``clear``,
  ``close``). Close it at teardown. An async backend (:class:`~llm_memo.backends.AsyncBackend`)
  is wrapped in :class:`SyncOverAsync`, which runs its coroutines on a private event loop thread.
* ``advance`` (optional): ``advance(seconds)`` makes that much time pass for the backend's
  expiry. The default sleeps, for backends whose store keeps real time (native TTLs).
* ``plant`` (optional): ``plant(key, raw_bytes)`` stores raw bytes under a key, bypassing the
  backend (``Entry.to_bytes()`` is the format), to prove that garbage and another key's entry
  read as a miss. A backend that keeps :class:`~llm_memo.entry.Entry` objects, not bytes, has no
  raw form: leave it undefined and those checks skip.

What it checks, one test per behaviour (each test's docstring states it):

* storage: a missing key is ``MISSING`` (never ``None``, never an error); an entry comes back
  with every field; a write replaces; ``delete`` reports whether the key was there; 1 MiB
  values; keys with escaped separators, globs and unicode; a bulk read (``get_many``, where
  the backend has one) answers each key as ``get`` does;
* clearing: ``clear(prefix)`` removes exactly a namespace's or a function's keys and counts
  them; ``clear()`` empties the backend;
* expiry: ``ttl`` expires, ``ttl=None`` keeps, ``ttl=0`` stores nothing usable;
* damage: garbage bytes read as ``MISSING``; an entry swapped or copied under another key is a
  miss through the decorator and the fresh result overwrites it; fuzzed entries (hypothesis,
  30 examples, drawn from :mod:`llm_memo.testing.strategies`) never crash a read nor serve
  another key's answer;
* concurrency: readers racing four writers of one key for a second never see a torn value
  (operations failing with :class:`~llm_memo.errors.BackendError` under load are tolerated);
* the decorator: ``@llm_cached(backend=...)`` misses once, then hits.

The suite's asserts show the values they compared: the llm_memo pytest plugin (loaded by its
entry point) registers this module for pytest's assertion rewriting before anything imports it.
Run with ``-p no:llm_memo`` and you register it yourself, in a ``conftest.py`` before the import:
``pytest.register_assert_rewrite("llm_memo.testing.conformance")``.

:func:`make_key` and :func:`make_entry` build keys and entries for a backend's own extra tests;
the hypothesis strategies the fuzz test draws from are in :mod:`llm_memo.testing.strategies`.
(A little over 500 lines, on purpose: one class of tests of one contract, read top to bottom,
a fifth of it this documentation.)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from ..errors import MissingDependencyError

try:
    import pytest
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - the testing extra is installed in our CI
    raise MissingDependencyError(
        f"llm_memo.testing.conformance needs pytest and hypothesis ({exc.name} is missing); "
        "fix: pip install 'llm-memo[testing]'"
    ) from exc

from .. import CodecError, cache_controls, llm_cached
from ..backends import MISSING, AsyncBulkReading, BulkReading
from ..entry import FLAG_COMPRESSED, Entry
from ..keys import function_prefix, key_string, namespace_prefix
from .strategies import compressed_bomb, entry_bytes_strategy, hostile_entries

__all__ = [
    "HEX",
    "BackendConformance",
    "SyncOverAsync",
    "compressed_bomb",
    "entry_bytes_strategy",
    "hostile_entries",
    "make_entry",
    "make_key",
]

#: A 32-digit hex digest, the default of :func:`make_key`.
HEX = "0123456789abcdef" * 2


def make_key(namespace: str = "ns", function: str = "mod.fn", digest: str = HEX) -> str:
    """A key as llm_memo builds it (``llm_memo:<format>:<namespace>:<function>:<digest>``)."""
    return key_string(namespace, function, digest)


def make_entry(value: bytes = b'{"a":1}', **fields: Any) -> Entry:
    """An :class:`~llm_memo.entry.Entry` holding ``value``; ``fields`` override its metadata
    (``type_tag="json"``, a fixed ``created_at``, no expiry, no stale window, no tokens)."""
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

    def get_many(self, keys: Sequence[str]) -> Any:
        """The inner backend's bulk read (an AttributeError when it has none)."""
        return self._run(self.inner.get_many(keys))

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
    """Behaviour every backend must show: subclass it and provide the ``backend`` fixture.

    Optional fixtures ``advance`` and ``plant`` are described in the module docstring, with
    what each group of tests checks. The tests take ``backend`` as a sync object; wrap an async
    backend in :class:`SyncOverAsync`.

    .. versionadded:: 0.1.0
    """

    @pytest.fixture
    def advance(self) -> Callable[[float], None]:
        """Make time pass for the backend's expiry; by default, sleep (real time)."""
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

    def test_bulk_read_answers_each_key_as_get_does(
        self, backend: Any, request: pytest.FixtureRequest
    ) -> None:
        """A backend with ``get_many`` (:class:`~llm_memo.backends.BulkReading`) returns, in
        the order asked, what ``get`` returns for each key: entries, MISSING for absent keys
        and (where raw bytes can be planted) for garbage; repeated keys; more keys than one
        round trip carries (450); no keys."""
        inner = getattr(backend, "inner", backend)
        if not isinstance(inner, (BulkReading, AsyncBulkReading)):
            pytest.skip("this backend reads one key at a time (no get_many)")
        keys = [make_key(digest=f"{i:032x}") for i in range(450)]
        for i, key in enumerate(keys[:300]):
            backend.set(key, make_entry(f"v{i}".encode(), tokens=i), 600 if i % 2 else None)
        asked = [keys[5], keys[400], keys[0], keys[5], *keys]
        try:
            plant = request.getfixturevalue("plant")
        except pytest.FixtureLookupError:
            pass
        else:
            bad = make_key(digest="f" * 32)
            plant(bad, b"\x80\x04\x95garbage")
            asked.append(bad)
        got = backend.get_many(asked)
        assert len(got) == len(asked), f"{len(asked)} keys asked, {len(got)} answers"
        wanted = [backend.get(key) for key in asked]
        assert got == wanted
        first = got[0]
        assert first is not MISSING
        assert (first.value, first.tokens) == (b"v5", 5)
        assert got[1] is MISSING
        assert [e is MISSING for e in got[4:]] == [i >= 300 for i in range(450)] + (
            [True] * (len(asked) - 454)
        )
        assert backend.get_many([]) == []

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

    def test_entry_under_another_key_is_a_miss(
        self, backend: Any, request: pytest.FixtureRequest
    ) -> None:
        """An entry swapped or copied under another key (as an entry, and as raw bytes where the
        backend keeps bytes) is a miss through the decorator, and the fresh result overwrites
        it: an entry carries its key's digest, signing or not."""
        calls: list[str] = []

        @llm_cached(backend=backend, ttl=600)
        def ask(q: str) -> dict[str, str]:
            calls.append(q)
            return {"answer": q}

        ask("a"), ask("b")
        ka, kb = ask.cache.key("a"), ask.cache.key("b")
        ea, eb = backend.get(ka), backend.get(kb)
        assert ea is not MISSING
        assert eb is not MISSING
        backend.set(ka, eb, 600)
        backend.set(kb, ea, 600)
        with cache_controls() as scope:
            got = (ask("a"), ask("b"))
        assert got == ({"answer": "a"}, {"answer": "b"}), f"swapped entries were served: {got}"
        assert scope.hits == 0
        with cache_controls() as scope:
            assert (ask("a"), ask("b")) == ({"answer": "a"}, {"answer": "b"})
        assert scope.hits == 2, "the fresh results did not overwrite the swapped entries"
        assert calls == ["a", "b", "a", "b"]
        try:
            plant = request.getfixturevalue("plant")
        except pytest.FixtureLookupError:
            return  # entries kept as objects: the swap above is the copy
        plant(kb, backend.get(ka).to_bytes())  # a byte-for-byte copy of a's entry under b
        got_b = ask("b")  # a miss, or (tiered) b's own entry from L1: never a's answer
        assert got_b == {"answer": "b"}, f"a raw copy of a's entry was served for b: {got_b}"

    # Each backend's subclass runs the same method (differing executors, by design); examples
    # are not saved, since one backend's failing example says nothing about another's.
    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=st.data())
    def test_fuzzed_entries_never_crash_or_cross_keys(
        self, backend: Any, request: pytest.FixtureRequest, data: st.DataObject
    ) -> None:
        """Random and mutated entries, stored through the backend (and planted as raw bytes
        where it keeps bytes), read back as MISSING or an entry; through the decorator they
        give this key's answer or a stored value of the declared type, never another key's,
        never an exception."""
        calls: list[str] = []

        @llm_cached(backend=backend, ttl=600)
        def ask(q: str) -> dict[str, str]:
            calls.append(q)
            return {"answer": q}

        key = ask.cache.key("q")
        try:
            plant = request.getfixturevalue("plant")
        except pytest.FixtureLookupError:
            plant = None
        if plant is not None and data.draw(st.booleans(), label="raw"):
            raw = data.draw(entry_bytes_strategy(key), label="raw bytes")
            backend.delete(key)  # nothing left in a tiered backend's L1
            plant(key, raw)
            try:
                belongs = Entry.from_bytes(raw).belongs_to(key)
            except CodecError:
                belongs = False
        else:
            entry = data.draw(hostile_entries(key, [ask.cache.key("other")]), label="entry")
            backend.set(key, entry, 600)
            belongs = entry.belongs_to(key)
        found = backend.get(key)
        assert found is MISSING or isinstance(found, Entry), f"get() returned {found!r}"
        got = ask("q")
        # A stream entry of this key replays as a stream (never checked against the annotation:
        # ``stream=True`` changes what a function returns); anything else is of the declared type.
        replayed = belongs and isinstance(got, Iterator)
        assert isinstance(got, dict) or replayed, f"-> dict returned a {type(got).__name__}"
        if not belongs:
            assert got == {"answer": "q"}, f"an entry of another key was served: {got!r}"
            assert calls == ["q"]

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
