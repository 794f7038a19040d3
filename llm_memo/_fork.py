"""Fork safety for objects that own locks: a forked child re-creates them.

A lock held by another thread at ``fork()`` stays held forever in the child, where that thread
does not exist. Objects that own locks register here and get ``_after_fork()`` called in the
child (gunicorn and celery workers fork after the app has imported and used llm_memo).
Module-level state registers a plain function with :func:`on_fork`. This is the only place
llm_memo calls ``os.register_at_fork``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["on_fork", "register"]


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_owners: weakref.WeakSet[_ForkAware] = weakref.WeakSet()
_callbacks: list[Callable[[], None]] = []


def register(owner: _ForkAware) -> None:
    """Call ``owner._after_fork()`` in every forked child while ``owner`` is alive."""
    _owners.add(owner)


def on_fork(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback()`` in every forked child (usable as a decorator); returns it."""
    _callbacks.append(callback)
    return callback


def _reset_all() -> None:
    for callback in _callbacks:
        callback()
    for owner in list(_owners):
        owner._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all)
