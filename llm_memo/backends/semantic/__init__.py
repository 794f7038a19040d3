"""Semantic caching: the embedder seam, the lexical guard, and what the semantic backends share.

A semantic backend answers a request that is *similar* to a cached one (issue 5). The decorator
hands it two strings (see :class:`~llm_memo.backends.Semantic`): the request's exact *context*
(function, namespace, model, parameters, system prompt... hashed) and the *text* to embed (the
user turns). Everything here serves one rule: a match never crosses contexts, nor embedders.

What lives here:

* :class:`Embedder` / :class:`AsyncEmbedder`, the protocols an embedding model meets: a
  callable from a batch of texts to vectors, plus ``name`` (its identity, part of every
  partition, so changing the model never matches old vectors) and ``dimension``. Adapters for
  OpenAI-compatible clients, litellm and an offline local model are in :mod:`.embedders`.
* :class:`Guard` and :class:`LexicalGuard`: an optional second opinion on a candidate hit.
  One cosine threshold cannot tell "enable 2FA" from "disable 2FA" with small embedding models
  (benchmarks/semantic_quality.py measures it); the guard refuses a hit when the two texts differ
  in negation, numbers, dates, named entities, antonyms or language.
* The sans-I/O core the backends are built on. Each backend writes its behaviour once, as
  generators that *yield* operations (:class:`Embed`, or a backend-specific client call) and
  receive their results; :func:`drive` runs such a generator against a sync client and
  :func:`adrive` against an async one. The sync and async backend classes differ only in who
  performs the operations, so they cannot drift apart (the generator flows of httpx's
  ``_auth.py``, the sans-I/O core of hishel).

Not here: the backends themselves (:mod:`.qdrant`, :mod:`.redis`), and how the decorator splits a
request into context and text (``keys.split_for_similarity``).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar, runtime_checkable

import orjson
import xxhash

from ...errors import BackendError, ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    #: A matrix of unit vectors, one float32 row per text.
    Matrix: TypeAlias = npt.NDArray[np.float32]

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_THRESHOLD",
    "AsyncEmbedder",
    "Embedder",
    "Guard",
    "LexicalGuard",
    "VectorsTypes",
]

#: Cosine similarity a semantic hit needs when neither the backend nor the call says otherwise.
#: Chosen from benchmarks/semantic_quality.py with the offline MiniLM model and the lexical guard
#: on (see docs/backends/semantic.md for the table); re-measure for another embedder.
DEFAULT_THRESHOLD = 0.85

#: How many nearest neighbours a search looks at (best first): a candidate the guard refuses, or
#: whose entry expired, gives way to the next.
DEFAULT_CANDIDATES = 4

#: What an embedder may return for a batch: one vector per text, as nested sequences of floats or
#: as a 2-D numpy array.
VectorsTypes: TypeAlias = "Sequence[Sequence[float]] | npt.NDArray[Any]"

T = TypeVar("T")


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


# -- embedders ----------------------------------------------------------------------------------


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

    Raises:
        ConfigurationError: none is configured; the message names the fix.
    """
    from ...config import settings

    embedder = settings().embedder
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


class VectorCache:
    """A small thread-safe LRU of text -> unit vector.

    A miss embeds its text for :meth:`~llm_memo.backends.Semantic.search` and then needs the same
    vector for :meth:`~llm_memo.backends.Semantic.add`: this makes that one embedding call.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._data: OrderedDict[str, Any] = OrderedDict()

    def get(self, text: str) -> Any:
        """The cached vector for ``text``, or ``None``."""
        with self._lock:
            vector = self._data.get(text)
            if vector is not None:
                self._data.move_to_end(text)
            return vector

    def put(self, text: str, vector: Any) -> None:
        """Remember ``vector`` for ``text``, dropping the least recently used beyond ``size``."""
        if self.size <= 0:
            return
        with self._lock:
            self._data[text] = vector
            self._data.move_to_end(text)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


def partition_name(context: str, embedder_name: str) -> str:
    """The name of the partition a (context, embedder) pair searches and adds in.

    It starts with ``context`` (which starts with the function's key prefix), so clearing a
    namespace or a function by prefix also clears its vectors; the suffix names the embedder by
    hash, so another model's vectors live apart.
    """
    return f"{context}~sem:{xxhash.xxh3_64_hexdigest(embedder_name.encode())}"


def resolve_threshold(threshold: float | None, default: float) -> float:
    """The threshold for one search: the call's, else the backend's.

    Raises:
        ConfigurationError: outside [-1, 1] (cosine similarity's range).
    """
    value = default if threshold is None else float(threshold)
    if not -1.0 <= value <= 1.0:
        raise ConfigurationError(f"threshold must be a cosine similarity in [-1, 1], not {value}")
    return value


def key_prefixes(key: str) -> list[str]:
    """Every prefix of ``key`` that ends with ``:`` (namespace and function prefixes among them),
    for stores that clear by an exact match on a stored field."""
    return [key[: i + 1] for i, char in enumerate(key) if char == ":"]


# -- the sans-I/O driver -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Embed:
    """Operation: embed one text; the result sent back is its unit vector (float32 row)."""

    text: str


#: A backend operation written once: a generator that yields operations and returns ``T``.
Flow: TypeAlias = Generator[Any, Any, T]


def embed_flow(text: str, cache: VectorCache) -> Flow[Any]:
    """Yield an :class:`Embed` unless ``text``'s vector is cached; return the vector."""
    vector = cache.get(text)
    if vector is None:
        vector = yield Embed(text)
        cache.put(text, vector)
    return vector


def drive(
    flow: Flow[T], perform: Callable[[Any], Any], failures: tuple[type[BaseException], ...]
) -> T:
    """Run ``flow``, performing each operation it yields with ``perform``.

    A ``failures`` exception raised by ``perform`` is thrown into the flow at the ``yield``, so
    a flow can handle the store's answers (a missing collection, say); anything else, and
    anything the flow does not handle, propagates.
    """
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(send) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        error = None
        try:
            send = perform(op)
        except failures as exc:
            send, error = None, exc


async def adrive(
    flow: Flow[T],
    perform: Callable[[Any], Awaitable[Any]],
    failures: tuple[type[BaseException], ...],
) -> T:
    """The async twin of :func:`drive`: ``perform`` returns an awaitable."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(send) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        error = None
        try:
            send = await perform(op)
        except failures as exc:
            send, error = None, exc


def embed_sync(embedder: Any, text: str) -> Matrix:
    """Perform an :class:`Embed` with a sync embedder: the text's unit vector."""
    vector: Matrix = unit_vectors(embedder([text]), 1, embedder.dimension)[0]
    return vector


async def embed_async(embedder: Any, text: str, asynchronous: bool) -> Matrix:
    """Perform an :class:`Embed` in async code: awaited for an :class:`AsyncEmbedder`, in a
    worker thread for a sync one (a local model computes for milliseconds; a remote one waits)."""
    if asynchronous:
        raw = await embedder([text])
    else:
        raw = await asyncio.to_thread(embedder, [text])
    vector: Matrix = unit_vectors(raw, 1, embedder.dimension)[0]
    return vector


# -- the lexical guard -------------------------------------------------------------------------


@runtime_checkable
class Guard(Protocol):
    """A check on a candidate semantic hit, beyond the similarity threshold.

    When an entry is added, the backend stores ``features(text)`` (a short string) with it; a
    search then accepts a candidate only if ``allows(features(query), stored_features)``. Storing
    features rather than the text keeps the question itself out of the index.

    .. versionadded:: 0.1.0
    """

    @property
    def name(self) -> str:
        """Identity of the feature format (stored features of another guard are refused)."""
        ...

    def features(self, text: str) -> str:
        """What the guard needs to remember about ``text``."""
        ...

    def allows(self, query: str, stored: str) -> bool:
        """Whether an entry with ``stored`` features may answer a query with ``query`` features."""
        ...


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Word lists for the lexical guard. They are generic (written from grammar and everyday
# opposites, not from the benchmark's pairs); extend them with LexicalGuard(extra_antonyms=...).
_NEGATIONS = _words(
    "not no never none nobody nothing neither nor nowhere without cannot unable "
    "ohne nicht kein keine nie jamais pas sans nunca ningún ninguna non senza nessun nem"
)
_NUMBER_WORDS = {
    word: str(value)
    for value, words in enumerate(
        [
            "zero",
            "",
            "two twice double",
            "three thrice triple",
            "four quadruple",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve dozen",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
    for word in words.split()
}
_NUMBER_WORDS.update(
    {
        "thirty": "30",
        "forty": "40",
        "fifty": "50",
        "sixty": "60",
        "seventy": "70",
        "eighty": "80",
        "ninety": "90",
        "hundred": "100",
        "thousand": "1000",
        "million": "1000000",
        "billion": "1000000000",
        "trillion": "1000000000000",
        "first": "1st",
        "third": "3rd",
        "fourth": "4th",
        "fifth": "5th",
        "sixth": "6th",
        "seventh": "7th",
        "eighth": "8th",
        "ninth": "9th",
        "tenth": "10th",
        "last": "last",
        "half": "0.5",
        "quarter": "0.25",
    }
)
# "one" and "second" are left out on purpose: "which one", "a second opinion".
_TIME_WORDS = _words(
    "today tomorrow yesterday tonight monday tuesday wednesday thursday friday saturday sunday "
    "mondays tuesdays wednesdays thursdays fridays saturdays sundays weekend weekends weekday "
    "weekdays morning afternoon evening night january february march april june july august "
    "september october november december spring summer autumn fall winter"
)
# Paraphrases swap seasons and parts of the day for synonyms ("autumn"/"fall"): one class each.
_TIME_CLASSES = {"fall": "autumn", "mondays": "monday", "tuesdays": "tuesday",
                 "wednesdays": "wednesday", "thursdays": "thursday", "fridays": "friday",
                 "saturdays": "saturday", "sundays": "sunday", "weekends": "weekend",
                 "weekdays": "weekday"}  # fmt: skip


def _forms(words: str) -> frozenset[str]:
    """Regular inflections of each word (``enable`` -> enables, enabled, enabling...)."""
    out: set[str] = set()
    for word in words.split():
        out.add(word)
        out.update({word + "s", word + "es", word + "ed", word + "d", word + "ing"})
        if word.endswith("e"):
            out.add(word[:-1] + "ing")
        if word.endswith("y"):
            out.update({word[:-1] + "ies", word[:-1] + "ied"})
        if len(word) > 2 and word[-1] not in "aeiouwxy" and word[-2] in "aeiou":
            out.update({word + word[-1] + "ed", word + word[-1] + "ing"})  # stopped, stopping
    return frozenset(out)


_ANTONYM_PAIRS: tuple[tuple[str, str], ...] = (
    ("enable", "disable"),
    ("activate", "deactivate"),
    ("increase", "decrease reduce"),
    ("add", "remove delete"),
    ("install", "uninstall"),
    ("raise", "lower"),
    ("encrypt", "decrypt"),
    ("encode", "decode"),
    ("compress", "decompress"),
    ("advantage pro", "disadvantage con"),
    ("upload", "download"),
    ("cheap cheaper cheapest inexpensive", "expensive costly"),
    ("best", "worst"),
    ("better", "worse"),
    ("lock", "unlock"),
    ("open", "close closed shut"),
    ("import", "export"),
    ("start begin", "stop end finish"),
    ("maximum max", "minimum min"),
    ("high higher highest", "low lower lowest"),
    ("large larger largest big bigger biggest", "small smaller smallest little"),
    ("fast faster fastest quick quickly", "slow slower slowest slowly"),
    ("buy purchase", "sell"),
    ("win gain", "lose"),
    ("push", "pull"),
    ("send", "receive"),
    ("accept", "reject decline"),
    ("allow permit", "block deny forbid"),
    ("include", "exclude"),
    ("before", "after"),
    ("above", "below"),
    ("inside", "outside"),
    ("input", "output"),
    ("internal", "external"),
    ("public", "private"),
    ("true", "false"),
    ("success successful", "failure failed unsuccessful"),
    ("positive", "negative"),
    ("hot", "cold"),
    ("connect", "disconnect"),
    ("subscribe", "unsubscribe"),
    ("follow", "unfollow"),
    ("mount", "unmount"),
    ("login", "logout"),
    ("show", "hide"),
    ("zip", "unzip"),
    ("merge", "split"),
    ("join", "leave"),
    ("arrive arrival", "depart departure"),
    ("ascending asc", "descending desc"),
    ("left", "right"),
    ("north", "south"),
    ("east", "west"),
    ("male men man boy", "female women woman girl"),
    ("old older oldest", "new newer newest young younger youngest"),
    ("early earlier earliest", "late later latest"),
    ("more most", "less least fewer fewest"),
    ("overweight", "underweight"),
    ("overestimate", "underestimate"),
    ("like love", "dislike hate"),
    ("agree", "disagree"),
    ("legal", "illegal"),
    ("possible", "impossible"),
    ("safe", "unsafe dangerous"),
    ("healthy", "unhealthy"),
    ("visible", "invisible"),
    ("valid", "invalid"),
    ("correct", "incorrect wrong"),
    ("strong", "weak"),
    ("rich", "poor"),
    ("long longer longest", "short shorter shortest"),
    ("wide", "narrow"),
    ("thick", "thin"),
    ("heavy", "light"),
    ("easy", "hard difficult"),
    ("same", "different"),
    ("sync synchronous", "async asynchronous"),
    ("online", "offline"),
    ("plus", "minus"),
    ("forward", "backward"),
    ("upper uppercase", "lower lowercase"),
    ("horizontal", "vertical"),
    ("rise", "fall"),
)

_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?:;¿¡\"“”()\[\]]|\n")
_DIRECTIONAL = _words("to from into than versus vs onto towards toward")
_SELF = frozenset({"i", "i'm", "i've", "i'll", "i'd"})

# Short function-word lists per language (the most frequent words); a text is tagged with the
# language whose words it uses most, when that is clear.
_LANGUAGES: dict[str, frozenset[str]] = {
    "en": _words(
        "the is are was were what how why when where which who do does did i my you your "
        "to of and in for a an this that it with can could should would will be have has "
        "me we our they there their from about at on by not please much many"
    ),
    "fr": _words(
        "le la les est sont de du des et un une mon ma mes ton ta tes votre vos pour "
        "comment quelle quel quels quelles je tu il elle nous vous ils pas avec sur dans "
        "merci bonjour beaucoup qui que quoi où pourquoi ce cette ces au aux être avoir"
    ),
    "de": _words(
        "der die das ist sind und ich mein meine dein deine wie was warum wo wer nicht ein "
        "eine einen mit für zu auf den dem des sie es wir ihr im am vom bitte danke viel "
        "kann können kostet gibt"
    ),
    "es": _words(
        "el la los las es son de del y en un una mi mis tu tus qué cómo por para con "
        "dónde cuándo quién está están hay muy gracias buen buena hola al lo se su sus "
        "yo usted me te"
    ),
    "it": _words(
        "il lo la gli le è sono di del della dei delle e un una mio mia che come dove "
        "perché per con non ciao grazie buongiorno sul nel al ho hai ha questo questa"
    ),
    "pt": _words(
        "o a os as é são de do da dos das e um uma meu minha que como onde por para com "
        "não obrigado obrigada bom dia você está estão muito ao no na isso este esta"
    ),
}
_LANGUAGE_MARKS = {"ß": "de", "ä": "de", "ö": "de", "ü": "de", "ñ": "es", "¿": "es", "¡": "es",
                   "ã": "pt", "õ": "pt", "ç": "fr", "œ": "fr", "ê": "fr", "è": "fr"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Features:
    language: str
    negated: bool
    numbers: tuple[str, ...]
    times: tuple[str, ...]
    antonyms: tuple[str, ...]
    entities: tuple[str, ...]
    directional: bool


class LexicalGuard:
    """Refuse a semantic hit when the two texts differ in what embeddings blur.

    Small sentence-embedding models score "How do I enable 2FA?" and "How do I disable 2FA?"
    above any useful threshold. This guard compares cheap lexical features of the query and the
    stored text and refuses the hit when they differ in:

    * **negation**: one text is negated (not, never, without, n't...) and the other is not;
    * **numbers**: the multiset of numbers, number words and ordinals differs (5 vs 50 miles,
      three vs ten ideas; "3" and "three" are the same);
    * **dates and times**: weekdays, months, seasons, today/tomorrow...;
    * **antonyms**: one text has one side of a common pair (enable/disable, upload/download,
      maximum/minimum...) and the other has the opposite side only;
    * **named entities**: capitalised words that do not start a sentence, acronyms and
      alphanumeric names differ as sets (Australia vs Austria); and when both texts say
      "from/to/than", their order differs (Celsius to Fahrenheit vs Fahrenheit to Celsius);
    * **language**: both texts are recognisably in different languages.

    It is a heuristic: it misses role swaps without a direction word ("Did Google buy YouTube?"
    vs "Did YouTube buy Google?"), lowercase entities, and meaning that no word list captures;
    and it refuses some true paraphrases (an entity named in one text only). The benchmark in
    ``benchmarks/semantic_quality.py`` reports both effects.

    Args:
        extra_antonyms: more ``(side, opposite_side)`` pairs of space-separated words.

    Example::

        backend = QdrantSemanticBackend.from_url("qdrant+local://", guard=LexicalGuard())

    .. versionadded:: 0.1.0
    """

    name = "lex1"

    def __init__(self, extra_antonyms: Sequence[tuple[str, str]] = ()) -> None:
        # word form -> the pair sides it belongs to ("lower" is in raise/lower and high/low)
        self._antonyms: dict[str, set[str]] = {}
        for plus, minus in (*_ANTONYM_PAIRS, *extra_antonyms):
            label = f"{plus.split()[0]}/{minus.split()[0]}"
            for sign, words in (("+", plus), ("-", minus)):
                for form in _forms(words.lower()):
                    self._antonyms.setdefault(form, set()).add(label + sign)
        self._parsed: OrderedDict[str, _Features | None] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "LexicalGuard()"

    # -- features ------------------------------------------------------------------------------

    def analyse(self, text: str) -> _Features:
        """The features of ``text`` (what :meth:`features` serialises)."""
        text = unicodedata.normalize("NFC", text)
        counts = dict.fromkeys(_LANGUAGES, 0)
        negated = False
        numbers: list[str] = []
        times: list[str] = []
        antonyms: set[str] = set()
        entities: list[str] = []
        directional = False
        initial = True
        last_end = 0
        for match in _WORD.finditer(text):
            gap = text[last_end : match.start()]
            last_end = match.end()
            if _SENTENCE_END.search(gap):
                initial = True
            token = match.group().replace("\u2019", "'")
            lower = token.lower()
            first = initial
            initial = False
            if token[0].isdigit():
                numbers.append(_number(token))
                continue
            for language, words in _LANGUAGES.items():
                if lower in words:
                    counts[language] += 1
            if lower in _NEGATIONS or lower.endswith("n't"):
                negated = True
            if lower in _NUMBER_WORDS:
                numbers.append(_NUMBER_WORDS[lower])
            if lower in _TIME_WORDS:
                times.append(_TIME_CLASSES.get(lower, lower))
            antonyms.update(self._antonyms.get(lower, ()))
            if lower in _DIRECTIONAL:
                directional = True
            if lower.endswith("'s"):
                token, lower = token[:-2], lower[:-2]
            if not token or lower in _SELF or lower in _TIME_WORDS:
                continue
            acronym = len(token) >= 2 and token.isupper()
            if acronym or (token[0].isupper() and not first):
                entities.append(lower)
        language = _language(text, counts)
        return _Features(
            language=language,
            negated=negated,
            numbers=tuple(sorted(numbers)),
            times=tuple(sorted(times)),
            antonyms=tuple(sorted(antonyms)),
            entities=tuple(dict.fromkeys(entities)),
            directional=directional,
        )

    def features(self, text: str) -> str:
        """``text``'s features as a short string (stored with the entry)."""
        f = self.analyse(text)
        body = orjson.dumps(
            [f.language, f.negated, f.numbers, f.times, f.antonyms, f.entities, f.directional]
        )
        return f"{self.name}:{body.decode()}"

    def _load(self, data: str) -> _Features | None:
        with self._lock:
            if data in self._parsed:
                self._parsed.move_to_end(data)
                return self._parsed[data]
        parsed: _Features | None = None
        head, sep, body = data.partition(":")
        if sep and head == self.name:
            try:
                lang, neg, nums, times, ants, ents, direction = orjson.loads(body)
                parsed = _Features(
                    str(lang), bool(neg), tuple(nums), tuple(times), tuple(ants), tuple(ents),
                    bool(direction),
                )  # fmt: skip
            except (orjson.JSONDecodeError, TypeError, ValueError):
                parsed = None
        with self._lock:
            self._parsed[data] = parsed
            while len(self._parsed) > 256:
                self._parsed.popitem(last=False)
        return parsed

    def allows(self, query: str, stored: str) -> bool:
        """Whether a stored entry may answer the query (both as :meth:`features` strings).

        Features of another guard, or none at all (entries added without a guard), are refused.
        """
        a, b = self._load(query), self._load(stored)
        if a is None or b is None:
            return False
        return self.compatible(a, b)

    @staticmethod
    def compatible(a: _Features, b: _Features) -> bool:
        """The rules of the class docstring, on analysed features."""
        if a.language and b.language and a.language != b.language:
            return False
        if a.negated != b.negated or a.numbers != b.numbers or a.times != b.times:
            return False
        for label in a.antonyms:
            pair, sign = label[:-1], label[-1]
            opposite = pair + ("-" if sign == "+" else "+")
            if opposite in b.antonyms and label not in b.antonyms and opposite not in a.antonyms:
                return False
        if set(a.entities) != set(b.entities):
            return False
        return not (
            a.directional and b.directional and len(a.entities) > 1 and a.entities != b.entities
        )


def _number(token: str) -> str:
    """A numeric token in one spelling: thousands separators dropped, integers without zeros."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+", token):
        token = token.replace(",", "")
    token = token.replace(",", ".")
    try:
        value = float(token)
    except ValueError:
        return token
    return str(int(value)) if value.is_integer() else repr(value)


def _language(text: str, counts: dict[str, int]) -> str:
    """The text's language code when the evidence is clear, else ``""``."""
    for mark, language in _LANGUAGE_MARKS.items():
        if mark in text.lower():
            counts[language] += 2
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, runner_up) = ranked[0], ranked[1]
    if top >= 2 and top > runner_up:
        return best
    return ""
