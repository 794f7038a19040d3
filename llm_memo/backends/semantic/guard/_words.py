"""The lexical guard's word lists (``guard_words.json``, loaded once per process) and the short
hashes its features store instead of words."""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
import xxhash


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
    # What _unit_of found for each word form met so far (a cache, filled as texts are read).
    unit_memo: dict[str, tuple[str, str] | None] = field(default_factory=dict, compare=False)


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


def _digest(words: Sequence[str]) -> str:
    return xxhash.xxh3_64_hexdigest("\x1f".join(words).encode())[:12]


@functools.lru_cache(maxsize=1 << 16)
def _word_hash(word: str) -> str:
    """A 16-bit hash of a word: enough to tell whether a name occurs among a text's words,
    without storing the words (many words share each value)."""
    return f"{xxhash.xxh32_intdigest(word.encode()) & 0xFFFF:04x}"


@functools.lru_cache(maxsize=1 << 16)
def _position_hash(word: str) -> str:
    """An 8-bit hash of a word, for the one-substitution rule's sequence."""
    return f"{xxhash.xxh32_intdigest(word.encode(), seed=1) & 0xFF:02x}"
