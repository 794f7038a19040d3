"""Cache keys: bound arguments -> canonical form -> canonical bytes -> xxh3-128 -> key string.

The package, in the order a key is made (SPEC §4):

=====================  =========================================================================
``builder.py``         :class:`KeyBuilder`: binds a call to the function's signature, drops the
                       never-keyed names (:data:`DEFAULT_IGNORE`, :data:`IGNORE_GROUPS`, the
                       SDK's own), adds the SDK endpoint and chosen headers, hashes the view
``canonical_form.py``  :func:`canonical` / :func:`canonical_bytes`: one JSON-native form per
                       meaning, bounded by :data:`MAX_DEPTH` and :data:`MAX_NODES`
``_unkeyable.py``      why a value cannot be keyed: the errors that name the parameter and fix
``format.py``          the key string ``llm_memo:<format>:<namespace>:<function>:<hash>``:
                       :func:`key_string`, the prefixes, :data:`KEY_ROOT`, :func:`digest`, and
                       :func:`parse_key` / :class:`KeyParts`, the only parser of keys
=====================  =========================================================================

Every public name is importable from ``llm_memo.keys``, as before the package was split.

Not here: values (``codec``), when a key is used (``_policy.py``), what is known about each
SDK (``llm_memo.sdks``; :func:`split_for_similarity` is re-exported from there).
"""

from __future__ import annotations

from ..sdks import split_for_similarity
from .builder import DEFAULT_IGNORE, IGNORE_GROUPS, KeyBuilder
from .canonical_form import MAX_DEPTH, MAX_NODES, canonical, canonical_bytes

# Transitional: backends still on main import the private prefix; each moves to KEY_ROOT in
# the reshape, and this line goes when the last one has.
from .format import (
    KEY_ROOT,
    KeyParts,
    digest,
    function_prefix,
    key_string,
    namespace_prefix,
    parse_key,
)

__all__ = [
    "DEFAULT_IGNORE",
    "IGNORE_GROUPS",
    "KEY_ROOT",
    "MAX_DEPTH",
    "MAX_NODES",
    "KeyBuilder",
    "KeyParts",
    "canonical",
    "canonical_bytes",
    "digest",
    "function_prefix",
    "key_string",
    "namespace_prefix",
    "parse_key",
    "split_for_similarity",
]
