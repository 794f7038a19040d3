"""Where an entry lives in an object store: object names from keys, and keys from listings.

The key ``llm_memo:<ver>:<ns>:<fn>:<hash>`` is stored at
``<root>/<ver>/<ns>/<fn>/<hash[:2]>/<hash>``: a namespace or a function is a subtree (cleared
by one listing plus bulk deletes), and the hash fan-out keeps every directory small. A key of
any other shape is stored, escaped, in an ``_other/`` directory below its last plain level. A
path segment too long for a file name (over 100 characters) is shortened to a readable prefix,
``!`` and a digest (:func:`_fit`), so any namespace or function name fits every store; such an
object's key is read from its header (:mod:`.framing`).

Keys are read apart only by :func:`llm_memo.keys.parse_key` and recognised by
:data:`llm_memo.keys.KEY_ROOT`; what this module adds is the path side: which levels are safe
as path segments, and how a prefix or an odd key maps onto the tree. Pure code, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import quote, unquote

from ...keys import KEY_ROOT, parse_key
from .framing import _header_key

_OTHER: Final = "_other"  # where a key that leaves the llm_memo shape goes, at that level
_DOTS: Final = frozenset({".", ".."})


def _plain(part: str) -> bool:
    """A level safe as a path segment on every store: non-empty, not a dot name, and only
    the characters percent-escaping leaves alone (letters, digits, ``_.~-`` and ``%``), which
    is what llm_memo.keys escapes a namespace and a function to."""
    return part.isascii() and bool(part) and part not in _DOTS and quote(part, safe="%") == part


def _after_root(key: str) -> str | None:
    """``key`` after :data:`~llm_memo.keys.KEY_ROOT`, or ``None`` when it does not start so."""
    return key[len(KEY_ROOT) :] if key.startswith(KEY_ROOT) else None


def _escape(rest: str) -> str:
    # One path segment for any text: "_" + percent-escaped, "." escaped too, so a segment is
    # never empty, "." or "..", hidden, or a separator.
    return "_" + quote(rest, safe="").replace(".", "%2E")


def _levels(text: str) -> tuple[list[str], str, bool]:
    """Split ``<ver>:<ns>:<fn>:<rest>`` (the key after ``llm_memo:``) into the plain levels
    that lead it, the rest, and whether the descent stopped at a level that is not plain."""
    levels: list[str] = []
    for _ in range(3):
        level, sep, tail = text.partition(":")
        if not sep:
            return levels, text, False
        if not _plain(level):
            return levels, text, True
        levels.append(level)
        text = tail
    return levels, text, False


def _segments(key: str) -> list[str]:
    """The object's path segments below the root, before any is shortened.

    ``llm_memo:<ver>:<ns>:<fn>:<hash>`` goes to ``<ver>/<ns>/<fn>/<hash[:2]>/<hash>``. A key
    that leaves this shape goes to ``_other/<escaped>`` below its last plain level (so a
    namespace's or function's subtree holds all of its keys), or below the root.
    """
    parts = parse_key(key)
    if parts is not None:
        ver, ns, fn, digest = parts.escaped
        # "." and ".." are valid key parts but no path segment; a digest's first two
        # characters name its fan-out directory, so it may not start with a dot either.
        if ver not in _DOTS and ns not in _DOTS and fn not in _DOTS and digest[:1] != ".":
            return [ver, ns, fn, digest[:2], digest]
    tail = _after_root(key)
    levels, rest, _ = _levels(tail) if tail is not None else ([], key, False)
    return [*levels, _OTHER, _escape(rest if levels else key)]


# A path segment longer than _SEGMENT_MAX characters (all segments are ASCII: llm_memo.keys and
# _escape percent-escape everything else) is shortened to its first _SEGMENT_KEEP characters,
# "!" and a 128-bit BLAKE2b digest of the whole segment: at most 93 bytes, so any namespace or
# function fits a POSIX file name (255 bytes per component) and a whole object name stays
# under 5 x 101 bytes, far below S3's and GCS's 1024-byte and Azure's 1024-character limits.
# "!" never occurs in a plain or escaped segment (quote() escapes it), so a shortened segment
# cannot equal another key's plain one; the full key is in the object's header (LMO2 frame),
# where listings read it back and every read checks it.
_SEGMENT_MAX: Final = 100
_SEGMENT_KEEP: Final = 60
_MARK: Final = "!"


def _fit(segment: str) -> str:
    """``segment``, or its shortened form when it is too long to be a path component."""
    if len(segment) <= _SEGMENT_MAX:
        return segment
    head = segment[:_SEGMENT_KEEP]
    cut = head.rfind("%", len(head) - 2)  # never end the readable part inside a %XX escape
    if cut != -1:
        head = head[:cut]
    digest = hashlib.blake2b(segment.encode("utf-8", "surrogatepass"), digest_size=16)
    return f"{head}{_MARK}{digest.hexdigest()}"


def _object_name(key: str) -> str:
    """The object's path below the root (see :func:`_segments` and :func:`_fit`)."""
    return "/".join(_fit(segment) for segment in _segments(key))


def _join(root: str, *parts: str) -> str:
    return "/".join((root, *parts))


def _key_from(segments: Sequence[str]) -> str | None:
    """Invert :func:`_segments` (unshortened segments), or ``None`` for another shape."""
    if len(segments) >= 2 and segments[-2] == _OTHER and segments[-1].startswith("_"):
        rest = unquote(segments[-1][1:])
        levels = segments[:-2]
        return KEY_ROOT + ":".join((*levels, rest)) if levels else rest
    if len(segments) == 5:
        ver, ns, fn, _, digest = segments
        return f"{KEY_ROOT}{ver}:{ns}:{fn}:{digest}"
    return None


def _prefix_levels(prefix: str) -> tuple[list[str], bool]:
    """The plain levels that lead a key prefix, and whether the prefix then leaves the
    llm_memo shape (its keys are in the ``_other/`` directory below those levels)."""
    tail = _after_root(prefix)
    if tail is None:
        return [], True
    levels, _, odd = _levels(tail)
    return levels, odd


def _scan_top(root: str, prefix: str) -> str:
    """The directory whose subtree holds every object whose key starts with ``prefix``: a
    namespace or function prefix is its own subtree; other prefixes widen to what holds them."""
    if ":" not in prefix and KEY_ROOT.startswith(prefix):
        return root
    levels, odd = _prefix_levels(prefix)
    fitted = [_fit(level) for level in levels]
    return _join(root, *fitted, _OTHER) if odd else _join(root, *fitted)


def _entries_in(root: str, prefix: str, listed: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Sort listed paths: ``{path: key}`` of the entries whose key starts with ``prefix`` and
    can be read off the path, and the paths with a shortened segment, whose key is in their
    header. Anything else (temporary files, foreign objects) is neither.

    Below a namespace or function prefix, its own shortened levels are known from the prefix,
    so clearing or listing a long namespace needs no header reads.
    """
    head = root + "/"
    known, _ = _prefix_levels(prefix)
    fitted = [_fit(level) for level in known]
    found: dict[str, str] = {}
    unnamed: list[str] = []
    for path in listed:
        if not path.startswith(head):
            continue
        name = path[len(head) :]
        segments = name.split("/")
        if segments[: len(fitted)] == fitted:
            segments[: len(known)] = known
        if any(_MARK in segment for segment in segments):
            if not segments[-1].startswith("."):  # a temporary file is never an entry
                unnamed.append(path)
            continue
        key = _key_from(segments)
        if key is not None and key.startswith(prefix) and _object_name(key) == name:
            found[path] = key
    return found, unnamed


def _key_of(root: str, path: str) -> str | None:
    """The key stored at ``path`` when the path alone says it (no shortened segment), else
    ``None``. Exactly inverts :func:`_object_name` for such keys."""
    return _entries_in(root, "", [path])[0].get(path)


def _named(
    root: str, prefix: str, paths: Sequence[str], heads: Sequence[bytes | None]
) -> tuple[dict[str, str], list[str]]:
    """``{path: key}`` for paths whose header names a key that starts with ``prefix`` and
    belongs at that path (a copied or moved object does not); and the paths whose header is
    longer than what was read."""
    found: dict[str, str] = {}
    longer: list[str] = []
    for path, head in zip(paths, heads, strict=True):
        key = _header_key(head)
        if isinstance(key, int):
            longer.append(path)
        elif key is not None and key.startswith(prefix) and _join(root, _object_name(key)) == path:
            found[path] = key
    return found, longer
