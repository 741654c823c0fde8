"""A ``run_many`` job's journal: JSON lines on disk that let a job survive its process.

A bulk job runs for minutes or hours, and processes die: deploys, out-of-memory kills,
a laptop lid. Without a record, running the job again creates every prediction again
(paying twice) and the first run's results are gone. The journal records, per input
index, what was done, each line written (to the OS) before what it records is acted
upon, so that a process killed at any instant leaves a journal from which nothing is
created twice:

.. code-block:: text

    {"journal":"replicate_async","version":1,"ref":"owner/name","created_at":"..."}
    {"i":0,"fp":"sha256:3f1...","sent":1765011234.56,"input":{...}}  a create goes out
    {"i":0,"id":"qv2kx7..."}                              it was created: this prediction
    {"i":0,"done":{"id":"qv2kx7...","status":"succeeded","output":...}}   its end
    {"i":0,"taken":true}                                  the caller took the result
    {"i":3,"none":true}    nothing stands: the create was refused (a 422), or the job
                           canceled the prediction when stopped: created again next run

``fp`` is a fingerprint of the input (sha256 of its canonical JSON; files by path or
content digest), so a journal that does not belong to the job is refused instead of
mixed in. Running the job again with the same journal:

- inputs whose result is in it are not run again: the result is replayed from the line
  (with ``replay=False``, results the caller took are skipped);
- inputs created but not finished are adopted and waited for;
- inputs whose create was sent but whose reply never came (the process died in
  between) are looked for among the account's recent predictions, as the client looks
  for any create whose outcome it did not hear (same model and input, created since
  the send, not another input's), before anything new is created, and adopted if
  found, created if not;
- the rest are created.

``input`` in a ``sent`` line is the input as sent (files as their upload URLs): what
that search compares.

The "taken" line is written when the caller asks for the next result (or the run
ends): a result the caller was handed but not done with when its process died is handed
over again. Delivery to the caller is at least once; creation exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any

import attrs

from ._sink import in_writer
from .errors import ReplicateError

__all__ = ["Journal", "JournalEntry", "JournalError", "fingerprint"]

_NAME = "replicate_async"
_VERSION = 1


class JournalError(ReplicateError):
    """A journal that cannot serve this job: another job's, in use, or damaged."""


def fingerprint(value: Any) -> str:
    """A stable digest of an input: its canonical JSON, files by path or content."""
    text = json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, PurePath):
        return {"$path": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": hashlib.sha256(bytes(value)).hexdigest()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    # A file object: by its name, if it has one (it cannot be read twice to digest it).
    return {"$object": type(value).__name__, "name": str(getattr(value, "name", ""))}


@attrs.define
class JournalEntry:
    """What the journal knows of one input."""

    fp: str | None = None
    #: Unix time of the last create sent for it, if any
    sent: float | None = None
    #: the input as sent (files as the URLs of their uploads)
    sent_input: Any = None
    id: str | None = None
    #: the prediction's last state, as the API gave it, once it ended
    done: dict[str, Any] | None = None
    taken: bool = False


class Journal:
    """An append-only JSON-lines file recording a ``run_many`` job (see the module's text).

    ``run_many(..., journal="job.jsonl")`` makes one from a path. One process at a time:
    a second one opening the same journal is refused (an advisory lock, where the
    system has them). ``fsync=True`` also asks the disk to keep each line before going
    on (survives a power cut, not only a killed process; costs a disk flush a line).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.entries: dict[int, JournalEntry] = {}
        self._lock = threading.Lock()
        self._fd = -1
        self._writing = 0  # appends in flight: close() waits for them to land
        self._closing = False
        self._ref: str | None = None

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, entries={len(self.entries)})"

    # -- opening -----------------------------------------------------------------------

    async def open(self, ref: str) -> None:
        """Read what is there, check it is this job's, and start appending."""
        if self._fd >= 0:
            raise JournalError(f"journal {self.path} is already open (one job at a time)")
        opening = asyncio.ensure_future(in_writer(self._open_and_read, ref))
        try:
            fd = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread opens (and locks) the file anyway: close it when it has.
            opening.add_done_callback(_close_opened)
            raise
        self._fd, self._closing = fd, False
        self._ref = ref

    def _open_and_read(self, ref: str) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o644)
        try:
            _lock(fd, self.path)
            data = _read_all(fd)
            lines = data.split(b"\n")
            # A line cut short by a death mid-write: the last, without its newline.
            if lines and lines[-1]:
                os.ftruncate(fd, len(data) - len(lines[-1]))
            lines = [line for line in lines[:-1] if line.strip()]
            if not lines:
                header = {
                    "journal": _NAME,
                    "version": _VERSION,
                    "ref": ref,
                    "created_at": datetime.now(timezone.utc).isoformat(),
                }
                line = json.dumps(header, separators=(",", ":")) + "\n"
                os.write(fd, line.encode())
                if self.fsync:
                    os.fsync(fd)
                return fd
            self._load(lines, ref)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _load(self, lines: list[bytes], ref: str) -> None:
        try:
            header = json.loads(lines[0])
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("journal") != _NAME:
            raise JournalError(
                f"{self.path} is not a replicate_async journal (its first line is not one's "
                "header); pass a new path, or the journal of this job."
            )
        if header.get("version") != _VERSION:
            raise JournalError(
                f"{self.path} is a version {header.get('version')} journal; this "
                f"replicate_async reads version {_VERSION}."
            )
        if header.get("ref") != ref:
            raise JournalError(
                f"{self.path} is the journal of a job running {header.get('ref')!r}, not "
                f"{ref!r}: results of one model are not another's. Use another path."
            )
        for number, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
                index = record["i"]
                if not isinstance(index, int) or index < 0:
                    raise ValueError("no input index")
            except (ValueError, KeyError, TypeError):
                raise JournalError(
                    f"{self.path}, line {number}, is damaged ({line[:80]!r}); the journal "
                    "cannot be trusted past it. Fix or remove that line."
                ) from None
            entry = self.entries.setdefault(index, JournalEntry())
            if "fp" in record:
                entry.fp = record["fp"]
            if "sent" in record:
                entry.sent = float(record["sent"])
                entry.sent_input = record.get("input")
            if "id" in record:
                entry.id = record["id"]
                entry.sent_input = None  # needed only to look for a lost create
            if record.get("none"):
                # Nothing of it stands (refused, or canceled by the job): create it again.
                entry.sent = entry.sent_input = entry.id = None
            if "done" in record:
                if not isinstance(record["done"], dict):
                    raise JournalError(
                        f"{self.path}, line {number}, has a result that is not a prediction "
                        "object; the journal cannot be trusted past it."
                    )
                entry.done = record["done"]
                entry.id = entry.id or record["done"].get("id")
                entry.sent_input = None
            if record.get("taken"):
                entry.taken = True

    # -- what it knows -----------------------------------------------------------------

    def check(self, index: int, fp: str) -> JournalEntry | None:
        """The entry of input ``index``; a :class:`JournalError` if its input differs."""
        entry = self.entries.get(index)
        if entry is not None and entry.fp is not None and entry.fp != fp:
            raise JournalError(
                f"input {index} of this job is not the input {index} {self.path} recorded "
                f"(fingerprints {fp[:19]}... and {entry.fp[:19]}...): the journal belongs to "
                "another job, or the inputs changed. Use a new journal for new inputs."
            )
        return entry

    def ids(self) -> set[str]:
        """Every prediction id the journal knows (none may be adopted for another input)."""
        return {e.id for e in self.entries.values() if e.id is not None}

    def lost(self) -> dict[int, JournalEntry]:
        """Inputs whose create was sent and never answered (the process died first)."""
        return {
            index: entry
            for index, entry in self.entries.items()
            if entry.sent is not None and entry.id is None and entry.done is None
        }

    # -- recording ---------------------------------------------------------------------

    async def sending(
        self, index: int, fp: str, sent_input: Any, *, at: float | None = None
    ) -> None:
        """A create for input ``index`` is about to be sent (recorded before it is).

        ``at``: the Unix time it goes (the job's client clock; now by default).
        """
        sent = round(time.time() if at is None else at, 3)
        await self._append({"i": index, "fp": fp, "sent": sent, "input": sent_input})
        entry = self.entries.setdefault(index, JournalEntry())
        entry.fp, entry.sent, entry.sent_input = fp, sent, sent_input

    async def created(self, index: int, prediction_id: str, fp: str | None = None) -> None:
        """Input ``index`` has prediction ``prediction_id`` (recorded before it is waited on)."""
        record: dict[str, Any] = {"i": index, "id": prediction_id}
        if fp is not None:
            record["fp"] = fp
        await self._append(record)
        entry = self.entries.setdefault(index, JournalEntry())
        entry.id = prediction_id
        entry.sent_input = None
        if fp is not None:
            entry.fp = fp

    async def nothing(self, index: int) -> None:
        """Nothing of input ``index`` stands: the next run creates it again.

        Its create was refused, or the job canceled its prediction.
        """
        await self._append({"i": index, "none": True})
        entry = self.entries.setdefault(index, JournalEntry())
        entry.sent = entry.sent_input = entry.id = None

    async def done(self, index: int, prediction: dict[str, Any]) -> None:
        """Input ``index``'s prediction ended in this state."""
        await self._append({"i": index, "done": prediction})
        entry = self.entries.setdefault(index, JournalEntry())
        entry.done = prediction

    async def taken(self, index: int) -> None:
        """The caller took input ``index``'s result (it asked for the next one)."""
        # Done with in this run: forgotten, so that memory holds only what is in flight.
        entry = self.entries.pop(index, None)
        if entry is None or not entry.taken:
            await self._append({"i": index, "taken": True})

    async def _append(self, record: dict[str, Any]) -> None:
        # Encoded here: a value JSON cannot hold fails in the caller, before any write.
        try:
            line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        except (TypeError, ValueError) as error:
            raise JournalError(
                f"cannot record input {record['i']} in {self.path}: {error}. A journaled "
                "job's inputs must be JSON values (files as paths, bytes or file objects)."
            ) from None
        self._writing += 1
        try:
            await in_writer(self._write, line.encode())
        except OSError as error:
            raise JournalError(
                f"cannot write to journal {self.path} ({error.strerror or error}); the job "
                "stopped rather than act on what it could not record. Free the disk and "
                "run it again with the same journal."
            ) from None
        finally:
            self._writing -= 1
            if self._closing and not self._writing:
                self._close_now()

    def _write(self, data: bytes) -> None:
        # Under the lock: close() never takes the descriptor from under a write (a closed
        # number may be reused by another file at once).
        with self._lock:
            if self._fd < 0:
                raise JournalError(f"journal {self.path} is closed")
            view = memoryview(data)
            # One write of the whole line as a rule; with O_APPEND lines never mix.
            while view:
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fsync(self._fd)

    def close(self) -> None:
        """Stop appending (and let another process open it) once the writes in flight land.

        A line being written when the job stops (a prediction's id, whose create went
        through) is kept, not lost: the file closes after it.
        """
        if self._writing:
            self._closing = True
            return
        self._close_now()

    def _close_now(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _close_opened(opening: asyncio.Future[int]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        with contextlib.suppress(OSError):
            os.close(opening.result())


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; one process at a time is on you
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise JournalError(
            f"journal {path} is in use by another process (or another run_many of this "
            "one): a job's journal serves one run at a time."
        ) from None
