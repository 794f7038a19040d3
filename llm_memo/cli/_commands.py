"""What each ``llm-memo`` subcommand does: stats, ls, show, rm, purge, copy and explain.

Each command takes the parsed arguments and an :class:`~llm_memo.cli._output.Out`; those that
work on one store (:data:`ON_BACKEND`) also get the backend ``-b`` opened, and ``copy`` and
``explain`` open what they need themselves. Opening stores and selecting entries is
:mod:`llm_memo.cli._store`; formatting is :mod:`llm_memo.cli._output`; the comparison behind
``explain`` is :func:`llm_memo.explain.differences`, the one ``fn.cache.explain`` uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any, TextIO

from .. import config
from .._policy import retained_until
from ..backends import MISSING, Listing
from ..backends._counters import day_of
from ..backends.recording import RecordedCall, RecordingBackend, read_recording
from ..entry import Entry
from ..errors import CodecError
from ..explain import Difference, differences
from ._args import options
from ._output import (
    NOT_FOUND,
    OK,
    USAGE,
    Exit,
    Out,
    Progress,
    describe,
    human_age,
    human_bytes,
    value_json,
)
from ._saved import print_saved, saved_report
from ._store import (
    GLOB,
    Filter,
    close_backend,
    filter_from,
    is_expired,
    open_backend,
    select,
    wall_clock,
)

__all__ = ["ON_BACKEND", "cmd_copy", "cmd_explain"]


def cmd_stats(args: argparse.Namespace, backend: Any, out: Out) -> int:
    now = wall_clock()
    total = size = expired = 0
    by_ns: dict[str, list[int]] = {}
    by_fn: dict[tuple[str, str], list[int]] = {}
    for _key, parts, entry in select(backend, filter_from(args), with_entries=True):
        total += 1
        nbytes = entry.size if entry is not None else 0
        size += nbytes
        if entry is None or is_expired(entry, now):
            expired += 1
        ns, fn = (parts.namespace, parts.function) if parts else ("?", "?")
        for bucket in (by_ns.setdefault(ns, [0, 0]), by_fn.setdefault((ns, fn), [0, 0])):
            bucket[0] += 1
            bucket[1] += nbytes
    since = day_of(now - args.since) if args.since is not None else ""
    saved = saved_report(backend, since, args.function)
    out.document(
        {
            "backend": repr(backend),
            "entries": total,
            "bytes": size,
            "expired": expired,
            "namespaces": [
                {"namespace": ns, "entries": n, "bytes": b} for ns, (n, b) in sorted(by_ns.items())
            ],
            "functions": [
                {"namespace": ns, "function": fn, "entries": n, "bytes": b}
                for (ns, fn), (n, b) in sorted(by_fn.items())
            ],
            "saved": saved,
        }
    )
    out.line(f"backend: {backend!r}")
    out.line(f"entries: {total} ({expired} expired)")
    out.line(f"bytes:   {human_bytes(size)}")
    if by_fn:
        width = max(len("namespace"), *(len(ns) for ns, _ in by_fn))
        fwidth = max(len("function"), *(len(fn) for _, fn in by_fn))
        out.line()
        out.line(f"{'namespace':<{width}}  {'function':<{fwidth}}  {'entries':>7}  bytes")
        for (ns, fn), (n, b) in sorted(by_fn.items()):
            out.line(f"{ns:<{width}}  {fn:<{fwidth}}  {n:>7}  {human_bytes(b)}")
    print_saved(out, saved)
    return OK


def cmd_ls(args: argparse.Namespace, backend: Any, out: Out) -> int:
    now = wall_clock()
    rows = []
    for key, _, entry in select(backend, filter_from(args), with_entries=True):
        rows.append(describe(key, entry, now, entry is None or is_expired(entry, now)))
        if args.limit is not None and len(rows) >= args.limit:
            break
    out.document(rows)
    for row in rows:
        if "created_at" not in row:
            out.line(f"{'expired':>7}  {'-':>9}  {'-':<8}  {row['key']}")
            continue
        age = human_age(row["age_seconds"])
        out.line(f"{age:>7}  {human_bytes(row['bytes']):>9}  {row['type'][:8]:<8}  {row['key']}")
    return OK if rows else NOT_FOUND


def cmd_show(args: argparse.Namespace, backend: Any, out: Out) -> int:
    got = backend.get(args.key)
    if got is MISSING:
        raise Exit(NOT_FOUND, f"no entry under {args.key} (or it has expired)")
    entry: Entry = got
    now = wall_clock()
    info = describe(args.key, entry, now, is_expired(entry, now))
    value, note = value_json(args.key, entry)
    if isinstance(backend, RecordingBackend):
        info["request"] = backend.request_for(args.key)
    info["value"] = value
    if note:
        info["note"] = note
    out.document(info)
    for name in ("key", "namespace", "function"):
        out.line(f"{name + ':':<11} {info[name]}")
    out.line(f"{'created:':<11} {info['created_at']} ({human_age(now - entry.created_at)} ago)")
    if entry.expires_at is None:
        out.line(f"{'expires:':<11} never")
    else:
        left = entry.expires_at - now
        when = f"in {human_age(left)}" if left > 0 else f"{human_age(-left)} ago"
        out.line(f"{'expires:':<11} {info['expires_at']} ({when})")
    if entry.stale_window:
        out.line(f"{'stale:':<11} served up to {human_age(entry.stale_window)} past expiry")
    out.line(f"{'type:':<11} {entry.type_tag}")
    extra = ", compressed" if info["compressed"] else ""
    out.line(f"{'size:':<11} {human_bytes(entry.size)}{extra}")
    out.line(f"{'tokens:':<11} {entry.tokens}")
    out.line(f"{'signed:':<11} {'yes' if entry.signature else 'no'}")
    if "request" in info:
        out.line("request:")
        out.line(json.dumps(info["request"], indent=2, ensure_ascii=False, sort_keys=True))
    out.line("value:")
    out.line(note or json.dumps(value, indent=2, ensure_ascii=False))
    return OK


def cmd_rm(args: argparse.Namespace, backend: Any, out: Out) -> int:
    removed: list[str] = []
    missing: list[str] = []
    for key in args.keys:
        (removed if backend.delete(key) else missing).append(key)
    out.document({"removed": removed, "missing": missing})
    for key in removed:
        out.line(f"removed {key}")
    for key in missing:
        out.line(f"not found {key}")
    return NOT_FOUND if missing else OK


def cmd_purge(args: argparse.Namespace, backend: Any, out: Out) -> int:
    flt = filter_from(args)
    if not (args.expired or args.all or flt.namespace or flt.function or flt.needs_entry):
        raise Exit(
            USAGE,
            "purge needs a selection: --expired, --older-than AGE, --namespace NS, "
            "--function NAME or --all",
        )
    if args.all and (args.expired or flt.namespace or flt.function or flt.needs_entry):
        raise Exit(USAGE, "--all selects everything; give it alone")
    purged: list[str] | int
    skipped = 0
    whole = not (args.expired or flt.needs_entry) and (
        flt.function is None or (flt.namespace is not None and not GLOB.search(flt.function))
    )
    if args.dry_run:
        purged, skipped = _purge_plan(args, backend, flt)
    elif whole:  # a namespace, one function, or everything: a prefix, no listing needed
        purged = int(backend.clear(flt.prefix))
    elif args.expired and flt == Filter() and callable(getattr(backend, "purge_expired", None)):
        # The backend's own sweep (disk, object stores): it also removes entries past their
        # retention that reads no longer return, and keeps what it cannot read.
        purged = int(backend.purge_expired())
        skipped = _unreadable(backend)
    else:
        doomed, skipped = _purge_plan(args, backend, flt)
        purged = [key for key in doomed if backend.delete(key)]
    count = purged if isinstance(purged, int) else len(purged)
    verb = "would purge" if args.dry_run else "purged"
    out.document(
        {"dry_run": args.dry_run, "purged": count, "skipped": skipped}
        | ({"keys": purged} if isinstance(purged, list) else {})
    )
    if isinstance(purged, list) and args.dry_run:
        for key in purged:
            out.line(key)
    out.line(f"{verb} {count} entr{'y' if count == 1 else 'ies'}")
    if skipped:
        out.line(
            f"skipped {skipped} entr{'y' if skipped == 1 else 'ies'} it cannot read (another "
            "format version or library, or damaged): kept"
        )
    return OK if count else NOT_FOUND


def _purge_plan(args: argparse.Namespace, backend: Any, flt: Filter) -> tuple[list[str], int]:
    """The keys a purge deletes, and how many listed entries it cannot judge.

    Only an entry this version reads can be judged: one that does not read as an entry (a
    newer format's, a damaged one, another library's value, another Redis type) is never
    deleted by an age or expiry selection, only counted. Expired means past the entry's
    retention, ``expires_at`` plus its stale window (the grace ``stale_if_error`` reads use),
    not merely past ``expires_at``.
    """
    judge = args.expired or flt.needs_entry
    by_key = dataclasses.replace(flt, older_than=None, newer_than=None)
    now = wall_clock()
    doomed: list[str] = []
    skipped = 0
    for key, _, entry in select(backend, by_key, with_entries=judge):
        if not judge:
            doomed.append(key)
        elif entry is None:
            skipped += 1
        elif flt.entry_matches(entry, now) and (not args.expired or is_expired(entry, now)):
            doomed.append(key)
    return doomed, skipped


def _unreadable(backend: Any) -> int:
    """How many listed keys do not read as entries (after a backend's own sweep)."""
    if not isinstance(backend, Listing):
        return 0
    store: Any = backend  # a Backend as well as a Listing
    return sum(store.get(key) is MISSING for key in backend.keys(""))


def cmd_copy(args: argparse.Namespace, out: Out, err: TextIO) -> int:
    src = open_backend(args.src, options(args.src_option))
    try:
        dst = open_backend(args.dst, options(args.dst_option), must_exist=False)
    except BaseException:
        close_backend(src)
        raise
    try:
        flt = filter_from(args)
        keys = [k for k, _, _ in select(src, flt, with_entries=False)]
        present: set[str] | None = None
        if not args.overwrite and isinstance(dst, Listing):
            present = set(dst.keys(flt.prefix))  # one listing instead of a GET per key
        progress = Progress(
            len(keys), args.progress if args.progress is not None else err.isatty(), err
        )
        copied = skipped = expired = 0
        now = wall_clock()
        for done, key in enumerate(keys, 1):
            if not args.overwrite and (
                key in present if present is not None else dst.get(key) is not MISSING
            ):
                skipped += 1
            else:
                got = src.get(key)
                if got is MISSING or is_expired(got, now):
                    expired += 1
                else:
                    until = retained_until(got, config.settings().grace)
                    dst.set(key, got, None if until is None else until - now)
                    copied += 1
            progress.update(done, copied, skipped, final=done == len(keys))
        out.document(
            {"listed": len(keys), "copied": copied, "skipped": skipped, "expired": expired}
        )
        out.line(
            f"copied {copied} of {len(keys)} entries from {args.src} to {args.dst}"
            f" ({skipped} already there, {expired} expired)"
        )
        return OK if keys else NOT_FOUND
    finally:
        close_backend(src)
        close_backend(dst)


def _load_call(ref: str, backend: Any) -> RecordedCall:
    if os.path.isfile(ref):
        try:
            return read_recording(ref)
        except CodecError as exc:
            raise Exit(USAGE, f"{ref} is not a recording: {exc}") from exc
    if not isinstance(backend, RecordingBackend):
        raise Exit(
            USAGE,
            f"{ref!r} is not a recording file, and only recordings keep the request a key was "
            "made from: pass two recording files, or keys with -b recordings://FOLDER",
        )
    path = backend.path_for(ref)
    if not path.is_file():
        raise Exit(NOT_FOUND, f"no recording of {ref} in {backend.directory}")
    try:
        return read_recording(path)
    except CodecError as exc:
        raise Exit(USAGE, f"{path} is not a recording: {exc}") from exc


def cmd_explain(args: argparse.Namespace, out: Out) -> int:
    backend = open_backend(args.backend, options(args.option)) if args.backend else None
    try:
        a, b = _load_call(args.a, backend), _load_call(args.b, backend)
    finally:
        if backend is not None:
            close_backend(backend)
    for call, ref in ((a, args.a), (b, args.b)):
        if call.request is None:
            raise Exit(NOT_FOUND, f"{ref}: no request was recorded with this entry")
    diffs = [
        Difference(name, getattr(a, name), getattr(b, name))
        for name in ("function", "namespace")
        if getattr(a, name) != getattr(b, name)
    ]
    differences(a.request, b.request, "", diffs)
    same = a.key == b.key
    out.document(
        {
            "same": same,
            "key_a": a.key,
            "key_b": b.key,
            "differences": [{"path": d.path, "a": d.a, "b": d.b} for d in diffs],
        }
    )
    if same:
        out.line(f"same key {a.key}: the second call hits the first call's entry")
        return OK
    out.line("different keys:")
    out.line(f"  a: {a.key}")
    out.line(f"  b: {b.key}")
    for d in diffs:
        out.line(f"  {d}")
    if not diffs:
        out.line("  (the requests are equal: the keys come from different library versions)")
    return OK


#: The commands that work on the one store ``-b`` names, by subcommand name.
ON_BACKEND: dict[str, Callable[[argparse.Namespace, Any, Out], int]] = {
    "stats": cmd_stats,
    "ls": cmd_ls,
    "show": cmd_show,
    "rm": cmd_rm,
    "purge": cmd_purge,
}
