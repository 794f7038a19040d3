"""What a question is turned into before it is embedded: casual forms spelt out and typos corrected.

Small sentence models score "whats the capitol of australia" far from "What is the capital of
Australia?": a misspelt word falls apart into word pieces the model never saw together.
:class:`TypoCorrector` rewrites, before embedding and never in what is stored:

* missing apostrophes and chat forms, from one short table (``whats`` -> ``what's``, ``u`` ->
  ``you``, ``pls`` -> ``please``, ``rn`` -> ``right now``, ``lol`` dropped), so that they are
  not "corrected" into other words;
* a word that is not in an English frequency dictionary, into the dictionary word one edit away
  (a letter deleted, inserted, replaced, or two swapped) that fits best: most frequent next to
  the words before and after it (word-pair counts), then reached by a common slip (letters
  swapped, a letter doubled or undoubled, a vowel for a vowel, a neighbouring key), then most
  frequent alone.

It leaves alone words of one or two letters, words with a capital after the first letter
(``iPhone``, ``NaN``), words touching digits, dots, underscores or slashes (code, paths, file
names), and every word the dictionary or the embedder's own vocabulary knows. The dictionaries
are those shipped in the ``symspellpy`` wheel (82,765 words and 242,342 word pairs, MIT
licensed; ``llm-memo[semantic-local]`` installs it), read once on first use (about 0.4 s and
60 MB); symspellpy itself is not imported.

:class:`~llm_memo.backends.semantic.embedders.LocalEmbedder` applies it by default
(``correct_typos=False`` turns it off). With it on, the embedder's ``name`` ends in
``+spell2``, so these vectors never share a partition with uncorrected ones, nor with those of
the ``spell1`` rules. The same text gives the same rewrite at write and at lookup time; the
lexical guard still reads the text as written. ``benchmarks/semantic_quality.py
--no-correct-typos`` measures the model without it.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from ...errors import MissingDependencyError

__all__ = ["TypoCorrector"]

#: Written-out forms of chat spellings and of contractions without their apostrophe. An empty
#: value drops the word. Not here: words that are also ordinary words or names ("r", "wont",
#: "ill", "bc").
CASUAL: dict[str, str] = {
    "u": "you", "ur": "your", "pls": "please", "plz": "please", "ppl": "people",
    "rn": "right now", "thx": "thanks", "idk": "I don't know", "imo": "in my opinion",
    "tho": "though", "cuz": "because", "wanna": "want to", "gonna": "going to",
    "gotta": "got to", "lol": "", "lmao": "", "omg": "", "ugh": "", "yo": "", "hey": "",
    "btw": "by the way", "wat": "what", "wut": "what", "gud": "good", "wich": "which",
    "ya": "you", "whats": "what's", "hows": "how's", "whos": "who's",
    "wheres": "where's", "thats": "that's", "theres": "there's", "im": "I'm", "ive": "I've",
    "youre": "you're", "theyre": "they're", "dont": "don't", "doesnt": "doesn't",
    "didnt": "didn't", "isnt": "isn't", "arent": "aren't", "wasnt": "wasn't",
    "cant": "can't", "couldnt": "couldn't", "shouldnt": "shouldn't", "wouldnt": "wouldn't",
}  # fmt: skip

# A word of letters (with an inner apostrophe), and what may touch it: letters after the first
# that are capitals, or code around it, make it a name or an identifier to leave alone.
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_CODE_NEIGHBOURS = frozenset("0123456789._/\\@#$%&*=<>[]{}|`~^+")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORDS_FILE = "frequency_dictionary_en_82_765.txt"
_PAIRS_FILE = "frequency_bigramdictionary_en_243_342.txt"

_loaded: tuple[dict[str, int], dict[str, int]] | None = None
_load_lock = threading.Lock()


def _dictionaries() -> tuple[dict[str, int], dict[str, int]]:
    """(word -> count, "word word" -> count), read from symspellpy's package data once."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _load_lock:
        if _loaded is None:
            folder = _symspellpy_dir()
            words: dict[str, int] = {}
            with (folder / _WORDS_FILE).open(encoding="utf-8") as lines:
                for line in lines:
                    word, count = line.split()
                    words[word] = int(count)
            pairs: dict[str, int] = {}
            with (folder / _PAIRS_FILE).open(encoding="utf-8") as lines:
                for line in lines:
                    first, second, count = line.split()
                    pairs[f"{first} {second}"] = int(count)
            _loaded = (words, pairs)
    return _loaded


def _symspellpy_dir() -> Path:
    """Where symspellpy's dictionaries are, found without importing it."""
    try:
        spec = importlib.util.find_spec("symspellpy")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
        if (folder / _WORDS_FILE).is_file() and (folder / _PAIRS_FILE).is_file():
            return folder
    raise MissingDependencyError(
        "typo correction (LocalEmbedder's default) reads the English dictionaries shipped in "
        "symspellpy, which is not installed; fix: pip install 'llm-memo[semantic-local]' "
        "(or LocalEmbedder(correct_typos=False))"
    )


def _edits(word: str) -> set[str]:
    """Every string one edit from ``word``: a letter deleted, swapped, replaced or inserted."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deleted = {left + right[1:] for left, right in splits if right}
    swapped = {left + right[1] + right[0] + right[2:] for left, right in splits if len(right) > 1}
    replaced = {left + c + right[1:] for left, right in splits if right for c in _LETTERS}
    inserted = {left + c + right for left, right in splits for c in _LETTERS}
    return (deleted | swapped | replaced | inserted) - {word}


#: Keys next to each other on a QWERTY keyboard (a slip of the finger).
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEAR = frozenset(
    pair for row in _ROWS for a, b in itertools.pairwise(row) for pair in (a + b, b + a)
)
_VOWELS = frozenset("aeiou")


def _likely_slip(typed: str, word: str) -> bool:
    """Whether ``typed`` is ``word`` with one of the commonest slips: two letters swapped, a
    letter doubled or undoubled, a vowel for a vowel, or a key next to the right one."""
    if len(typed) == len(word):
        diff = [i for i, (x, y) in enumerate(zip(typed, word, strict=True)) if x != y]
        if len(diff) == 2:  # swapped
            return True
        x, y = typed[diff[0]], word[diff[0]]
        return (x in _VOWELS and y in _VOWELS) or x + y in _NEAR
    short, long = (typed, word) if len(typed) < len(word) else (word, typed)
    i = next((k for k in range(len(short)) if short[k] != long[k]), len(short))
    return (i > 0 and long[i] == long[i - 1]) or (i + 1 < len(long) and long[i] == long[i + 1])


class TypoCorrector:
    """Spell out casual forms and correct one-edit typos before a text is embedded.

    Args:
        known: more words never to correct (the embedder's vocabulary, product names).

    Raises:
        MissingDependencyError: symspellpy (whose dictionaries it reads) is not installed, on
            first use.

    Example::

        TypoCorrector()("whats the capitol of australia")  # "what's the capital of australia"

    .. versionadded:: 0.1.0
    """

    #: Identity of the rewrite (part of the embedder's name): change it when the rules change.
    name = "spell2"

    def __init__(self, known: Iterable[str] = ()) -> None:
        self._known = frozenset(word.lower() for word in known)

    def __repr__(self) -> str:
        return "TypoCorrector()"

    def __call__(self, text: str) -> str:
        """``text`` with casual forms spelt out and typos corrected; everything else as it was."""
        words, pairs = _dictionaries()
        matches = list(_WORD.finditer(text))
        out: list[str] = []
        last = 0
        previous = ""  # the word before, as rewritten, lowercase
        for i, match in enumerate(matches):
            token = match.group()
            lower = token.lower()
            start, end = match.span()
            out.append(text[last:start])
            last = end
            if lower in CASUAL:
                replacement = CASUAL[lower]
                out.append(replacement)
                previous = replacement.rsplit(" ", 1)[-1].lower() if replacement else previous
                continue
            if not self._leave(text, token, lower, start, end, words):
                following = matches[i + 1].group().lower() if i + 1 < len(matches) else ""
                better = self._best(lower, previous, following, words, pairs)
                if better is not None:
                    token = better.capitalize() if token[0].isupper() else better
                    lower = better
            out.append(token)
            previous = lower
        out.append(text[last:])
        return "".join(out)

    def _leave(
        self, text: str, token: str, lower: str, start: int, end: int, words: dict[str, int]
    ) -> bool:
        """Whether ``token`` is not a candidate for correction (see the module docstring)."""
        if len(lower) < 3 or lower in words or lower in self._known or "'" in lower:
            return True
        if any(c.isupper() for c in token[1:]):
            return True
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        return before in _CODE_NEIGHBOURS or after in _CODE_NEIGHBOURS

    @staticmethod
    def _best(
        word: str, previous: str, following: str, words: dict[str, int], pairs: dict[str, int]
    ) -> str | None:
        """The dictionary word one edit from ``word`` that fits its neighbours best, if any."""
        candidates = [c for c in _edits(word) if c in words]
        if not candidates:
            return None

        def fit(candidate: str) -> tuple[int, bool, int, str]:
            context = pairs.get(f"{previous} {candidate}", 0) + pairs.get(
                f"{candidate} {following}", 0
            )
            return (context, _likely_slip(word, candidate), words[candidate], candidate)

        return max(candidates, key=fit)
