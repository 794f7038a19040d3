"""Every exception llm_memo raises, in one tree.

```
LLMMemoError
├── ConfigurationError(ValueError)        bad URL, option or directive
│   └── MissingDependencyError(ImportError)   a backend's extra is not installed
├── UnkeyableArgumentError(TypeError)     an argument has no canonical form; names it and the fix
├── CodecError(ValueError)                a corrupt, tampered or unknown entry; read as a miss
├── BackendError                          a backend failed; the decorator falls through to the call
│   └── BackendUnavailableError(ConnectionError)  raised only with ``strict=True``
└── CacheMiss(LookupError)                ``only_if_cached`` found nothing
```

Each class also derives from the builtin it resembles, so ``except ValueError`` keeps working.
The fail-open path of the decorator catches :class:`BackendError` and nothing wider: a bug in a
backend that raises something else is a bug, and it surfaces.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CacheMiss",
    "CodecError",
    "ConfigurationError",
    "LLMMemoError",
    "MissingDependencyError",
    "UnkeyableArgumentError",
]


class LLMMemoError(Exception):
    """Base class of every error llm_memo raises.

    .. versionadded:: 0.1.0
    """


class ConfigurationError(LLMMemoError, ValueError):
    """A backend URL, an option or a directive is not valid; the message says what to change.

    .. versionadded:: 0.1.0
    """


class MissingDependencyError(ConfigurationError, ImportError):
    """A backend needs an optional package that is not installed.

    The message names the extra to install, e.g. ``pip install 'llm-memo[redis]'``.

    .. versionadded:: 0.1.0
    """


class UnkeyableArgumentError(LLMMemoError, TypeError):
    """An argument has no canonical form, so no stable cache key can be built from it.

    Attributes:
        parameter: the parameter's name (with a path into it, such as ``messages[0]``).

    The message names the parameter and the two fixes: leave it out with ``ignore=(...)`` or
    give the decorator a ``key=`` function.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, parameter: str = "") -> None:
        super().__init__(message)
        self.parameter = parameter


class CodecError(LLMMemoError, ValueError):
    """A stored entry could not be decoded: corrupt, tampered, unsigned or of an unknown type.

    The decorator treats it as a miss; users only see it from the low-level codec API.

    .. versionadded:: 0.1.0
    """


class BackendError(LLMMemoError):
    """A backend operation failed (connection refused, timeout, I/O error, server error).

    Backends wrap their driver's exceptions in this class, with the original as ``__cause__``.

    .. versionadded:: 0.1.0
    """


class BackendUnavailableError(BackendError, ConnectionError):
    """A backend failed while ``strict=True`` asked for failures to be raised, not bypassed.

    .. versionadded:: 0.1.0
    """


class CacheMiss(LLMMemoError, LookupError):
    """An ``only_if_cached`` call found no usable entry, so the function was not called.

    Attributes:
        key: the cache key that was looked up.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key
