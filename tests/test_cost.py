"""Money saved: the price table (llm_memo.prices), tokens counted by kind (llm_memo.sdks), the split
stored in entries (llm_memo.entry), and cost in fn.cache.stats(), each scope and each event, with
the real openai, anthropic and litellm packages against a loopback stub."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import

import anthropic
import openai

from llm_memo import cache_controls, configure, llm_cached
from llm_memo.backends.memory import MemoryBackend
from llm_memo.entry import FLAG_USAGE, FORMAT_VERSION, Entry, key_digest
from llm_memo.errors import CodecError, ConfigurationError
from llm_memo.events import Outcome, Stats
from llm_memo.prices import AS_OF, Price, PriceTable, shipped_prices
from llm_memo.sdks import Usage, response_model, usage_split
from tests.stubs import StubHandler, serve

ROOT = Path(__file__).resolve().parent.parent
litellm_warnings = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
MINI = {"input": 0.15, "output": 0.6, "cached_input": 0.075}


def usd(input_: int, output: int, cached: int, price: dict[str, float]) -> float:
    return (
        (input_ - cached) * price["input"]
        + cached * price["cached_input"]
        + output * price["output"]
    ) / 1e6


# -- the loopback stub --------------------------------------------------------------------------

CHAT: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_730_000_000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 512,
        "completion_tokens": 180,
        "total_tokens": 692,
        "prompt_tokens_details": {"cached_tokens": 112},
    },
}
RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1_730_000_000,
    "model": "gpt-4.1-2025-04-14",
    "status": "completed",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
        }
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 300,
        "output_tokens": 50,
        "total_tokens": 350,
        "input_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    },
}
MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-sonnet-20241022",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 40,
        "output_tokens": 60,
        "cache_read_input_tokens": 900,
        "cache_creation_input_tokens": 0,
    },
}
BODIES = {"/v1/chat/completions": CHAT, "/v1/responses": RESPONSE, "/v1/messages": MESSAGE}


class _Stub(StubHandler):
    """OpenAI's chat completions and responses and Anthropic's messages, logging each path."""

    log: list[str]

    def do_POST(self) -> None:
        self.read_body()
        self.log.append(self.path)
        self.reply_json(BODIES[self.path])


@pytest.fixture
def stub() -> Iterator[tuple[str, list[str]]]:
    """The stub's base URL (without /v1) and its request log."""
    log: list[str] = []
    with serve(_Stub, log=log) as url:
        yield url, log


@pytest.fixture
def no_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a program that never imported litellm: only the shipped table prices models."""
    monkeypatch.delitem(sys.modules, "litellm", raising=False)


# -- the price table ----------------------------------------------------------------------------


class TestPriceTable:
    def test_the_shipped_table_is_dated_and_prices_common_models_by_kind(self) -> None:
        """prices.json names its date and has input, output and cached-input list prices."""
        assert len(AS_OF) == 10
        assert AS_OF[4] == AS_OF[7] == "-"
        table = shipped_prices()
        for model in ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "gemini-2.0-flash"):
            price = table[model]
            assert price.input > 0
            assert price.output >= price.input
        assert table["gpt-4o-mini"] == Price(0.15, 0.6, 0.075)

    def test_models_match_dated_names_and_provider_prefixes(self, no_litellm: None) -> None:
        """A dated name matches its longest row; a provider prefix is dropped."""
        table = PriceTable()
        assert table.price("f", "gpt-4o-mini-2024-07-18") == Price(0.15, 0.6, 0.075)
        assert table.price("f", "gpt-4o-2024-08-06") == Price(2.5, 10.0, 1.25)
        assert table.price("f", "openai/gpt-4o-mini") == Price(0.15, 0.6, 0.075)
        assert table.price("f", "claude-3-5-sonnet-20241022") == Price(3.0, 15.0, 0.3)
        assert table.price("f", "models/gemini-2.0-flash-lite-001") == Price(0.075, 0.3)
        assert table.price("f", "my-finetune") is None
        assert table.price("f") is None  # no model, no function price

    def test_every_form_of_a_price_is_accepted_and_bad_ones_refused(self) -> None:
        """A number (any kind of token), a mapping by kind, or a Price; never negative."""
        assert Price.of("m", 2) == Price(2.0, 2.0, None)
        assert Price.of("m", {"input": 1, "output": 4}) == Price(1.0, 4.0, None)
        assert Price.of("m", Price(1, 2, 0.5)) == Price(1.0, 2.0, 0.5)
        for bad in (-1, True, "1", {"output": 1}, {"input": 1, "outptu": 2}, {"input": math.nan}):
            with pytest.raises(ConfigurationError, match="price of 'm'"):
                Price.of("m", bad)
        with pytest.raises(ConfigurationError):
            PriceTable(models={"f": ""})

    def test_order_function_then_given_model_then_litellm_then_shipped(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A function price wins; a model is priced by a given price, then an imported
        litellm's cost map, then the shipped table."""
        fake = types.SimpleNamespace(
            model_cost={
                "gpt-4o": {
                    "input_cost_per_token": 1e-6,
                    "output_cost_per_token": 2e-6,
                    "cache_read_input_token_cost": 5e-7,
                }
            }
        )
        monkeypatch.setitem(sys.modules, "litellm", fake)
        table = PriceTable({"app.*": 9, "gpt-4o-mini": {"input": 7, "output": 8}}, {"app2.f": "o3"})
        assert table.price("app.ask", "gpt-4o") == Price(9.0, 9.0)
        assert table.price("x", "gpt-4o-mini-2024-07-18") == Price(7.0, 8.0)
        assert table.price("x", "gpt-4o") == Price(1.0, 2.0, 0.5)
        assert table.price("x", "claude-3-opus") == Price(15.0, 75.0, 1.5)
        assert table.price("app2.f") == Price(2.0, 8.0, 0.5)  # models= for a model-less answer
        assert PriceTable(shipped=False).price("x", "claude-3-opus") is None

    def test_litellm_is_never_imported(self, tmp_path: Path) -> None:
        """Pricing in a program that has not imported litellm does not import it."""
        code = (
            "import sys; from llm_memo.prices import PriceTable; "
            "PriceTable().price('f', 'gpt-4o'); print('litellm' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
        )
        assert out.stdout.strip() == "False"

    def test_cost_by_kind_and_the_total_only_lower_bound(self) -> None:
        """Cached input at its own price; a total with no split counts at the input price."""
        price = Price(0.15, 0.6, 0.075)
        assert price.cost(Usage(1000, 100, 400)) == pytest.approx(usd(1000, 100, 400, MINI))
        assert price.cost(None, 1100) == pytest.approx(1100 * 0.15 / 1e6)
        assert Price(1.0, 2.0).cost(Usage(10, 10, 5)) == pytest.approx(30 / 1e6)

    def test_prices_json_ships_in_the_wheel(self) -> None:
        """The wheel packs the llm_memo directory whole (hatch's packages=), and nothing
        excludes or ignores prices.json."""
        tomllib = pytest.importorskip("tomllib")  # Python 3.11+
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())
        wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
        assert wheel["packages"] == ["llm_memo"]
        assert not {"exclude", "only-include", "artifacts"} & set(wheel)
        assert (ROOT / "llm_memo" / "prices.json").is_file()
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", "llm_memo/prices.json"], cwd=ROOT, check=False
        )
        assert ignored.returncode == 1  # not ignored, so hatch packs it


# -- usage by kind ------------------------------------------------------------------------------


class TestUsageSplit:
    def test_each_sdk_shape(self) -> None:
        """OpenAI chat and Responses, Anthropic (cache reads and writes are input); a total
        alone has no split."""
        chat = openai.types.chat.ChatCompletion.model_validate(CHAT)
        assert usage_split(chat) == Usage(512, 180, 112)
        assert response_model(chat) == "gpt-4o-mini-2024-07-18"
        assert usage_split(openai.types.responses.Response.model_validate(RESPONSE)) == Usage(
            300, 50, 200
        )
        message = anthropic.types.Message.model_validate(
            {**MESSAGE, "usage": {**MESSAGE["usage"], "cache_creation_input_tokens": 7}}
        )
        assert usage_split(message) == Usage(947, 60, 900)
        assert usage_split({"usage": {"total_tokens": 9}}) is None
        assert usage_split("text") is None
        assert response_model("text") == ""

    def test_an_anthropic_stream_takes_input_from_its_start(self) -> None:
        """message_start reports input and cache reads, message_delta only output."""
        start = {"type": "message_start", "message": {**MESSAGE, "usage": MESSAGE["usage"]}}
        delta = {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 75}}
        assert usage_split([start, delta]) == Usage(940, 75, 900)
        assert response_model([start, delta]) == "claude-3-5-sonnet-20241022"


# -- entries carry the split --------------------------------------------------------------------


def old_layout(entry: Entry) -> bytes:
    """An entry's bytes as 0.2 wrote them (format 2, no usage block)."""
    tag = entry.type_tag.encode()
    head = struct.pack(
        "<3sBddfIB8sH",
        b"LMM",
        FORMAT_VERSION,
        entry.created_at,
        math.nan,
        0.0,
        entry.tokens,
        0,
        entry.key_digest,
        len(tag),
    )
    return head + tag + b"\x00" + entry.value


class TestEntryUsage:
    def test_the_split_and_model_round_trip(self) -> None:
        """input/output/cached tokens and the model survive to_bytes/from_bytes."""
        entry = Entry(
            b"v", "json", 1.0, None, 0.0, 692, 0, b"s" * 32, key_digest("k"), 512, 180, 112, "m-1"
        )
        data = entry.to_bytes()
        assert data[31] & FLAG_USAGE  # the flags byte of the header
        back = Entry.from_bytes(data)
        assert back == entry
        assert back.flags == 0
        assert back.size == len(data) - 1  # the size counts everything but the sig_len byte

    def test_an_entry_written_before_the_split_still_decodes(self) -> None:
        """0.2's bytes decode (no split, no model), and an entry without a split is written
        byte for byte as before."""
        entry = Entry(b"value", "json", 5.0, tokens=42, key_digest=key_digest("k"))
        assert entry.to_bytes() == old_layout(entry)
        back = Entry.from_bytes(old_layout(entry))
        assert (back.tokens, back.input_tokens, back.output_tokens, back.model) == (42, 0, 0, "")
        assert back.value == b"value"

    def test_a_truncated_or_bad_usage_block_is_refused(self) -> None:
        """A cut-off block or a model that is not text is a CodecError (a miss)."""
        data = Entry(
            b"", "json", 1.0, tokens=3, input_tokens=2, output_tokens=1, model="m"
        ).to_bytes()
        with pytest.raises(CodecError, match="truncated"):
            Entry.from_bytes(data[:-2])
        with pytest.raises(CodecError, match="not text"):
            Entry.from_bytes(data[:-1] + b"\xff")
        with pytest.raises(ValueError, match="255"):
            Entry(b"", "json", 1.0, model="m" * 256).to_bytes()

    def test_the_signature_covers_the_split(self) -> None:
        """With signing on, an entry whose stored model was edited is a miss."""
        backend = MemoryBackend()
        configure(signing_keys=["k" * 16], prices={"f": 1})

        @llm_cached(backend=backend, name="f")
        def ask(q: str) -> dict[str, Any]:
            return CHAT

        ask("q")
        (key,) = backend.keys()
        stored = backend.get(key)
        assert isinstance(stored, Entry)
        assert stored.model == "gpt-4o-mini-2024-07-18"
        assert stored.input_tokens == 512
        ask("q")
        assert ask.cache.stats().hits == 1
        forged = Entry.from_bytes(
            stored.to_bytes().replace(b"gpt-4o-mini-2024", b"gpt-4o-mini-2025")
        )
        backend.set(key, forged, None)
        ask("q")
        assert ask.cache.stats().misses == 2


# -- cost where people look, through the real SDKs ----------------------------------------------


class TestCostSaved:
    def test_openai_chat_hits_report_cost_in_stats_scope_and_event(
        self, stub: tuple[str, list[str]], no_litellm: None
    ) -> None:
        """A hit on a ChatCompletion saves its prompt (cached part cheaper) and completion
        tokens at gpt-4o-mini's list price; stats, the scope and the event say so."""
        base, log = stub
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-test")
        create = llm_cached(backend=MemoryBackend())(client.chat.completions.create)
        request: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
        }
        create(**request)
        with cache_controls() as scope:
            create(**request)
            create(**request)
        assert log == ["/v1/chat/completions"]
        one = usd(512, 180, 112, MINI)
        stats = create.cache.stats()
        assert (stats.hits, stats.misses, stats.tokens_saved) == (2, 1, 2 * 692)
        assert (stats.input_tokens_saved, stats.output_tokens_saved) == (1024, 360)
        assert stats.cached_input_tokens_saved == 224
        assert stats.cost_saved == pytest.approx(2 * one)
        assert scope.cost_saved == pytest.approx(2 * one)
        assert scope.tokens_saved == 1384
        assert scope.stats().hits == 2
        event = scope.events[-1]
        assert event.outcome is Outcome.HIT
        assert event.model == "gpt-4o-mini-2024-07-18"
        assert (event.input_tokens, event.output_tokens, event.cached_input_tokens) == (
            512,
            180,
            112,
        )
        assert event.cost_saved == pytest.approx(one)

    def test_openai_responses_and_anthropic_messages(
        self, stub: tuple[str, list[str]], no_litellm: None
    ) -> None:
        """The Responses API and Anthropic's cache reads are priced by kind too."""
        base, log = stub
        responses = llm_cached(backend=MemoryBackend())(
            openai.OpenAI(base_url=f"{base}/v1", api_key="sk-test").responses.create
        )
        messages = llm_cached(backend=MemoryBackend())(
            anthropic.Anthropic(base_url=base, api_key="sk-test").messages.create
        )
        for _ in range(2):
            responses(model="gpt-4.1", input="hi")
            messages(
                model="claude-3-5-sonnet-latest",
                max_tokens=10,
                messages=[{"role": "user", "content": "hi"}],
            )
        assert log == ["/v1/responses", "/v1/messages"]
        gpt41 = {"input": 2.0, "output": 8.0, "cached_input": 0.5}
        sonnet = {"input": 3.0, "output": 15.0, "cached_input": 0.3}
        assert responses.cache.stats().cost_saved == pytest.approx(usd(300, 50, 200, gpt41))
        stats = messages.cache.stats()
        assert (stats.input_tokens_saved, stats.cached_input_tokens_saved) == (940, 900)
        assert stats.cost_saved == pytest.approx(usd(940, 60, 900, sonnet))

    @litellm_warnings
    def test_litellm_is_priced_from_its_own_cost_map(self, stub: tuple[str, list[str]]) -> None:
        """With litellm imported, its cost map prices the model its response names."""
        import litellm

        base, log = stub
        completion = llm_cached(backend=MemoryBackend())(litellm.completion)
        request: dict[str, Any] = {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "api_base": f"{base}/v1",
            "api_key": "sk-test",
        }
        first = completion(**request)
        second = completion(**request)
        assert log == ["/v1/chat/completions"]
        assert second.choices[0].message.content == "Hello"
        row = litellm.model_cost[first.model]
        per_million = {
            "input": row["input_cost_per_token"] * 1e6,
            "output": row["output_cost_per_token"] * 1e6,
            "cached_input": row.get("cache_read_input_token_cost", row["input_cost_per_token"])
            * 1e6,
        }
        stats = completion.cache.stats()
        assert (stats.input_tokens_saved, stats.output_tokens_saved) == (512, 180)
        assert stats.cost_saved == pytest.approx(usd(512, 180, 112, per_million))

    def test_configured_prices_override_and_unknown_models_cost_nothing(self) -> None:
        """configure(prices=) by function glob wins; an answer with no known price reports
        cost_saved None on its event and adds nothing to stats."""

        @llm_cached(backend=MemoryBackend(), name="app.priced")
        def priced(q: str) -> dict[str, Any]:
            return CHAT

        @llm_cached(backend=MemoryBackend(), name="other.unpriced")
        def unpriced(q: str) -> dict[str, Any]:
            return {**CHAT, "model": "my-finetune"}

        configure(prices={"app.*": {"input": 1, "output": 2}})
        with cache_controls() as scope:
            for fn in (priced, unpriced, priced, unpriced):
                fn("q")
        assert priced.cache.stats().cost_saved == pytest.approx((512 + 2 * 180) / 1e6)
        assert unpriced.cache.stats().cost_saved == 0.0
        assert unpriced.cache.stats().tokens_saved == 692
        hits = [e for e in scope.events if e.outcome is Outcome.HIT]
        assert [e.cost_saved is None for e in hits] == [False, True]
        misses = [e for e in scope.events if e.outcome is Outcome.MISS]
        assert all(e.cost_saved is None for e in misses)
        with pytest.raises(ConfigurationError):
            configure(prices={"x": -1})

    def test_a_hit_on_an_entry_from_before_the_split_is_a_lower_bound(self) -> None:
        """An old entry (total tokens only, no model) is priced at the function's input price."""
        backend = MemoryBackend()
        configure(prices={"app.old": {"input": 1, "output": 10}})

        @llm_cached(backend=backend, name="app.old")
        def ask(q: str) -> dict[str, Any]:
            return CHAT

        ask("q")
        (key,) = backend.keys()
        new = backend.get(key)
        assert isinstance(new, Entry)
        backend.set(key, Entry.from_bytes(old_layout(new)), None)
        ask("q")
        stats = ask.cache.stats()
        assert (stats.hits, stats.tokens_saved, stats.input_tokens_saved) == (1, 692, 0)
        assert stats.cost_saved == pytest.approx(692 / 1e6)


class TestStatsRecord:
    def test_the_positional_form_keeps_working(self) -> None:
        """Stats.record(outcome, tokens_saved=...) as the embedding helper calls it, plus the
        new keywords."""
        stats = Stats()
        stats.record(Outcome.HIT, tokens_saved=5)
        stats.record(Outcome.HIT, 10, input_tokens=6, output_tokens=4, cost_saved=0.5)
        stats.record(Outcome.MISS)
        snap = stats.snapshot()
        assert (snap.hits, snap.misses, snap.tokens_saved, snap.input_tokens_saved) == (2, 1, 15, 6)
        assert snap.cost_saved == 0.5
        stats.reset()
        assert stats.snapshot().cost_saved == 0.0
