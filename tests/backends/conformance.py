"""The conformance suite, as the backend tests import it: the public one in llm_memo.testing.

Kept so ``from .conformance import ...`` in the backend test modules keeps working; the suite
itself (and its documentation for third-party backend authors) is
:mod:`llm_memo.testing.conformance`, whose ``__all__`` this re-exports.
"""

from __future__ import annotations

from llm_memo.testing.conformance import *  # noqa: F403 - a re-export, the names are its __all__
