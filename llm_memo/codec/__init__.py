"""Values as data: encode results to bytes, restore them as the same types, seal entries.

The package:

==================  ============================================================================
``allow_list.py``   which classes a value may be restored as (:class:`AllowList`,
                    :func:`register_type`, :func:`expected_types`): registered, in the return
                    annotation, or an imported SDK's response model; never an arbitrary import
``values.py``       :class:`Codec`: a value or a stream's chunks to ``(type_tag, payload)`` and
                    back; :class:`UnencodableValueError` for values it will not store
``sealing.py``      :func:`seal` / :func:`unseal` / :func:`check_key` / :func:`inflate`: the key's
                    digest, bounded compression and HMAC signatures around the payload
==================  ============================================================================

Every failure to read is a :class:`~llm_memo.errors.CodecError`, which the decorator turns into
a miss. Every public name is importable from ``llm_memo.codec``, as before the split.

Not here: the entry's byte layout (``entry.py``); what is known about each SDK, its response
types and its token usage (``llm_memo.sdks``: :func:`usage_tokens` and :class:`StreamUsage` are
re-exported here, where callers have always found them).
"""

from __future__ import annotations

from ..sdks import StreamUsage, usage_tokens
from .allow_list import AllowList, expected_types, register_type, registered_types, type_name
from .sealing import check_key, inflate, seal, unseal
from .values import Codec, UnencodableValueError, join_chunks

__all__ = [
    "AllowList",
    "Codec",
    "StreamUsage",
    "UnencodableValueError",
    "check_key",
    "expected_types",
    "inflate",
    "join_chunks",
    "register_type",
    "registered_types",
    "seal",
    "type_name",
    "unseal",
    "usage_tokens",
]
