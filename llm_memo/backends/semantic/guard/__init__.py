"""The lexical guard: a cheap second opinion on a candidate semantic hit.

One cosine threshold cannot tell "enable 2FA" from "disable 2FA" with small embedding models
(``benchmarks/semantic_quality.py`` measures it). :class:`Guard` is the protocol a backend
consults before it answers with a similar entry; :class:`LexicalGuard`, the default, refuses a
hit when the two texts differ in negation, numbers and units, dates, named entities, antonyms,
code symbols, word order or language.

The word lists it reads (negations, number words, time words, antonym pairs, the most frequent
words per language) are data, not code: ``guard_words.json`` next to this package, shipped in the
wheel (hatch includes every file under ``llm_memo/``) and loaded once, on the first
:class:`LexicalGuard`. Parsed feature strings are memoised in an :class:`~llm_memo._lru.LRU`.

Not here: embedding and vectors (:mod:`.vectors`), the backends that store the features
(:mod:`.redis`, :mod:`.qdrant`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import orjson
import xxhash

from .... import _fork
from ...._lru import LRU

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
    units: dict[str, str]
    units_after_number_only: frozenset[str]
    unit_fillers: frozenset[str]
    articles: frozenset[str]
    connectives: frozenset[str]
    follow_up_fillers: frozenset[str]
    self: frozenset[str]
    one: str
    indefinite_articles: frozenset[str]
    # Longest spelling first: (pattern of every spelling, spelling -> the key it reads as).
    aliases: tuple[re.Pattern[str], dict[str, str]]
    verb_times: frozenset[str]
    verb_before: frozenset[str]
    verb_after: frozenset[str]
    symmetric_triggers: frozenset[str]
    symmetric_joiners: frozenset[str]
    do_support: frozenset[str]
    subject_questions: frozenset[str]
    synonyms: dict[str, str]
    # Hashes of the words the one-substitution rule does not count (see _substituted).
    function_hashes: frozenset[str]
    # Unit words of six letters or more, and each with one letter left out -> the unit word
    # (a unit misspelt by one letter left out or added: "calries").
    unit_slips: dict[str, str]
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
        units=dict(raw["units"]),
        units_after_number_only=frozenset(raw["units_after_number_only"]),
        unit_fillers=frozenset(raw["unit_fillers"]),
        articles=frozenset(raw["articles"]),
        connectives=frozenset(raw["connectives"]),
        follow_up_fillers=frozenset(raw["follow_up_fillers"]),
        self=frozenset(raw["self"]),
        one=str(raw["one"]),
        indefinite_articles=frozenset(raw["indefinite_articles"]),
        aliases=_aliases(raw["aliases"]),
        verb_times=frozenset(raw["verb_times"]),
        verb_before=frozenset(raw["verb_before"]),
        verb_after=frozenset(raw["verb_after"]),
        symmetric_triggers=frozenset(raw["symmetric_triggers"]),
        symmetric_joiners=frozenset(raw["symmetric_joiners"]),
        do_support=frozenset(raw["do_support"]),
        subject_questions=frozenset(raw["subject_questions"]),
        unit_slips=_unit_slips(raw["units"]),
        synonyms={v: key for key, variants in raw["synonyms"].items() for v in variants},
        function_hashes=frozenset(
            _word_hash(w)
            for key in ("function_words", "articles", "connectives", "follow_up_fillers", "self")
            for w in raw[key]
        ),
        languages={code: frozenset(words) for code, words in raw["languages"].items()},
        language_marks=dict(raw["language_marks"]),
    )


def _aliases(raw: dict[str, list[str]]) -> tuple[re.Pattern[str], dict[str, str]]:
    """One pattern for every spelling in ``aliases``, longest first; multi-word and dotted
    spellings match in any case, single words only as written ("US", not "us")."""
    key_of = {spelling: key for key, spellings in raw.items() for spelling in spellings}
    parts = []
    for spelling in sorted(key_of, key=len, reverse=True):
        body = re.escape(spelling).replace(r"\ ", r"\s+")
        parts.append(f"(?i:{body})" if " " in spelling or "." in spelling else body)
    pattern = re.compile(r"(?<![\w.])(?:" + "|".join(parts) + r")(?![\w])")
    folded = {" ".join(k.lower().split()): v for k, v in key_of.items()}
    return pattern, folded


def _unit_slips(units: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in units:
        if len(word) >= 6:
            out.setdefault(word, word)
            for i in range(1, len(word)):  # the first letter is never the slip
                out.setdefault(word[:i] + word[i + 1 :], word)
    return out


def _unit_slip(word: str, words: _Words) -> str | None:
    """The unit word ``word`` misspells by one letter left out or added ("calries",
    "kilogramms"), if any: the first letter must be right, and the unit six letters or more."""
    if len(word) < 5 or word in words.units:
        return None
    found = words.unit_slips.get(word)  # a letter left out
    if found is not None and len(found) == len(word) + 1:
        return found
    for i in range(1, len(word)):  # a letter added
        shorter = word[:i] + word[i + 1 :]
        if len(shorter) >= 6 and shorter in words.units:
            return shorter
    return None


def _unit_of(word: str, words: _Words) -> tuple[str, str] | None:
    """(the unit word ``word`` is or misspells, its canonical unit), if any."""
    unit = words.units.get(word)
    if unit is not None:
        return word, unit
    slip = _unit_slip(word, words)
    return None if slip is None else (slip, words.units[slip])


_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?:;¿¡\"“”()\[\]]|\n")
# A gap between a number and its unit: nothing, spaces, a degree sign, a hyphen ("30-second").
_UNIT_GAP = re.compile(r"\s*(?:°\s*|-)?")
# Command-line options: -v, -la, --hard, --ff-only (case matters: -d is not -D).
_OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")
# Runs of symbols (operators, brackets, regex and shell syntax); prose punctuation is dropped
# by _symbols.
_SYMBOLS = re.compile(r"[^\w\s]+")
_PROSE = frozenset(".,?!;:\"'()“”\u2018\u2019¿¡…°%$€£")
# Joiners inside a word or a number: 3.5, 7:30, don't, sci-fi.
_JOINERS = frozenset((".", ",", ":", "'", "\u2019", "-"))


@dataclass(frozen=True, slots=True)
class _Features:
    language: str
    negated: bool
    numbers: tuple[str, ...]
    times: tuple[str, ...]
    antonyms: tuple[str, ...]
    entities: tuple[str, ...]
    directional: bool
    # Added after the first release of the lex1 format; a record without them (7 fields) reads
    # as None here, and the rules that need them are skipped for it.
    units: tuple[str, ...] | None = None
    symbols: tuple[str, ...] | None = None
    # (bag, order, core, phrases, *symmetric): digests of the words, and (added later) one for
    # each reading of a symmetric relation with its sides sorted (see _symmetric).
    order: tuple[str, ...] | None = None
    words: frozenset[str] | None = None
    # Added later still: (digest of the earlier lines, hashes of the last line's words) of a
    # multi-line text (a conversation's user turns), else None.
    turn: tuple[str, frozenset[str]] | None = None
    # Added later still: "who" for a question about the subject ("Who taught Aristotle?"),
    # "who+do" for one about the object ("Who did Aristotle teach?"), else "".
    asks: str | None = None
    # Added with it: a digest of the words' consonant skeletons ("kitchin" and "kitchen" are
    # one), which tells a typo from another word in the one-substitution rule.
    skeleton: str | None = None
    # And an 8-bit hash of each word in order (two hex digits per word, articles left out).
    sequence: str | None = None


class LexicalGuard:
    """Refuse a semantic hit when the two texts differ in what embeddings blur.

    Small sentence-embedding models score "How do I enable 2FA?" and "How do I disable 2FA?"
    above any useful threshold. This guard compares cheap lexical features of the query and the
    stored text and refuses the hit when they differ in:

    * **negation**: one text is negated (not, never, without, n't...) and the other is not;
    * **numbers**: the multiset of numbers, number words and ordinals differs (5 vs 50 miles,
      three vs ten ideas; "3" and "three" are the same; "every other week" is not "every week");
    * **dates and times**: weekdays, months, seasons, today/tomorrow...;
    * **antonyms**: one text has one side of a common pair (enable/disable, upload/download,
      maximum/minimum, check-in/checkout...) and the other has the opposite side only (a
      hyphenated compound is also read as the joined word);
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
      unless only a phrase moved with its preposition ("in 1969 on the Moon"). Symmetric
      questions ("rice or pasta" / "pasta or rice") are refused too: a miss, not a wrong answer.

    A name written in lowercase in the other text ("france's capital") is the same name; for
    that the features hold a 16-bit hash of each word (many words share each value), and the
    word-order rule three short digests, never the words.

    It is a heuristic: it misses role swaps with other words ("Who taught Aristotle?" vs "Who
    did Aristotle teach?"), a follow-up that changes a detail with a shared word ("And in
    Python 2?" vs "And in Python 3?" is caught by numbers, "Python docs" vs "Python tests" is
    not), and meaning that no word list captures; and it refuses some true
    paraphrases (an entity named in one text only, a unit written on one side only). The
    benchmark in ``benchmarks/semantic_quality.py`` reports both effects.

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
        words = self._words
        text = _read_aliases(unicodedata.normalize("NFC", text), words)
        counts = dict.fromkeys(words.languages, 0)
        negated = False
        numbers: list[str] = []
        times: list[str] = []
        antonyms: set[str] = set()
        entities: list[str] = []
        units: set[str] = set()
        content: list[str] = []  # the words, articles left out (for the word-order rule)
        clauses: set[int] = set()  # content indices a clause starts at
        directional = False
        initial = True
        tokens = list(_WORD.finditer(text))
        attached = _attached_units(text, tokens, words)
        last_end = 0
        for i, match in enumerate(tokens):
            gap = text[last_end : match.start()]
            last_end = match.end()
            if _SENTENCE_END.search(gap):
                initial = True
            if "," in gap or initial:
                clauses.add(len(content))  # a side of a symmetric relation ends here
            token = match.group().replace("\u2019", "'")
            lower = token.lower()
            first = initial
            initial = False
            if token[0].isdigit():
                value = _number(token)
                if not _one_unit(value, i, attached):
                    numbers.append(f"{value} {attached[i]}" if i in attached else value)
                content.append(value)
                continue
            base = lower[:-2] if lower.endswith("'s") else lower
            if base not in words.articles:
                content.append(words.synonyms.get(base, base))
            for language, common in words.languages.items():
                if lower in common:
                    counts[language] += 1
            if lower in words.negations or lower.endswith("n't"):
                negated = True
            if lower in words.number_words:
                value = words.number_words[lower]
                numbers.append(f"{value} {attached[i]}" if i in attached else value)
            elif lower == words.one and i in attached and not _one_unit("1", i, attached):
                numbers.append(f"1 {attached[i]}")  # "one pm"
            elif lower == "other" and i and tokens[i - 1].group().lower() == "every":
                numbers.append("every other")  # "every other week" is not "every week"
            if base in words.time_words and not _verb_use(base, i, tokens, words):
                times.append(words.time_classes.get(base, base))
            antonyms.update(self._antonyms.get(lower, ()))
            if i and (gap == "-" or gap.isspace()):  # also the joined word: check-in, turn on
                antonyms.update(self._antonyms.get(tokens[i - 1].group().lower() + lower, ()))
            if lower in words.directional:
                directional = True
            known = _unit_of(base, words)
            if known is not None and (
                i in attached or known[0] not in words.units_after_number_only
            ):
                units.add(known[1])
                continue  # a unit is not a name ("GB", "Celsius")
            if lower.endswith("'s"):
                token = token[:-2]
            if not token or base in words.self or base in words.time_words:
                continue
            acronym = len(token) >= 2 and token.isupper()
            if acronym or (token[0].isupper() and not first):
                entities.append(words.synonyms.get(base, base))
        language = _language(text, counts, words.language_marks)
        return _Features(
            language=language,
            negated=negated,
            numbers=tuple(sorted(numbers)),
            times=tuple(sorted(times)),
            antonyms=tuple(sorted(antonyms)),
            entities=tuple(dict.fromkeys(entities)),
            directional=directional,
            units=tuple(sorted(units)),
            symbols=_symbols(text),
            order=(
                _digest(sorted(content)),
                _digest(content),
                _digest(_core(content, words.connectives)),
                _digest(sorted(_phrases(content, words.connectives))),
                *_symmetric(content, clauses, words),
            ),
            words=frozenset(_word_hash(w) for w in content),
            turn=_last_turn(text, words),
            asks=_asks(tokens, words),
            skeleton=_digest(
                sorted(
                    {_skeleton(w) for w in content if _word_hash(w) not in words.function_hashes}
                )
            )[:8],
            sequence="".join(_position_hash(w) for w in content),
        )

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
                parsed = _Features(
                    str(lang), bool(neg), tuple(nums), tuple(times), tuple(ants), tuple(ents),
                    bool(direction),
                )  # fmt: skip
                if len(fields) >= 11:  # the rules added later (units, symbols, order)
                    units, symbols, order, hashes = fields[7:11]
                    parsed = dataclasses.replace(
                        parsed, units=tuple(units), symbols=tuple(symbols),
                        order=_order(order), words=frozenset(hashes),
                    )  # fmt: skip
                if len(fields) >= 12 and fields[11] is not None:  # the follow-up rule
                    earlier, last = fields[11]
                    parsed = dataclasses.replace(parsed, turn=(str(earlier), frozenset(last)))
                if len(fields) >= 15:  # the question form and one-substitution rules
                    asks, skeleton, sequence = fields[12:15]
                    parsed = dataclasses.replace(
                        parsed, asks=str(asks), skeleton=str(skeleton), sequence=str(sequence)
                    )
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
        if a.units is not None and b.units is not None:  # both have the later rules
            if a.units != b.units or a.symbols != b.symbols:
                return False
            if a.order and b.order and _swapped(a.order, b.order):
                return False
        if not _same_names(a, b) or not _same_names(b, a):
            return False
        if (
            a.turn and b.turn and a.turn[0] == b.turn[0] and a.turn[1] and b.turn[1]
            and not a.turn[1] & b.turn[1]
        ):  # fmt: skip
            return False  # the same conversation, another follow-up
        if a.asks and b.asks and a.asks != b.asks:
            return False  # "Who taught Aristotle?" / "Who did Aristotle teach?"
        if _substituted(a, b):
            return False  # "How do I bake bread?" / "How do I bake cookies?"
        return not (
            a.directional and b.directional and len(a.entities) > 1 and a.entities != b.entities
        )


def _swapped(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """The same words in another order, and not because a phrase moved with its preposition
    ("on the Moon in 1969" / "in 1969 on the Moon"): roles swapped ("Can a tenant sue a
    landlord" / "Can a landlord sue a tenant", "from X to Y" / "from Y to X", "a list of tuples
    to a dict" / "a dict to a list of tuples"). Not a swap either: the two sides of a symmetric
    relation exchanged ("rice or pasta", "the difference between X and Y", "mix X with Y"), when
    both records have that digest."""
    (bag_a, order_a, core_a, phrases_a), (bag_b, order_b, core_b, phrases_b) = a[:4], b[:4]
    if bag_a != bag_b or order_a == order_b:
        return False
    if set(a[4:]) & set(b[4:]):  # the sides of a symmetric relation exchanged
        return False
    return core_a != core_b or phrases_a != phrases_b


#: The longest side of a symmetric relation, in words ("the United States" is two).
_SIDE = 3


def _symmetric(content: Sequence[str], clauses: set[int], words: _Words) -> list[str]:
    """Digests of ``content`` with the two sides of a symmetric relation in sorted order, for
    every way of reading the sides (one to three words each, not crossing a connective, a
    symmetric word or a comma): "X or Y" always, "X and Y", "X with Y", "X vs Y" in a text with
    a symmetric word (between, difference, compare, mix, similar...). Two texts that share a
    digest are the same words with the sides of one relation exchanged. Empty when the text has
    no such relation (most texts)."""
    stops = words.connectives | words.symmetric_triggers
    if not any(w in words.symmetric_joiners for w in content):
        return []
    triggered = any(w in words.symmetric_triggers for w in content)
    found: set[str] = set()
    for i, word in enumerate(content):
        if word not in words.symmetric_joiners or (word != "or" and not triggered):
            continue
        for left, right in itertools.product(range(1, _SIDE + 1), repeat=2):
            start, end = i - left, i + 1 + right
            if start < 0 or end > len(content):
                continue
            first, second = list(content[start:i]), list(content[i + 1 : end])
            if any(w in stops for w in (*first, *second)):
                continue
            if any(start < k <= i for k in clauses) or any(i < k < end for k in clauses):
                continue
            first, second = sorted((first, second))
            found.add(_digest([*content[:start], *first, word, *second, *content[end:]])[:8])
    return sorted(found)


def _asks(tokens: Sequence[re.Match[str]], words: _Words) -> str:
    """ "who" when the text opens with a question about the subject ("Who taught Aristotle?"),
    "who+do" when about the object ("Who did Aristotle teach?", "Whom does she admire?"),
    else ""."""
    if not tokens or tokens[0].group().lower() not in words.subject_questions:
        return ""
    if (
        len(tokens) > 2
        and tokens[1].group().lower() in words.do_support
        and tokens[2].group().lower() not in words.articles  # "Who did the Mona Lisa?"
    ):
        return "who+do"
    return "who"


def _substituted(a: _Features, b: _Features) -> bool:
    """The same words in the same order but one, replaced by another word that is not a
    misspelling or another form of it: "How do I clean my oven?" / "How do I clean my
    fridge?", "sort by value" / "sort by key", "drive from Boston" / "fly from Boston" (a slot
    of the same question filled with something else). A paraphrase rewords more than one place
    ("How do I reverse a list" / "How can I reverse an array") and is not refused. Not counted:
    a function word (how, do, can, I, in...) as the one replaced, words the synonym table joins,
    and articles; the texts need another word in common. Both records need the fields."""
    if (
        a.sequence is None or b.sequence is None or a.words is None or b.words is None
        or len(a.sequence) != len(b.sequence) or a.skeleton == b.skeleton
    ):  # fmt: skip
        return False  # a typo or another form has the same skeleton: "kitchin", "plants"
    places = [
        i for i in range(0, len(a.sequence), 2) if a.sequence[i : i + 2] != b.sequence[i : i + 2]
    ]
    if len(places) != 1:
        return False
    function = _words().function_hashes
    mine, theirs = a.words - function, b.words - function
    return len(mine - theirs) == 1 and len(theirs - mine) == 1 and bool(mine & theirs)


def _position_hash(word: str) -> str:
    """An 8-bit hash of a word, for the one-substitution rule's sequence."""
    return f"{xxhash.xxh32_intdigest(word.encode(), seed=1) & 0xFF:02x}"


_VOWELS = frozenset("aeiouy")


def _skeleton(word: str) -> str:
    """``word`` without its ending (plural, -ed, -ing) and vowels, doubled letters once:
    "vegetables" and "vegtables" -> "vgtbl", "drain" and "drian" -> "drn"."""
    for ending in ("ing", "ies", "es", "ed", "s"):
        if len(word) > len(ending) + 2 and word.endswith(ending):
            word = word[: -len(ending)]
            break
    out: list[str] = []
    for c in word:
        if c not in _VOWELS and (not out or out[-1] != c):
            out.append(c)
    return "".join(out) or word


def _read_aliases(text: str, words: _Words) -> str:
    """``text`` with each spelling of an alias written as its key ("World War II" -> WWII)."""
    pattern, key_of = words.aliases
    return pattern.sub(lambda m: key_of[" ".join(m.group().lower().split())], text)


def _one_unit(value: str, i: int, attached: dict[int, str]) -> bool:
    """Whether a number is "one" of a unit ("1 GB" is "a gigabyte"); a clock time is not."""
    return value == "1" and i in attached and attached[i] not in ("am", "pm")


def _verb_use(word: str, i: int, tokens: Sequence[re.Match[str]], words: _Words) -> bool:
    """Whether a time word that is also a verb is used as one ("When does it fall on?")."""
    if word not in words.verb_times:
        return False
    before = tokens[i - 1].group().lower() if i else ""
    after = tokens[i + 1].group().lower() if i + 1 < len(tokens) else ""
    return before in words.verb_before or after in words.verb_after


def _phrases(content: Sequence[str], connectives: frozenset[str]) -> list[str]:
    """Each connective with the word after it ("on moon", "in 1969")."""
    return [
        f"{word} {after}"
        for word, after in itertools.pairwise(content)
        if word in connectives and after not in connectives
    ]


def _core(content: Sequence[str], connectives: frozenset[str]) -> list[str]:
    """The words outside those phrases, in order ("what happened")."""
    core: list[str] = []
    skip = False
    for i, word in enumerate(content):
        if skip:
            skip = False
        elif word in connectives:
            skip = i + 1 < len(content) and content[i + 1] not in connectives
        else:
            core.append(word)
    return core


def _last_turn(text: str, words: _Words) -> tuple[str, frozenset[str]] | None:
    """(digest of the earlier lines' words, hashes of the last line's words but fillers) when
    ``text`` has more than one line: "How do I center a div?" + "And vertically?" gives
    {vertically}, which "And with grid?" after the same line does not share."""
    lines = text.strip().split("\n")
    if len(lines) < 2:
        return None
    skip = words.articles | words.connectives | words.follow_up_fillers | words.self
    earlier = [m.group().lower() for line in lines[:-1] for m in _WORD.finditer(line)]
    last = {m.group().lower().replace("\u2019", "'") for m in _WORD.finditer(lines[-1])}
    last = {w[:-2] if w.endswith("'s") else w for w in last} - skip
    return _digest(earlier), frozenset(_word_hash(w) for w in last)


def _order(raw: Any) -> tuple[str, ...]:
    if len(raw) < 4:
        raise ValueError("an order field has at least four digests")
    return tuple(str(digest) for digest in raw)


def _same_names(a: _Features, b: _Features) -> bool:
    """Every name of ``a`` is a name of ``b``, or (lowercase, "france's capital") one of its
    words."""
    missing = set(a.entities) - set(b.entities)
    if missing and b.words is not None:
        missing = {name for name in missing if _word_hash(name) not in b.words}
    return not missing


def _attached_units(text: str, tokens: Sequence[re.Match[str]], words: _Words) -> dict[int, str]:
    """Token index -> canonical unit, for each number or number word followed by a unit ("5 kg",
    "9am", "25 °C", "30-second", "two years"; "degrees" or "square" may stand between; the
    number's index and the unit's both map to it), for "one" or an article before a unit
    written out ("one gigabyte", "a day", "an hour": one of the unit), and for a unit after a
    degree sign ("°F")."""
    out: dict[int, str] = {}
    degrees = "°" in text
    for i, match in enumerate(tokens):
        word = match.group().lower()
        article = word in words.indefinite_articles
        if not match.group()[0].isdigit() and not (
            article or word in words.number_words or word == words.one
        ):
            if not degrees:
                continue
            if (
                text[: match.start()].rstrip().endswith("°")
                and match.group().lower() in words.units
            ):
                out[i] = words.units[match.group().lower()]  # "°F"
            continue
        j, end, prefix = i + 1, match.end(), ""
        while j < len(tokens) and _UNIT_GAP.fullmatch(text, end, tokens[j].start()):
            lower = tokens[j].group().lower()
            if lower in words.unit_fillers:
                prefix = "" if lower.startswith("degree") else lower + " "
                end, j = tokens[j].end(), j + 1
                continue
            known = _unit_of(lower, words)
            if known is not None and not (article and (prefix or len(known[0]) < 3)):
                out[i] = out[j] = prefix + known[1]  # not "a m", "a square"
            break
    return out


def _symbols(text: str) -> tuple[str, ...]:
    """The symbol runs of ``text`` that prose does not use (``==``, ``[^``, ``++`` after a word,
    ``*$``...), each marked ``~`` on the side it touches a word, and its command-line options,
    as a sorted multiset: "x == y" / "x === y", "i++" / "++i", "-la" / "-lh"."""
    found: list[str] = _OPTION.findall(text)
    for match in _SYMBOLS.finditer(text):
        run, start, end = match.group(), match.start(), match.end()
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        joined = run in _JOINERS and before.isalnum() and after.isalnum()
        if joined and (run != "." or before.isdigit() or not after.isalpha()):
            continue  # a joiner (but the dot of "log.txt" and "list.sort" stays)
        if all(c in _PROSE for c in run) and (before.isspace() or after.isspace()):
            continue  # sentence punctuation, quotes and parentheses in prose
        left = "~" if before.isalnum() or before == "_" else ""
        right = "~" if after.isalnum() or after == "_" else ""
        found.append(left + run + right)
    return tuple(sorted(found))


def _digest(words: Sequence[str]) -> str:
    return xxhash.xxh3_64_hexdigest("\x1f".join(words).encode())[:12]


def _word_hash(word: str) -> str:
    """A 16-bit hash of a word: enough to tell whether a name occurs among a text's words,
    without storing the words (many words share each value)."""
    return f"{xxhash.xxh32_intdigest(word.encode()) & 0xFFFF:04x}"


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
