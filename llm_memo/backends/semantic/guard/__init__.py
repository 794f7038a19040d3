"""The lexical guard: a cheap second opinion on a candidate semantic hit.

One cosine threshold cannot tell "enable 2FA" from "disable 2FA" with small embedding models
(``benchmarks/semantic_quality.py`` measures it). :class:`Guard` is the protocol a backend
consults before it answers with a similar entry; :class:`LexicalGuard`, the default, refuses a
hit when the two texts differ in negation, numbers and units, dates, named entities, antonyms,
code symbols, word order, one replaced word or language.

The package, by rule section:

=================  ==============================================================================
``__init__``       :class:`Guard`, :class:`LexicalGuard` (the stored features string, parsing it)
``_words``         the word lists of ``guard_words.json``, and the short hashes stored for words
``_features``      :func:`~._features.analyse`: what the rules read in a text
``_rules``         :func:`~._rules.compatible`: the rules themselves
=================  ==============================================================================

The word lists it reads (negations, number words, time words, antonym pairs, aliases, synonyms,
the most frequent words per language) are data, not code: ``guard_words.json`` in
``llm_memo/backends/semantic/``, shipped in the wheel (hatch includes every file under
``llm_memo/``) and loaded once, on the first :class:`LexicalGuard`. Parsed feature strings are
memoised in an :class:`~llm_memo._lru.LRU`.

Not here: embedding and vectors (:mod:`..vectors`), the backends that store the features
(:mod:`..redis`, :mod:`..qdrant`, :mod:`..embedded`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import orjson

from .... import _fork
from ...._lru import LRU
from ._features import _Features, analyse
from ._rules import compatible
from ._words import _forms, _words

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


class LexicalGuard:
    """Refuse a semantic hit when the two texts differ in what embeddings blur.

    Small sentence-embedding models score "How do I enable 2FA?" and "How do I disable 2FA?"
    above any useful threshold. This guard compares cheap lexical features of the query and the
    stored text and refuses the hit when they differ in:

    * **negation**: one text is negated (not, never, without, n't, lack, avoid...) and the
      other is not;
    * **numbers**: the multiset of numbers, number words and ordinals differs (5 vs 50 miles,
      three vs ten ideas; "3" and "three" are the same; "every other week" is not "every week");
    * **dates and times**: weekdays, months, seasons, today/tomorrow...;
    * **antonyms**: one text has one side of a common pair (enable/disable, upload/download,
      maximum/minimum, check-in/checkout, read/write...) and the other has the opposite side
      only (two words are also read as the joined word: check-in, turn on);
    * **named entities**: capitalised words that do not start a sentence, acronyms and
      alphanumeric names differ as sets (Australia vs Austria); and when both texts say
      "from/to/than", their order differs (Celsius to Fahrenheit vs Fahrenheit to Celsius);
    * **language**: both texts are recognisably in different languages;
    * **follow-ups**: after the same earlier lines (a conversation's user turns), the last
      lines share no word but fillers ("And vertically?" vs "And with grid?", "And for
      children?" vs "And for pregnant women?");
    * **units**: a number is compared with its unit (5 km vs 5 miles, 9am vs 9pm, two years
      vs two months, last week vs last month; kg and
      kilograms, °C and degrees Celsius are one unit), and the units named must be the same
      (grams in a pound vs grams in an ounce);
    * **code symbols and options**: operators, brackets and regex signs that prose does not use
      (``==`` vs ``===``, ``i++`` vs ``++i``, ``[a-z]+`` vs ``[^a-z]+``) and command-line options
      (``--hard`` vs ``--soft``, ``-d`` vs ``-D``) must be the same;
    * **swapped roles**: the same words in another order ("Can a tenant sue a landlord" vs
      "Can a landlord sue a tenant", "Did Google buy YouTube?" vs "Did YouTube buy Google?"),
      unless only a phrase moved with its preposition ("in 1969 on the Moon") or the two sides
      of a symmetric relation changed places ("rice or pasta" / "pasta or rice", "the
      difference between X and Y", "mix X with Y");
    * **who**: "who" asks for the subject in one text and for the object in the other ("Who
      taught Aristotle?" vs "Who did Aristotle teach?");
    * **one word replaced**: the same words in the same order but one, replaced by a word that
      is not its misspelling, a synonym of the table or a function word ("bake bread" vs
      "bake cookies", "sort by value" vs "sort by key").

    Spellings of one name or phrase are one (World War II / WWII, United States / US, most
    recent / last), one of a unit is the unit ("1 GB", "one gigabyte", "a gigabyte"), and two
    words may read as one (check-in, turn on / turn off). A name written in lowercase in the
    other text ("france's capital") is the same name; for that the features hold a 16-bit hash
    of each word (many words share each value), the word-order rule short digests, and the
    substitution rule an 8-bit hash per word in order and a digest of consonant skeletons, never
    the words.

    It is a heuristic: it misses a question reworded in two places to ask something else ("apply
    for a passport" vs "renew my passport"), a follow-up that changes a detail with a shared
    word ("And in Python 2?" vs "And in Python 3?" is caught by numbers, "Python docs" vs
    "Python tests" is not), and meaning that no word list captures; and it refuses some true
    paraphrases (an entity named in one text only, a unit written on one side only, a synonym
    outside its table in an otherwise identical question). The benchmark in
    ``benchmarks/semantic_quality.py`` reports both effects.

    Stored features of the first ``lex1`` release (seven fields, without units, symbols and
    word order) are still read: the earlier rules apply to them, and a number in them, having
    no unit, no longer matches (a miss, never a wrong answer).

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
        return analyse(text, self._words, self._antonyms)

    def features(self, text: str) -> str:
        """``text``'s features as a short string (stored with the entry)."""
        f = self.analyse(text)
        # The order field has symmetric digests only for texts with "or", "and"...
        fields = [
            f.language, f.negated, f.numbers, f.times, f.antonyms, f.entities, f.directional,
            f.units, f.symbols, f.order, sorted(f.words or ()),
            None if f.turn is None else [f.turn[0], sorted(f.turn[1])],
        ]  # fmt: skip
        fields += [f.asks, f.skeleton, f.sequence]
        body = orjson.dumps(fields)
        return f"{self.name}:{body.decode()}"

    def _load(self, data: str) -> _Features | None:
        known = self._parsed.get(data)
        if known is not None:
            return known or None
        parsed: _Features | None = None
        head, sep, body = data.partition(":")
        if sep and head == self.name:
            try:
                fields = orjson.loads(body)
                lang, neg, nums, times, ants, ents, direction = fields[:7]
                later: dict[str, Any] = {}  # the fields of rules added later, when present
                if len(fields) >= 11:  # units, symbols, order
                    units, symbols, order, hashes = fields[7:11]
                    later.update(
                        units=tuple(units), symbols=tuple(symbols), order=_order(order),
                        words=frozenset(hashes),
                    )  # fmt: skip
                if len(fields) >= 12 and fields[11] is not None:  # the follow-up rule
                    earlier, last = fields[11]
                    later["turn"] = (str(earlier), frozenset(last))
                if len(fields) >= 15:  # the question form and one-substitution rules
                    asks, skeleton, sequence = fields[12:15]
                    later.update(asks=str(asks), skeleton=str(skeleton), sequence=str(sequence))
                parsed = _Features(
                    str(lang), bool(neg), tuple(nums), tuple(times), tuple(ants), tuple(ents),
                    bool(direction), **later,
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
        return compatible(a, b)


def _order(raw: Any) -> tuple[str, ...]:
    if len(raw) < 4:
        raise ValueError("an order field has at least four digests")
    return tuple(str(digest) for digest in raw)
