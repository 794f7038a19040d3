"""What never reaches a recording: credentials are scrubbed, and users' own fields redacted.

Recordings are written for git, so the ``request`` field never holds a credential, whatever
the key is made of (:func:`scrub_request`, applied before anything is written or reported):
parameters in the never-keyed list (:data:`llm_memo.keys.DEFAULT_IGNORE`) and credential names
(``api_key``, ``password``, ``secret``, ``token``, credential headers passed as parameters...)
are left out, header mappings (``headers``, ``extra_headers``, ``default_headers``) are dropped
at any depth, and secret-looking strings anywhere in it (``sk-...`` provider keys,
``Bearer ...`` / ``Basic ...`` credentials, AWS ``AKIA...`` key ids, Google ``AIza...`` keys,
GitHub ``ghp_...`` tokens, JWTs, passwords in URLs, strings under keys named like ``*token*``,
``*secret*``, ``*password*``, ``*api_key*``) are replaced by :data:`SCRUBBED`. Keys are computed
from the unscrubbed request, so scrubbing never makes two requests one recording.

:func:`redact_keys` builds a :data:`Redactor` for what else could be sensitive (prompts with
personal data, the ``user`` parameter, provider ids in responses): the recording backend
applies it to the request view and the value before they are written.

Pure code: no I/O, no configuration. The names are public through :mod:`llm_memo.recording`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from ...keys import DEFAULT_IGNORE, IGNORE_GROUPS

__all__ = ["SCRUBBED", "Redactor", "redact_keys", "scrub_request"]

#: A function from JSON to JSON applied to the request view and the value before writing.
Redactor = Callable[[Any], Any]


def redact_keys(*names: str, replacement: str = "[redacted]") -> Redactor:
    """A redactor that replaces the string value of every mapping field named in ``names``,
    at any depth, with ``replacement``.

    Only string values are replaced, so a redacted response still validates as its type.

    Example::

        @pytest.mark.llm_memo(redact=redact_keys("id", "system_fingerprint", "user"))

    .. versionadded:: 0.1.0
    """
    wanted = frozenset(names)

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {
                k: replacement if k in wanted and isinstance(v, str) else walk(v)
                for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk


#: What :func:`scrub_request` puts in place of a secret-looking value.
SCRUBBED: Final = "[scrubbed]"

# Header mappings: never recorded, at any depth (per-request tracing headers would also bust
# every key, and credential headers must never reach git). The keys module's list, plus the
# name some HTTP clients use.
_HEADER_MAPPINGS = IGNORE_GROUPS["header mappings"] | {"http_headers"}
# Credential parameters left out of the request even when the key includes them (a user's own
# function may key ``token``; the recording still must not show it): the keys module's
# credential group, plus credentials it has no reason to list because no SDK takes them as
# parameters (a user's own function may: ``passwd``, ``refresh_token``, a credential header
# such as ``authorization`` or ``cookie`` passed as a keyword).
_CREDENTIALS = IGNORE_GROUPS["credentials"] | {
    "apikey",
    "refresh_token",
    "passwd",
    "authorization",
    "proxy_authorization",
    "cookie",
}
_LEFT_OUT = DEFAULT_IGNORE | _HEADER_MAPPINGS | _CREDENTIALS
# Mapping keys whose string values are credentials (``session_token``, ``x-api-key``,
# ``db_password``, ``Authorization``...), compared lower-cased with "-" read as "_".
_SECRET_NAME = re.compile(
    r"token|secret|passw(or)?d|api_?key|private_key|credential|^(proxy_)?authorization$"
    r"|^(set_)?cookie$"
)
# Secret-looking text anywhere in a string, by its shape. Each pattern matches the credential
# itself; a "Bearer"/"Basic" scheme word is kept so the text still reads.
_SECRET_VALUES = re.compile(
    "|".join(
        (
            r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{16,}",  # OpenAI sk-/sk-proj-, Anthropic sk-ant-
            r"(?<![A-Za-z0-9])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe-style keys
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
            r"\bAIza[0-9A-Za-z_\-]{35}",  # Google API keys
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",  # GitHub tokens
            r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack tokens
            r"\beyJ[A-Za-z0-9_\-]{10,}(?:\.[A-Za-z0-9_\-]*)*",  # JWTs (base64 '{"...')
        )
    )
)
# "Bearer <token>" / "Basic <base64>": only a token that looks like one (a digit, a symbol or
# an inner capital), so prose such as "Basic authentication" stays readable.
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Token|Digest)(\s+)([A-Za-z0-9\-._~+/]{6,}=*)", re.I)
_TOKEN_SHAPE = re.compile(r"[0-9\-._~+/=]|.[A-Z]")
# user:password@ in URLs, and credential query parameters (?api_key=..., &token=...).
_URL_USERINFO = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@")
_URL_QUERY = re.compile(
    r"([?&](?:api[_-]?key|key|token|access_token|auth|sig|signature|password|secret)=)[^&#\s]+",
    re.I,
)


def _scrub_text(text: str) -> str:
    if len(text) < 6:
        return text
    text = _SECRET_VALUES.sub(SCRUBBED, text)
    text = _AUTH_SCHEME.sub(
        lambda m: f"{m[1]}{m[2]}{SCRUBBED}" if _TOKEN_SHAPE.search(m[3]) else m[0], text
    )
    if "://" in text:
        text = _URL_USERINFO.sub(SCRUBBED + "@", text)
    if "=" in text:
        text = _URL_QUERY.sub(lambda m: m[1] + SCRUBBED, text)
    return text


def _secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name.lower().replace("-", "_")) is not None


def _scrub(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if depth > 512:  # JSON from orjson nests at most 255 deep; never recurse without bound
        return SCRUBBED
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            name = k if isinstance(k, str) else ""
            if name.lower() in _HEADER_MAPPINGS and isinstance(v, (dict, list)):
                continue
            if isinstance(v, str) and name and _secret_name(name):
                out[k] = SCRUBBED
            else:
                out[k] = _scrub(v, depth + 1)
        return out
    return value


def scrub_request(request: Any) -> Any:
    """The request view as recordings show it: without credentials (see the module docstring).

    Top-level parameters in the never-keyed list, credential parameters and header mappings are
    left out; header mappings deeper down are dropped; secret-looking strings anywhere, and
    strings under credential-named keys, become :data:`SCRUBBED`. Returns a new value (the
    input is not changed). Only for showing a request: keys are computed from the unscrubbed
    view, so two requests that differ only in a secret keep two keys.

    Example::

        >>> scrub_request({"q": "use sk-proj-abcdefghijklmnop1234", "api_key": "sk-..."})
        {'q': 'use [scrubbed]'}

    .. versionadded:: 0.1.0
    """
    if isinstance(request, dict):
        request = {k: v for k, v in request.items() if not (isinstance(k, str) and k in _LEFT_OUT)}
    return _scrub(request, 0)
