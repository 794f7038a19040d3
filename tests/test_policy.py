"""The pure decisions of _policy.py, tested without an event loop or a backend."""

from __future__ import annotations

import pytest

from llm_memo._policy import (
    Freshness,
    Policy,
    ReadFailure,
    call_outcome,
    freshness,
    read_failure,
    resolve,
    stale_fallback,
    write_plan,
)
from llm_memo.controls import Directives
from llm_memo.entry import Entry
from llm_memo.events import Outcome


def entry(created: float = 100.0, expires: float | None = 160.0, window: float = 0.0) -> Entry:
    return Entry(b"", "json", created, expires, window)


class TestFreshness:
    def test_fresh_until_expiry(self) -> None:
        """An entry is fresh before expires_at and not at or after it."""
        assert freshness(entry(), 159.9, Policy()) is Freshness.FRESH
        assert freshness(entry(), 160.0, Policy()) is Freshness.UNUSABLE

    def test_no_expiry_is_always_fresh(self) -> None:
        """expires_at None means fresh forever (ttl=None)."""
        assert freshness(entry(expires=None), 1e12, Policy()) is Freshness.FRESH

    def test_max_age_caps_lifetime(self) -> None:
        """max_age accepts an entry at most that old, whatever its own ttl (RFC 9111 5.2.1.1)."""
        p = Policy(max_age=10)
        assert freshness(entry(expires=None), 109.9, p) is Freshness.FRESH
        assert freshness(entry(expires=None), 110.0, p) is Freshness.UNUSABLE
        assert freshness(entry(expires=105.0), 106.0, p) is Freshness.UNUSABLE

    def test_stale_if_error_window(self) -> None:
        """Within stale_if_error seconds past expiry an entry is usable only on error."""
        p = Policy(stale_if_error=30)
        assert freshness(entry(), 170.0, p) is Freshness.STALE
        assert freshness(entry(), 190.0, p) is Freshness.STALE
        assert freshness(entry(), 190.1, p) is Freshness.UNUSABLE

    def test_stale_if_error_counts_from_max_age(self) -> None:
        """With max_age, staleness is measured from the max_age limit."""
        p = Policy(max_age=10, stale_if_error=5)
        assert freshness(entry(expires=None), 112.0, p) is Freshness.STALE
        assert freshness(entry(expires=None), 116.0, p) is Freshness.UNUSABLE


class TestWritePlan:
    def test_ttl_sets_expiry_and_retention(self) -> None:
        """ttl=N gives expires_at=now+N, retained N seconds."""
        plan = write_plan(Policy(ttl=60), 1000.0)
        assert plan is not None
        assert (plan.expires_at, plan.stale_window, plan.retention) == (1060.0, 0.0, 60.0)

    def test_stale_if_error_extends_retention(self) -> None:
        """Entries written under stale_if_error are kept ttl + N (RFC 5861)."""
        plan = write_plan(Policy(ttl=60, stale_if_error=30), 1000.0)
        assert plan is not None
        assert (plan.expires_at, plan.stale_window, plan.retention) == (1060.0, 30.0, 90.0)

    def test_grace_extends_retention_not_freshness(self) -> None:
        """Every entry is kept ttl + grace, so a read-time stale_if_error can find it; a longer
        write-time stale_if_error wins; the entry's own expiry and stale window are unchanged."""
        plan = write_plan(Policy(ttl=60), 1000.0, 86400.0)
        assert plan is not None
        assert (plan.expires_at, plan.stale_window, plan.retention) == (1060.0, 0.0, 86460.0)
        plan = write_plan(Policy(ttl=60, stale_if_error=100000), 1000.0, 86400.0)
        assert plan is not None
        assert (plan.stale_window, plan.retention) == (100000.0, 100060.0)
        plan = write_plan(Policy(ttl=None), 1000.0, 86400.0)
        assert plan is not None
        assert plan.retention is None
        entry = Entry(b"v", "json", created_at=1000.0, expires_at=1060.0)
        assert freshness(entry, 2000.0, Policy()) is Freshness.UNUSABLE
        assert freshness(entry, 2000.0, Policy(stale_if_error=3600)) is Freshness.STALE

    def test_zero_ttl_with_grace_is_kept_stale(self) -> None:
        """ttl=0 with a grace window: stale on arrival, kept for the window."""
        plan = write_plan(Policy(ttl=0), 1000.0, 600.0)
        assert plan is not None
        assert (plan.expires_at, plan.retention) == (1000.0, 600.0)

    def test_no_ttl_keeps_forever(self) -> None:
        plan = write_plan(Policy(), 1000.0)
        assert plan is not None
        assert (plan.expires_at, plan.retention) == (None, None)

    def test_no_store_and_disabled_never_write(self) -> None:
        """no_store and enabled=False produce no write."""
        assert write_plan(Policy(no_store=True), 0.0) is None
        assert write_plan(Policy(enabled=False), 0.0) is None

    def test_zero_ttl_without_grace_is_not_stored(self) -> None:
        """ttl=0 is stale on arrival: stored only when a stale_if_error window gives it a use."""
        assert write_plan(Policy(ttl=0), 0.0) is None
        plan = write_plan(Policy(ttl=0, stale_if_error=5), 0.0)
        assert plan is not None
        assert plan.retention == 5.0


class TestResolve:
    def test_defaults(self) -> None:
        """Nothing given resolves to the built-in defaults."""
        p = resolve(Directives())
        assert (p.enabled, p.no_cache, p.no_store, p.ttl, p.namespace) == (
            True,
            False,
            False,
            None,
            "default",
        )
        assert p.reads
        assert p.writes

    def test_precedence_inner_wins_per_field(self) -> None:
        """Merging is per directive: the stronger level wins only where it sets a value."""
        base = Directives.build(ttl=60, namespace="a", no_store=True)
        inner = Directives.build(ttl=None, namespace="b")
        p = resolve(inner.over(base))
        assert (p.ttl, p.namespace, p.no_store) == (None, "b", True)

    def test_refresh_reads_nothing(self) -> None:
        """no_cache does not read; enabled=False neither reads nor writes."""
        assert not Policy(no_cache=True).reads
        assert Policy(no_cache=True).writes
        assert not Policy(enabled=False).reads


class TestDirectiveValidation:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"ttl": -1},
            {"ttl": "60"},
            {"no_cache": 1},
            {"namespace": ""},
            {"threshold": 2},
            {"bogus": 1},
            {"max_age": 1, "s_maxage": 2},
            {"backend": None},
        ],
    )
    def test_invalid_values_raise(self, kwargs: dict[str, object]) -> None:
        """Bad directive values are rejected when given, with a ConfigurationError."""
        from llm_memo import ConfigurationError

        with pytest.raises(ConfigurationError):
            Directives.build(**kwargs)

    def test_timedelta_and_alias(self) -> None:
        """ttl accepts timedelta; s_maxage is max_age."""
        import datetime as dt

        d = Directives.build(ttl=dt.timedelta(minutes=2), s_maxage=5)
        assert (d.ttl, d.max_age) == (120.0, 5.0)


class TestCallOutcome:
    def test_miss_refresh_error(self) -> None:
        """A call that ran the function is a miss, a refresh under no_cache, an error when a
        backend failed during it (whatever no_cache says)."""
        assert call_outcome(Policy(), False) is Outcome.MISS
        assert call_outcome(Policy(no_cache=True), False) is Outcome.REFRESH
        assert call_outcome(Policy(), True) is Outcome.ERROR
        assert call_outcome(Policy(no_cache=True), True) is Outcome.ERROR


class TestReadFailure:
    def test_fail_open_by_default(self) -> None:
        """A failed read calls through unless only_if_cached or strict says otherwise."""
        decision = read_failure(Policy(), strict=False)
        assert decision is ReadFailure.CALL_THROUGH
        assert not decision.raises

    def test_strict_raises_unavailable(self) -> None:
        """strict=True makes a failed read the caller's error."""
        decision = read_failure(Policy(), strict=True)
        assert decision is ReadFailure.RAISE_UNAVAILABLE
        assert decision.raises

    def test_only_if_cached_wins_over_strict(self) -> None:
        """only_if_cached never calls: a failed read is a CacheMiss, strict or not."""
        for strict in (False, True):
            decision = read_failure(Policy(only_if_cached=True), strict=strict)
            assert decision is ReadFailure.RAISE_CACHE_MISS
            assert decision.raises


class TestStaleFallback:
    def test_stale_entry_answers_a_failed_call(self) -> None:
        """The entry judged stale at read time answers when stale_if_error is given."""
        stale = entry()
        assert stale_fallback(stale, Policy(stale_if_error=30)) is stale

    def test_nothing_without_an_entry_or_the_directive(self) -> None:
        """No stale entry, or no stale_if_error: the failure is re-raised (None here)."""
        assert stale_fallback(None, Policy(stale_if_error=30)) is None
        assert stale_fallback(entry(), Policy()) is None


class TestReadsWrites:
    def test_derived_from_the_directives(self) -> None:
        """reads: enabled and not no_cache; writes: enabled and not no_store."""
        assert (Policy().reads, Policy().writes) == (True, True)
        assert (Policy(no_cache=True).reads, Policy(no_cache=True).writes) == (False, True)
        assert (Policy(no_store=True).reads, Policy(no_store=True).writes) == (True, False)
        assert (Policy(enabled=False).reads, Policy(enabled=False).writes) == (False, False)

    def test_replace_derives_them_again(self) -> None:
        """A policy changed with dataclasses.replace (the test fixture's backend) recomputes
        reads and writes from its own directives."""
        import dataclasses

        changed = dataclasses.replace(Policy(), no_cache=True, no_store=True)
        assert (changed.reads, changed.writes) == (False, False)
        assert changed == Policy(no_cache=True, no_store=True)
