"""FileSink: batched writes off the loop, errors raised, nothing left behind."""

from __future__ import annotations

import asyncio
import errno
import os
import platform
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from replicate_async import _sink
from replicate_async._sink import FileSink


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_bytes_arrive_in_order_in_few_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[tuple[int, str]] = []
    real = _sink._write_all

    def spy(fd: int, chunks: list[bytes]) -> None:
        writes.append((sum(map(len, chunks)), threading.current_thread().name))
        real(fd, chunks)

    monkeypatch.setattr(_sink, "_write_all", spy)
    chunks = [bytes([i % 251]) * 65_536 for i in range(300)]  # 18.75 MiB in 64 KiB chunks
    out = await FileSink.create(tmp_path / "f.part")
    for chunk in chunks:
        await out.write(chunk)
    await out.close()
    assert (tmp_path / "f.part").read_bytes() == b"".join(chunks)
    assert out.written == 300 * 65_536
    # About one write per batch, never one per chunk; none of them on the loop's thread.
    assert len(writes) == -(-out.written // _sink.BATCH)
    assert threading.main_thread().name not in {name for _, name in writes}


async def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "taken"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        await FileSink.create(path)
    assert path.read_bytes() == b"mine"


async def test_a_write_error_is_raised_and_discard_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, chunks: list[bytes]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_sink, "_write_all", full)
    before = _fds()
    out = await FileSink.create(tmp_path / "f.part")
    with pytest.raises(OSError, match="No space left"):
        for _ in range(3):
            await out.write(b"x" * _sink.BATCH)  # the second batch waits for the first
    await out.discard()
    assert not (tmp_path / "f.part").exists()
    assert _fds() == before


async def test_cancelled_during_a_write_the_file_goes_once_the_write_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    real = _sink._write_all

    def slow(fd: int, chunks: list[bytes]) -> None:
        started.set()
        release.wait(10)
        real(fd, chunks)

    monkeypatch.setattr(_sink, "_write_all", slow)
    before = _fds()
    out = await FileSink.create(tmp_path / "f.part")

    async def save() -> None:
        try:
            for _ in range(3):
                await out.write(b"x" * _sink.BATCH)
        except BaseException:
            await out.discard()
            raise

    task = asyncio.ensure_future(save())
    await asyncio.to_thread(started.wait, 10)
    await asyncio.sleep(0.01)  # the task now waits for the write in flight
    task.cancel()
    await asyncio.sleep(0.05)
    # The thread still writes: the file must not be closed under it.
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert not (tmp_path / "f.part").exists()
    assert _fds() == before


async def test_restart_empties_the_file(tmp_path: Path) -> None:
    out = await FileSink.create(tmp_path / "f.part")
    await out.write(b"o" * _sink.BATCH)  # written (or being written) already
    await out.write(b"old bytes " * 1000)  # still in the batch
    await out.restart()
    await out.write(b"new")
    await out.close()
    assert (tmp_path / "f.part").read_bytes() == b"new"
    assert out.written == 3


async def test_writes_run_in_the_library_s_own_writer_threads(tmp_path: Path) -> None:
    # Not the loop's default executor, where aiohttp resolves host names: a slow disk
    # must not hold up new connections.
    names: set[str] = set()
    real = _sink._write_all

    def spy(fd: int, chunks: list[bytes]) -> None:
        names.add(threading.current_thread().name)
        real(fd, chunks)

    default_executor_busy = threading.Event()
    loop = asyncio.get_running_loop()
    blocker = loop.run_in_executor(None, default_executor_busy.wait, 10)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_sink, "_write_all", spy)
            out = await FileSink.create(tmp_path / "f.part")
            await out.write(b"x" * _sink.BATCH)
            await out.close()
    finally:
        default_executor_busy.set()
        await blocker
    assert names and all(name.startswith("replicate_async-writer") for name in names)


async def test_cancelled_while_opening_the_file_goes_once_it_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    real_open = os.open

    def slow_open(path: object, flags: int, mode: int = 0o777) -> int:
        started.set()
        release.wait(10)
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", slow_open)
    before = _fds()
    task = asyncio.ensure_future(FileSink.create(tmp_path / "f.part"))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    for _ in range(200):  # the thread opens it, then the loop closes and removes it
        await asyncio.sleep(0.01)
        if not (tmp_path / "f.part").exists() and _fds() == before:
            break
    assert not (tmp_path / "f.part").exists()
    assert _fds() == before


async def test_an_error_in_the_writer_thread_is_raised_with_its_type(tmp_path: Path) -> None:
    def boom() -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError, match="Permission denied"):
        await _sink.in_writer(boom)
    assert await _sink.in_writer(lambda: 42) == 42


async def test_downloads_at_once_share_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = _sink._write_all

    def spy(fd: int, chunks: list[bytes]) -> None:
        sizes.append(sum(map(len, chunks)))
        real(fd, chunks)

    monkeypatch.setattr(_sink, "_write_all", spy)
    monkeypatch.setattr(_sink, "_open", 0)  # whatever other tests left open
    assert _sink.batch_size() == _sink.BATCH  # alone: a whole batch
    assert _sink.read_ahead(1 << 20) == 1 << 20
    sinks = [await FileSink.create(tmp_path / f"{i}.part") for i in range(16)]
    each = _sink.BUDGET // 16 // 2
    assert _sink.batch_size() == each
    assert _sink.read_ahead(1 << 20) == each // 2
    chunk = b"x" * 65_536
    for _ in range(each // len(chunk)):
        await sinks[0].write(chunk)
    assert sizes == [each]  # the batch went out at its share, not at BATCH
    many = [await FileSink.create(tmp_path / f"m{i}.part") for i in range(200)]
    assert _sink.batch_size() == _sink.MIN_BATCH  # never below the floor
    assert _sink.read_ahead(1 << 20) == _sink.MIN_READ_AHEAD
    for sink in many:
        await sink.discard()
    for sink in sinks[1:]:
        await sink.close()
    # One left: its next batch is a whole one again.
    for _ in range(_sink.BATCH // len(chunk)):
        await sinks[0].write(chunk)
    assert sizes[-1] == _sink.BATCH
    await sinks[0].close()
    dropped = await FileSink.create(tmp_path / "dropped.part")
    del dropped  # a bug, but its share comes back
    import gc

    gc.collect()
    assert _sink._open == 0


@pytest.mark.skipif(
    not platform.libc_ver()[0].startswith("glibc")
    or any(k.startswith(("MALLOC_", "GLIBC_TUNABLES")) for k in os.environ),
    reason="glibc's heap, with its own thresholds",
)
def test_after_the_first_download_the_heap_keeps_a_batch() -> None:
    # In a fresh process: holding 4 MiB of 256 KiB blocks and freeing them at once (what
    # a batch is) gave the memory back to the kernel each time, and every next batch
    # faulted it in again; after the hint, the allocator keeps it.
    code = """
import resource
from replicate_async import _sink
def churn():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        held = [b"x" * (256 * 1024) for _ in range(16)]
        del held
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
churn()
without = churn()
_sink._steady_heap()
churn()
print(without, churn())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    without, hinted = map(int, out.stdout.split())
    assert without > 10_000  # 50 batches of 1,024 pages each
    assert hinted < 100


def test_a_batch_is_written_in_pieces_of_at_most_write_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []  # (buffers, bytes) per system call
    real_write = os.write
    rng = random.Random(7)

    def take_some(fd: int, data: bytes) -> int:
        # Take less than offered, often mid-buffer, as POSIX allows: the rest must follow.
        return real_write(fd, data[: rng.randint(1, len(data))])

    def write(fd: int, data: memoryview) -> int:
        calls.append((1, len(data)))
        return take_some(fd, bytes(data))

    def writev(fd: int, views: list[memoryview]) -> int:
        calls.append((len(views), sum(map(len, views))))
        return take_some(fd, b"".join(views))

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "writev", writev)
    # Tiny chunks (gathered), empty ones, one bigger than a piece (split), odd sizes.
    chunks = [bytes([i % 256]) for i in range(3000)] + [b""]
    chunks += [b"A" * (1024 * 1024 + 7), b"", b"B" * 100_000, b"C" * 300_000]
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        _sink._write_all(fd, chunks)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(chunks)
    assert all(0 < size <= _sink.WRITE_MOST for _, size in calls)
    assert all(buffers <= 1024 for buffers, _ in calls)
    # Not one call per tiny chunk (3,000 of them): they went together.
    assert max(buffers for buffers, _ in calls) > 1000
    assert len(calls) < 300


def test_a_write_that_takes_nothing_is_an_error_not_a_spin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="took none"):
            _sink._write_all(fd, [b"x" * 10])
    finally:
        os.close(fd)
