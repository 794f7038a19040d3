"""File inputs key by their content (SPEC §6): file objects anywhere, paths where a parameter is
a file, never consuming the caller's stream.

Real openai / litellm functions; the one real call goes to a loopback stub server.
"""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llm_memo import UnkeyableArgumentError, llm_cached
from llm_memo.keys import KeyBuilder, canonical
from llm_memo.keys.file_content import CHUNK_SIZE
from llm_memo.sdks import file_params_for
from tests.stubs import StubHandler, serve

A = "http://127.0.0.1:9/v1"


def transcribe(client: openai.OpenAI | None = None) -> Any:
    return (client or openai.OpenAI(base_url=A, api_key="k")).audio.transcriptions.create


def key_of(fn: Any, **kwargs: Any) -> str:
    return KeyBuilder(fn, "f").key((), kwargs, "d")


def mine(data: Any, model: str = "m") -> str:
    return model


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class TestFileObjects:
    def test_same_content_one_key_other_content_another(self) -> None:
        """Two file objects with the same content share a key; other content is another key."""
        a, b, c = io.BytesIO(b"RIFF audio"), io.BytesIO(b"RIFF audio"), io.BytesIO(b"RIFF other")
        assert key_of(mine, data=a) == key_of(mine, data=b)
        assert key_of(mine, data=a) != key_of(mine, data=c)

    def test_anywhere_in_the_arguments(self) -> None:
        """A file object nested in lists and dicts keys by content too."""
        one = {"parts": [{"image": io.BytesIO(b"png-1")}]}
        same = {"parts": [{"image": io.BytesIO(b"png-1")}]}
        other = {"parts": [{"image": io.BytesIO(b"png-2")}]}
        assert canonical(one) == canonical(same) != canonical(other)

    def test_the_whole_content_from_the_start(self) -> None:
        """The content is read from the start whatever the position (the SDK uploads all of
        it), and the caller's position is restored."""
        f = io.BytesIO(b"0123456789")
        f.seek(4)
        assert canonical(f) == canonical(io.BytesIO(b"0123456789"))
        assert f.tell() == 4

    def test_name_is_keyed_where_it_has_one(self, tmp_path: Path) -> None:
        """An opened file's base name is keyed (the SDK sends it): the same name and content in
        two folders share a key, another name does not."""
        one = write(tmp_path / "a" / "clip.wav", b"same")
        two = write(tmp_path / "b" / "clip.wav", b"same")
        three = write(tmp_path / "c" / "other.mp3", b"same")
        with one.open("rb") as f1, two.open("rb") as f2, three.open("rb") as f3:
            assert canonical(f1) == canonical(f2)
            assert canonical(f1) != canonical(f3)
            assert canonical(f1)["name"] == "clip.wav"

    def test_text_file_keys_and_keeps_its_position(self, tmp_path: Path) -> None:
        """A text-mode file keys by content and gets its position back."""
        path = tmp_path / "notes.txt"
        path.write_text("héllo\nworld\n", encoding="utf-8")
        with path.open(encoding="utf-8") as f:
            f.readline()
            where = f.tell()
            form = canonical(f)
            assert f.tell() == where
            assert f.readline() == "world\n"
        path.write_text("changed\n", encoding="utf-8")
        with path.open(encoding="utf-8") as f:
            assert canonical(f) != form

    def test_position_restored_when_reading_fails(self) -> None:
        """A read error mid-file is an UnkeyableArgumentError naming the parameter, and the
        stream is put back where it was."""

        class Flaky(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:
                if self.tell() >= CHUNK_SIZE:
                    raise OSError("disk went away")
                return super().read(size)

        f = Flaky(b"x" * (CHUNK_SIZE + 10))
        f.seek(7)
        with pytest.raises(UnkeyableArgumentError, match="disk went away") as info:
            key_of(mine, data=f)
        assert "'data'" in str(info.value)
        assert f.tell() == 7

    def test_a_large_file_is_never_read_whole(self, tmp_path: Path) -> None:
        """A 50 MB file is hashed in chunks: the memory peak while keying stays far below its
        size, and equal files still share a key."""
        size = 50 * 1024 * 1024
        path = tmp_path / "big.bin"
        block = os.urandom(1024 * 1024)
        with path.open("wb") as out:
            for _ in range(size // len(block)):
                out.write(block)
        assert path.stat().st_size == size
        with path.open("rb") as f:
            tracemalloc.start()
            try:
                key = key_of(mine, data=f)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert f.tell() == 0
        assert peak < 4 * CHUNK_SIZE < size // 10, peak
        with path.open("rb") as again:
            assert key_of(mine, data=again) == key

    def test_a_non_seekable_stream_says_what_to_pass(self) -> None:
        """A pipe cannot be read without consuming it: the error names the parameter and says
        to pass bytes, a path or a seekable file instead."""
        r, w = os.pipe()
        os.write(w, b"audio")
        os.close(w)
        with open(r, "rb") as stream:
            with pytest.raises(UnkeyableArgumentError) as info:
                key_of(mine, data=("a.wav", stream, "audio/wav"))
            assert stream.read() == b"audio"  # not consumed
        text = str(info.value)
        assert info.value.parameter == "data[1]"
        for words in ("'data[1]'", "cannot seek back", "bytes", "pathlib.Path", "seekable"):
            assert words in text, text

    def test_a_closed_file_is_unkeyable(self) -> None:
        """A closed file has no content to key: an UnkeyableArgumentError, not a ValueError
        from inside the walk."""
        f = io.BytesIO(b"gone")
        f.close()
        with pytest.raises(UnkeyableArgumentError, match="cannot seek back"):
            key_of(mine, data=f)


class TestPaths:
    def test_file_param_of_an_sdk_keys_by_content(self, tmp_path: Path) -> None:
        """file= of audio.transcriptions.create: the same content at two paths with one base
        name shares a key, new content at the same path is another key."""
        one = write(tmp_path / "a" / "clip.wav", b"take 1")
        two = write(tmp_path / "b" / "clip.wav", b"take 1")
        create = transcribe()
        first = key_of(create, file=one, model="whisper-1")
        assert key_of(create, file=two, model="whisper-1") == first
        one.write_bytes(b"take 2")
        assert key_of(create, file=one, model="whisper-1") != first

    def test_a_path_keys_as_the_opened_file_would(self, tmp_path: Path) -> None:
        """A path and the same file opened give one key: the SDK uploads the same bytes."""
        path = write(tmp_path / "clip.wav", b"audio")
        create = transcribe()
        with path.open("rb") as f:
            assert key_of(create, file=path, model="w") == key_of(create, file=f, model="w")

    def test_elsewhere_a_path_keys_by_name(self, tmp_path: Path) -> None:
        """A path given to a parameter that is not a file keys by its name, as before: new
        content at the same path, same key; another path, another key."""
        path = write(tmp_path / "a.txt", b"one")
        first = key_of(mine, data=path)
        path.write_bytes(b"two")
        assert key_of(mine, data=path) == first
        assert key_of(mine, data=write(tmp_path / "b.txt", b"two")) != first

    def test_declared_file_params_key_by_content(self, tmp_path: Path) -> None:
        """file_params=("data",) makes a path in your own function key by content."""

        @llm_cached(backend="memory://", file_params=("data",))
        def upload(data: Any, model: str = "m") -> str:
            return model

        path = write(tmp_path / "a" / "x.bin", b"one")
        first = upload.cache.key(data=path)
        assert upload.cache.key(data=write(tmp_path / "b" / "x.bin", b"one")) == first
        path.write_bytes(b"two")
        assert upload.cache.key(data=path) != first

    def test_a_str_is_always_text(self, tmp_path: Path) -> None:
        """A str naming a file is text even where the parameter is a file."""
        path = write(tmp_path / "clip.wav", b"audio")
        create = transcribe()
        first = key_of(create, file=str(path), model="w")
        path.write_bytes(b"other")
        assert key_of(create, file=str(path), model="w") == first
        assert key_of(create, file=str(path), model="w") != key_of(create, file=path, model="w")

    def test_an_unreadable_path_keys_by_name(self, tmp_path: Path) -> None:
        """A missing file keys by its name: the call itself reports that it is missing."""
        missing = tmp_path / "nope.wav"
        create = transcribe()
        assert key_of(create, file=missing, model="w") != key_of(
            create, file=tmp_path / "other.wav", model="w"
        )

    @pytest.mark.parametrize(
        ("fn", "expected"),
        [
            (lambda c: c.audio.transcriptions.create, {"file"}),
            (lambda c: c.audio.translations.create, {"file"}),
            (lambda c: c.files.create, {"file"}),
            (lambda c: c.images.edit, {"image", "mask"}),
            (lambda c: c.audio.transcriptions.with_raw_response.create, {"file"}),
            (lambda c: c.chat.completions.create, set()),
        ],
    )
    @pytest.mark.parametrize("cls", [openai.OpenAI, openai.AsyncOpenAI])
    def test_openai_profile_knows_its_file_params(
        self, cls: Any, fn: Any, expected: set[str]
    ) -> None:
        """openai's upload methods, sync and async and wrapped, name their file parameters."""
        assert file_params_for(fn(cls(base_url=A, api_key="k"))) == expected

    def test_litellm_transcription_file_is_a_file(self, tmp_path: Path) -> None:
        """litellm.transcription(file=) keys a path by content; its completion has none."""
        import litellm

        assert file_params_for(litellm.transcription) == {"file"}
        assert file_params_for(litellm.atranscription) == {"file"}
        assert file_params_for(litellm.completion) == frozenset()
        one = write(tmp_path / "a" / "clip.wav", b"audio")
        two = write(tmp_path / "b" / "clip.wav", b"audio")
        kb = KeyBuilder(litellm.transcription, "t")
        assert kb.key((), {"model": "whisper-1", "file": one}, "d") == kb.key(
            (), {"model": "whisper-1", "file": two}, "d"
        )


class TestTuples:
    def test_name_bytes_mime(self) -> None:
        """(name, bytes, mime): every part is keyed."""
        base = ("a.wav", b"audio", "audio/wav")
        assert key_of(transcribe(), file=base, model="w") == key_of(
            transcribe(), file=tuple(base), model="w"
        )
        for other in (("b.wav", b"audio", "audio/wav"), ("a.wav", b"other", "audio/wav")):
            assert key_of(transcribe(), file=other, model="w") != key_of(
                transcribe(), file=base, model="w"
            )
        assert key_of(transcribe(), file=("a.wav", b"audio", "audio/mpeg"), model="w") != key_of(
            transcribe(), file=base, model="w"
        )

    def test_name_file_mime(self) -> None:
        """(name, file, mime): the file part keys by content and keeps its position."""
        f = io.BytesIO(b"audio")
        f.seek(2)
        first = key_of(transcribe(), file=("a.wav", f, "audio/wav"), model="w")
        assert f.tell() == 2
        same = ("a.wav", io.BytesIO(b"audio"), "audio/wav")
        other = ("a.wav", io.BytesIO(b"other"), "audio/wav")
        assert key_of(transcribe(), file=same, model="w") == first
        assert key_of(transcribe(), file=other, model="w") != first

    def test_the_tuple_name_is_sent_not_the_files_own(self, tmp_path: Path) -> None:
        """Inside (name, file, mime) the SDK sends the tuple's name: two temporary files with
        the same content under one tuple name share a key, whatever their own names."""
        one = write(tmp_path / "tmp-1.bin", b"audio")
        two = write(tmp_path / "tmp-2.bin", b"audio")
        with one.open("rb") as f1, two.open("rb") as f2:
            assert key_of(transcribe(), file=("a.wav", f1, "audio/wav"), model="w") == key_of(
                transcribe(), file=("a.wav", f2, "audio/wav"), model="w"
            )
            assert key_of(transcribe(), file=f1, model="w") != key_of(
                transcribe(), file=f2, model="w"
            )
        assert key_of(transcribe(), file=("a.wav", one, "audio/wav"), model="w") == key_of(
            transcribe(), file=("a.wav", two, "audio/wav"), model="w"
        )

    def test_name_path_mime_in_a_file_param(self, tmp_path: Path) -> None:
        """(name, path, mime) in a file parameter keys the path's content, like the opened file."""
        path = write(tmp_path / "clip.wav", b"audio")
        with path.open("rb") as f:
            opened = key_of(transcribe(), file=("a.wav", f, "audio/wav"), model="w")
        assert key_of(transcribe(), file=("a.wav", path, "audio/wav"), model="w") == opened


# -- a real call against a loopback stub ---------------------------------------------------------


class _Stub(StubHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        self.bodies.append(self.read_body())
        self.reply_json({"text": "hello there"})


@pytest.fixture
def stub() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    with serve(_Stub, bodies=bodies) as url:
        yield f"{url}/v1", bodies


def test_a_real_transcription_hits_the_second_time(
    stub: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    """llm_cached(client.audio.transcriptions.create): the first call uploads the file, the
    second with the same content (another file object, or the path) is a hit; new content calls
    again."""
    base_url, bodies = stub
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    create = llm_cached(backend="memory://")(client.audio.transcriptions.create)
    path = write(tmp_path / "clip.wav", b"RIFF-the-audio-bytes")
    with path.open("rb") as f:
        first = create(file=f, model="whisper-1")
    assert type(first) is openai.types.audio.Transcription
    assert first.text == "hello there"
    assert len(bodies) == 1
    assert b"RIFF-the-audio-bytes" in bodies[0]
    with path.open("rb") as f:
        second = create(file=f, model="whisper-1")
    assert create(file=path, model="whisper-1") == first
    assert type(second) is openai.types.audio.Transcription
    assert second == first
    assert len(bodies) == 1
    assert create.cache.stats().hits == 2
    path.write_bytes(b"RIFF-new-audio")
    with path.open("rb") as f:
        create(file=f, model="whisper-1")
    assert len(bodies) == 2
    assert b"RIFF-new-audio" in bodies[1]


@pytest.mark.asyncio
async def test_an_async_transcription_hits_the_second_time(
    stub: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    """The same through AsyncOpenAI: a file object keys by content, the second call hits."""
    base_url, bodies = stub
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    create = llm_cached(backend="memory://")(client.audio.transcriptions.create)
    path = write(tmp_path / "clip.wav", b"RIFF-async-audio")
    with path.open("rb") as f:
        first = await create(file=f, model="whisper-1")
    with path.open("rb") as f:
        second = await create(file=f, model="whisper-1")
    assert type(second) is openai.types.audio.Transcription
    assert second == first
    assert len(bodies) == 1
    assert create.cache.stats().hits == 1
    await client.close()


# litellm's transcription path builds a pydantic schema for one of its TypedDicts on first use,
# which warns about ReadOnly fields: litellm's warning, not ours.
@pytest.mark.filterwarnings("ignore:Item.*ReadOnly:UserWarning")
def test_a_real_litellm_transcription_hits_the_second_time(
    stub: tuple[str, list[bytes]], tmp_path: Path
) -> None:
    """llm_cached(litellm.transcription) with a path: keyed by content, one upload."""
    import litellm

    base_url, bodies = stub
    transcription = llm_cached(backend="memory://")(litellm.transcription)
    one = write(tmp_path / "a" / "clip.wav", b"RIFF-litellm-audio")
    two = write(tmp_path / "b" / "clip.wav", b"RIFF-litellm-audio")
    request: dict[str, Any] = {"model": "openai/whisper-1", "api_base": base_url, "api_key": "k"}
    with one.open("rb") as f:
        first = transcription(file=f, **request)
    assert first.text == "hello there"
    with two.open("rb") as f:
        second = transcription(file=f, **request)
    assert second.text == "hello there"
    assert len(bodies) == 1
    assert transcription.cache.stats().hits == 1
