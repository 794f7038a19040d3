"""llm_memo: memoize LLM calls with one decorator.

```python
from llm_memo import llm_cached, cache_controls

@llm_cached(ttl=3600)
def ask(model: str, messages: list[dict], temperature: float = 0.0): ...
```

This module only re-exports; nothing runs at import time.
"""

from .__about__ import __version__
from ._decorator import CacheHandle, Call, Explanation, call, llm_cached
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
