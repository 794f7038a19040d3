"""Importing llm_memo imports no SDK and no framework; each integration imports only its own.

Checked by the modules a fresh interpreter has imported (``sys.modules``), never by timing.
Every module under ``llm_memo/integrations/`` is found with pkgutil, so an integration added
later is covered as soon as it names its framework in :data:`FRAMEWORKS`.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import llm_memo.integrations

ROOT = Path(__file__).resolve().parents[2]

#: The SDK and framework packages llm_memo must never import on its own behalf.
WATCHED = (
    "openai",
    "anthropic",
    "litellm",
    "google.genai",
    "langchain_core",
    "pydantic_ai",
    "dspy",
)

#: Integration module -> the top-level package of the framework it integrates.
FRAMEWORKS = {
    "langchain": "langchain_core",
    "pydantic_ai": "pydantic_ai",
    "dspy": "dspy",
}


def _imported_after(*statements: str) -> set[str]:
    """The watched packages imported by running ``statements`` in a fresh interpreter."""
    code = "\n".join(
        [
            "import json, sys",
            *statements,
            f"watched = {WATCHED!r}",
            "print(json.dumps(sorted(w for w in watched"
            " if any(m == w or m.startswith(w + '.') for m in sys.modules))))",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(llm_memo.integrations.__path__))


def _integrations() -> list[str]:
    """The integration modules; a private module (``_cache``) is a helper they share."""
    return [name for name in _modules() if not name.startswith("_")]


def _helpers() -> list[str]:
    return [name for name in _modules() if name.startswith("_")]


def test_import_llm_memo_imports_no_sdk_or_framework() -> None:
    """A bare ``import llm_memo`` (and of the integrations package) pulls none of them in."""
    assert _imported_after("import llm_memo", "import llm_memo.integrations") == set()


def test_every_integration_module_names_its_framework() -> None:
    """A new module under llm_memo/integrations/ must be added to FRAMEWORKS here."""
    assert _integrations(), "no integration module found"
    unknown = set(_integrations()) - set(FRAMEWORKS)
    assert not unknown, f"add {sorted(unknown)} to FRAMEWORKS in {__file__}"


@pytest.mark.parametrize("module", _helpers())
def test_a_shared_helper_imports_no_framework(module: str) -> None:
    """A private module the integrations share (llm_memo.integrations._cache) imports none of
    the frameworks: each integration brings its own."""
    assert _imported_after("import llm_memo", f"import llm_memo.integrations.{module}") == set()


@pytest.mark.parametrize("module", _integrations())
def test_an_integration_imports_only_its_own_framework(module: str) -> None:
    """Importing llm_memo.integrations.<x> adds its framework, and only what that framework
    imports itself (DSPy brings litellm, for instance)."""
    framework = FRAMEWORKS.get(module)
    if framework is None:
        pytest.fail(f"add {module!r} to FRAMEWORKS in {__file__}")
    own = _imported_after(f"import {framework}")
    got = _imported_after("import llm_memo", f"import llm_memo.integrations.{module}")
    assert framework in got
    assert got <= own | {framework}, f"{module} also imports {sorted(got - own)}"
