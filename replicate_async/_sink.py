"""Writing a download to disk off the event loop, in few large writes.

A download arrives as many chunks of 16-256 KiB. Handing each one to a thread (what an
aiofiles loop does) costs a wake-up of a thread and of the loop per chunk; writing on
the loop thread blocks every other task for as long as the disk takes. :class:`FileSink`
gathers chunks (without copying them) into a batch of about :data:`BATCH` bytes and
writes the batch with one ``writev`` in a small pool of writer threads shared by every
download (:data:`WRITERS` at most), however many run. The download waits for its
batch's write: meanwhile the loop goes on reading the socket into aiohttp's buffer (the
download's read-ahead), so the network and the disk still overlap, and memory stays at
one batch and the read-ahead, however big the file.

The pool is the library's own, not the loop's default executor: aiohttp resolves host
names in that one, so a slow disk cannot hold up new connections; and a write's end
reaches the loop as one ``call_soon_threadsafe``, which costs half of what
``run_in_executor``'s future chaining does (15-23 µs against 49 µs a hand-off on one
core, measured): at 1 GB/s a hand-off per MiB is 3% of the time.

Measured (benchmarks/files.py): writing batches while the next one fills, instead of
waiting, was slower on a machine whose cores are all busy: the writer thread then
waits up to the interpreter's switch interval (5 ms) for the GIL at every batch, and
bigger batches to amortize that cost more in fresh memory than they saved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["BATCH", "WRITERS", "FileSink", "in_writer"]

T = TypeVar("T")

#: bytes gathered before one write (measured: 256 KiB cost a fifth of the throughput in
#: hand-offs to the thread; 4 MiB was no faster than 1 and now and then much slower)
BATCH = 1024 * 1024
#: most buffers one writev takes (POSIX guarantees at least 16; Linux takes 1024)
_IOV_MAX = 1024
_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)


#: the most writer threads, for all downloads of the process together
WRITERS = min(16, (os.cpu_count() or 1) + 4)

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _writers() -> concurrent.futures.ThreadPoolExecutor:
    """The process's writer pool, made on first use (and again in a forked child)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            # A forked child inherits the object but none of its threads: start afresh.
            _pool = concurrent.futures.ThreadPoolExecutor(WRITERS, "replicate_async-writer")
            _pool_pid = os.getpid()
        return _pool


def in_writer(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run ``fn(*args)`` in a writer thread; the future is settled on the calling loop.

    For every blocking call on a download's file (open, write, close, rename).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (fn(*args), None)
        except BaseException as error:  # handed to the loop, raised where it is awaited
            outcome = (None, error)
        try:
            loop.call_soon_threadsafe(_settle_future, future, *outcome)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    _writers().submit(run)
    return future


def _settle_future(future: asyncio.Future[T], result: T, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """Write every byte of ``chunks`` at the file's offset (in a worker thread)."""
    if not hasattr(os, "writev"):  # Windows: one joined write
        data = memoryview(b"".join(chunks))
        while data:
            data = data[os.write(fd, data) :]
        return
    views = [memoryview(chunk) for chunk in chunks]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        # A regular file takes all of it, but POSIX allows less: carry on from there.
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _forget(path: Path, opened: asyncio.Future[int]) -> None:
    """Close and remove a file whose opening finished after its caller gave up."""
    if opened.cancelled() or opened.exception() is not None:
        return
    with contextlib.suppress(OSError):
        os.close(opened.result())
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _restart(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)


class FileSink:
    """A new file (it must not exist), written in batches by a worker thread.

    ``await write(chunk)`` returns at once, except when the chunk completes a batch: it
    then returns once the batch is written (the download reads no faster than the disk
    writes, and a write error, a full disk, is raised there). The bytes are in the file
    (in the OS's cache) only after ``await close()``. ``discard()`` removes the file,
    after the write in flight, if any, has finished (a thread cannot be stopped).
    """

    __slots__ = ("_batch", "_fd", "_in_flight", "_size", "path", "written")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._batch: list[bytes] = []
        self._size = 0
        self._in_flight: asyncio.Future[None] | None = None
        #: bytes handed to ``write`` since the file was created (or restarted)
        self.written = 0

    @classmethod
    async def create(cls, path: Path) -> FileSink:
        """Create ``path`` (exclusively: an existing file is an error, never overwritten)."""
        # Opening can block (a slow or network disk): not on the loop thread either.
        opening = in_writer(os.open, path, _FLAGS, 0o666)
        try:
            fd = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread opens the file all the same: close and remove it when it does.
            opening.add_done_callback(lambda done: _forget(path, done))
            raise
        return cls(path, fd)

    async def write(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._size += len(chunk)
        self.written += len(chunk)
        if self._size >= BATCH:
            await self._flush()

    async def restart(self) -> None:
        """Empty the file: what was written is to be written again from its first byte."""
        self._batch, self._size, self.written = [], 0, 0
        await self._settle()
        await in_writer(_restart, self._fd)

    async def close(self) -> None:
        """Write what is left and close the file."""
        await self._flush()
        fd, self._fd = self._fd, -1
        await in_writer(os.close, fd)

    async def discard(self) -> None:
        """Close and remove the file, whatever state it is in (also when cancelled)."""
        self._batch, self._size = [], 0
        in_flight = self._in_flight
        if in_flight is not None and not in_flight.done():
            # A thread cannot be stopped: the file is closed once its write is done.
            with contextlib.suppress(BaseException):
                await asyncio.shield(in_flight)
            if not in_flight.done():  # cancelled again while waiting: clean up later
                in_flight.add_done_callback(lambda _: self._remove())
                return
        self._remove()

    def _remove(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._size = self._batch, [], 0
        self._in_flight = in_writer(_write_all, self._fd, batch)
        await self._settle()

    async def _settle(self) -> None:
        """Wait for the write in flight (raising its error, if it failed)."""
        in_flight = self._in_flight
        if in_flight is None:
            return
        try:
            # Shielded: a cancelled wait must not mark the write done while its thread
            # still writes (discard() would close the file under it).
            await asyncio.shield(in_flight)
        finally:
            if in_flight.done():
                self._in_flight = None

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r}, written={self.written})"

    def __del__(self, _close: Any = os.close) -> None:
        # Dropped without close() or discard() (a bug): do not leak the descriptor.
        if self._fd >= 0 and (self._in_flight is None or self._in_flight.done()):
            with contextlib.suppress(OSError):
                _close(self._fd)
