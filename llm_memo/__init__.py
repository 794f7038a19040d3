"""llm_memo: memoize LLM calls with one decorator.

```python
from llm_memo import llm_cached, cache_controls

@llm_cached(ttl=3600)
def ask(model: str, messages: list[dict], temperature: float = 0.0): ...
```

This module only re-exports (and names itself as the home of the classes it re-exports, so
``repr()``, docs and pickles say ``llm_memo.Event``, not the private module that defines it,
after resolving their annotations where they were written); nothing else runs at import time.
``llm_cached`` returns a :class:`CachedFunction`.
"""

import inspect as _inspect
import typing as _typing

from .__about__ import __version__
from ._decorator import CachedFunction, CacheHandle, Call, Explanation, call, llm_cached
from .codec import register_type
from .config import configure
from .controls import CacheScope, cache_controls, propagate
from .errors import (
    BackendError,
    BackendUnavailableError,
    CacheMiss,
    CodecError,
    ConfigurationError,
    LLMMemoError,
    MissingDependencyError,
    UnkeyableArgumentError,
)
from .events import CacheStats, Event, Outcome

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CacheHandle",
    "CacheMiss",
    "CacheScope",
    "CacheStats",
    "CachedFunction",
    "Call",
    "CodecError",
    "ConfigurationError",
    "Event",
    "Explanation",
    "LLMMemoError",
    "MissingDependencyError",
    "Outcome",
    "UnkeyableArgumentError",
    "__version__",
    "cache_controls",
    "call",
    "configure",
    "llm_cached",
    "propagate",
    "register_type",
]

# As httpx does: the public classes report the package as their module. They stay importable
# from their defining modules too, and pickles (by reference, ``llm_memo.CacheMiss``) resolve
# here. Functions keep theirs (``llm_memo.configure`` is ``llm_memo.config.configure``).
# typing.get_type_hints looks string annotations up in the module a class reports, so each
# class's own annotations are resolved first, where they were written.
for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type):
        _own = _inspect.get_annotations(_public)
        if _own:
            try:
                _hints = _typing.get_type_hints(_public, include_extras=True)
            except Exception:  # noqa: BLE001 - a name only known to type checkers: leave as is
                pass
            else:
                _public.__annotations__ = {k: _hints.get(k, v) for k, v in _own.items()}
        _public.__module__ = __name__
del _name, _public, _own, _inspect, _typing
globals().pop("_hints", None)
