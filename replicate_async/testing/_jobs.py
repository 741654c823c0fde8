"""The emulator's state with no HTTP: models, predictions and their lifecycle.

A prediction is created ``starting``, turns ``processing`` after the emulator's start
delay, runs its model's Python function and ends ``succeeded`` or ``failed``; a cancel
ends it ``canceled``, a ``Cancel-After`` deadline ``canceled`` (or ``aborted`` if it never
started). Everything runs on the emulator's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import secrets
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs

from ._outputs import OutputStore
from ._schema import Input, InputProblem, cog_schema, declared_inputs, output_kind, validate_input
from ._state import Hosts
from ._uploads import UploadStore, file_digest
from ._wire import decode_data_uri, format_time, jsonb_order, new_id

__all__ = ["InputError", "Job", "JobStore", "ModelFunction", "ModelSpec", "RunContext"]

#: A model: ``fn(input, ctx)``, sync or async, returning the output (JSON-able).
ModelFunction = Callable[[dict[str, Any], "RunContext"], Any]


class InputError(Exception):
    """Inputs that do not validate: the create is answered with 422, listing every problem."""

    def __init__(self, problems: list[InputProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.description}" for p in problems))
        self.problems = problems


def _now() -> datetime:
    return datetime.now(timezone.utc)


def timestamp(value: datetime | None) -> str | None:
    """Format like the API: microseconds and a ``Z``."""
    return None if value is None else format_time(value)


def version_id_for(ref: str) -> str:
    """A stable 64-hex version id for an emulator model."""
    return hashlib.sha256(f"replicate-async-emulator:{ref}".encode()).hexdigest()


@attrs.define(kw_only=True)
class ModelSpec:
    """A runnable version of a model: its function, declared inputs and output.

    ``inputs`` maps each input name to an :class:`~._schema.Input` (or the older
    ``(json_type, default)`` pair; a default of ``...`` makes it required); ``None``
    accepts any input unchecked. ``output`` is the type the function returns (``str``,
    ``Path``, ``list[Path]``, ``Iterator[str]``, ``ConcatenateIterator[str]``, a dict of
    name to type, or ``Any``). Both become the version's Cog schema. A model can stream
    when its output is an iterator (a text stream) or holds files (a file stream);
    ``streams`` and ``files`` say so for a model that declares no output.
    ``schema`` publishes a given OpenAPI document instead (a recorded one, say); the
    emulator then checks inputs only as ``inputs`` declares.
    """

    owner: str
    name: str
    fn: ModelFunction
    inputs: dict[str, Input] | None = attrs.field(default=None, converter=declared_inputs)
    output: Any = Any
    description: str | None = None
    streams: bool = False
    files: bool = False
    version: str = ""
    created_at: datetime = attrs.field(factory=_now)
    cog_version: str = "0.16.9"
    schema: dict[str, Any] | None = None

    def __attrs_post_init__(self) -> None:
        if not self.version:
            self.version = version_id_for(self.ref)
        kind = output_kind(self.output)  # also checks the declaration early
        self.streams = self.streams or kind.iterator or kind.files
        self.files = self.files or kind.files

    @property
    def ref(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"

    def validate(self, data: Any) -> dict[str, Any]:
        """``data`` with defaults filled; raise :class:`InputError` listing every problem."""
        result, problems = validate_input(self.inputs, data)
        if problems:
            raise InputError(problems)
        return result

    def openapi_schema(self) -> dict[str, Any]:
        """The Cog schema of this version (``GET .../versions/{id}``)."""
        if self.schema is not None:
            return self.schema
        schema: dict[str, Any] = jsonb_order(cog_schema(self.ref, self.inputs, self.output))
        return schema


class RunContext:
    """What a model function gets besides its input: logs, partial output, files."""

    def __init__(self, job: Job, store: JobStore) -> None:
        self._job = job
        self._store = store

    @property
    def prediction_id(self) -> str:
        """The id of the prediction being run."""
        return self._job.id

    def log(self, line: str) -> None:
        """Append a line to the prediction's logs (and send it as a ``logs`` event)."""
        text = line if line.endswith("\n") else line + "\n"
        self._job.logs += text
        self._job.add_event("logs", text.rstrip("\n"))
        self._store.notify(self._job, "logs")

    def emit(self, item: Any) -> None:
        """Append to a list output as it is produced (an ``output`` event if streaming)."""
        if not isinstance(self._job.output, list):
            self._job.output = []
        self._job.output.append(item)
        self._job.add_event("output", item if isinstance(item, str) else json.dumps(item))
        self._store.notify(self._job, "output")

    def file(
        self,
        name: str,
        size: int,
        *,
        seed: int | None = None,
        content_type: str = "application/octet-stream",
    ) -> str:
        """Publish a file of ``size`` deterministic bytes on the delivery host; its URL.

        The bytes are generated when downloaded, never held in memory.
        """
        return self._store.outputs.publish(name, size, seed=seed, content_type=content_type)

    async def sleep(self, seconds: float) -> None:
        """Sleep (cancellable, like a real model being stopped)."""
        await asyncio.sleep(seconds)

    async def digest(self, value: Any) -> tuple[int, str] | None:
        """(size, sha256) of a file input, or None if ``value`` is not one.

        A file input reaches a model as the URL of an upload (``.../v1/files/{id}``), a
        ``data:`` URI, or an output URL of this emulator; files are read in chunks.
        """
        if not isinstance(value, str):
            return None
        if value.startswith("data:"):
            data = decode_data_uri(value)
            return len(data), hashlib.sha256(data).hexdigest()
        upload = self._store.uploads.resolve(value)
        if upload is not None:
            return await asyncio.to_thread(file_digest, upload.path)
        return None


@attrs.define(kw_only=True, eq=False)
class Job:
    """One prediction (or training) as the server holds it."""

    id: str
    kind: str  # "prediction" or "training"
    model: ModelSpec
    input: dict[str, Any]
    token: str
    status: str = "starting"
    output: Any = None
    logs: str = ""
    error: str | None = None
    created_at: datetime = attrs.field(factory=_now)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    stream: bool = False
    deployment: str | None = None
    destination: str | None = None
    deadline: datetime | None = None
    predict_time: float | None = None
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = attrs.field(factory=asyncio.Event)
    #: the SSE events so far (id, event, data), kept only for streaming predictions
    events: list[tuple[str, str, str]] = attrs.field(factory=list)
    #: set (and replaced) whenever an event is added, to wake stream connections
    changed: asyncio.Event = attrs.field(factory=asyncio.Event)
    stream_url: str | None = None
    #: a test made this stream unresumable: reconnections get 404
    stream_gone: bool = False
    timer: asyncio.TimerHandle | None = None
    seq: int = 0

    @property
    def terminal(self) -> bool:
        """Whether the job has ended."""
        return self.status in ("succeeded", "failed", "canceled", "aborted")

    def add_event(self, event: str, data: str) -> None:
        """Record an SSE event for stream connections (predictions that can stream)."""
        if self.stream_url is None:
            return
        # Replicate's ids look like "1690212292:0": a timestamp and a sequence number.
        event_id = f"{int(self.created_at.timestamp())}:{len(self.events)}"
        self.events.append((event_id, event, data))
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def to_legacy_json(self, base_url: str, web_url: str) -> dict[str, Any]:
        """The older serializer's shape, which cancel replies and trainings still get.

        Recorded (``prediction.cancel``, ``training.get``, ``training.cancel``): every key
        present, null when unset (``logs`` too, when empty), ``metrics`` an object,
        alphabetical, then ``model``, ``version`` and the legacy ``webhook_completed``;
        with ``data_removed`` and ``urls.web``, which today's schema requires.
        """
        modern = self.to_json(base_url, web_url)
        data: dict[str, Any] = {
            "completed_at": timestamp(self.completed_at),
            "created_at": modern["created_at"],
            # Not in the recordings, but required by today's schema: newer replies have it.
            "data_removed": False,
            "error": self.error,
            "id": self.id,
            "input": self.input,
            "logs": self.logs or None,
            "metrics": modern.get("metrics", {}),
            "output": self.output,
            "started_at": timestamp(self.started_at),
            "status": self.status,
            "urls": {key: modern["urls"][key] for key in ("cancel", "get", "web")},
            "model": self.model.ref,
            "version": self.model.version,
            "webhook_completed": None,
        }
        return data

    def to_json(self, base_url: str, web_url: str, *, held: bool = False) -> dict[str, Any]:
        """The job as the API returns it, keys present or absent as in real replies.

        A starting prediction has no ``output``, ``started_at`` or ``completed_at`` keys
        (recorded replies leave them out rather than send null); ``output`` appears with
        the first output (a held create may return it partial) and at the end;
        ``metrics`` once the job has ended; ``urls.stream`` whenever the model can stream,
        whether or not the create asked (``"stream": true`` is deprecated and echoed).
        ``held``: the reply to a create held open by ``Prefer: wait`` that ended before
        the prediction did, which (recorded) carries no ``started_at``.
        """
        # Trainings' urls point at /predictions/... on the real API too (a known quirk).
        api = f"{base_url}/predictions/{self.id}"
        urls: dict[str, Any] = {"cancel": f"{api}/cancel", "get": api}
        if self.stream_url is not None:
            urls["stream"] = self.stream_url
        urls["web"] = f"{web_url}/p/{self.id}"
        data: dict[str, Any] = {
            "id": self.id,
            "model": self.model.ref,
            "version": self.model.version,
            "input": self.input,
            "logs": self.logs,
        }
        if self.output is not None or self.terminal:
            data["output"] = self.output
        data["data_removed"] = False
        data["error"] = self.error
        data["status"] = self.status
        data["created_at"] = timestamp(self.created_at)
        if self.started_at is not None and not (held and not self.terminal):
            data["started_at"] = timestamp(self.started_at)
        if self.completed_at is not None:
            data["completed_at"] = timestamp(self.completed_at)
        if self.stream:
            data["stream"] = True
        data["urls"] = urls
        if self.terminal:
            metrics: dict[str, Any] = {}
            if self.predict_time is not None:
                metrics["predict_time"] = self.predict_time
            if self.completed_at is not None:
                metrics["total_time"] = round(
                    (self.completed_at - self.created_at).total_seconds(), 6
                )
            data["metrics"] = metrics
        data["source"] = "api"
        if self.deadline is not None:
            data["deadline"] = timestamp(self.deadline)
        if self.deployment is not None:
            data["deployment"] = self.deployment
        if self.webhook is not None:
            data["webhook"] = self.webhook
            data["webhook_events_filter"] = self.webhook_events_filter or [
                "start",
                "output",
                "logs",
                "completed",
            ]
        return data


class JobStore:
    """Every prediction and training, the models, and the lifecycle tasks."""

    def __init__(
        self, *, start_delay: float, hosts: Hosts, outputs: OutputStore, uploads: UploadStore
    ) -> None:
        self.start_delay = start_delay
        self.jobs: dict[str, Job] = {}
        self.streams: dict[str, Job] = {}
        self.outputs = outputs
        self.uploads = uploads
        self._hosts = hosts
        self._seq = 0
        #: hears each webhook event of a job ("start", "output", "logs", "completed")
        self.listener: Callable[[Job, str], None] | None = None

    def notify(self, job: Job, event: str) -> None:
        """Tell the listener (the webhook sender) that ``event`` happened to ``job``."""
        if self.listener is not None and job.webhook is not None:
            self.listener(job, event)

    def new_job(self, **kwargs: Any) -> Job:
        """Create a job and start its lifecycle."""
        self._seq += 1
        job = Job(id=new_id(), seq=self._seq, **kwargs)
        self.jobs[job.id] = job
        if job.model.streams:
            # Every prediction of a model that can stream has a stream, asked for or not.
            key = secrets.token_urlsafe(16)
            kind = "files" if job.model.files else "streams"
            job.stream_url = f"{self._hosts.stream_url}/v1/{kind}/{key}"
            self.streams[key] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        return job

    async def _run(self, job: Job) -> None:
        try:
            if self.start_delay > 0:
                await asyncio.sleep(self.start_delay)
            job.status = "processing"
            job.started_at = _now()
            self.notify(job, "start")
            began = time.perf_counter()
            ctx = RunContext(job, self)
            # The model sees its defaults filled in; the API echoes the input as sent.
            result = job.model.fn(job.model.validate(job.input), ctx)
            if inspect.isawaitable(result):
                result = await result
            job.predict_time = round(time.perf_counter() - began, 6)
            if result is not None or job.output is None:
                if job.stream_url and not any(kind == "output" for _, kind, _ in job.events):
                    # A model that returned its output whole still streams it.
                    for item in result if isinstance(result, list) else [result]:
                        ctx.emit(item)
                job.output = result
            self._finish(job, "succeeded")
        except asyncio.CancelledError:
            # cancel() / Cancel-After already set the status; just stop.
            if not job.terminal:
                self._finish(job, "canceled")
        except Exception as exc:
            job.error = str(exc) or type(exc).__name__
            job.logs += "".join(traceback.format_exception_only(type(exc), exc))
            self._finish(job, "failed")

    def _finish(self, job: Job, status: str) -> None:
        job.status = status
        job.completed_at = _now()
        if job.timer is not None:
            job.timer.cancel()
        # The stream ends as Replicate's does: an error event then done, or done alone.
        if status == "failed":
            job.add_event("error", json.dumps({"detail": job.error}))
            job.add_event("done", json.dumps({"reason": "error"}))
        elif status in ("canceled", "aborted"):
            job.add_event("done", json.dumps({"reason": "canceled"}))
        else:
            job.add_event("done", "{}")
        job.done.set()
        self.notify(job, "completed")

    def cancel(self, job: Job, *, status: str = "canceled") -> None:
        """Stop a job that is still running; a finished one is left as it is."""
        if job.terminal:
            return
        if status == "aborted" and job.started_at is not None:
            status = "canceled"
        if job.started_at is not None:
            # The time it ran before it was stopped, as a cancel reply reports it.
            job.predict_time = round((_now() - job.started_at).total_seconds(), 6)
        self._finish(job, status)
        if job.task is not None:
            job.task.cancel()

    def cancel_after(self, job: Job, seconds: float) -> None:
        """Arrange for the job to be stopped after ``seconds`` (the Cancel-After header)."""
        loop = asyncio.get_running_loop()
        job.deadline = datetime.fromtimestamp(time.time() + seconds, tz=timezone.utc)
        job.timer = loop.call_later(seconds, lambda: self.cancel(job, status="aborted"))

    async def close(self) -> None:
        """Stop every running job (the emulator is shutting down)."""
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for job in self.jobs.values():
            if job.timer is not None:
                job.timer.cancel()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
