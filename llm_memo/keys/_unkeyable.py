"""Why an argument cannot be keyed: the walk's internal exceptions and the errors users read.

The canonical walk (``canonical_form.py``) raises :class:`Unkeyable` (or its subclasses for
the depth and size bounds) with the offending value; each container on the way up adds its path
segment, and :func:`unkeyable_error` turns the result into an
:class:`~llm_memo.errors.UnkeyableArgumentError` that names the parameter, the path inside it,
whether it refers to itself, and the fix.

Not here: the walk and its bounds (``canonical_form.py``).
"""

from __future__ import annotations

from typing import Any

from ..errors import UnkeyableArgumentError

__all__ = ["NotSeekable", "TooBig", "TooDeep", "Unkeyable", "step", "unkeyable_error"]


class Unkeyable(Exception):
    """Internal: carries the path to the offending value up to the parameter level.

    ``trail`` collects ``(path segment, container)`` pairs on the way up (innermost first), so
    the top level can tell a self-referencing argument from a merely deep one.
    """

    def __init__(self, value: Any, reason: str = "") -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason
        self.trail: list[tuple[str, Any]] = []

    @property
    def path(self) -> str:
        return "".join(segment for segment, _ in reversed(self.trail))


class TooDeep(Unkeyable):
    """Internal: the canonical form would nest deeper than ``keys.MAX_DEPTH``."""


class TooBig(Unkeyable):
    """Internal: the canonical form would hold more than ``keys.MAX_NODES`` containers."""


class NotSeekable(Unkeyable):
    """Internal: a file object whose content cannot be read without consuming the caller's
    stream (it cannot seek back), so it cannot be keyed by content."""


def step(exc: Unkeyable, segment: str, container: Any) -> Unkeyable:
    exc.trail.append((segment, container))
    return exc


def _describe(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


def _find_cycle(trail: list[tuple[str, Any]]) -> tuple[str, str] | None:
    """In a root-first ``(segment, container)`` trail, the paths of the first container met
    again inside itself: (where it is, where it refers back to it)."""
    first: dict[int, int] = {}
    path = ""
    paths: list[str] = []
    for i, (segment, container) in enumerate(trail):
        paths.append(path)
        seen = first.get(id(container))
        if seen is not None:
            return path, paths[seen]
        first[id(container)] = i
        path += segment
    return None


def unkeyable_error(
    parameter: str,
    exc: Unkeyable,
    function: str = "",
    is_self: bool = False,
    *,
    max_depth: int,
    max_nodes: int,
) -> UnkeyableArgumentError:
    """The error a user reads for ``exc`` raised while keying ``parameter`` of ``function``,
    with the bounds the walk used (``max_depth``, ``max_nodes``) named in it."""
    target = f" for {function}" if function else ""
    trail = list(reversed(exc.trail))
    if isinstance(exc, TooBig):
        return UnkeyableArgumentError(
            f"cannot build a cache key{target}: argument {parameter!r} holds more than "
            f"{max_nodes:,} lists, tuples, mappings and sets (a part shared by several places "
            f"counts at each). Fix: leave it out with @llm_cached(ignore=({parameter!r},)), or "
            f"pass key=<function of the same arguments> returning a smaller value.",
            parameter=parameter,
        )
    if isinstance(exc, TooDeep):
        cycle = _find_cycle(trail)
        if cycle is not None:
            where, back = cycle
            return UnkeyableArgumentError(
                f"cannot build a cache key{target}: argument {parameter!r} refers to itself "
                f"({parameter}{where} is {parameter}{back}), so it has no finite canonical "
                f"form. Fix: pass a copy without the loop, leave it out with "
                f"@llm_cached(ignore=({parameter!r},)), or pass key=<function of the same "
                f"arguments> to choose what is keyed.",
                parameter=f"{parameter}{where}",
            )
        why = f" ({exc.reason})" if exc.reason else ""
        return UnkeyableArgumentError(
            f"cannot build a cache key{target}: argument {parameter!r} is nested more than "
            f"{max_depth} levels deep{why}. Fix: leave it out with "
            f"@llm_cached(ignore=({parameter!r},)), or pass key=<function of the same "
            f"arguments> returning a flatter value.",
            parameter=parameter,
        )
    where = f"{parameter}{exc.path}"
    what = _describe(exc.value)
    if isinstance(exc, NotSeekable):
        why = f" ({exc.reason})" if exc.reason else ""
        return UnkeyableArgumentError(
            f"cannot build a cache key{target}: argument {where!r} is a {what}, a stream that "
            f"cannot seek back{why}, so its content cannot be keyed without consuming it. Fix: "
            f"pass its bytes instead (data = stream.read()), a pathlib.Path to the file, or a "
            f"seekable file object (open(path, 'rb'), io.BytesIO(data)); or leave it out with "
            f"@llm_cached(ignore=({parameter!r},)).",
            parameter=where,
        )
    if exc.reason:
        return UnkeyableArgumentError(
            f"cannot build a cache key{target}: argument {where!r} is a {what} with no "
            f"canonical form: {exc.reason}. Fix: leave it out with "
            f"@llm_cached(ignore=({parameter!r},)), or pass key=<function of the same "
            f"arguments> to choose what is keyed.",
            parameter=where,
        )
    if is_self:
        fix = (
            f"if nothing on the instance changes the answer, decorate with "
            f"@llm_cached(ignore=({parameter!r},)); otherwise make {what} a dataclass or pydantic "
            f"model, or give it a __llm_memo_key__() method returning the state that matters"
        )
    else:
        fix = (
            f"leave it out of the key with @llm_cached(ignore=({parameter!r},)), pass "
            f"key=<function of the same arguments> to choose what is keyed, or give {what} a "
            f"__llm_memo_key__() method"
        )
    return UnkeyableArgumentError(
        f"cannot build a cache key{target}: argument {where!r} is a {what}, which has no "
        f"canonical form (its only form would be a repr with a memory address). Fix: {fix}.",
        parameter=where,
    )
