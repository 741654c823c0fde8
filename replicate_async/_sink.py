"""Writing a download to disk off the event loop, in few hand-offs to a thread.

A download arrives as many chunks of 16-256 KiB. Handing each one to a thread (what an
aiofiles loop does) costs a wake-up of a thread and of the loop per chunk; writing on
the loop thread blocks every other task for as long as the disk takes. :class:`FileSink`
gathers chunks (without copying them) into a batch of about :data:`BATCH` bytes and
hands the batch to a small pool of writer threads shared by every download
(:data:`WRITERS` at most), however many run; the thread writes it in pieces of
:data:`WRITE_MOST`. The download waits for its batch's write: meanwhile the loop goes
on reading the socket into aiohttp's buffer (the download's read-ahead), so the network
and the disk still overlap, and memory stays at one batch and the read-ahead, however
big the file. Saves running at once share :data:`BUDGET` for their batches and
read-ahead (:func:`batch_size`, :func:`read_ahead`): 100 saves at once grew the
process by 84 MB in all, not by 100 full batches (162 MB before the budget).

The pool is the library's own, not the loop's default executor: aiohttp resolves host
names in that one, so a slow disk cannot hold up new connections; and a write's end
reaches the loop as one ``call_soon_threadsafe``, which costs half of what
``run_in_executor``'s future chaining does (15-23 µs against 49 µs a hand-off on one
core, measured).

Measured (benchmarks/files.py, one core for the client):

- Writing batches while the next one fills, instead of waiting, was slower: the writer
  thread then waits up to the interpreter's switch interval (5 ms) for the GIL.
- Big batches win twice: a hand-off costs about 7 context switches (1 MiB batches spent
  7,400 a GiB, 4 MiB ones 2,000), and while a batch is written the socket's data piles
  up in the kernel, so the loop then reads it in fewer, larger pieces.
- But a batch is not one system call. On Linux 6.x a write's size sets the size of the
  page cache's folios, so a 4 MiB write takes its pages in large blocks; on a VM that
  gives free memory back to its host (free page reporting) those are the blocks the
  host must provide again, page by page: 4 MiB writes ran at 320 MB/s there, 64-256 KiB
  ones at 600-1,200 MB/s (with memory backed, every size from 64 KiB up took 4-6 GB/s).
  In 256 KiB pieces a batch costs a few more system calls and nothing else.
- The first save tells the C allocator what size of blocks the process works with
  (:func:`_steady_heap`): without it, every batch the writer handed back was returned
  to the kernel and faulted in again for the next one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["BATCH", "BUDGET", "WRITERS", "FileSink", "batch_size", "in_writer", "read_ahead"]

T = TypeVar("T")

#: the bytes a download gathers before one hand-off to a writer thread (the last chunk
#: may go past it; written in pieces of WRITE_MOST). Measured on one core at 1 GiB:
#: 1 MiB batches ran at 105% of a plain write loop, 2 MiB at 118%, 4 MiB at 120%,
#: 8 MiB at 117%; 256 KiB lost a fifth of the throughput in hand-offs to the thread.
BATCH = 4 * 1024 * 1024
#: the least, however many downloads share the budget
MIN_BATCH = 256 * 1024
#: the least read-ahead (aiohttp's default)
MIN_READ_AHEAD = 64 * 1024
#: what the batches and read-ahead of all saves running at once hold together, past
#: which each save keeps its floors (MIN_BATCH, MIN_READ_AHEAD): each open save's share
#: is half batch, half read-ahead (which aiohttp holds twice). One save gets a whole
#: BATCH, 8 get 2 MiB batches, 100 get 256 KiB batches and 82 KiB of read-ahead (about
#: 41 MiB in all: the floors), from 128 on, 64 KiB of read-ahead
BUDGET = 32 * 1024 * 1024
#: the most one write system call takes (about the size of aiohttp's chunks, which are
#: grouped or split to it), not a whole batch: see the module docstring
WRITE_MOST = 256 * 1024
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


#: the block freed once so the allocator keeps a download's memory (see _steady_heap)
_HEAP_HINT = 2 * BATCH
_heap_hinted = False

_open = 0  # sinks open in this process, sharing BUDGET
# Event loops may run in several threads; reentrant because FileSink.__del__ takes it,
# and a collection can run anywhere.
_open_lock = threading.RLock()


def _share() -> int:
    """An open save's share of :data:`BUDGET`."""
    return BUDGET // max(1, _open)


def batch_size() -> int:
    """The batch of an open save: half its share, within bounds."""
    return max(MIN_BATCH, min(BATCH, _share() // 2))


def read_ahead(most: int) -> int:
    """How far a download reads its socket ahead: a quarter of a save's share.

    aiohttp holds up to twice it. Plain iteration (``chunks()``) is not counted among
    the saves but takes the same share: with many saves running, it reads ahead less.
    """
    return max(MIN_READ_AHEAD, min(most, _share() // 4))


def _count_open(change: int) -> None:
    global _open
    with _open_lock:
        _open += change


def _forked() -> None:
    # A forked child has none of its parent's sinks (nor a lock another thread held).
    global _open, _open_lock
    _open, _open_lock = 0, threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _steady_heap() -> None:
    """Free one block of two batches' size, once a process, before the first save.

    glibc's malloc gives the free top of its heap back to the kernel whenever it grows
    past a threshold, which it sets by itself at twice the largest block the program has
    freed so far (128 KiB at start, 64 MiB at most; fixed instead when the user sets it,
    and then this does nothing). A download holds a batch and its read-ahead, aiohttp's
    chunks of at most 256 KiB, and frees a batch's worth at once, so with the threshold
    at aiohttp's 256 KiB receive buffer every batch went back to the kernel and came
    again as fresh pages: 18-50 page faults a MiB, 15-20% of a download's CPU
    (measured, benchmarks/files.py). Freeing one larger block is the sign glibc waits
    for; afterwards it keeps up to 16 MiB of free heap instead of returning it. This is
    the allocator's own adaptation, not a setting: any program that frees an 8 MiB
    buffer gets it. ``bytes(n)`` comes from calloc, which for a block this size maps
    zeroed pages without touching them (22 µs, one page fault); other allocators
    simply free it.
    """
    global _heap_hinted
    if not _heap_hinted:
        _heap_hinted = True
        block = bytes(_HEAP_HINT)
        del block


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
    """Write every byte of ``chunks`` at the file's offset, in writes of WRITE_MOST.

    One batch, several system calls (in a worker thread): small chunks are gathered
    into one ``writev``, big ones split, so each call takes at most WRITE_MOST bytes
    and _IOV_MAX buffers (see the module's docstring for why not the whole batch).
    """
    group: list[memoryview] = []
    size = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            piece = view[: WRITE_MOST - size]
            group.append(piece)
            size += len(piece)
            view = view[len(piece) :]
            if size == WRITE_MOST or len(group) == _IOV_MAX:
                _write_group(fd, group)
                group, size = [], 0
    if group:
        _write_group(fd, group)


def _write_group(fd: int, views: list[memoryview]) -> None:
    if len(views) > 1 and not hasattr(os, "writev"):  # Windows: one joined write
        views = [memoryview(b"".join(views))]
    while views:
        written = os.write(fd, views[0]) if len(views) == 1 else os.writev(fd, views)
        if written <= 0:  # nothing taken and no error: trying again would spin forever
            raise OSError(errno.EIO, "the file took none of a write")
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

    __slots__ = ("_batch", "_counted", "_fd", "_in_flight", "_limit", "_size", "path", "written")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._batch: list[bytes] = []
        self._size = 0
        self._limit = BATCH  # this batch's size: the share when it started
        self._in_flight: asyncio.Future[None] | None = None
        #: bytes handed to ``write`` since the file was created (or restarted)
        self.written = 0
        # Counted last, so that whatever stops __init__ cannot leave a share taken.
        self._counted = False
        _count_open(1)
        self._counted = True

    @classmethod
    async def create(cls, path: Path) -> FileSink:
        """Create ``path`` (exclusively: an existing file is an error, never overwritten)."""
        _steady_heap()
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
        if not self._batch:  # a new batch: other downloads may have started or ended
            self._limit = batch_size()
        self._batch.append(chunk)
        self._size += len(chunk)
        self.written += len(chunk)
        if self._size >= self._limit:
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
        self._uncount()
        await in_writer(os.close, fd)

    async def discard(self) -> None:
        """Close and remove the file, whatever state it is in (also when cancelled)."""
        self._batch, self._size = [], 0
        self._uncount()
        in_flight = self._in_flight
        if in_flight is not None and not in_flight.done():
            # A thread cannot be stopped: the file is closed once its write is done.
            with contextlib.suppress(BaseException):
                await asyncio.shield(in_flight)
            if not in_flight.done():  # cancelled again while waiting: clean up later
                in_flight.add_done_callback(lambda _: self._remove())
                return
        self._remove()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            _count_open(-1)

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
        # Dropped without close() or discard() (a bug): do not leak the descriptor, nor
        # keep the budget's share.
        if getattr(self, "_counted", False):
            self._uncount()
        if self._fd >= 0 and (self._in_flight is None or self._in_flight.done()):
            with contextlib.suppress(OSError):
                _close(self._fd)
