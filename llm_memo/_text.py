"""Parsing of the small text values users write in URLs, environment variables and CLI options.

One parser per kind of value, so ``?https=ture`` is the same error everywhere instead of
``False`` in one backend and an error in another.
"""

from __future__ import annotations

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "parse_bool"]

#: Spellings of true and false accepted wherever a boolean is written as text.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_bool(text: str, what: str) -> bool:
    """``text`` as a boolean (case and surrounding spaces ignored).

    Raises:
        ValueError: naming ``what`` (e.g. ``"LLM_MEMO_STRICT"`` or ``"?https"``) and the accepted
            spellings, for anything else; callers re-raise it as their own error type.
    """
    low = text.strip().lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    raise ValueError(f"{what}={text!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")
