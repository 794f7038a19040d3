"""Fuzzing keys with arbitrary nested arguments (issue 9, "Also build").

Every value from ``tests.strategies.arguments`` (cycles, sets, deep nesting, enums, pydantic
models, dataclasses, tuples and lists, mixed numbers) is either keyed stably — the same key
every time, and the same key in another process with another ``PYTHONHASHSEED`` — or refused
with ``UnkeyableArgumentError``. Never another exception, never a hang.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_memo import UnkeyableArgumentError
from llm_memo.keys import KeyBuilder, canonical_bytes

from .strategies import arguments, picklable_arguments

ROOT = Path(__file__).resolve().parents[1]


def target(value: Any, *rest: Any, **params: Any) -> None: ...


KB = KeyBuilder(target, "tests.fuzz")


def outcome(value: Any) -> list[str | None]:
    """The keys of ``value`` as an argument, inside *args and inside **params (None where it
    is refused with UnkeyableArgumentError; any other exception fails the test)."""
    out: list[str | None] = []
    for args, kwargs in (((value,), {}), ((None, value), {}), ((None,), {"p": value})):
        try:
            out.append(KB.key(args, kwargs, "d"))
        except UnkeyableArgumentError:
            out.append(None)
    return out


_FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_FUZZ
@given(arguments)
def test_keyed_stably_or_refused(value: Any) -> None:
    """Any argument keys the same twice, or is refused with UnkeyableArgumentError."""
    first = outcome(value)
    assert outcome(value) == first
    refused = [k is None for k in first]
    assert refused in ([True] * 3, [False] * 3), first  # one verdict wherever it appears
    try:
        data = canonical_bytes(value)
    except UnkeyableArgumentError:
        assert refused[0], "canonical_bytes refused a value the key builder keyed"
    else:
        assert not refused[0]
        assert canonical_bytes(value) == data


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(picklable_arguments, min_size=1, max_size=8))
def test_same_keys_in_another_process(values: list[Any]) -> None:
    """A sample of arguments, pickled into a process with another PYTHONHASHSEED (so sets
    iterate in another order), keys exactly as here."""
    here = [outcome(v) for v in values]
    code = (
        "import base64, json, pickle, sys\n"
        "from tests.test_key_fuzz import outcome\n"
        "values = pickle.loads(base64.b64decode(sys.stdin.read()))\n"
        "print(json.dumps([outcome(v) for v in values]))\n"
    )
    blob = base64.b64encode(pickle.dumps(values)).decode()
    env = {**os.environ, "PYTHONHASHSEED": str(random.randint(1, 2**31))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=blob,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == here
