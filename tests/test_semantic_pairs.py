"""The quality benchmark's labelled pairs: the frozen test split must never change.

``benchmarks/semantic_pairs.json`` holds a ``test`` split frozen at commit 84d756c, before the
guard or the threshold were tuned (issue 13). Rules and thresholds are chosen on the ``tune``
split only; new pairs may be added to ``tune``. This test pins the test pairs, field by field, so
an edit to them (or a pair moved between splits) fails here instead of silently moving the
reported figures.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

PAIRS = Path(__file__).resolve().parents[1] / "benchmarks" / "semantic_pairs.json"

#: sha256 of the test pairs (every field, file order) as frozen at 84d756c.
FROZEN_TEST_DIGEST = "6e9ba921fa337b801c22f07d90c85ae9637c02ad4bcb48d44140f24a7cf31614"


def pairs() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(PAIRS.read_text(encoding="utf-8"))["pairs"]
    return loaded


def digest(selected: list[dict[str, Any]]) -> str:
    canonical = json.dumps(selected, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def text(pair: dict[str, Any]) -> tuple[str, str]:
    """What the benchmark compares: the earlier turns and the question, on each side."""
    a = "\n".join([*pair.get("history", ()), pair["a"]])
    b = "\n".join([*pair.get("history_b", pair.get("history", ())), pair["b"]])
    return a, b


def test_the_test_split_is_frozen() -> None:
    test = [p for p in pairs() if p["split"] == "test"]
    assert len(test) == 208
    assert digest(test) == FROZEN_TEST_DIGEST


def test_every_pair_is_labelled() -> None:
    fields = {"a", "b", "hit", "kind", "split", "history", "history_b"}
    for pair in pairs():
        assert {"a", "b", "hit", "kind", "split"} <= pair.keys() <= fields, pair
        assert pair["split"] in ("test", "tune"), pair
        assert isinstance(pair["hit"], bool), pair


def test_no_tune_pair_repeats_a_test_pair() -> None:
    """A tune pair that copies a test pair would leak the test split into tuning."""
    test = {text(p) for p in pairs() if p["split"] == "test"}
    test |= {(b, a) for a, b in test}
    tune = Counter(text(p) for p in pairs() if p["split"] == "tune")
    overlap = sorted(test & tune.keys())  # only these are printed: never the whole test split
    assert not overlap, overlap
    repeated = sorted(pair for pair, n in tune.items() if n > 1)
    assert not repeated, repeated
