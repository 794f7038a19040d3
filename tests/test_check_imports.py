"""scripts/check-imports: nothing under llm_memo/backends/ imports the layers above it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check-imports"


def _run(root: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT)] + (["--root", str(root)] if root is not None else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A throwaway repository holding ``llm_memo/backends/...`` with the given sources."""
    for name in ("llm_memo/__init__.py", "llm_memo/backends/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    for name, source in files.items():
        path = tmp_path / "llm_memo" / "backends" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return tmp_path


class TestCheckImports:
    def test_the_package_has_no_upward_imports(self) -> None:
        """The real tree: no backend imports the decorator, drivers, config, controls, CLI or
        recording layers, or reads settings(); each offence is named with file and line."""
        result = _run()
        assert result.returncode == 0, result.stdout + result.stderr
        assert "no upward imports" in result.stdout

    @pytest.mark.parametrize(
        ("name", "source", "where"),
        [
            (
                "disk.py",
                "from ..config import settings\n",
                "1: imports settings from llm_memo.config",
            ),
            ("disk.py", "from .. import _memo\n", "1: imports llm_memo._memo"),
            ("disk.py", "from llm_memo import controls as c\n", "1: imports llm_memo.controls"),
            ("disk.py", "import llm_memo._drivers\n", "1: imports llm_memo._drivers"),
            ("disk.py", "from llm_memo._decorator import CachedFunction\n", "1: imports Cached"),
            ("disk.py", "import llm_memo.cli.commands\n", "1: imports llm_memo.cli.commands"),
            ("disk.py", "from ..recording import Store\n", "1: imports Store from llm_memo.rec"),
            ("redis/_async.py", "from ...config import settings\n", "1: imports settings from"),
            ("semantic/__init__.py", "from ... import config\n", "1: imports llm_memo.config"),
            ("semantic/__init__.py", "from ..._memo import Memo\n", "1: imports Memo from"),
            (
                "tiered.py",
                "import importlib\n\nimportlib.import_module('llm_memo._memo')\n",
                "3: imports llm_memo._memo",
            ),
            (
                "tiered.py",
                "import typing\nif typing.TYPE_CHECKING:\n    from ..controls import X\n",
                "3: imports X from llm_memo.controls",
            ),
            (
                "memory.py",
                "def f(config):\n    return config.settings().grace\n",
                "2: calls config",
            ),
            ("memory.py", "def f():\n    return settings()\n", "2: calls settings()"),
        ],
    )
    def test_each_kind_of_upward_import_fails_naming_file_and_line(
        self, tmp_path: Path, name: str, source: str, where: str
    ) -> None:
        """Absolute, relative, ``from llm_memo import``, submodule, dynamic and type-only
        imports of an upper layer, and any settings() call, exit 1 naming file and line."""
        result = _run(_tree(tmp_path, {name: source}))
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"llm_memo/backends/{name}:{where}" in result.stdout, result.stdout
        assert "upward" in result.stderr

    def test_what_a_backend_may_import_passes(self, tmp_path: Path) -> None:
        """Shared helpers, errors, keys, sibling backends and look-alike names are fine."""
        result = _run(
            _tree(
                tmp_path,
                {
                    "disk.py": (
                        "from .. import _fork, errors\n"
                        "from ..keys import KEY_ROOT, parse_key\n"
                        "from .._text import parse_bool\n"
                        "from . import memory\n"
                        "import llm_memo.configuration_helpers\n"
                        "from llm_memo import controls_like\n"
                        "settings = {'grace': 1}\n"
                    ),
                    "semantic/__init__.py": "from ..memory import MemoryBackend\n",
                    "redis/_async.py": "from ...errors import BackendError\n",
                },
            )
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "check-imports: no upward imports from llm_memo.backends"
