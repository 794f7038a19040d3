"""Fork safety for objects that own locks: a forked child re-creates them.

A lock held by another thread at ``fork()`` stays held forever in the child, where that thread
does not exist. Objects that own locks register here and get ``_after_fork()`` called in the
child (gunicorn and celery workers fork after the app has imported and used llm_memo).
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["register"]


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_owners: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def register(owner: _ForkAware) -> None:
    """Call ``owner._after_fork()`` in every forked child while ``owner`` is alive."""
    _owners.add(owner)


def _reset_all() -> None:
    for owner in list(_owners):
        owner._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all)
