"""Files end to end: every kind of file input, resumable downloads, client.files."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
import time
from pathlib import Path

import aiofiles
import pytest

from replicate_async import AsyncReplicate, FileOutput
from replicate_async import errors as e
from replicate_async.testing import Emulator
from replicate_async.testing._outputs import pattern_chunks


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_output(size: int, seed: int = 0) -> bytes:
    return b"".join(pattern_chunks(seed, size))


@pytest.fixture(autouse=True)
def _no_token_at_the_file_host(emulator: Emulator):  # type: ignore[no-untyped-def]
    yield
    assert all("Authorization" not in h for h in emulator.delivery_requests)


async def test_every_kind_of_file_input_arrives_intact(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8" + b"jpeg" * 100_000)
    binary = open(photo, "rb")  # noqa: SIM115 (closed below)
    try:
        async with aiofiles.open(photo, "rb") as async_file:
            out = await client.run(
                "emulator/checksum",
                input={
                    "path": photo,
                    "bytes": b"hello",
                    "bytearray": bytearray(b"hello"),
                    "memoryview": memoryview(b"hello"),
                    "bytesio": io.BytesIO(b"abc"),
                    "file": binary,
                    "aiofile": async_file,
                    "nested": {"list": [b"one", {"deep": b"two"}]},
                    "text": "a plain string stays a string",
                },
            )
    finally:
        binary.close()
    want = sha(photo.read_bytes())
    assert out["path"] == {"size": 400_002, "sha256": want}
    assert out["file"]["sha256"] == want
    assert out["aiofile"]["sha256"] == want
    for key in ("bytes", "bytearray", "memoryview"):
        assert out[key] == {"size": 5, "sha256": sha(b"hello")}
    assert out["bytesio"]["sha256"] == sha(b"abc")
    assert out["nested.list[0]"]["sha256"] == sha(b"one")
    assert out["nested.list[1].deep"]["sha256"] == sha(b"two")
    assert "text" not in out
    uploaded = {u.name for u in emulator.uploads.values()}
    assert "photo.jpg" in uploaded
    jpeg = next(u for u in emulator.uploads.values() if u.name == "photo.jpg")
    assert jpeg.content_type == "image/jpeg"  # guessed from the name
    # the model got URLs, not bytes: the prediction's input shows them
    (prediction,) = [p async for p in client.predictions.list()]
    assert str(prediction.input["path"]).startswith(f"{emulator.url}/files/")
    assert prediction.input["text"] == "a plain string stays a string"


async def test_files_of_one_input_upload_concurrently(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.delay_next("POST", "/files", 0.5, times=3)
    started = time.monotonic()
    await client.run("emulator/checksum", input={"a": b"1", "b": b"2", "c": b"3"})
    assert time.monotonic() - started < 1.2  # three 0.5 s uploads at once, not 1.5 s


async def test_data_uri_encoding(client: AsyncReplicate, emulator: Emulator) -> None:
    out = await client.run("emulator/checksum", input={"b": b"hello"}, file_encoding="data-uri")
    assert out == {"b": {"size": 5, "sha256": sha(b"hello")}}
    assert emulator.count("POST", "/files") == 0
    (prediction,) = [p async for p in client.predictions.list()]
    assert prediction.input == {"b": "data:application/octet-stream;base64,aGVsbG8="}


async def test_data_uri_over_the_limit_is_refused_before_sending(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    with pytest.raises(ValueError, match="over the data URI limit"):
        await client.run(
            "emulator/checksum", input={"b": b"x" * 2_000_000}, file_encoding="data-uri"
        )
    assert sum(emulator.requests.values()) == 0


async def test_over_100_mb_is_refused_before_anything_is_sent(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:
        f.truncate(101 * 1024 * 1024)  # sparse: takes no disk
    with pytest.raises(e.PayloadTooLargeError, match="up to 100 MB") as info:
        await client.run("emulator/checksum", input={"small": b"ok", "huge": huge})
    assert "Nothing was sent" in str(info.value)
    with pytest.raises(e.PayloadTooLargeError):
        await client.files.create(huge)
    assert sum(emulator.requests.values()) == 0


async def test_bad_file_inputs_fail_clearly_before_sending(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        await client.run("emulator/checksum", input={"a": tmp_path / "missing.png"})
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with open(text) as handle, pytest.raises(TypeError, match="binary mode"):
        await client.run("emulator/checksum", input={"a": handle})
    with pytest.raises(ValueError, match="file_encoding"):
        await client.run("emulator/checksum", input={"a": b"x"}, file_encoding="base64")
    assert sum(emulator.requests.values()) == 0


async def test_the_server_413(emulator: Emulator) -> None:
    small = Emulator(max_file_size=1000)
    async with small, AsyncReplicate(api_token=small.token, base_url=small.url) as c:
        with pytest.raises(e.PayloadTooLargeError, match="413"):
            await c.files.create(b"x" * 2000)
        assert small.uploads == {}


async def test_files_resource(client: AsyncReplicate, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    created = await client.files.create(path, metadata={"job": 7})
    assert created.name == "data.csv"
    assert created.content_type == "text/csv"
    assert created.size == 8
    assert created.checksums is not None and created.checksums["sha256"] == sha(b"a,b\n1,2\n")
    assert created.metadata == {"job": 7}
    assert created.expires_at is not None and created.created_at is not None
    assert (created.expires_at - created.created_at).total_seconds() == 24 * 3600
    named = await client.files.create(
        io.BytesIO(b"{}"), filename="x.json", content_type="application/json"
    )
    assert (named.name, named.content_type) == ("x.json", "application/json")
    assert (await client.files.get(created.id)).id == created.id
    assert [f.id async for f in client.files.list()] == [named.id, created.id]
    await client.files.delete(created.id)
    with pytest.raises(e.NotFoundError):
        await client.files.get(created.id)
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        await client.files.create("data.csv")


async def test_a_cut_download_resumes_with_identical_bytes(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    (image,) = await client.run("emulator/images", input={"size_bytes": 5_000_000})
    emulator.cut_downloads_after(1_234_567, times=3)
    saved = await image.save(tmp_path / "out.png")
    assert saved.size == 5_000_000
    assert sha(saved.path.read_bytes()) == sha(expected_output(5_000_000))
    ranges = [h.get("Range") for h in emulator.delivery_requests]
    assert ranges[0] is None
    starts = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:]]
    # each resume starts from the last byte received (a cut loses what was in flight)
    assert len(starts) == 3
    assert 0 < starts[0] <= 1_234_567 < starts[1] <= 2 * 1_234_567 < starts[2]
    assert all(h.get("If-Range") for h in emulator.delivery_requests[1:])


async def test_a_server_without_ranges_starts_over(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    (image,) = await client.run("emulator/images", input={"size_bytes": 3_000_000})
    emulator.delivery_ranges = False
    emulator.cut_downloads_after(1_000_000)
    assert sha(await image.read()) == sha(expected_output(3_000_000))


async def test_a_download_cut_too_often_fails_and_leaves_no_temp_file(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    (image,) = await client.run("emulator/images", input={"size_bytes": 2_000_000})
    emulator.cut_downloads_after(100, times=20)
    with pytest.raises(e.ConnectionLostError, match="download cut at"):
        await image.save(tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


async def test_an_expired_output_says_so(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    (image,) = await client.run("emulator/images", input={})
    emulator.expire_outputs()
    with pytest.raises(e.NotFoundError, match="expire an hour after"):
        await image.save(tmp_path / "late.png")
    assert list(tmp_path.iterdir()) == []


async def test_a_hundred_saves_at_once(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    images = await client.run("emulator/images", input={"num_outputs": 100, "size_bytes": 200_000})
    saved = await asyncio.gather(
        *(image.save(tmp_path / f"{i}.png") for i, image in enumerate(images))
    )
    assert [s.size for s in saved] == [200_000] * 100
    for i, s in enumerate(saved):
        assert s.path.read_bytes() == expected_output(200_000, seed=i)


async def test_a_hundred_saves_share_a_few_writer_threads(
    client: AsyncReplicate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from replicate_async import _sink

    writers: set[int] = set()
    real = _sink._write_all

    def spy(fd: int, chunks: list[bytes]) -> None:
        writers.add(threading.get_ident())
        real(fd, chunks)

    monkeypatch.setattr(_sink, "_write_all", spy)
    monkeypatch.setattr(_sink, "BATCH", 256 * 1024)  # several writes per file
    size = 1_500_000
    images = await client.run("emulator/images", input={"num_outputs": 100, "size_bytes": size})
    saved = await asyncio.gather(
        *(image.save(tmp_path / f"{i}.png") for i, image in enumerate(images))
    )
    assert all(s.path.read_bytes() == expected_output(size, seed=i) for i, s in enumerate(saved))
    # The writer pool's few threads, not one (or more) per download.
    assert 1 <= len(writers) <= _sink.WRITERS
    assert threading.get_ident() not in writers


async def test_break_out_of_a_download_releases_the_connection(client: AsyncReplicate) -> None:
    (image,) = await client.run("emulator/images", input={"size_bytes": 20_000_000})
    assert isinstance(image, FileOutput)
    async for _ in image.chunks(64 * 1024):
        break
    assert client._session.transport.connector_stats()[0] == 0


async def test_a_big_output_streams_in_bounded_chunks(client: AsyncReplicate) -> None:
    (image,) = await client.run("emulator/images", input={"size_bytes": 64 * 1024 * 1024})
    digest = hashlib.sha256()
    biggest = 0
    async for chunk in image.chunks(256 * 1024):
        biggest = max(biggest, len(chunk))
        digest.update(chunk)
    assert biggest <= 256 * 1024
    want = hashlib.sha256()
    for chunk in pattern_chunks(0, 64 * 1024 * 1024):
        want.update(chunk)
    assert digest.hexdigest() == want.hexdigest()
