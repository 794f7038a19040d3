"""cache_controls blocks: one scope object entered many times never leaves directives behind."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from llm_memo import cache_controls, llm_cached
from llm_memo.backends.memory import MemoryBackend
from llm_memo.controls import CacheScope, current, current_scopes


def active() -> dict[str, object]:
    """The directives in force in this thread / task (empty outside any block)."""
    state = current()
    return {} if state is None else state.directives.given()


def open_scopes() -> tuple[CacheScope, ...]:
    """The scopes recording calls in this thread / task, outermost first."""
    state = current()
    return () if state is None else state.scopes


def _ask_factory() -> tuple[object, list[str]]:
    calls: list[str] = []

    @llm_cached(backend=MemoryBackend(), ttl=60)
    def ask(q: str) -> str:
        calls.append(q)
        return q

    return ask, calls


class TestReentry:
    """A scope object may be entered again while it is open; each exit undoes its own entry."""

    def test_nested_entries_of_one_object(self) -> None:
        """`with c: with c:` keeps c active until the outer exit, and nothing after it."""
        c = cache_controls(no_store=True)
        with c:
            with c:
                assert active() == {"no_store": True}
                assert open_scopes() == (c,)
            assert active() == {"no_store": True}, "the inner exit undid the outer entry"
            assert open_scopes() == (c,)
        assert active() == {}, f"directives left behind after the block: {active()}"
        assert open_scopes() == ()

    def test_reentry_inside_another_block_wins_again(self) -> None:
        """`with a: with b: with a:` makes a's directives innermost again, then b's."""
        a = cache_controls(namespace="a")
        b = cache_controls(namespace="b")
        with a, b:
            assert active()["namespace"] == "b"
            with a:
                assert active()["namespace"] == "a"
                assert open_scopes() == (a, b), "a scope is listed once, however often entered"
            assert active()["namespace"] == "b"
        assert active() == {}

    def test_exit_when_the_block_raises(self) -> None:
        """An exception out of nested entries unwinds every one of them."""
        c = cache_controls(enabled=False)
        with pytest.raises(KeyError), c, c:
            raise KeyError("boom")
        assert active() == {}, f"directives left behind after an exception: {active()}"

    def test_mixing_with_and_async_with(self) -> None:
        """`with c:` around `async with c:` (and back) pops each entry on its own exit."""
        c = cache_controls(ttl=5)

        async def main() -> list[dict[str, object]]:
            seen = []
            with c:
                async with c:
                    seen.append(active())
                seen.append(active())
            seen.append(active())
            async with c:
                with c:
                    seen.append(active())
                seen.append(active())
            seen.append(active())
            return seen

        assert asyncio.run(main()) == [
            {"ttl": 5.0},
            {"ttl": 5.0},
            {},
            {"ttl": 5.0},
            {"ttl": 5.0},
            {},
        ]

    def test_out_of_order_exits(self) -> None:
        """Exiting an outer entry first removes only that entry; the inner block stays in force."""
        a = cache_controls(namespace="a", no_store=True)
        b = cache_controls(namespace="b")
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        assert active() == {"namespace": "b"}, "a's no_store outlived its exit"
        assert open_scopes() == (b,)
        b.__exit__(None, None, None)
        assert active() == {}

    def test_exit_without_entry_here_changes_nothing(self) -> None:
        """An exit in a context where the scope was never entered raises nothing and leaves
        the blocks open here untouched."""
        a = cache_controls(namespace="a")
        stray = cache_controls(namespace="stray")
        with a:
            stray.__exit__(None, None, None)
            assert active() == {"namespace": "a"}

    def test_events_of_every_entry_are_recorded_once(self) -> None:
        """Calls inside nested entries of one scope are recorded once each."""
        ask, calls = _ask_factory()
        c = cache_controls()
        with c:
            ask("x")  # type: ignore[operator]
            with c:
                ask("x")  # type: ignore[operator]
        assert (c.misses, c.hits, len(c.events)) == (1, 1, 2), (c.misses, c.hits, list(c.events))
        assert calls == ["x"]


class TestConcurrentEntries:
    """One scope object shared by threads or tasks: each has its own entry and exit."""

    def test_two_threads(self) -> None:
        """Interleaved entries and exits from two threads raise nothing and leave nothing."""
        c = cache_controls(no_store=True)
        ask, _ = _ask_factory()
        entered = threading.Barrier(2, timeout=60)
        exited_first = threading.Event()
        results: dict[str, object] = {}
        errors: list[BaseException] = []

        def run(name: str, first: bool) -> None:
            try:
                with c:
                    ask(name)  # type: ignore[operator]
                    entered.wait()
                    if not first:
                        assert exited_first.wait(60)
                        results[f"{name} inside after the other left"] = active()
                results[f"{name} after"] = active()
                if first:
                    exited_first.set()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                exited_first.set()

        threads = [
            threading.Thread(target=run, args=("t1", True)),
            threading.Thread(target=run, args=("t2", False)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, f"an exit raised: {errors!r}"
        assert results == {
            "t1 after": {},
            "t2 inside after the other left": {"no_store": True},
            "t2 after": {},
        }
        assert c.misses == 2, f"the scope recorded {list(c.events)}"

    def test_two_tasks_one_cancelled(self) -> None:
        """Two asyncio tasks share a scope; cancelling one mid-block unwinds only its entry."""
        c = cache_controls(namespace="shared")

        async def main() -> dict[str, object]:
            seen: dict[str, object] = {}
            both_in = asyncio.Event()
            count = 0

            async def worker(name: str, wait_forever: bool) -> None:
                nonlocal count
                try:
                    async with c:
                        count += 1
                        if count == 2:
                            both_in.set()
                        await both_in.wait()
                        if wait_forever:
                            await asyncio.sleep(3600)
                        seen[f"{name} inside"] = active()
                finally:
                    seen[f"{name} after"] = active()

            slow = asyncio.create_task(worker("slow", True))
            quick = asyncio.create_task(worker("quick", False))
            await quick
            await asyncio.sleep(0)
            slow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slow
            seen["main"] = active()
            return seen

        seen = asyncio.run(main())
        assert seen == {
            "quick inside": {"namespace": "shared"},
            "quick after": {},
            "slow after": {},
            "main": {},
        }

    def test_scope_type_is_still_the_block_result(self) -> None:
        """`with cache_controls() as scope` yields the scope object itself, every time."""
        c = cache_controls()
        with c as first, c as second:
            assert first is second is c
            assert isinstance(c, CacheScope)


class TestDeprecated:
    def test_current_scopes_warns_and_still_works(self) -> None:
        """controls.current_scopes() is deprecated (DeprecationWarning) and still answers."""
        a = cache_controls(namespace="a")
        with a, pytest.warns(DeprecationWarning, match="current_scopes"):
            assert current_scopes() == (a,)
        with pytest.warns(DeprecationWarning, match="current_scopes"):
            assert current_scopes() == ()


class TestScopeCounters:
    def test_scope_counts_like_the_function_stats(self) -> None:
        """A scope counts hits, and misses plus refreshes, with the same counter as
        fn.cache.stats(); bypasses and errors count in neither."""
        ask, _ = _ask_factory()
        with cache_controls() as scope:
            ask("a")  # type: ignore[operator]
            ask("a")  # type: ignore[operator]
            with cache_controls(no_cache=True):
                ask("a")  # type: ignore[operator]
            with cache_controls(enabled=False):
                ask("a")  # type: ignore[operator]
        assert (scope.hits, scope.misses) == (1, 2)
        assert len(scope.events) == 4
        stats = ask.cache.stats()  # type: ignore[attr-defined]
        assert (stats.hits, stats.misses, stats.refreshes, stats.bypasses) == (1, 1, 1, 1)
