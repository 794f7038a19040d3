"""Why two calls do (not) share a cache key: :class:`Explanation` and :func:`differences`.

``fn.cache.explain(call_a, call_b)`` (in ``_decorator.py``) builds the two canonical request
views and hands them to :func:`differences`; ``llm-memo explain`` (in ``llm_memo.cli``) does the
same with the requests two recordings hold. Both print the result the same way, so the
comparison rule lives here once: mappings compare key by key, lists of one length item by item,
lists of two lengths report the length and then the common items.

The public names are re-exported from :mod:`llm_memo` (``Call``, ``call``, ``Explanation``).
Not here: building the canonical view (``llm_memo.keys``) or reading recordings
(``llm_memo.recording``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, ParamSpec

__all__ = ["ABSENT", "Call", "Difference", "Explanation", "as_call", "call", "differences"]

P = ParamSpec("P")


@dataclass(frozen=True)
class Call(Generic[P]):
    """The arguments of one call, for :meth:`CacheHandle.explain`; build it with :func:`call`."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def call(*args: Any, **kwargs: Any) -> Call[Any]:
    """Capture a call's arguments, for ``fn.cache.explain(call(...), call(...))``.

    .. versionadded:: 0.1.0
    """
    return Call(args, kwargs)


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


#: What a :class:`Difference` shows for a field one side does not have.
ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Difference:
    """One place where two calls' canonical requests differ."""

    path: str
    a: Any
    b: Any

    def __str__(self) -> str:
        return f"{self.path}: {self.a!r} != {self.b!r}"


@dataclass(frozen=True)
class Explanation:
    """Why two calls do (not) share a cache key.

    Attributes:
        key_a, key_b: the two keys.
        differences: every differing part of the canonical requests (empty when the calls
            share a key).

    .. versionadded:: 0.1.0
    """

    key_a: str
    key_b: str
    differences: tuple[Difference, ...]

    @property
    def same(self) -> bool:
        """Whether both calls have the same key (the second would hit the first's entry)."""
        return self.key_a == self.key_b

    def __str__(self) -> str:
        if self.same:
            return f"same key {self.key_a}: the second call hits the first call's entry"
        lines = [f"different keys:\n  a: {self.key_a}\n  b: {self.key_b}"]
        lines += [f"  {d}" for d in self.differences] or ["  (the function or namespace differ)"]
        return "\n".join(lines)


def differences(
    a: Any, b: Any, path: str = "", out: list[Difference] | None = None
) -> list[Difference]:
    """Every place where the JSON-like views ``a`` and ``b`` differ, appended to ``out``.

    Args:
        a, b: two canonical request views (dicts, lists and scalars).
        path: the dotted path of ``a`` and ``b`` inside a larger view (``""`` at the top).
        out: a list to append to (a new one when ``None``).

    Returns:
        ``out``, with one :class:`Difference` per differing leaf (``messages[0].content``), a
        ``(length)`` entry for lists of different lengths, and :data:`ABSENT` for a field only
        one side has.

    Example::

        >>> [str(d) for d in differences({"t": 0, "m": "x"}, {"t": 1, "m": "x"})]
        ['t: 0 != 1']
    """
    found: list[Difference] = [] if out is None else out
    if type(a) is dict and type(b) is dict:
        for k in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{k}" if path else str(k)
            differences(a.get(k, ABSENT), b.get(k, ABSENT), sub, found)
    elif type(a) is list and type(b) is list and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            differences(x, y, f"{path}[{i}]", found)
    elif type(a) is not type(b) or a != b:
        if type(a) is list and type(b) is list:
            found.append(Difference(f"{path} (length)", len(a), len(b)))
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                differences(x, y, f"{path}[{i}]", found)
        else:
            found.append(Difference(path, a, b))
    return found


def as_call(c: Any) -> Call[Any]:
    """``c`` as a :class:`Call`: a :func:`call` object, a kwargs dict or an ``(args, kwargs)`` pair.

    Raises:
        TypeError: ``c`` is none of those.
    """
    if isinstance(c, Call):
        return c
    if isinstance(c, dict):
        return Call((), dict(c))
    if isinstance(c, tuple) and len(c) == 2 and isinstance(c[1], dict):
        return Call(tuple(c[0]), dict(c[1]))
    raise TypeError("explain() takes llm_memo.call(...) objects, kwargs dicts or (args, kwargs)")
