"""The per-item runner, written once: a batch call answered item by item from the cache.

This is the async source; ``_sync.py`` is generated from it by ``scripts/unasync``.

A call whose list parameter holds items (``input=["a", "b", "c"]``) is split: each item has the
key of the same call with the list replaced by ``[item]`` (so everything else the call keys,
model, ``dimensions``, ``encoding_format``, the endpoint, still applies), and its entry is
what that one-item call returns. The runner looks every distinct item up, calls the function
once with only the items none answers (each sent once, however often the batch repeats it),
stores each sent item's one-item answer with its share of the usage tokens, and returns one
response in the SDK's own type (:class:`~llm_memo.sdks.ItemBatch` splits and merges).

A call that is not a batch (a single string) and any call on a semantic backend run the
ordinary runner: per-item entries are exact, and similarity is a property of a whole request.
Per-item calls do not join identical calls in flight (single-flight is per key, and a batch
has many).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._drivers import run_async
from .._drivers._judge import cache_miss, judge, read_failed, serve_stale
from .._policy import call_outcome
from ..backends import MISSING, Missing
from ..errors import BackendError
from ..events import Outcome
from ..sdks import response_model, usage_tokens
from ._batch import Batching, token_shares

if TYPE_CHECKING:
    from .._memo import Memo
    from ..entry import Entry

__all__ = ["run_async_items"]

logger = logging.getLogger("llm_memo")

_perf = time.perf_counter
_HIT = Outcome.HIT
_STALE = Outcome.STALE


async def run_async_items(
    batching: Batching,
    memo: Memo,
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run a cached call item by item (or whole, when it is no batch)."""
    start = _perf()
    policy, scopes = memo.policy()
    request = batching.request(instance, args, kwargs) if policy.enabled else None
    if request is None:
        return await run_async(memo, wrapped, instance, args, kwargs)
    route = memo.route(policy, asynchronous=True)
    if route.semantic:
        return await run_async(memo, wrapped, instance, args, kwargs)
    backend = route.backend
    shape = batching.shape
    items = request.items
    keys = memo.item_keys(instance, request, policy.namespace)
    first: dict[str, int] = {}  # each distinct key -> where it first occurs
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    if route.describing:
        for key, i in first.items():
            memo.describe(backend, key, instance, *request.with_items([items[i]]))

    values: dict[str, Any] = {}
    saved: dict[str, int] = {}
    stale: dict[str, Entry] = {}
    failure: BackendError | None = None
    model = ""  # the embedding model the answers name, for pricing what the hits saved
    if policy.reads:
        distinct = list(first)
        entries, failure = await _read(backend, route.bulk, distinct)
        if failure is not None:
            # the store is failing: the rest are sent, not looked up one by one
            read_failed(memo, backend, distinct[len(entries)], policy, failure, start, scopes)
        for key, entry in zip(distinct, entries, strict=False):  # fewer after a failure
            if entry is MISSING:
                continue
            value, old = judge(memo, key, entry, policy, backend)
            if value is not MISSING:
                values[key] = value
                saved[key] = entry.tokens
                model = model or entry.model
            elif old is not None:
                stale[key] = old
    missing = [key for key in first if key not in values]
    if not missing:
        tokens = sum(saved[key] for key in keys)
        counted = (len(keys), 0)
        memo.emit(_HIT, keys[0], start, policy, scopes, tokens=tokens, model=model, items=counted)
        return shape.merge(_answers(values, keys), None)
    # Every position counts once: sent (a distinct missing item) or answered (the rest).
    counted = (len(keys) - len(missing), len(missing))
    if policy.only_if_cached:
        memo.emit(Outcome.MISS, missing[0], start, policy, scopes, items=counted)
        raise cache_miss(memo, missing[0])

    sent = [items[first[key]] for key in missing]
    sent_args, sent_kwargs = request.with_items(sent)
    try:
        result = await wrapped(*sent_args, **sent_kwargs)
    except Exception:
        olds = [serve_stale(memo, key, stale.get(key), policy, backend) for key in missing]
        if any(old is MISSING for old in olds):
            raise  # a failed call stores nothing
        values.update(zip(missing, olds, strict=True))
        tokens = sum(saved.get(key, 0) for key in keys) + sum(stale[k].tokens for k in missing)
        memo.emit(
            _STALE,
            keys[0],
            start,
            policy,
            scopes,
            error=failure,
            tokens=tokens,
            model=model or max((stale[k].model for k in missing), default=""),
            items=counted,
        )
        return shape.merge(_answers(values, keys), None)
    outcome = call_outcome(policy, failure is not None)
    shares = token_shares(usage_tokens(result), sent)
    parts = shape.split(result, shares)
    if parts is None:
        memo.emit(outcome, keys[0], start, policy, scopes, error=failure, items=counted)
        if len(sent) == len(items):
            return result  # the whole request was sent: its answer is the answer
        logger.warning(
            "%s: the answer to %d items sent has not one answer per item; calling again "
            "with the whole batch (nothing is stored)",
            memo.function_id,
            len(sent),
        )
        return await wrapped(*args, **kwargs)
    model = response_model(result) or model
    now = memo.now()
    plan = memo.plan(policy, now)
    if plan is not None and memo.should_store(result):
        for key, part, share in zip(missing, parts, shares, strict=True):
            encoded = memo.encode(part, backend)
            if encoded is None:
                continue
            entry = memo.entry_for(
                key, encoded, plan, now, part, tokens=share, model=model, backend=backend
            )
            try:
                await backend.set(key, entry, plan.retention)
            except BackendError as exc:
                memo.backend_failed(backend, exc, "set")
                outcome, failure = Outcome.ERROR, exc
                break
    fresh = dict(zip(missing, shares, strict=True))
    values.update(zip(missing, parts, strict=True))
    # Repeats of a sent item are answered by its answer: hits, saving that item's share.
    tokens = sum(saved.get(key, fresh.get(key, 0)) for key in keys) - sum(fresh.values())
    memo.emit(
        outcome,
        keys[0],
        start,
        policy,
        scopes,
        error=failure,
        tokens=tokens,
        model=model,
        items=counted,
    )
    return shape.merge(_answers(values, keys), result)


async def _read(
    backend: Any, bulk: bool, keys: list[str]
) -> tuple[list[Entry | Missing], BackendError | None]:
    """The entries under ``keys`` (in order), with one bulk read when the backend has one, and
    the store's failure: the entries read before it (none for a bulk read) come with it."""
    if bulk:
        try:
            return await backend.get_many(keys), None
        except BackendError as exc:
            return [], exc
    found: list[Entry | Missing] = []
    for key in keys:
        try:
            found.append(await backend.get(key))
        except BackendError as exc:
            return found, exc
    return found, None


def _answers(values: dict[str, Any], keys: list[str]) -> list[Any]:
    """Each position's answer; a key met again gets its own copy (a fresh call's answer shares
    no object between two items)."""
    seen: set[str] = set()
    out = []
    for key in keys:
        value = values[key]
        if key in seen:
            value = copy.deepcopy(value)
        seen.add(key)
        out.append(value)
    return out
