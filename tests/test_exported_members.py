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
