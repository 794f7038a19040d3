"""What ``llm-memo stats`` says about money saved: the persistent counters, summed per function
(and per day), from a backend that keeps them (``configure(persist_stats=True)``).

Reading only: the counters are written by the decorated functions (``llm_memo/_counters.py``)
through the backend's :class:`~llm_memo.backends.Counting` methods. Not here: the entry
statistics above this section (``_commands.cmd_stats``), formatting helpers (``_output``).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from ..backends import Counting
from ..backends._counters import COUNTER_FIELDS
from ._output import Out

__all__ = ["print_saved", "saved_report"]

_TURN_ON = "configure(persist_stats=True) or LLM_MEMO_PERSIST_STATS=1 in the cached programs"


def _row(counts: dict[str, int]) -> dict[str, Any]:
    row: dict[str, Any] = {name: counts.get(name, 0) for name in COUNTER_FIELDS}
    nusd = row.pop("cost_saved_nusd")
    looked_up = row["hits"] + row["stale"] + row["misses"] + row["errors"]
    row["hit_ratio"] = (row["hits"] + row["stale"]) / looked_up if looked_up else 0.0
    row["cost_saved_usd"] = nusd / 1e9
    return row


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for name, amount in counts.items():
        into[name] = into.get(name, 0) + amount


def saved_report(backend: Any, since: str, function: str | None) -> dict[str, Any]:
    """The counters of ``backend`` for days ``since`` on, for functions matching the glob
    ``function``: per function, per day and in total.

    Raises:
        BackendError: the counters could not be read.
    """
    if not isinstance(backend, Counting):
        return {"counters": False, "since": since or None}
    by_fn: dict[str, dict[str, int]] = {}
    by_day: dict[str, dict[str, int]] = {}
    total: dict[str, int] = {}
    for (day, fn), counts in backend.read_counters(since).items():
        if function is not None and not fnmatch.fnmatchcase(fn, function):
            continue
        for bucket in (by_fn.setdefault(fn, {}), by_day.setdefault(day, {}), total):
            _add(bucket, counts)
    return {
        "counters": True,
        "since": since or None,
        "functions": [{"function": fn, **_row(c)} for fn, c in sorted(by_fn.items())],
        "days": [{"day": day, **_row(c)} for day, c in sorted(by_day.items())],
        "total": _row(total),
    }


def print_saved(out: Out, report: dict[str, Any]) -> None:
    """The human form of :func:`saved_report`."""
    out.line()
    window = f" since {report['since']}" if report["since"] else ""
    if not report["counters"]:
        out.line("saved: this backend keeps no counters (Redis, disk and object stores do)")
        return
    rows = report["functions"]
    if not rows:
        out.line(f"saved: no counters recorded{window}; to record them: {_TURN_ON}")
        return
    total = report["total"]
    out.line(
        f"saved{window}: {total['tokens_saved']} tokens, ${total['cost_saved_usd']:.4f} "
        f"({total['hits']} hits, {total['misses']} misses, hit ratio {total['hit_ratio']:.0%})"
    )
    width = max(len("function"), *(len(row["function"]) for row in rows))
    out.line(
        f"{'function':<{width}}  {'hits':>7}  {'misses':>7}  {'ratio':>5}  {'tokens':>10}  "
        "saved USD"
    )
    for row in rows:
        out.line(
            f"{row['function']:<{width}}  {row['hits']:>7}  {row['misses']:>7}  "
            f"{row['hit_ratio']:>5.0%}  {row['tokens_saved']:>10}  {row['cost_saved_usd']:.4f}"
        )
