"""Record/replay: the recordings store, use_recordings(), and the pytest plugin through pytester."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llm_memo import CacheMiss, cache_controls, configure, llm_cached
from llm_memo.backends import MISSING, Listing, from_url
from llm_memo.backends.memory import MemoryBackend
from llm_memo.backends.recording import RecordingBackend as StoreBackend
from llm_memo.backends.recording import layout
from llm_memo.keys import IGNORE_GROUPS, function_prefix, namespace_prefix, parse_key
from llm_memo.recording import (
    SCRUBBED,
    Mode,
    RecordingBackend,
    default_mode,
    read_recording,
    redact_keys,
    scrub_request,
    use_recordings,
)
from llm_memo.testing import FakeClock

from .backends.conformance import make_entry, make_key

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "recorded_tests"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.json"))}


class TestRecordingBackend:
    """The store: one readable, stable JSON file per key."""

    def test_layout_and_document(self, tmp_path: Path) -> None:
        """A key lands at <ns>/<function>/<hash>.json with sorted fields and no timestamp."""
        backend = RecordingBackend(tmp_path)
        key = make_key("ns", "app.ask")
        backend.set(key, make_entry(b'{"b":1,"a":[1,2]}', tokens=9, expires_at=5.0), ttl=1)
        path = tmp_path / "ns" / "app.ask" / (key.rsplit(":", 1)[1] + ".json")
        assert backend.path_for(key) == path
        doc = json.loads(path.read_text())
        assert list(doc) == sorted(doc)
        assert doc == {
            "format": 1,
            "function": "app.ask",
            "key": key,
            "namespace": "ns",
            "request": None,
            "tokens": 9,
            "type": "json",
            "value": {"b": 1, "a": [1, 2]},
        }
        assert list(doc["value"]) == ["b", "a"]  # the value keeps its order for a faithful replay
        assert path.read_text().startswith('{\n  "format": 1,')

    def test_get_serves_a_fresh_unexpiring_entry(self, tmp_path: Path) -> None:
        """Recordings do not age: created now by the cache clock, never expiring."""
        clock = FakeClock(1000.0)
        configure(clock=clock)
        backend = RecordingBackend(tmp_path)
        key = make_key()
        backend.set(key, make_entry(b'"v"', created_at=1.0, expires_at=2.0), ttl=1)
        clock.advance(10**6)
        entry = backend.get(key)
        assert entry is not MISSING
        assert (entry.value, entry.created_at, entry.expires_at) == (b'"v"', clock(), None)

    def test_same_content_same_bytes_and_untouched_file(self, tmp_path: Path) -> None:
        """Writing an unchanged recording leaves the file (bytes and mtime) alone."""
        backend = RecordingBackend(tmp_path)
        key = make_key()
        backend.set(key, make_entry(created_at=1.0), None)
        path = backend.path_for(key)
        first = path.read_bytes()
        os.utime(path, (1, 1))
        backend.set(key, make_entry(created_at=2.0), None)  # another time, same content
        assert path.read_bytes() == first
        assert path.stat().st_mtime == 1

    def test_keys_delete_clear_and_listing_protocol(self, tmp_path: Path) -> None:
        """keys(prefix) comes from the paths; delete and clear remove files and empty folders."""
        backend = RecordingBackend(tmp_path)
        assert isinstance(backend, Listing)
        assert list(backend.keys()) == []
        a, b, c = make_key("n1", "f"), make_key("n1", "g"), make_key("n2", "f")
        for k in (a, b, c):
            backend.set(k, make_entry(), None)
        assert list(backend.keys()) == sorted([a, b, c])
        assert list(backend.keys(function_prefix("n1", "f"))) == [a]
        assert backend.delete(a)
        assert not backend.delete(a)
        assert not (tmp_path / "n1" / "f").exists()
        assert backend.clear(namespace_prefix("n1")) == 1
        assert list(backend.keys()) == [c]

    def test_compressed_and_signed_entries_are_stored_readable(self, tmp_path: Path) -> None:
        """Compressed values are inflated and signatures dropped; with keys set, reads are
        signed, so a suite with signing keys still replays."""
        from llm_memo.codec import seal

        secret = b"k" * 32
        key = make_key()
        payload = json.dumps({"text": "x" * 5000}).encode()
        sealed = seal(
            key,
            "json",
            payload,
            created_at=1.0,
            expires_at=None,
            stale_window=0.0,
            tokens=3,
            signing_keys=[secret],
            compress_threshold=100,
        )
        assert sealed.flags
        assert sealed.signature
        backend = RecordingBackend(tmp_path)
        backend.set(key, sealed, None)
        assert read_recording(backend.path_for(key)).value == {"text": "x" * 5000}
        configure(signing_keys=[secret])

        @llm_cached(backend=backend, name="fn")
        def fn() -> dict:
            raise AssertionError("not called")

        got = backend.get(key)
        assert got is not MISSING
        assert got.signature

    def test_unreadable_file_is_a_miss_with_a_reason(self, tmp_path: Path) -> None:
        """A merge-conflicted or foreign file reads as a miss; problem() says why."""
        backend = RecordingBackend(tmp_path)
        key = make_key()
        backend.set(key, make_entry(), None)
        backend.path_for(key).write_text("<<<<<<< HEAD\n")
        assert backend.get(key) is MISSING
        assert "not JSON" in (backend.problem(key) or "")

    def test_odd_keys_cannot_escape_the_folder(self, tmp_path: Path) -> None:
        """Keys that are not llm_memo's shape, or with dot parts, stay inside the folder."""
        backend = RecordingBackend(tmp_path / "rec")
        for key in ("llm_memo:1:..:..:x", "../../evil", "a/b:c"):
            backend.set(key, make_entry(), None)
            path = backend.path_for(key)
            assert path.resolve().is_relative_to((tmp_path / "rec").resolve())
            assert backend.get(key) is not MISSING
        assert sorted(backend.keys()) == sorted(["llm_memo:1:..:..:x", "../../evil", "a/b:c"])

    def test_binary_payloads_round_trip_as_base64(self, tmp_path: Path) -> None:
        """A payload that is not JSON is kept as value_base64."""
        backend = RecordingBackend(tmp_path)
        key = make_key()
        backend.set(key, make_entry(b"\x80\x04binary", type_tag="pickle"), None)
        assert "value_base64" in json.loads(backend.path_for(key).read_text())
        got = backend.get(key)
        assert got is not MISSING
        assert got.value == b"\x80\x04binary"

    def test_from_url(self, tmp_path: Path) -> None:
        """recordings:///path builds the store."""
        backend = RecordingBackend.from_url(f"recordings://{tmp_path}")
        assert backend.directory == tmp_path

    def test_registered_scheme_opens_through_from_url(self, tmp_path: Path) -> None:
        """recordings:// is a registry row like any scheme: backends.from_url builds the public
        store (reads follow configure()), for sync and async callers alike."""
        clock = FakeClock(5000.0)
        configure(clock=clock, signing_keys=[b"k" * 32])
        backend = from_url(f"recordings://{tmp_path}")
        assert isinstance(backend, RecordingBackend)
        assert type(from_url(f"recordings://{tmp_path}", asynchronous=True)) is type(backend)
        key = make_key()
        backend.set(key, make_entry(b'"v"'), None)
        got = backend.get(key)
        assert got is not MISSING
        assert (got.value, got.created_at) == (b'"v"', 5000.0)
        assert got.signature, "a read was not signed with the configured key"

    def test_the_backend_layer_takes_its_stamp_from_its_owner(self, tmp_path: Path) -> None:
        """The store under llm_memo.backends reads no configuration: a read is stamped with the
        clock and keys its stamp= gives (wall clock, unsigned by default)."""
        configure(signing_keys=[b"k" * 32])
        key = make_key()
        plain = StoreBackend(tmp_path)
        plain.set(key, make_entry(b'"v"'), None)
        got = plain.get(key)
        assert got is not MISSING
        assert got.signature == b"", "the backend layer read configure()'s signing keys"
        stamped = StoreBackend(tmp_path, stamp=lambda: (42.0, [b"s" * 32]))
        got = stamped.get(key)
        assert got is not MISSING
        assert got.created_at == 42.0
        assert got.signature

    def test_temporary_files_of_a_write_are_never_listed(self, tmp_path: Path) -> None:
        """A write in progress (atomic: a dot-file ending in .tmp beside the recording) is not a
        recording, so listing never reads a half-written file as a key."""
        backend = RecordingBackend(tmp_path)
        key = make_key()
        backend.set(key, make_entry(), None)
        path = backend.path_for(key)
        (path.parent / f".{path.name}.0123456789ab.tmp").write_bytes(b"{")
        assert list(backend.keys()) == [key]

    def test_layout_reads_keys_only_through_parse_key(self, tmp_path: Path) -> None:
        """Every key llm_memo.keys builds maps to <namespace>/<function>/<hash>.json and back; a
        string that parse_key refuses goes to _other/, whole."""
        for ns, fn in [("ns", "app.ask"), ("tenant:42/eu", "pkg.<locals>.f"), ("ü ~%", "a b")]:
            key = make_key(ns, fn)
            parts = parse_key(key)
            assert parts is not None
            path = layout.path_for(tmp_path, key)
            assert path.relative_to(tmp_path).parts == (
                parts.escaped[1],
                parts.escaped[2],
                parts.digest + ".json",
            )
            assert layout.key_of(tmp_path, path) == key
        odd = "llm_memo:2:a b:f:x"  # not a key llm_memo.keys writes (an unescaped space)
        assert parse_key(odd) is None
        path = layout.path_for(tmp_path, odd)
        assert path.parent == tmp_path / "_other"
        assert layout.key_of(tmp_path, path) == odd


class TestUseRecordings:
    """use_recordings(): the modes, outside pytest."""

    def test_record_then_replay_without_calling(self, tmp_path: Path) -> None:
        """record writes what it calls; replay answers from files and never calls."""
        calls: list[str] = []

        @llm_cached(ttl=1)
        def ask(q: str, api_key: str = "") -> dict:
            calls.append(q)
            return {"answer": q.upper()}

        with use_recordings(tmp_path, "record") as rec:
            assert ask("a", api_key="sk-live-secret") == {"answer": "A"}
            assert ask("a") == {"answer": "A"}
        assert (rec.misses, rec.hits, calls) == (1, 1, ["a"])
        text = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
        assert "sk-live-secret" not in text
        assert '"q": "a"' in text

        with use_recordings(tmp_path, Mode.REPLAY) as rec:
            assert ask("a") == {"answer": "A"}
            with pytest.raises(CacheMiss):
                ask("b")
        assert calls == ["a"]
        assert [u.request for u in rec.unrecorded] == [{"q": "b"}]
        assert "ask" in rec.report()
        assert "--llm-memo-mode=record" in rec.report()

    def test_rewrite_calls_again_once_per_run(self, tmp_path: Path) -> None:
        """rewrite ignores existing recordings until it has rewritten them in this run."""
        answers = iter(["old", "new", "unused"])

        @llm_cached
        def ask(q: str) -> str:
            return next(answers)

        with use_recordings(tmp_path, "record"):
            assert ask("q") == "old"
        backend = RecordingBackend(tmp_path)
        with use_recordings(backend, "rewrite") as rec:
            assert ask("q") == "new"
            assert ask("q") == "new"  # a repeated call in the same run hits the new recording
        assert (rec.misses, rec.hits) == (1, 1)
        with use_recordings(tmp_path, "replay"):
            assert ask("q") == "new"

    def test_off_changes_nothing_and_settings_are_restored(self, tmp_path: Path) -> None:
        """off swaps nothing; leaving any mode restores backend, observers and directives."""
        memory = MemoryBackend()
        configure(backend=memory)

        @llm_cached
        def ask(q: str) -> str:
            return q

        with use_recordings(tmp_path, "off") as rec:
            ask("x")
        assert rec.backend is None
        assert len(memory) == 1
        assert rec.misses == 1
        with use_recordings(tmp_path, "replay"), pytest.raises(CacheMiss):
            ask("y")
        assert ask("y") == "y"  # only_if_cached is gone again
        assert not tmp_path.joinpath("default").exists()
        with (
            pytest.raises(ValueError, match="unknown recording mode"),
            use_recordings(tmp_path, "bogus"),
        ):
            pass

    def test_explicit_backend_block_still_wins(self, tmp_path: Path) -> None:
        """cache_controls(backend=...) inside the block routes around the recordings."""
        other = MemoryBackend()

        @llm_cached
        def ask(q: str) -> str:
            return q

        with use_recordings(tmp_path, "record"), cache_controls(backend=other):
            ask("x")
        assert len(other) == 1
        assert not list(RecordingBackend(tmp_path).keys())

    def test_async_streams_and_methods_record_their_request(self, tmp_path: Path) -> None:
        """Coroutines, generators and methods are recorded with their request view."""

        class Bot:
            def __llm_memo_key__(self) -> dict:
                return {"model": "m1"}

            @llm_cached
            def say(self, q: str) -> str:
                return q * 2

        @llm_cached
        async def aask(q: str) -> dict:
            return {"q": q}

        @llm_cached
        def chunks(q: str):  # type: ignore[no-untyped-def]
            yield from q

        with use_recordings(tmp_path, "record"):
            assert Bot().say("a") == "aa"
            assert asyncio.run(aask("b")) == {"q": "b"}
            assert list(chunks("cd")) == ["c", "d"]
        docs = {
            d.function.rsplit(".", 1)[1]: d for d in map(read_recording, tmp_path.rglob("*.json"))
        }
        assert docs["say"].request == {"self": {"model": "m1"}, "q": "a"}
        assert docs["aask"].request == {"q": "b"}
        assert docs["chunks"].type_tag == "stream"
        assert docs["chunks"].value == [["json", "c"], ["json", "d"]]
        with use_recordings(tmp_path, "replay"):
            assert Bot().say("a") == "aa"
            assert list(chunks("cd")) == ["c", "d"]

    def test_redaction(self, tmp_path: Path) -> None:
        """redact= scrubs the request view and the value before writing."""

        @llm_cached
        def ask(user: str) -> dict:
            return {"id": "resp-123", "text": "hello", "n": 1}

        with use_recordings(tmp_path, "record", redact=redact_keys("id", "user", "n")):
            ask("alice@example.com")
        raw = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
        assert "alice" not in raw
        assert "resp-123" not in raw
        doc = read_recording(next(tmp_path.rglob("*.json")))
        assert doc.value == {"id": "[redacted]", "text": "hello", "n": 1}

    def test_default_mode_follows_ci(self) -> None:
        """replay when CI is true, record otherwise."""
        assert default_mode({"CI": "true"}) is Mode.REPLAY
        assert default_mode({"CI": "1"}) is Mode.REPLAY
        assert default_mode({"CI": "false"}) is Mode.RECORD
        assert default_mode({"CI": ""}) is Mode.RECORD
        assert default_mode({}) is Mode.RECORD


# Secrets as the providers issue them (made up, of the right shapes).
SECRETS = {
    "openai": "sk-proj-Q2x9Rt7vLm4Np8Ws3Yz6Bc1Df5Gh0JkAb",
    "anthropic": "sk-ant-api03-Zy8Xw7Vu6Ts5Rq4Po3Nm2Lk1Ji0HgFeDcBa-9876",
    "bearer": "Bearer ya29.a0AfB_byC1d2E3f4G5h6",
    "basic": "Basic dXNlcjpodW50ZXIy",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "google": "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "github": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "jwt": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
        ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    ),
}
NAMED = {  # strings under keys named like a credential, at any depth
    "session_token": "plain-looking-session-value",
    "client_secret": "another-plain-value",
    "db_password": "hunter2-but-longer",
    "x_api_key": "key-without-a-known-shape",
}
_NEVER = {  # never-keyed parameters / header mappings and the values a call passes in them
    "api_key": "sk-live-4f3e2d1c0b9a8f7e6d5c4b3a",
    "password": "pw-correct-horse-battery",
    "secret": "shh-this-is-a-secret-value",
    "token": "tok-0123456789abcdef",
    "headers": {"Authorization": "Bearer hdr-AAAA1111bbbb2222"},
    "extra_headers": {"x-api-key": "xak-5555666677778888"},
    "default_headers": {"Cookie": "session=cookie-99998888"},
}


def _leaves(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaves(v)]
    return [value] if isinstance(value, str) else []


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


class TestNoCredentialsInRecordings:
    """Recordings written for git never hold a credential (issue 9, SPEC §5)."""

    def test_never_keyed_parameters_and_header_mappings_are_left_out(self, tmp_path: Path) -> None:
        """api_key, password, secret, token and header mappings never reach the request field,
        even for a function whose key includes them (ignore=() changes nothing here)."""

        @llm_cached
        def ask(q: str, **params: object) -> dict:
            return {"answer": q}

        with use_recordings(tmp_path, "record"):
            ask("hi", **_NEVER)
        doc = read_recording(next(tmp_path.rglob("*.json")))
        assert doc.request == {"q": "hi"}, f"recorded request: {doc.request}"
        raw = _all_bytes(tmp_path)
        leaked = [s for s in _leaves(_NEVER) if s.encode() in raw]
        assert not leaked, f"written recordings hold {leaked}"

    def test_every_credential_the_keys_module_lists_is_left_out(self) -> None:
        """The keys module's credential and header-mapping groups (the one list of them) are
        left out of a recorded request, as are credentials no SDK takes as parameters."""
        names = IGNORE_GROUPS["credentials"] | IGNORE_GROUPS["header mappings"]
        extra = {"apikey", "refresh_token", "passwd", "authorization", "cookie"}
        request = {name: "x" for name in names | extra} | {"q": "hi"}
        assert scrub_request(request) == {"q": "hi"}

    def test_secret_looking_values_are_scrubbed_anywhere(self, tmp_path: Path) -> None:
        """Provider keys, bearer/basic credentials, JWTs and credential-named fields are
        replaced by one marker wherever they appear in the request; other text is kept."""

        @llm_cached
        def ask(model: str, messages: list[dict], metadata: dict) -> dict:
            return {"answer": "ok"}

        messages = [
            {"role": "user", "content": f"my {name} credential is {value}, keep it safe"}
            for name, value in SECRETS.items()
        ]
        metadata = {"nested": {"deeper": [dict(NAMED)]}, "max_tokens": 5, "note": "harmless"}
        with use_recordings(tmp_path, "record"):
            ask("gpt-4o-mini", messages, metadata)
        raw = _all_bytes(tmp_path)
        secrets = [*SECRETS.values(), *NAMED.values()]
        # Bearer/Basic keep their scheme word; the credential after it is what must go.
        needles = [s.split(" ", 1)[-1] for s in secrets]
        leaked = [n for n in needles if n.encode() in raw]
        assert not leaked, f"written recordings hold {leaked}"
        doc = read_recording(next(tmp_path.rglob("*.json")))
        assert doc.request["model"] == "gpt-4o-mini"
        contents = [m["content"] for m in doc.request["messages"]]
        assert contents[0] == f"my openai credential is {SCRUBBED}, keep it safe", contents
        assert all(SCRUBBED in c and c.endswith("keep it safe") for c in contents), contents
        deeper = doc.request["metadata"]["nested"]["deeper"][0]
        assert deeper == dict.fromkeys(NAMED, SCRUBBED), deeper
        assert doc.request["metadata"]["max_tokens"] == 5
        assert doc.request["metadata"]["note"] == "harmless"

        # The replay report (printed in CI logs) shows the scrubbed request too.
        with use_recordings(tmp_path, "replay") as rec, pytest.raises(CacheMiss):
            ask("gpt-4o", messages, metadata)
        report = rec.report()
        assert "gpt-4o" in report
        leaked = [n for n in needles if n in report]
        assert not leaked, f"the replay report shows {leaked}"

    def test_scrubbing_never_merges_two_requests(self, tmp_path: Path) -> None:
        """Two requests that differ only in a secret-looking string keep two keys and two
        recordings, and each replays its own answer."""

        @llm_cached
        def ask(prompt: str) -> str:
            return f"answer to {prompt[-4:]}"

        a = "use sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAA-1111"
        b = "use sk-ant-api03-BBBBBBBBBBBBBBBBBBBBBBBB-2222"
        assert ask.cache.key(a) != ask.cache.key(b)
        with use_recordings(tmp_path, "record") as rec:
            assert (ask(a), ask(b)) == ("answer to 1111", "answer to 2222")
        assert rec.misses == 2
        files = sorted(tmp_path.rglob("*.json"))
        assert len(files) == 2, files
        docs = [read_recording(f) for f in files]
        assert docs[0].request == docs[1].request == {"prompt": f"use {SCRUBBED}"}
        assert {d.key for d in docs} == {ask.cache.key(a), ask.cache.key(b)}
        with use_recordings(tmp_path, "replay") as rec:
            assert (ask(a), ask(b)) == ("answer to 1111", "answer to 2222")
        assert (rec.hits, rec.unrecorded) == (2, [])

    @pytest.mark.parametrize(
        "names",
        [
            pytest.param(("api_key", "extra_headers", "default_headers"), id="sdk-credentials"),
            pytest.param(("password", "secret", "headers"), id="generic-credentials"),
        ],
    )
    def test_replay_with_other_credentials_finds_every_recording(
        self, tmp_path: Path, names: tuple[str, ...]
    ) -> None:
        """Credentials are never keyed: a replay run with other credentials than the recording
        run still finds every recording."""
        calls: list[str] = []

        @llm_cached
        def ask(q: str, **params: object) -> str:
            calls.append(q)
            return q.upper()

        def creds(run: str) -> dict[str, object]:
            return {
                n: {"Authorization": f"Bearer {run}-{n}-0123456789"}
                if n.endswith("headers")
                else f"{run}-{n}-0123456789"
                for n in names
            }

        with use_recordings(tmp_path, "record"):
            assert [ask(q, **creds("recording")) for q in ("a", "b")] == ["A", "B"]
        with use_recordings(tmp_path, "replay") as rec:
            assert [ask(q, **creds("replay")) for q in ("a", "b")] == ["A", "B"]
        assert rec.unrecorded == [], rec.report()
        assert calls == ["a", "b"]
        assert b"recording-" not in _all_bytes(tmp_path)


# -- the pytest plugin, end to end -----------------------------------------------------------------

_MODULE = """
import pytest
from llm_memo import llm_cached

pytestmark = pytest.mark.llm_memo

def model(question):
    {model_body}

@llm_cached(ttl=60)
def ask(question: str, temperature: float = 0.0):
    return model(question)

def test_hello():
    assert ask("hello")["answer"] == "HELLO"

def test_twice(llm_recording):
    assert ask("again")["answer"] == "AGAIN"
    assert ask("again")["answer"] == "AGAIN"
    assert llm_recording.hits >= 1
{extra}
"""

_REAL = 'return {"answer": question.upper(), "usage": {"total_tokens": 7}}'
_RAISES = 'raise RuntimeError("the model was called")'


def _module(pytester: pytest.Pytester, body: str, extra: str = "") -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_chat=_MODULE.format(model_body=body, extra=extra))


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester.runpytest("-p", "no:cacheprovider", *args)


class TestPlugin:
    """Record, replay offline, fail clearly on an unrecorded call; byte-stable files."""

    @pytest.fixture(autouse=True)
    def _no_ci(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("CI", raising=False)

    def test_record_replay_unrecorded_and_byte_stable(self, pytester: pytest.Pytester) -> None:
        """The whole workflow, with the model made to raise for the replay runs."""
        _module(pytester, _REAL)
        _run(pytester, "--llm-memo-mode=record").assert_outcomes(passed=2)
        folder = pytester.path / "recordings" / "test_chat"
        first = _files(folder)
        assert len(first) == 2
        doc = json.loads(next(iter(first.values())))
        assert doc["function"] == "test_chat.ask"
        assert doc["request"]["temperature"] == 0

        # Byte-stable: a fresh record run and a rewrite run produce the same bytes.
        shutil.rmtree(folder)
        _run(pytester).assert_outcomes(passed=2)  # record is the default without CI
        assert _files(folder) == first
        _run(pytester, "--llm-memo-mode=rewrite").assert_outcomes(passed=2)
        assert _files(folder) == first

        # Replay offline: the model raises, the tests still pass from the recordings.
        _module(pytester, _RAISES)
        result = _run(pytester, "--llm-memo-mode=replay")
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["*recordings/test_chat (replay): 3 replayed, 0 recorded*"])

        # An unrecorded call fails, naming the function, the request and how to record it.
        _module(
            pytester,
            _RAISES,
            extra='\ndef test_new():\n    assert ask("brand new", temperature=0.5)\n',
        )
        result = _run(pytester, "--llm-memo-mode=replay", "-ra")
        result.assert_outcomes(passed=2, failed=1)
        result.stdout.fnmatch_lines(
            [
                "*test_chat.py:*: CacheMiss",
                "llm_memo replay: 1 call with no recording (replay mode never calls the function):",
                "*function: test_chat.ask*",
                '*"question": "brand new",*',
                '*"temperature": 0.5*',
                "*pytest test_chat.py::test_new --llm-memo-mode=record*",
            ]
        )
        result.stdout.fnmatch_lines(
            ["FAILED test_chat.py::test_new - no recording for test_chat.ask*"]
        )
        assert "the model was called" not in result.stdout.str()
        assert _files(folder) == first  # replay never writes

    def test_ci_defaults_to_replay(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With CI=true and no option, opted-in tests replay (and so fail when unrecorded)."""
        monkeypatch.setenv("CI", "true")
        _module(pytester, _REAL)
        result = _run(pytester)
        result.assert_outcomes(failed=2)
        assert not (pytester.path / "recordings").exists()

    def test_swallowed_cache_miss_still_fails(self, pytester: pytest.Pytester) -> None:
        """Code that catches the CacheMiss does not hide an unrecorded call."""
        pytester.makepyfile(
            """
            import pytest
            from llm_memo import llm_cached

            @llm_cached
            def ask(q):
                return q

            @pytest.mark.llm_memo
            def test_swallow():
                try:
                    ask("x")
                except Exception:
                    pass
            """
        )
        result = _run(pytester, "--llm-memo-mode=replay")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*1 call with no recording*", "*function: test_*.ask*"])

    def test_only_opted_in_tests_are_affected(self, pytester: pytest.Pytester) -> None:
        """Unmarked tests call through as usual, even in replay mode; no folder appears."""
        pytester.makepyfile(
            """
            from llm_memo import llm_cached

            calls = []

            @llm_cached(backend="memory://")
            def ask(q):
                calls.append(q)
                return q

            def test_plain():
                assert ask("x") == "x"
                assert calls == ["x"]

            def test_with_llm_cache(llm_cache):
                ask("y")
                assert llm_cache.misses == 1
            """
        )
        result = _run(pytester, "--llm-memo-mode=replay")
        result.assert_outcomes(passed=2)
        assert not (pytester.path / "recordings").exists()
        assert "llm_memo recordings" not in result.stdout.str()

    def test_marker_path_mode_and_redact(self, pytester: pytest.Pytester) -> None:
        """The marker chooses the folder, the mode (unless the option is given) and redaction."""
        pytester.makepyfile(
            """
            import pytest
            from llm_memo import llm_cached
            from llm_memo.recording import redact_keys

            @llm_cached
            def ask(q):
                return {"id": "secret-id", "q": q}

            @pytest.mark.llm_memo("shared/recs", mode="record", redact=redact_keys("id"))
            def test_marked(llm_recording):
                ask("x")
                assert llm_recording.mode.value == "record"
                assert llm_recording.directory.name == "recs"
            """
        )
        _run(pytester).assert_outcomes(passed=1)
        files = list((pytester.path / "shared" / "recs").rglob("*.json"))
        assert len(files) == 1
        assert "secret-id" not in files[0].read_text()
        # The command line wins over the marker's mode.
        result = _run(pytester, "--llm-memo-mode=replay")
        result.assert_outcomes(failed=1)  # the test asserts mode == record

    def test_conftest_redact_fixture(self, pytester: pytest.Pytester) -> None:
        """Overriding llm_memo_redact in conftest.py scrubs every recording of the suite."""
        pytester.makeconftest(
            """
            import pytest
            from llm_memo.recording import redact_keys

            @pytest.fixture
            def llm_memo_redact():
                return redact_keys("token_id")
            """
        )
        pytester.makepyfile(
            """
            import pytest
            from llm_memo import llm_cached

            pytestmark = pytest.mark.llm_memo

            @llm_cached
            def ask(q):
                return {"token_id": "abc", "q": q}

            def test_it():
                ask("x")
            """
        )
        _run(pytester, "--llm-memo-mode=record").assert_outcomes(passed=1)
        (path,) = (pytester.path / "recordings").rglob("*.json")
        assert "abc" not in path.read_text()

    def test_unused_listed_then_pruned(self, pytester: pytest.Pytester) -> None:
        """Recordings no test touched are listed, and deleted with --llm-memo-prune only when
        every test of the folder ran and passed."""
        _module(pytester, _REAL, extra='\ndef test_old():\n    ask("old")\n')
        _run(pytester, "--llm-memo-mode=record").assert_outcomes(passed=3)
        folder = pytester.path / "recordings" / "test_chat"
        assert len(_files(folder)) == 3
        _module(pytester, _REAL)  # test_old is gone: its recording is unused now

        result = _run(pytester, "--llm-memo-mode=replay")
        result.stdout.fnmatch_lines(["*1 recording no test used (--llm-memo-prune deletes them)*"])
        assert len(_files(folder)) == 3

        result = _run(pytester, "--llm-memo-mode=replay", "--llm-memo-prune", "-k", "hello")
        result.stdout.fnmatch_lines(["*some tests using this folder did not run*"])
        assert len(_files(folder)) == 3  # a partial run never prunes

        result = _run(pytester, "--llm-memo-mode=replay", "--llm-memo-prune")
        result.stdout.fnmatch_lines(["*pruned 1 unused recording*"])
        assert len(_files(folder)) == 2
        _run(pytester, "--llm-memo-mode=replay").assert_outcomes(passed=2)

    def test_off_mode_uses_the_configured_backend(self, pytester: pytest.Pytester) -> None:
        """off: the marker does nothing; calls go to the configured backend."""
        _module(pytester, _REAL)
        _run(pytester, "--llm-memo-mode=off").assert_outcomes(passed=2)
        assert not (pytester.path / "recordings").exists()

    def test_survives_a_conftest_that_resets_configuration(self, pytester: pytest.Pytester) -> None:
        """A conftest autouse fixture calling config.reset() after ours does not undo replay."""
        pytester.makeconftest(
            """
            import pytest
            from llm_memo import config

            @pytest.fixture(autouse=True)
            def _fresh_llm_memo():
                config.reset()
                yield
                config.reset()
            """
        )
        _module(pytester, _REAL)
        _run(pytester, "--llm-memo-mode=record").assert_outcomes(passed=2)
        _module(pytester, _RAISES)
        _run(pytester, "--llm-memo-mode=replay").assert_outcomes(passed=2)

    def test_llm_cache_and_recordings_conflict(self, pytester: pytest.Pytester) -> None:
        """Asking for both is an error with a clear message, not a silent choice."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.llm_memo
            def test_both(llm_cache):
                pass
            """
        )
        result = _run(pytester, "--llm-memo-mode=record")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*either llm_cache*or llm_memo recordings*"])

    def test_bad_marker_mode(self, pytester: pytest.Pytester) -> None:
        """A typo in the marker's mode is reported, naming the known modes."""
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.llm_memo(mode="replya")
            def test_x():
                pass
            """
        )
        result = _run(pytester)
        assert result.ret != 0
        result.stdout.fnmatch_lines(["*unknown mode; known: replay, record, rewrite, off*"])


class TestExampleProject:
    """examples/recorded_tests passes offline from its committed recordings."""

    def _copy(self, tmp_path: Path) -> Path:
        target = tmp_path / "recorded_tests"
        shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
        return target

    def _pytest(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_MEMO_")}
        env["CI"] = "true"
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    def test_replays_offline_and_recordings_are_current(self, tmp_path: Path) -> None:
        """Replay passes (CI default); a rewrite reproduces the committed files byte for byte."""
        project = self._copy(tmp_path)
        committed = _files(project / "tests" / "recordings")
        assert committed, "the example ships its recordings"
        replay = self._pytest(project)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "replayed" in replay.stdout
        rewrite = self._pytest(project, "--llm-memo-mode=rewrite")
        assert rewrite.returncode == 0, rewrite.stdout + rewrite.stderr
        assert _files(project / "tests" / "recordings") == committed


def test_recordings_show_the_request_of_generator_methods(tmp_path: Path) -> None:
    """The decorator hands each call's request to the recording backend (describe()), so
    even a generator method's recording shows the request it answers."""
    import dataclasses
    from collections.abc import Iterator

    from llm_memo.recording import RecordingBackend, read_recording

    backend = RecordingBackend(tmp_path)

    @dataclasses.dataclass
    class Bot:
        model: str

        @llm_cached(backend=backend)
        def stream(self, prompt: str) -> Iterator[str]:
            yield from prompt.split()

    assert list(Bot("m").stream("a b")) == ["a", "b"]
    (key,) = list(backend.keys())
    recorded = read_recording(backend.path_for(key))
    assert recorded.request == {"self": {"model": "m"}, "prompt": "a b"}
