"""The lexical guard's rules: :func:`compatible` decides whether a stored entry's features may
answer a query's (see :class:`~llm_memo.backends.semantic.guard.LexicalGuard` for the list)."""

from __future__ import annotations

from ._features import _Features
from ._words import _word_hash, _words


def compatible(a: _Features, b: _Features) -> bool:
    """Whether the query's features ``a`` and a stored entry's ``b`` pass every rule (see
    :class:`~llm_memo.backends.semantic.guard.LexicalGuard`)."""
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


def _same_names(a: _Features, b: _Features) -> bool:
    """Every name of ``a`` is a name of ``b``, or (lowercase, "france's capital") one of its
    words."""
    missing = set(a.entities) - set(b.entities)
    if missing and b.words is not None:
        missing = {name for name in missing if _word_hash(name) not in b.words}
    return not missing


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
