"""The lexical guard: a cheap second opinion on a candidate semantic hit.

One cosine threshold cannot tell "enable 2FA" from "disable 2FA" with small embedding models
(``benchmarks/semantic_quality.py`` measures it). :class:`Guard` is the protocol a backend
consults before it answers with a similar entry; :class:`LexicalGuard`, the default, refuses a
hit when the two texts differ in negation, numbers, dates, named entities, antonyms or language.

The word lists it reads (negations, number words, time words, antonym pairs, the most frequent
words per language) are data, not code: ``guard_words.json`` next to this module, shipped in the
wheel (hatch includes every file under ``llm_memo/``) and loaded once, on the first
:class:`LexicalGuard`. Parsed feature strings are memoised in an :class:`~llm_memo._lru.LRU`.

Not here: embedding and vectors (:mod:`.vectors`), the backends that store the features
(:mod:`.redis`, :mod:`.qdrant`).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import orjson

from ... import _fork
from ..._lru import LRU

__all__ = ["Guard", "LexicalGuard"]

#: How many parsed feature strings a guard remembers (a search parses the query's and each
#: candidate's).
_PARSED = 256


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


@dataclass(frozen=True, slots=True)
class _Words:
    """The word lists of ``guard_words.json``, as the sets and maps :class:`LexicalGuard` reads."""

    negations: frozenset[str]
    number_words: dict[str, str]
    time_words: frozenset[str]
    time_classes: dict[str, str]
    antonym_pairs: tuple[tuple[str, str], ...]
    directional: frozenset[str]
    self: frozenset[str]
    # Insertion order matters: it breaks ties between languages (see _language).
    languages: dict[str, frozenset[str]]
    language_marks: dict[str, str]


@functools.cache
def _words() -> _Words:
    """The guard's word lists, read from the package data file once per process."""
    raw = orjson.loads(
        importlib.resources.files("llm_memo.backends.semantic")
        .joinpath("guard_words.json")
        .read_bytes()
    )
    return _Words(
        negations=frozenset(raw["negations"]),
        number_words=dict(raw["number_words"]),
        time_words=frozenset(raw["time_words"]),
        time_classes=dict(raw["time_classes"]),
        antonym_pairs=tuple((plus, minus) for plus, minus in raw["antonym_pairs"]),
        directional=frozenset(raw["directional"]),
        self=frozenset(raw["self"]),
        languages={code: frozenset(words) for code, words in raw["languages"].items()},
        language_marks=dict(raw["language_marks"]),
    )


_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?:;¿¡\"“”()\[\]]|\n")


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
        self._words = _words()
        for plus, minus in (*self._words.antonym_pairs, *extra_antonyms):
            label = f"{plus.split()[0]}/{minus.split()[0]}"
            for sign, side in (("+", plus), ("-", minus)):
                for form in _forms(side.lower()):
                    self._antonyms.setdefault(form, set()).add(label + sign)
        # features string -> parsed features, or False for a string that is not ours
        self._parsed: LRU[str, _Features | Literal[False]] = LRU(_PARSED)
        _fork.register(self)

    def __repr__(self) -> str:
        return "LexicalGuard()"

    def _after_fork(self) -> None:
        # The memo's lock may be held by a thread that does not exist in a forked child.
        self._parsed._after_fork()

    # -- features ------------------------------------------------------------------------------

    def analyse(self, text: str) -> _Features:
        """The features of ``text`` (what :meth:`features` serialises)."""
        text = unicodedata.normalize("NFC", text)
        words = self._words
        counts = dict.fromkeys(words.languages, 0)
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
            for language, common in words.languages.items():
                if lower in common:
                    counts[language] += 1
            if lower in words.negations or lower.endswith("n't"):
                negated = True
            if lower in words.number_words:
                numbers.append(words.number_words[lower])
            if lower in words.time_words:
                times.append(words.time_classes.get(lower, lower))
            antonyms.update(self._antonyms.get(lower, ()))
            if lower in words.directional:
                directional = True
            if lower.endswith("'s"):
                token, lower = token[:-2], lower[:-2]
            if not token or lower in words.self or lower in words.time_words:
                continue
            acronym = len(token) >= 2 and token.isupper()
            if acronym or (token[0].isupper() and not first):
                entities.append(lower)
        language = _language(text, counts, words.language_marks)
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
        known = self._parsed.get(data)
        if known is not None:
            return known or None
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
        self._parsed.put(data, parsed or False)
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


def _language(text: str, counts: dict[str, int], marks: dict[str, str]) -> str:
    """The text's language code when the evidence is clear, else ``""``."""
    for mark, language in marks.items():
        if mark in text.lower():
            counts[language] += 2
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, runner_up) = ranked[0], ranked[1]
    if top >= 2 and top > runner_up:
        return best
    return ""
