"""What keys need to know about the SDKs: per-SDK never-keyed names and SDK client endpoints.

Two questions, both answered from the callable or object handed to us, never from what the
process happens to have imported (so keys cannot drift between processes):

* **Which SDK's own function is this?** A callable defined in ``litellm`` (``litellm.completion``,
  ``litellm.acompletion``, ``litellm.embedding``, a ``Router`` method...) gets litellm's profile:
  its bookkeeping parameters (``cache``, ``callbacks``, ``litellm_*``...) are never keyed. A
  function of yours that calls litellm is yours: its parameters are keyed as you declared them.
* **Which server answers?** A bound method of an OpenAI-SDK-style ("Stainless") client or
  resource (``OpenAI(...).chat.completions.create``, ``AsyncOpenAI``, ``AzureOpenAI``,
  ``Anthropic``, ``AsyncAnthropic``, the Bedrock and Vertex clients, reached directly or through
  ``with_raw_response`` / ``with_streaming_response`` / ``with_options(...)`` /
  ``functools.partial``) keys the client's endpoint: the base URL without user info, the
  client's default query (Azure's ``api-version``) and, where the SDK has them, the Azure
  deployment and API version or the Vertex project and region. Credentials (API keys, tokens,
  organisation and project ids, credential-named query parameters, user info in the URL) are
  never part of it. The same endpoint is the key form of such a client passed as an argument.

Not here: the generic never-keyed names (``keys.DEFAULT_IGNORE``) and the canonical walk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = [
    "CREDENTIAL_HEADERS",
    "HEADER_MAPPINGS",
    "LITELLM",
    "PROFILES",
    "Profile",
    "client_headers",
    "endpoint_client",
    "endpoint_of",
    "is_sdk_client",
    "profile_for",
    "sdk_client_of",
]


@dataclass(frozen=True)
class Profile:
    """Never-keyed parameter names of one SDK's own functions.

    Attributes:
        sdk: the SDK's top-level module name.
        ignore: exact parameter names never keyed.
        ignore_prefixes: parameter name prefixes never keyed.
    """

    sdk: str
    ignore: frozenset[str]
    ignore_prefixes: tuple[str, ...] = ()

    def ignores(self, name: str) -> bool:
        """Whether this profile leaves ``name`` out of keys."""
        return name in self.ignore or name.startswith(self.ignore_prefixes)


#: litellm's own functions: caching and logging bookkeeping, router deployment lists (which
#: carry every deployment's API key), cost overrides and transport. None changes the answer.
LITELLM = Profile(
    sdk="litellm",
    ignore=frozenset(
        {
            # its own cache controls and logging hooks (SPEC §2: per-call cache= / caching=)
            "cache",
            "caching",
            "callbacks",
            "success_callback",
            "failure_callback",
            "logger_fn",
            "metadata",
            "proxy_server_request",
            # credentials and accounts
            "model_list",
            "vertex_credentials",
            "organization",
            # cost bookkeeping
            "input_cost_per_token",
            "output_cost_per_token",
            "input_cost_per_second",
            "output_cost_per_second",
            # transport
            "shared_session",
        }
    ),
    ignore_prefixes=("litellm_",),
)

#: Every SDK profile, by the SDK's top-level module.
PROFILES: dict[str, Profile] = {"litellm": LITELLM}

#: Header names (lower case) that carry credentials: never keyed, even when asked for with
#: ``key_headers=``.
CREDENTIAL_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-auth-token",
        "x-amz-security-token",
        "ocp-apim-subscription-key",
    }
)

#: Parameters holding header mappings, in the order their headers are merged (later wins).
#: Never keyed as a whole; ``key_headers=`` keys chosen headers from them.
HEADER_MAPPINGS: tuple[str, ...] = ("default_headers", "headers", "extra_headers")

# Query parameters that carry credentials (compared lower case, "-" as "_").
_CREDENTIAL_QUERY = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "token",
        "access_token",
        "auth",
        "code",
        "sig",
        "signature",
        "password",
        "secret",
        "client_secret",
        "x_amz_security_token",
        "x_amz_signature",
        "x_amz_credential",
    }
)

_UNWRAP_LIMIT = 32


def _steps(fn: Any) -> Iterable[Any]:
    """``fn`` and what it wraps: ``__wrapped__`` (functools.wraps, the SDKs' raw-response
    wrappers), ``__func__`` (methods) and ``functools.partial``'s ``func``."""
    seen: set[int] = set()
    for _ in range(_UNWRAP_LIMIT):
        if fn is None or id(fn) in seen:
            return
        seen.add(id(fn))
        yield fn
        if isinstance(fn, functools.partial):
            fn = fn.func
            continue
        inner = getattr(fn, "__wrapped__", None)
        if inner is None:
            inner = getattr(fn, "__func__", None)
        fn = inner


def _sdk_of(obj: Any) -> str:
    module = getattr(obj, "__module__", None)
    return module.partition(".")[0] if isinstance(module, str) else ""


def profile_for(fn: Callable[..., Any]) -> Profile | None:
    """The profile of the SDK whose own function ``fn`` is (following wrappers), or ``None``."""
    for step in _steps(fn):
        profile = PROFILES.get(_sdk_of(step))
        if profile is not None:
            return profile
        owner = getattr(step, "__self__", None)
        if owner is not None and not isinstance(owner, type(functools)):
            profile = PROFILES.get(_sdk_of(type(owner)))
            if profile is not None:
                return profile
    return None


def _mro_names(cls: type) -> Iterable[tuple[str, str]]:
    for klass in cls.__mro__:
        yield klass.__module__, klass.__qualname__


def is_sdk_client(obj: Any) -> bool:
    """Whether ``obj`` is a Stainless-generated SDK client (openai, anthropic...)."""
    return sdk_client_of(obj) is obj


def sdk_client_of(obj: Any) -> Any:
    """The client behind a Stainless client or resource object, else ``None``."""
    cls = type(obj)
    if cls.__module__ == "builtins":
        return None
    for module, name in _mro_names(cls):
        if name in ("SyncAPIClient", "AsyncAPIClient") and module.endswith("._base_client"):
            return obj
        if name in ("SyncAPIResource", "AsyncAPIResource") and module.endswith("._resource"):
            return getattr(obj, "_client", None)
    return None


def endpoint_client(fn: Callable[..., Any]) -> tuple[Any, tuple[str, ...]]:
    """The SDK client whose server answers calls of ``fn`` (a bound method of a client or of
    one of its resources, possibly wrapped), or ``None``; and the wrappers met on the way.

    The wrappers matter: ``with_raw_response.create`` copies the name of ``create`` (so it has
    the same function identity) but returns a raw response, never a ``ChatCompletion``; its
    entries must not meet those of ``create``. A wrapper is named by its own code's module and
    name (``openai._legacy_response.wrapped``), which ``functools.wraps`` does not copy.
    """
    wrappers: list[str] = []
    for step in _steps(fn):
        owner = getattr(step, "__self__", None)
        if owner is not None:
            client = sdk_client_of(owner)
            if client is not None:
                return client, tuple(wrappers)
        code = getattr(step, "__code__", None)
        if code is not None and getattr(step, "__wrapped__", None) is not None:
            # Where the wrapper's code lives (its globals' module, not its copied __module__)
            # and its own name: the same on every Python version.
            module = getattr(step, "__globals__", {}).get("__name__", "?")
            wrappers.append(f"{module}.{code.co_name}")
        elif isinstance(step, functools.partial):
            wrappers.append("functools.partial")
    return None, ()


def _without_credentials(query: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in query:
        name = str(name)
        if name.lower().replace("-", "_") in _CREDENTIAL_QUERY:
            continue
        if type(value).__name__ in ("Omit", "NotGiven"):
            continue
        out[name] = (
            value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
        )
    return out


def endpoint_of(client: Any) -> dict[str, Any]:
    """The endpoint identity of an SDK client: what decides which server answers.

    ``{"base_url": ..., "query": {...}}`` plus, where the client has them, ``api_version`` and
    ``deployment`` (Azure OpenAI), ``project`` and ``region`` (Vertex), ``region`` (Bedrock).
    User info in the URL and credential-named query parameters are left out.
    """
    parts = urlsplit(str(getattr(client, "base_url", "")))
    netloc = parts.netloc.rpartition("@")[2]
    query = _without_credentials(parse_qsl(parts.query, keep_blank_values=True))
    base_url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    default_query = getattr(client, "default_query", None)
    if isinstance(default_query, Mapping):
        query.update(_without_credentials(default_query.items()))
    endpoint: dict[str, Any] = {"base_url": base_url, "query": query}
    for name, attribute in (
        ("api_version", "_api_version"),
        ("deployment", "_azure_deployment"),
        ("project", "project_id"),
        ("region", "region"),
        ("region", "aws_region"),
    ):
        value = getattr(client, attribute, None)
        if isinstance(value, str) and name not in endpoint:
            endpoint[name] = value
    return endpoint


def client_headers(client: Any) -> Mapping[str, Any]:
    """The headers an SDK client sends by default (for ``key_headers=``)."""
    headers = getattr(client, "default_headers", None)
    return headers if isinstance(headers, Mapping) else {}
