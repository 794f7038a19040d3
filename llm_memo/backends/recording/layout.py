"""Where recordings live in their folder: one file per key, the path made of the key's parts.

A key llm_memo builds, ``llm_memo:<format>:<namespace>:<function>:<hash>``, is stored at
``<folder>/<namespace>/<function>/<hash>.json`` (the parts as the key escapes them, so the path
is the key and a namespace or a function is a subfolder). Any other string is kept whole,
percent-escaped (dots too, so never ``..``), under ``<folder>/_other/``. Keys are read apart only
through :func:`llm_memo.keys.parse_key`.

The layout leaves the format version out of the path (a recording folder is reviewed content,
re-recorded as a whole when the format changes), so :func:`key_of` reads a file as a key of the
current format; a file holding an older key reads as unusable, never as another key's answer.

Pure code: paths in, paths out; the only I/O is :func:`prune_empty`'s ``rmdir``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

from ...entry import FORMAT_VERSION
from ...keys import KEY_ROOT, parse_key

__all__ = ["OTHER", "SUFFIX", "key_of", "path_for", "prune_empty"]

#: The folder for keys that do not have llm_memo's shape.
OTHER = "_other"
#: Every recording file's suffix (temporary files of atomic writes end in ``.tmp``).
SUFFIX = ".json"


def path_for(directory: Path, key: str) -> Path:
    """The file that holds (or would hold) ``key``'s recording inside ``directory``."""
    parts = parse_key(key)
    if parts is not None and all(p not in (".", "..") for p in parts.escaped):
        _, namespace, function, digest = parts.escaped
        return directory / namespace / function / (digest + SUFFIX)
    # Not a key llm_memo builds: kept whole, escaped (dots too, so never "..").
    name = quote(key, safe="").replace(".", "%2E")
    return directory / OTHER / (name + SUFFIX)


def key_of(directory: Path, path: Path) -> str | None:
    """The key whose recording ``path`` is (the inverse of :func:`path_for`), or ``None`` for a
    file that is not in the layout."""
    rel = path.relative_to(directory).parts
    if len(rel) == 2 and rel[0] == OTHER:
        return unquote(rel[1][: -len(SUFFIX)])
    if len(rel) == 3:
        namespace, function, name = rel
        return f"{KEY_ROOT}{FORMAT_VERSION}:{namespace}:{function}:{name[: -len(SUFFIX)]}"
    return None


def prune_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``root`` while they are empty."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop climbing
            return
        folder = folder.parent
