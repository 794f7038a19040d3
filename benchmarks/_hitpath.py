"""The hit-path measurements, run in a child process against one checkout of llm_memo.

``bench_core.hit_path()`` runs this file once per tree (the baseline commit and the current
tree), alternating, with ``PYTHONPATH`` naming the tree, and prints the results side by side.
Run alone it measures whichever ``llm_memo`` is first on the path:

    PYTHONPATH=/path/to/tree python benchmarks/_hitpath.py      # prints one JSON object

The workload is the BENCHMARKS one (``tests/samples.py``): the typical chat request
(~2.4 KB) and a ~3 KB completion, as a plain dict and as an openai ``ChatCompletion``. Every
hit is timed in alternating batches against its floor (``_timing.paired``), so each ratio
is measured under the same machine noise.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parents[1]
sys.path.append(str(_HERE))  # after PYTHONPATH: the tree under test wins for llm_memo

import diskcache  # noqa: E402
import orjson  # noqa: E402
import xxhash  # noqa: E402
from openai.types.chat import ChatCompletion  # noqa: E402

import llm_memo  # noqa: E402
from benchmarks._timing import measure, paired  # noqa: E402
from llm_memo import llm_cached  # noqa: E402
from llm_memo.backends.disk import DiskBackend  # noqa: E402
from llm_memo.backends.memory import MemoryBackend  # noqa: E402
from tests.samples import chat_completion, chat_request, completion_dict  # noqa: E402


def run() -> dict[str, Any]:
    request = chat_request()
    completion = chat_completion()
    as_dict = completion_dict()
    typed_payload = completion.model_dump_json(exclude_unset=True).encode()
    dict_payload = orjson.dumps(as_dict)
    out: dict[str, Any] = {"llm_memo": str(Path(llm_memo.__file__).parent.parent)}

    def key_floor() -> str:
        return xxhash.xxh3_128_hexdigest(orjson.dumps(request, option=orjson.OPT_SORT_KEYS))

    def dict_floor() -> Any:
        key_floor()
        return orjson.loads(dict_payload)

    def typed_floor() -> Any:
        key_floor()
        return ChatCompletion.model_validate_json(typed_payload)

    @llm_cached(backend=MemoryBackend(), ttl=3600)
    def ask_dict(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> dict[str, Any]:
        return as_dict

    @llm_cached(backend=MemoryBackend(), ttl=3600)
    def ask_typed(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> ChatCompletion:
        return completion

    tmp = tempfile.mkdtemp()

    @llm_cached(backend=DiskBackend(tmp + "/memo"), ttl=3600)
    def ask_disk(
        model: str, messages: list[dict[str, str]], temperature: float = 0.0, **params: Any
    ) -> ChatCompletion:
        return completion

    raw_disk = diskcache.Cache(tmp + "/raw")
    raw_disk.set("k", typed_payload)

    def disk_floor() -> Any:
        raw_disk.get("k")
        return ChatCompletion.model_validate_json(typed_payload)

    for fn in (ask_dict, ask_typed, ask_disk):
        fn(**request)
    assert ask_dict(**request) == as_dict
    assert type(ask_typed(**request)) is ChatCompletion

    t = measure("key floor", key_floor, number=20000)
    out["key floor"] = {"us": t.median_us}
    t = measure("key floor + orjson.loads", dict_floor, number=20000)
    out["key floor + orjson.loads"] = {"us": t.median_us}

    floor, hit, ratio = paired("f", dict_floor, "h", lambda: ask_dict(**request), number=8000)
    out["memory hit, dict"] = {"us": hit.median_us, "floor_us": floor.median_us, "ratio": ratio}
    out["fixed overhead, dict hit"] = {"us": hit.median_us - floor.median_us}
    floor, hit, ratio = paired("f", typed_floor, "h", lambda: ask_typed(**request), number=8000)
    out["memory hit, typed"] = {"us": hit.median_us, "floor_us": floor.median_us, "ratio": ratio}
    floor, hit, ratio = paired("f", disk_floor, "h", lambda: ask_disk(**request), number=4000)
    out["disk hit, typed"] = {"us": hit.median_us, "floor_us": floor.median_us, "ratio": ratio}

    # Peers, without canonical keys: they need hashable arguments, so a (model, prompt) pair.
    prompt = request["messages"][1]["content"]
    try:
        import cachetools
    except ImportError:
        out["cachetools hit"] = None
    else:

        @cachetools.cached(cachetools.LRUCache(maxsize=1024))
        def peer(model: str, prompt: str) -> dict[str, Any]:
            return as_dict

        peer("gpt-4o-mini", prompt)
        t = measure("cachetools", lambda: peer("gpt-4o-mini", prompt), number=20000)
        out["cachetools hit"] = {"us": t.median_us}

    @functools.lru_cache(maxsize=1024)
    def lru(model: str, prompt: str) -> dict[str, Any]:
        return as_dict

    lru("gpt-4o-mini", prompt)
    t = measure("lru_cache", lambda: lru("gpt-4o-mini", prompt), number=20000)
    out["functools.lru_cache hit"] = {"us": t.median_us}
    return out


if __name__ == "__main__":
    print(json.dumps(run()))
