"""Record / replay for test suites: each cached call as one JSON file committed next to the tests.

:class:`RecordingBackend` is a backend (get, set, delete, clear, close, plus ``keys`` for
listing) over a folder of recordings, so the decorator drives it like any other store.
:func:`use_recordings` swaps it in for every cached function in the process, the way the
``llm_cache`` fixture swaps in a memory backend, and applies the :class:`Mode`:

=============  ==================================================================================
``replay``     ``only_if_cached``: answer from the recordings, never call; an unrecorded call
               raises :class:`~llm_memo.errors.CacheMiss` and is listed in
               :attr:`Recording.unrecorded`
``record``     answer from the recordings; calls with no recording run and are written
``rewrite``    every recording this run touches is produced again (the store treats recordings
               not yet rewritten in this run as absent; within the run, a repeated call hits)
``off``        nothing is swapped: calls use the configured backend, as without recordings
               (they are still counted in :attr:`Recording.events`)
=============  ==================================================================================

**One file per call**, at ``<folder>/<namespace>/<function>/<hash>.json`` (the escaped key
parts, so the path is the key). The document is pretty-printed JSON with sorted top-level
keys: ``format``, ``function``, ``key``, ``namespace``, ``request`` (the canonical request the
key was hashed from, for humans and for ``llm-memo explain``), ``tokens``, ``type`` (the codec's
type tag) and ``value`` (the stored value as JSON, in its original key order, so a replay returns
exactly what was recorded; ``value_base64`` instead for a payload that is not JSON). The same call
with the same answer always gives the same bytes: there is **no timestamp** in the file (git
history says when a recording changed; a wall-clock field would turn every re-record into a
diff), and rewriting an unchanged recording leaves the file untouched.

Recordings do not age: ``ttl`` and ``max_age`` do not expire them (a read is served as created
"now"). They carry no signature either: they are reviewed repository content, and when signing
keys are configured the store signs what it reads.

**Secrets.** Recordings are written for git, so the ``request`` field never holds a credential,
whatever the key is made of (:func:`scrub_request`, applied before anything is written or
reported): parameters in the never-keyed list (:data:`llm_memo.keys.DEFAULT_IGNORE`) and
credential names (``api_key``, ``password``, ``secret``, ``token``...) are left out, header
mappings (``headers``, ``extra_headers``, ``default_headers``) are dropped at any depth, and
secret-looking strings anywhere in it (``sk-...`` provider keys, ``Bearer ...`` / ``Basic ...``
credentials, AWS ``AKIA...`` key ids, Google ``AIza...`` keys, GitHub ``ghp_...`` tokens, JWTs,
passwords in URLs, strings under keys named like ``*token*``, ``*secret*``, ``*password*``,
``*api_key*``) are replaced by :data:`SCRUBBED`. Keys are computed from the unscrubbed request,
so scrubbing never makes two requests one recording; credentials are never keyed, so a replay
with other credentials finds every recording. The ``value`` is stored as returned (a replay must
return it exactly). What else could be sensitive is yours: prompts with personal data, the
``user`` parameter, provider ids in responses. ``redact=`` takes a function from JSON to JSON
applied to the request view and to the value before they are written; :func:`redact_keys`
builds one that blanks named fields.

Not here: the pytest options, marker and fixtures (``pytest_plugin.py``, a thin shell over this
module).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import enum
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, unquote

import orjson

from . import config
from .backends import MISSING, Missing
from .codec import seal, unseal
from .entry import FORMAT_VERSION, Entry
from .errors import BackendError, CodecError, ConfigurationError
from .events import Event, Outcome
from .keys import DEFAULT_IGNORE

__all__ = [
    "RECORDING_FORMAT",
    "SCRUBBED",
    "Mode",
    "RecordedCall",
    "Recording",
    "RecordingBackend",
    "Redactor",
    "UnrecordedCall",
    "default_mode",
    "read_recording",
    "redact_keys",
    "scrub_request",
    "use_recordings",
]

#: Version of the recording document layout (the ``format`` field).
RECORDING_FORMAT = 1

#: A function from JSON to JSON applied to the request view and the value before writing.
Redactor = Callable[[Any], Any]

_KEY_TAG = "llm_memo"
# A key part as keys.py escapes it: percent-escaped, so [A-Za-z0-9_.~%-] only.
_PART = re.compile(r"[A-Za-z0-9_.~%-]+")
_OTHER = "_other"
_SUFFIX = ".json"
_DUMP = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
_FALSE = {"", "0", "false", "no", "off"}


class Mode(str, enum.Enum):
    """What a recorded test run does with calls (see the module docstring).

    .. versionadded:: 0.1.0
    """

    REPLAY = "replay"
    RECORD = "record"
    REWRITE = "rewrite"
    OFF = "off"

    def __str__(self) -> str:
        return self.value


def default_mode(environ: dict[str, str] | None = None) -> Mode:
    """``replay`` when the ``CI`` environment variable is set to a true value, else ``record``.

    .. versionadded:: 0.1.0
    """
    env = os.environ if environ is None else environ
    return Mode.REPLAY if env.get("CI", "").strip().lower() not in _FALSE else Mode.RECORD


# -- the document ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedCall:
    """One recording file, parsed.

    Attributes:
        key: the cache key.
        function: the function identity in the key.
        namespace: the namespace in the key.
        request: the canonical request view (``None`` when it could not be captured).
        type_tag: the codec's type tag of the value.
        value: the value as JSON (for a non-JSON payload, the payload's bytes).
        tokens: tokens the recorded answer cost.
        path: the file it was read from, if any.

    .. versionadded:: 0.1.0
    """

    key: str
    function: str
    namespace: str
    request: Any
    type_tag: str
    value: Any
    tokens: int = 0
    path: Path | None = None
    binary: bool = False

    def payload(self) -> bytes:
        """The value's bytes as the codec reads them."""
        if self.binary:
            return bytes(self.value)
        return orjson.dumps(self.value)


def split_key(key: str) -> tuple[str, str, str, str] | None:
    """``(format, namespace, function, hash)`` of a key, still escaped, or ``None``."""
    parts = key.split(":")
    if len(parts) != 5 or parts[0] != _KEY_TAG:
        return None
    return parts[1], parts[2], parts[3], parts[4]


def _document(key: str, entry: Entry, request: Any, redact: Redactor | None) -> bytes:
    payload = unseal(key, entry)  # no keys: only inflates a compressed value
    parts = split_key(key)
    namespace = unquote(parts[1]) if parts else ""
    function = unquote(parts[2]) if parts else ""
    value: Any = None
    binary = entry.type_tag == "pickle"
    if not binary:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError:  # a payload that is not JSON (or beyond orjson's ints)
            binary = True
    if request is not None:
        # Sorted for people and diffs; the request is only read, never fed back to the codec.
        request = orjson.loads(orjson.dumps(request, option=orjson.OPT_SORT_KEYS))
        request = scrub_request(request)  # never a credential in a file written for git
        if redact is not None:
            request = redact(request)
    if not binary and redact is not None:
        value = redact(value)
    # Top-level fields in sorted order; the value keeps its own order, so a replay returns
    # exactly what was recorded.
    doc: dict[str, Any] = {
        "format": RECORDING_FORMAT,
        "function": function,
        "key": key,
        "namespace": namespace,
        "request": request,
        "tokens": entry.tokens,
        "type": entry.type_tag,
    }
    if binary:
        doc["value_base64"] = base64.b64encode(payload).decode()
    else:
        doc["value"] = value
    return orjson.dumps(doc, option=_DUMP)


def read_recording(path: str | os.PathLike[str]) -> RecordedCall:
    """Parse one recording file.

    Raises:
        CodecError: the file is not a recording (bad JSON, missing fields, unknown format).
        OSError: the file cannot be read.

    .. versionadded:: 0.1.0
    """
    p = Path(path)
    return _parse(p.read_bytes(), p)


def _parse(data: bytes, path: Path | None) -> RecordedCall:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not JSON ({exc}); a merge conflict?") from exc
    if not isinstance(doc, dict):
        raise CodecError("not a recording document")
    if doc.get("format") != RECORDING_FORMAT:
        raise CodecError(f"recording format {doc.get('format')!r} is not {RECORDING_FORMAT}")
    try:
        key, tag = doc["key"], doc["type"]
        if "value_base64" in doc:
            value: Any = base64.b64decode(doc["value_base64"], validate=True)
            binary = True
        else:
            value, binary = doc["value"], False
    except (KeyError, ValueError) as exc:
        raise CodecError(f"recording is missing or has a bad field: {exc}") from exc
    tokens = doc.get("tokens", 0)
    if not isinstance(key, str) or not isinstance(tag, str) or not isinstance(tokens, int):
        raise CodecError("recording has a bad key, type or tokens field")
    return RecordedCall(
        key=key,
        function=str(doc.get("function", "")),
        namespace=str(doc.get("namespace", "")),
        request=doc.get("request"),
        type_tag=tag,
        value=value,
        tokens=tokens,
        path=path,
        binary=binary,
    )


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
# every key, and credential headers must never reach git).
_HEADER_MAPPINGS = frozenset({"headers", "extra_headers", "default_headers", "http_headers"})
# Credential parameters left out of the request even when the key includes them (a user's own
# function may key ``token``; the recording still must not show it).
_CREDENTIALS = frozenset(
    {
        "api_key",
        "api_token",
        "apikey",
        "access_token",
        "refresh_token",
        "auth_token",
        "token",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "authorization",
        "proxy_authorization",
        "cookie",
        "azure_ad_token",
        "azure_ad_token_provider",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    }
)
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


#: Requests noted by describe() and not yet used, kept at most (oldest dropped first).
_MAX_PENDING = 1024


# -- the backend ---------------------------------------------------------------------------------


class RecordingBackend:
    """A backend over a folder of recording files (see the module docstring for the layout).

    Args:
        directory: the folder (created on first write).
        redact: applied to the request view and the value before writing.
        rewrite: treat recordings not yet written by this backend object as absent (the
            ``rewrite`` mode); can be toggled between tests.

    Besides the :class:`~llm_memo.backends.Backend` methods and ``keys(prefix)``, it remembers
    which recordings were used (:attr:`touched`, :meth:`unused`) and the request of each call it
    could not answer (:meth:`request_for`), for reports.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        redact: Redactor | None = None,
        rewrite: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.redact = redact
        self.rewrite = rewrite
        self._lock = threading.Lock()
        self._touched: set[str] = set()
        self._written: set[str] = set()
        self._requests: dict[str, Any] = {}
        self._describers: dict[str, Callable[[], Any]] = {}
        self._problems: dict[str, str] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RecordingBackend:
        """Build from ``recordings:///abs/path`` or ``recordings://relative/path``.

        Raises:
            ConfigurationError: no folder in the URL.
        """
        _, sep, rest = url.partition("://")
        if not sep or not rest:
            raise ConfigurationError("recordings:// needs a folder: recordings:///path/to/dir")
        return cls(rest, **options)

    def __repr__(self) -> str:
        return f"RecordingBackend({str(self.directory)!r})"

    # -- paths ---------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file that holds (or would hold) ``key``'s recording."""
        parts = split_key(key)
        if parts is not None and all(_PART.fullmatch(p) and p not in (".", "..") for p in parts):
            _, namespace, function, hexdigest = parts
            return self.directory / namespace / function / (hexdigest + _SUFFIX)
        # Not a key llm_memo builds: kept whole, escaped (dots too, so never "..").
        name = quote(key, safe="").replace(".", "%2E")
        return self.directory / _OTHER / (name + _SUFFIX)

    def _key_of(self, path: Path) -> str | None:
        rel = path.relative_to(self.directory).parts
        if len(rel) == 2 and rel[0] == _OTHER:
            return unquote(rel[1][: -len(_SUFFIX)])
        if len(rel) == 3:
            namespace, function, name = rel
            return f"{_KEY_TAG}:{FORMAT_VERSION}:{namespace}:{function}:{name[: -len(_SUFFIX)]}"
        return None

    # -- the backend protocol ------------------------------------------------------------

    def get(self, key: str) -> Entry | Literal[Missing.MISSING]:
        """The recording of ``key`` as a fresh, unexpiring entry, or :data:`MISSING`.

        An unreadable file is a miss; :meth:`problem` says what was wrong with it.
        """
        if self.rewrite:
            with self._lock:
                rewritten = key in self._written
            if not rewritten:
                self._remember(key)
                return MISSING
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self._remember(key)
            return MISSING
        except OSError as exc:
            raise BackendError(f"cannot read recording {path}: {exc}") from exc
        try:
            call = _parse(data, path)
            if call.key != key:
                raise CodecError(f"it holds the key {call.key}, not {key}")
        except CodecError as exc:
            with self._lock:
                self._problems[key] = f"{path}: {exc}"
            self._remember(key)
            return MISSING
        with self._lock:
            self._touched.add(key)
        s = config.settings()
        # Served as created now and never expiring: recordings do not age (module docstring).
        return seal(
            key,
            call.type_tag,
            call.payload(),
            created_at=s.clock(),
            expires_at=None,
            stale_window=0.0,
            tokens=call.tokens,
            signing_keys=s.signing_keys,
        )

    def describe(self, key: str, request: Callable[[], Any]) -> None:
        """Note the request behind ``key`` (the decorator calls this before every lookup)."""
        with self._lock:
            self._describers[key] = request
            while len(self._describers) > _MAX_PENDING:  # calls that never got to get/set
                self._describers.pop(next(iter(self._describers)))

    def _request_for(self, key: str) -> Any:
        with self._lock:
            request = self._requests.pop(key, None)
            describer = self._describers.pop(key, None)
        if request is None and describer is not None:
            try:
                # Kept for reports and the file: scrubbed now, so no credential is held here.
                request = scrub_request(describer())
            except (TypeError, ValueError):  # not keyable as a view: the file shows null
                request = None
        return request

    def _remember(self, key: str) -> None:
        request = self._request_for(key)
        if request is not None:
            with self._lock:
                self._requests[key] = request

    def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Write ``entry`` as ``key``'s recording (``ttl`` is ignored: recordings do not age).

        An unchanged recording is not rewritten, so its file keeps its bytes and its mtime.

        Raises:
            BackendError: the file cannot be written.
        """
        path = self.path_for(key)
        request = self._request_for(key)
        if request is None:  # keep what an earlier recording of the same key captured
            with contextlib.suppress(OSError, CodecError):
                request = read_recording(path).request
        try:
            data = _document(key, entry, request, self.redact)
        except CodecError as exc:
            raise BackendError(f"cannot record {key}: {exc}") from exc
        try:
            if not (path.is_file() and path.read_bytes() == data):
                _write_atomically(path, data)
        except OSError as exc:
            raise BackendError(f"cannot write recording {path}: {exc}") from exc
        with self._lock:
            self._touched.add(key)
            self._written.add(key)
            self._problems.pop(key, None)

    def delete(self, key: str) -> bool:
        """Remove ``key``'s recording; return whether there was one."""
        path = self.path_for(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BackendError(f"cannot delete recording {path}: {exc}") from exc
        _prune_empty(path.parent, self.directory)
        return True

    def clear(self, prefix: str = "") -> int:
        """Remove every recording whose key starts with ``prefix``; return how many."""
        return sum(self.delete(key) for key in list(self.keys(prefix)))

    def keys(self, prefix: str = "") -> Iterator[str]:
        """The keys of the recordings in the folder that start with ``prefix``, sorted."""
        if not self.directory.is_dir():
            return iter(())
        found = []
        try:
            for path in self.directory.rglob("*" + _SUFFIX):
                key = self._key_of(path)
                if key is not None and key.startswith(prefix):
                    found.append(key)
        except OSError as exc:
            raise BackendError(f"cannot list recordings in {self.directory}: {exc}") from exc
        return iter(sorted(found))

    def close(self) -> None:
        """Nothing to release: files are opened per operation."""

    # -- reports -------------------------------------------------------------------------

    @property
    def touched(self) -> frozenset[str]:
        """Keys of the recordings read or written through this object."""
        with self._lock:
            return frozenset(self._touched)

    def unused(self) -> list[str]:
        """Keys of recordings in the folder that nothing read or wrote through this object."""
        touched = self.touched
        return [k for k in self.keys() if k not in touched]

    def request_for(self, key: str) -> Any:
        """The request of a call this store saw (from a miss, or from its file), or ``None``."""
        with self._lock:
            request = self._requests.get(key)
        if request is None:
            with contextlib.suppress(OSError, CodecError):
                request = read_recording(self.path_for(key)).request
        return scrub_request(request)  # a file written before scrubbing existed, too

    def problem(self, key: str) -> str | None:
        """Why ``key``'s file could not be used, if it exists but was unreadable."""
        with self._lock:
            return self._problems.get(key)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _prune_empty(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop climbing
            return
        folder = folder.parent


# -- using recordings for a block ------------------------------------------------------------------


@dataclass(frozen=True)
class UnrecordedCall:
    """A call that ``replay`` mode could not answer (the function was not called).

    .. versionadded:: 0.1.0
    """

    function: str
    key: str
    request: Any
    path: Path
    problem: str | None = None

    def describe(self) -> str:
        """A multi-line description: function, key, request, expected file."""
        if self.request is None:
            request = "    (not captured)"
        else:
            text = orjson.dumps(self.request, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
            request = "\n".join("    " + line for line in text.decode().splitlines())
        lines = [
            f"  function: {self.function}",
            f"  key:      {self.key}",
            "  request:",
            request,
            f"  expected: {self.path}",
        ]
        if self.problem:
            lines.append(f"  (the file exists but is unusable: {self.problem})")
        return "\n".join(lines)


class Recording:
    """What :func:`use_recordings` (and the ``llm_recording`` fixture) yields.

    Attributes:
        mode: the :class:`Mode` in force.
        backend: the :class:`RecordingBackend` (``None`` in ``off`` mode).
        events: every cached call's event in the block (most recent 10,000).
        unrecorded: the calls ``replay`` could not answer, in order.

    .. versionadded:: 0.1.0
    """

    def __init__(self, mode: Mode, backend: RecordingBackend | None) -> None:
        self.mode = mode
        self.backend = backend
        self.events: list[Event] = []
        self.unrecorded: list[UnrecordedCall] = []
        self._lock = threading.Lock()
        self._before: tuple[Any, Any] = (None, None)

    def __repr__(self) -> str:
        where = self.backend.directory if self.backend is not None else None
        return f"<Recording mode={self.mode.value} folder={where}>"

    # -- the swap (see use_recordings) ---------------------------------------------------

    def _enter(self) -> None:
        before = config.settings()
        self._before = (before.override_backend, before.directives.only_if_cached)
        self._apply(before)

    def _apply(self, current: config.Settings) -> None:
        changes: dict[str, Any] = {}
        if self._record not in current.observers:
            changes["observers"] = (*current.observers, self._record)
        if self.backend is not None:  # off mode swaps nothing; its calls are still counted
            changes["override_backend"] = self.backend
            self.backend.rewrite = self.mode is Mode.REWRITE
            if self.mode is Mode.REPLAY:
                changes["directives"] = dataclasses.replace(current.directives, only_if_cached=True)
        config._replace(**changes)

    def ensure_active(self) -> bool:
        """Re-apply the swap if llm_memo's configuration was reset since it was made (a
        ``conftest.py`` fixture calling ``config.reset()`` after the plugin's fixture); return
        whether that was needed."""
        s = config.settings()
        active = self._record in s.observers and (
            self.backend is None
            or (
                s.override_backend is self.backend
                and (self.mode is not Mode.REPLAY or s.directives.only_if_cached is True)
            )
        )
        if not active:
            self._apply(s)
        return not active

    def _exit(self) -> None:
        now = config.settings()
        changes: dict[str, Any] = {
            "observers": tuple(o for o in now.observers if o != self._record)
        }
        if self.backend is not None:
            backend_before, only_before = self._before
            changes["override_backend"] = backend_before
            if self.mode is Mode.REPLAY:
                changes["directives"] = dataclasses.replace(
                    now.directives, only_if_cached=only_before
                )
            self.backend.rewrite = False
        config._replace(**changes)

    @property
    def directory(self) -> Path | None:
        """The recordings folder (``None`` in ``off`` mode)."""
        return None if self.backend is None else self.backend.directory

    @property
    def hits(self) -> int:
        """Calls answered from recordings."""
        return sum(e.outcome is Outcome.HIT for e in self.events)

    @property
    def misses(self) -> int:
        """Calls that ran the function (recorded now), or found nothing in ``replay``."""
        return sum(e.outcome in (Outcome.MISS, Outcome.REFRESH) for e in self.events)

    def entries(self) -> list[str]:
        """The keys of the recordings in the folder."""
        return [] if self.backend is None else list(self.backend.keys())

    def _record(self, event: Event) -> None:
        with self._lock:
            if len(self.events) < 10_000:
                self.events.append(event)
        backend = self.backend
        if self.mode is Mode.REPLAY and event.outcome is Outcome.MISS and backend is not None:
            call = UnrecordedCall(
                function=event.function,
                key=event.key,
                request=backend.request_for(event.key),
                path=backend.path_for(event.key),
                problem=backend.problem(event.key),
            )
            with self._lock:
                self.unrecorded.append(call)

    def report(self, rerun: str = "") -> str:
        """Explain the unrecorded calls and how to record them (empty when there are none).

        Args:
            rerun: the command that re-runs the affected test, to show with the record flag.
        """
        if not self.unrecorded:
            return ""
        n = len(self.unrecorded)
        head = (
            f"llm_memo replay: {n} call{'s' if n > 1 else ''} with no recording "
            "(replay mode never calls the function):"
        )
        body = "\n\n".join(u.describe() for u in self.unrecorded)
        how = (
            "To record: run the test once with --llm-memo-mode=record (new calls only) or "
            "--llm-memo-mode=rewrite (everything it touches)"
            + (f", e.g.\n  {rerun} --llm-memo-mode=record" if rerun else "")
            + "\nthen commit the new files. A changed request (model, prompt, parameter) makes a "
            "new key: `llm-memo explain` compares two recordings."
        )
        return f"{head}\n\n{body}\n\n{how}"


@contextlib.contextmanager
def use_recordings(
    directory: str | os.PathLike[str] | RecordingBackend,
    mode: Mode | str = Mode.RECORD,
    *,
    redact: Redactor | None = None,
) -> Iterator[Recording]:
    """Route every cached function's calls through a recordings folder, for a block.

    The folder's :class:`RecordingBackend` replaces every decorator's and ``configure``'s
    backend process-wide (threads included); an explicit ``cache_controls(backend=...)``
    inside the block still wins, as do directives the block sets itself. ``replay`` adds
    ``only_if_cached`` at the ``configure`` level.

    Args:
        directory: the recordings folder, or a :class:`RecordingBackend` to share between
            blocks (it remembers what was used).
        mode: a :class:`Mode` or its name.
        redact: see :func:`redact_keys`; ignored when a backend is passed.

    Raises:
        ConfigurationError: an unknown mode.

    Example::

        with use_recordings("tests/recordings/chat", "replay") as rec:
            assert ask("gpt-4o-mini", messages).choices
        assert not rec.unrecorded

    .. versionadded:: 0.1.0
    """
    try:
        mode = Mode(mode)
    except ValueError:
        known = ", ".join(m.value for m in Mode)
        raise ConfigurationError(f"unknown recording mode {mode!r}; known: {known}") from None
    backend: RecordingBackend | None = None
    if mode is not Mode.OFF:
        if isinstance(directory, RecordingBackend):
            backend = directory
        else:
            backend = RecordingBackend(directory, redact=redact)
    recording = Recording(mode, backend)
    recording._enter()
    try:
        yield recording
    finally:
        recording._exit()
