"""The public surface: SPEC's names exist, __all__ is exact, imports stay light."""

from __future__ import annotations

import subprocess
import sys

import llm_memo


def test_all_is_exactly_the_public_names() -> None:
    """Everything public is in __all__, and everything in __all__ exists."""
    import types

    public = {
        n
        for n in dir(llm_memo)
        if not n.startswith(("_", "@"))  # @: pytest's assertion rewriting
        and not isinstance(getattr(llm_memo, n), types.ModuleType)  # submodules, once imported
    }
    assert set(llm_memo.__all__) - {"__version__"} == public
    for name in llm_memo.__all__:
        assert hasattr(llm_memo, name)


def test_spec_names_are_present() -> None:
    """The names SPEC §2 fixes are importable from the top level."""
    for name in [
        "llm_cached",
        "cache_controls",
        "configure",
        "propagate",
        "CacheMiss",
        "LLMMemoError",
        "register_type",
    ]:
        assert name in llm_memo.__all__


def test_error_tree() -> None:
    """Every error derives from LLMMemoError and from the builtin it resembles."""
    e = llm_memo
    assert issubclass(e.ConfigurationError, ValueError)
    assert issubclass(e.MissingDependencyError, ImportError)
    assert issubclass(e.UnkeyableArgumentError, TypeError)
    assert issubclass(e.CodecError, ValueError)
    assert issubclass(e.BackendUnavailableError, ConnectionError)
    assert issubclass(e.BackendUnavailableError, e.BackendError)
    assert issubclass(e.CacheMiss, LookupError)
    for name in [
        "ConfigurationError",
        "UnkeyableArgumentError",
        "CodecError",
        "BackendError",
        "CacheMiss",
        "MissingDependencyError",
        "BackendUnavailableError",
    ]:
        assert issubclass(getattr(e, name), e.LLMMemoError)


def test_import_is_light_and_does_no_work() -> None:
    """import llm_memo loads no optional driver, pydantic or pytest, and builds no backend."""
    code = (
        "import sys, llm_memo;"
        "heavy = {'pydantic', 'redis', 'fsspec', 's3fs', 'qdrant_client', 'openai', 'pytest',"
        " 'platformdirs', 'numpy'};"
        "print(sorted(heavy & set(sys.modules)));"
        "from llm_memo import config; print(config._settings is None, config._backends)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True {}"]


def test_public_classes_report_the_package_as_their_module() -> None:
    """Every class the package re-exports says ``llm_memo`` is its module (repr, docs and
    pickles show ``llm_memo.Event``) and is still the object its defining module holds."""
    from llm_memo import _decorator, controls, errors, events

    classes = [
        getattr(llm_memo, n) for n in llm_memo.__all__ if isinstance(getattr(llm_memo, n), type)
    ]
    assert len(classes) >= 16
    for cls in classes:
        assert cls.__module__ == "llm_memo", cls
    assert events.Event is llm_memo.Event
    assert errors.CacheMiss is llm_memo.CacheMiss
    assert controls.CacheScope is llm_memo.CacheScope
    assert _decorator.CacheHandle is llm_memo.CacheHandle
    assert repr(llm_memo.Outcome) == "<enum 'Outcome'>"
    assert str(llm_memo.BackendError) == "<class 'llm_memo.BackendError'>"


def test_llm_cached_returns_the_exported_cached_function_type() -> None:
    """``llm_cached`` returns a ``llm_memo.CachedFunction``, bare and called, and the wrapped
    function keeps its own ``__module__``."""

    @llm_memo.llm_cached(backend="memory://")
    def bare(q: str) -> str:
        return q

    @llm_memo.llm_cached
    def called(q: str) -> str:
        return q

    for fn in (bare, called):
        assert isinstance(fn, llm_memo.CachedFunction)
        assert fn.__module__ == __name__
    assert "CachedFunction" in llm_memo.__all__


def test_errors_pickle_by_their_public_name() -> None:
    """Errors survive a pickle round trip (another process, a multiprocessing pool) with their
    message and attributes, and the pickle names them ``llm_memo.X``."""
    import pickle

    e = llm_memo
    samples: list[BaseException] = [
        e.LLMMemoError("base"),
        e.ConfigurationError("bad url"),
        e.MissingDependencyError("pip install 'llm-memo[redis]'"),
        e.UnkeyableArgumentError("messages[0] has no canonical form", parameter="messages[0]"),
        e.CodecError("corrupt"),
        e.BackendError("redis: GET failed"),
        e.BackendUnavailableError("strict"),
        e.CacheMiss("nothing cached", key="llm_memo:v1:ns:fn:abc"),
    ]
    for error in samples:
        data = pickle.dumps(error)
        assert b"llm_memo" in data
        assert type(error).__name__.encode() in data
        assert b"llm_memo.errors" not in data
        back = pickle.loads(data)  # noqa: S301 - our own bytes, just made
        assert type(back) is type(error)
        assert back.args == error.args
        assert vars(back) == vars(error)
    assert pickle.loads(pickle.dumps(e.Outcome.HIT)) is e.Outcome.HIT  # noqa: S301 - ours


def test_backend_classes_report_their_public_module() -> None:
    """A backend class reports the module users import it from, never the private or generated
    file it lives in (``llm_memo.backends.redis``, not ``llm_memo.backends.redis._sync``)."""
    import importlib

    seen: list[str] = []
    for name in (
        "llm_memo.backends",
        "llm_memo.backends.redis",
        "llm_memo.backends.objectstore",
        "llm_memo.backends.tiered",
        "llm_memo.backends.semantic.redis",
        "llm_memo.backends.semantic.qdrant",
    ):
        module = importlib.import_module(name)
        for export in module.__all__:
            obj = getattr(module, export)
            if isinstance(obj, type):
                seen.append(f"{export}: {obj.__module__}")
                assert not any(part.startswith("_") for part in obj.__module__.split(".")), seen
    assert len(seen) >= 16, seen


def test_exported_classes_keep_resolvable_annotations() -> None:
    """Reporting ``llm_memo`` as their module does not break ``typing.get_type_hints`` (which
    looks string annotations up in that module): docs tools and pydantic resolve them."""
    import typing

    failures = {}
    for name in llm_memo.__all__:
        obj = getattr(llm_memo, name)
        if isinstance(obj, type):
            try:
                typing.get_type_hints(obj)
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                failures[name] = repr(exc)
    assert failures == {}
    assert not hasattr(llm_memo, "_hints")
