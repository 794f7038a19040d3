"""The ``llm-memo`` command's arguments: the argparse tree, durations and ``-o NAME=VALUE`` options.

Only parsing lives here: which subcommand and flags exist, their help texts, and the conversion
of ``7d`` / ``-o storage_options.endpoint_url=...`` into values. What each command does is in
:mod:`llm_memo.cli._commands`; the subcommand's name (``args.command``) selects it there.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from typing import Any

from ..__about__ import __version__
from ._output import USAGE, Exit

__all__ = ["build_parser", "duration", "options"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90s, 15m, 12h, 7d, 2w)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _option_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def options(pairs: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or ():
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise Exit(USAGE, f"option {pair!r} is not NAME=VALUE")
        *path, last = name.split(".")
        target = out
        for part in path:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise Exit(USAGE, f"option {name!r} nests into a value")
        target[last] = _option_value(raw)
    return out


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-b",
        "--backend",
        metavar="URL",
        help="backend URL or path (default: $LLM_MEMO_BACKEND, else the embedded disk cache)",
    )
    common.add_argument(
        "-o",
        "--option",
        action="append",
        metavar="NAME=VALUE",
        help="backend option, e.g. -o storage_options.endpoint_url=http://localhost:9000",
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON for scripts")
    select = argparse.ArgumentParser(add_help=False)
    select.add_argument("--namespace", metavar="NS", help="only this namespace")
    select.add_argument("--function", metavar="NAME", help="only functions matching this glob")
    ages = argparse.ArgumentParser(add_help=False)
    ages.add_argument("--older-than", type=duration, metavar="AGE", help="e.g. 7d, 12h, 30m")
    ages.add_argument("--newer-than", type=duration, metavar="AGE", help="e.g. 1h")

    parser = argparse.ArgumentParser(
        prog="llm-memo",
        description="Inspect and manage llm_memo caches on any backend.",
        epilog="exit codes: 0 ok, 1 not found / nothing matched, 2 usage error, 3 backend error",
    )
    parser.add_argument("--version", action="version", version=f"llm-memo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "stats",
        parents=[common, json_flag, select],
        help="entries and bytes by function; hits, tokens and money saved (persist_stats)",
    )
    p.add_argument(
        "--since",
        type=duration,
        metavar="AGE",
        help="saved counters of the last AGE only, by UTC day (e.g. 7d); default: all",
    )
    p = sub.add_parser("ls", parents=[common, json_flag, select, ages], help="list entries")
    p.add_argument("--limit", type=int, metavar="N", help="at most N entries")
    p = sub.add_parser("show", parents=[common, json_flag], help="one entry, value as JSON")
    p.add_argument("key")
    p = sub.add_parser("rm", parents=[common, json_flag], help="delete entries by key")
    p.add_argument("keys", nargs="+", metavar="KEY")
    p = sub.add_parser(
        "purge", parents=[common, json_flag, select, ages], help="delete a selection of entries"
    )
    p.add_argument(
        "--expired",
        action="store_true",
        help="entries past their retention (expiry plus stale window); unreadable ones are kept",
    )
    p.add_argument("--all", action="store_true", help="every entry")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    p = sub.add_parser(
        "copy", parents=[json_flag, select], help="copy entries to another backend (resumable)"
    )
    p.add_argument("src", metavar="SRC", help="source backend URL")
    p.add_argument("dst", metavar="DST", help="destination backend URL")
    p.add_argument("--src-option", action="append", metavar="NAME=VALUE")
    p.add_argument("--dst-option", action="append", metavar="NAME=VALUE")
    p.add_argument("--overwrite", action="store_true", help="also copy keys DST already has")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    p = sub.add_parser(
        "explain",
        parents=[common, json_flag],
        help="why two recorded calls have different keys",
    )
    p.add_argument("a", metavar="A", help="a recording file, or a key in -b recordings://DIR")
    p.add_argument("b", metavar="B", help="the other one")
    return parser
