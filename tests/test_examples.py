"""The README's first command: the quickstart shows a miss, then a hit, with no server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_prints_a_miss_then_a_hit(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("LLM_MEMO_BACKEND", None)
    for _ in range(2):  # the second run starts from the first run's cache and still works
        out = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "quickstart.py")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        lines = out.splitlines()
        assert lines[1].startswith("call 1: miss")
        assert lines[2].startswith("call 2: hit")
        assert "hits=1 misses=1 tokens_saved=53" in out
    assert (tmp_path / "llm_memo" / "cache").is_dir()


def test_langchain_app_prints_that_the_second_call_was_a_hit() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LLM_MEMO_BACKEND", None)
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "langchain_app.py")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "call 1: miss" in out
    assert "call 2: hit" in out
    assert "the second call was a hit; model calls: 1" in out
    assert "hits=1 misses=1 tokens_saved=39" in out


def _run_twice(tmp_path: Path, script: str) -> list[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("LLM_MEMO_BACKEND", None)
    return [
        subprocess.run(
            [sys.executable, "-W", "error", str(ROOT / "examples" / script)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        for _ in range(2)
    ]


def test_pydantic_ai_app_second_run_makes_no_model_request(tmp_path: Path) -> None:
    first, second = _run_twice(tmp_path, "pydantic_ai_app.py")
    assert "run 2: '19 + 23 = 42'  (model requests so far: 2)" in first
    assert "(model requests so far: 0)" in second.splitlines()[1]
    assert "hits=4 misses=0" in second


def test_dspy_app_second_run_sends_no_request(tmp_path: Path) -> None:
    first, second = _run_twice(tmp_path, "dspy_app.py")
    assert "call 2: 'Paris'  (requests sent so far: 1)" in first
    assert "call 2: 'Paris'  (requests sent so far: 0)" in second
    assert "hits=3 misses=0" in second
