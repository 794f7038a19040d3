"""What :class:`~llm_memo.backends.semantic.guard.LexicalGuard` reads in a text: :func:`analyse`
turns it into :class:`_Features` (negation, numbers with their units, times, antonym sides,
names, code symbols, word-order digests, the follow-up turn, the question form, the words'
hashes), with one helper per feature."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ._words import _digest, _position_hash, _word_hash, _Words

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


def analyse(text: str, words: _Words, sides: dict[str, set[str]]) -> _Features:
    """The features of ``text``; ``sides`` maps a word form to the pair sides it belongs
    to (built by :class:`~llm_memo.backends.semantic.guard.LexicalGuard`)."""
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
        antonyms.update(sides.get(lower, ()))
        if i and (gap == "-" or gap.isspace()):  # also the joined word: check-in, turn on
            antonyms.update(sides.get(tokens[i - 1].group().lower() + lower, ()))
        if lower in words.directional:
            directional = True
        known = _unit_of(base, words)
        if known is not None and (i in attached or known[0] not in words.units_after_number_only):
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
            sorted({_skeleton(w) for w in content if _word_hash(w) not in words.function_hashes})
        )[:8],
        sequence="".join(_position_hash(w) for w in content),
    )


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
    """(the unit word ``word`` is or misspells, its canonical unit), if any (remembered per
    word form: the misspelling search builds a string per letter)."""
    memo = words.unit_memo
    if word in memo:
        return memo[word]
    unit = words.units.get(word)
    if unit is not None:
        found: tuple[str, str] | None = (word, unit)
    else:
        slip = _unit_slip(word, words)
        found = None if slip is None else (slip, words.units[slip])
    if len(memo) >= _MEMO_WORDS:
        memo.clear()
    memo[word] = found
    return found


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


_VOWELS = frozenset("aeiouy")
# Word forms remembered by the per-word caches (a text has tens of words; a vocabulary, more).
_MEMO_WORDS = 1 << 16


@functools.lru_cache(maxsize=_MEMO_WORDS)
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
