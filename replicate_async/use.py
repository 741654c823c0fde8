"""Models as typed async functions: ``client.use(ref)``, checked and decoded by the schema.

``client.use("owner/name")`` makes a :class:`RemoteModel` with no request. Its first
call fetches the model (or the pinned version) once and keeps its schema for the
client (``ttl`` seconds for a model's latest version; a pinned version for good, since
versions never change). Then every call:

- checks the input against the version's ``Input`` schema locally
  (:meth:`~.protocol.schema.ModelSchema.check`): unknown, missing, mistyped or
  out-of-range fields are one :class:`~.errors.InputValidationError` listing all of
  them, and no request is sent;
- creates the prediction on that very version (so that what was checked is what runs);
- decodes the output by the ``Output`` schema: ``format: uri`` values become
  :class:`~.files.FileOutput`, other strings stay strings, and iterator outputs come
  item by item over the model's stream (:class:`OutputIterator`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._janitor import Janitor
from ._poller import Poller
from ._session import Session
from ._watch import PredictionWatch, wait_for
from .errors import InputValidationError, ReplicateError, prediction_error
from .files import decode_output, looks_like_file
from .protocol.refs import model_target, split_owner_name, version_target
from .protocol.schema import ModelSchema, OutputPlan
from .types import Model, Prediction, Version

if TYPE_CHECKING:
    from .client import AsyncReplicate

__all__ = ["OutputIterator", "RemoteModel", "Run", "SchemaCache"]

T = TypeVar("T")

#: how long a model's latest version (and schema) is trusted before it is fetched again
DEFAULT_TTL = 300.0


class _Entry:
    __slots__ = ("fetched", "official", "schema", "version")

    def __init__(self, version: str | None, schema: ModelSchema, official: bool, fetched: float):
        self.version = version
        self.schema = schema
        self.official = official
        self.fetched = fetched


class SchemaCache:
    """Each model's (or version's) schema, fetched once per client and kept.

    Concurrent first calls share one fetch. A model's entry (its latest version) is
    fetched again after its ``ttl``; a version's is kept for good.
    """

    __slots__ = ("_entries", "_fetching", "_session", "fetches")

    def __init__(self, session: Session) -> None:
        self._session = session
        self._entries: dict[str, _Entry] = {}
        self._fetching: dict[str, asyncio.Future[_Entry]] = {}
        #: requests made to fetch schemas (for tests and benchmarks)
        self.fetches = 0

    async def get(self, ref: str, ttl: float) -> _Entry:
        """The entry of ``owner/name`` or ``owner/name:version``, fetched if need be."""
        now = self._session.timing.monotonic()
        entry = self._entries.get(ref)
        if entry is not None and (":" in ref or now - entry.fetched < ttl):
            return entry
        pending = self._fetching.get(ref)
        if pending is None:
            pending = self._fetching[ref] = asyncio.ensure_future(self._fetch_and_keep(ref))
            pending.add_done_callback(self._fetched(ref))
        try:
            # Shielded: one caller giving up must not cancel the fetch the others wait for.
            return await asyncio.shield(pending)
        except ReplicateError:
            if entry is not None:
                # A refresh failed: the schema it had still serves, and the next refresh
                # waits a TTL (calls meanwhile don't each wait out a failing fetch).
                entry.fetched = now
                return entry
            raise

    def _fetched(self, ref: str) -> Callable[[asyncio.Future[_Entry]], None]:
        def done(fetch: asyncio.Future[_Entry]) -> None:
            self._fetching.pop(ref, None)
            if not fetch.cancelled():
                fetch.exception()  # read: every caller may have left already

        return done

    async def _fetch_and_keep(self, ref: str) -> _Entry:
        # Kept here, not by the callers: the fetch is not wasted if they all gave up.
        entry = self._entries[ref] = await self._fetch(ref)
        return entry

    async def _fetch(self, ref: str) -> _Entry:
        model, _, version_id = ref.partition(":")
        owner, name = split_owner_name(model)
        self.fetches += 1
        session, now = self._session, self._session.timing.monotonic
        if version_id:
            path = f"/models/{owner}/{name}/versions/{version_id}"
            version = await session.request_json("GET", path, Version)
            schema = ModelSchema(version.openapi_schema, label=ref)
            return _Entry(version.id, schema, False, now())
        found = await session.request_json("GET", f"/models/{owner}/{name}", Model)
        latest = found.latest_version
        schema = ModelSchema(latest.openapi_schema if latest else None, label=model)
        return _Entry(latest.id if latest else None, schema, bool(found.is_official), now())


def _check_ref(ref: str) -> str:
    if not isinstance(ref, str):
        raise TypeError(f"use() takes 'owner/name' or 'owner/name:version', got {ref!r}")
    model, sep, version = ref.partition(":")
    split_owner_name(model)  # a malformed name is a ValueError now, before any request
    if sep and not version:
        raise ValueError(f"model ref {ref!r} ends with ':': give the version id after it")
    return ref


class RemoteModel(Generic[T]):
    """A model as an async function (see the module). ``T``: its output, as you state it.

    ``await model(**inputs)`` runs it and returns the decoded output (an
    :class:`OutputIterator` for iterator outputs, streaming as it is made);
    ``await model.create(**inputs)`` returns a :class:`Run` at once; ``async for chunk
    in model.stream(**inputs)`` streams. Each also takes the input as one mapping
    (``model({"prompt": ...})``, for inputs named like an option) and
    ``validate=False`` to skip the local check.
    """

    __slots__ = ("_client", "_schemas", "_ttl", "ref")

    def __init__(
        self, client: AsyncReplicate, ref: str, cache: SchemaCache, *, ttl: float = DEFAULT_TTL
    ) -> None:
        self._client = client
        self._schemas = cache
        self.ref = _check_ref(ref)
        if not ttl >= 0:
            raise ValueError(f"ttl must be a number of seconds >= 0, got {ttl!r}")
        self._ttl = ttl

    def __repr__(self) -> str:
        return f"RemoteModel({self.ref!r})"

    async def schema(self) -> ModelSchema:
        """The version's schema (fetched on first use, then kept)."""
        return (await self._schemas.get(self.ref, self._ttl)).schema

    async def version(self) -> str | None:
        """The version id calls run (the pinned one, or the latest as of the last fetch)."""
        return (await self._schemas.get(self.ref, self._ttl)).version

    async def pin(self) -> RemoteModel[T]:
        """This model pinned to the version it runs now: later versions will not be used."""
        entry = await self._schemas.get(self.ref, self._ttl)
        if ":" in self.ref or entry.version is None or entry.official:
            return self
        model = self.ref.partition(":")[0]
        return RemoteModel(self._client, f"{model}:{entry.version}", self._schemas, ttl=self._ttl)

    async def signature(self) -> str:
        """The inputs (what each takes, its default, what it is for) and the output."""
        return (await self.schema()).signature()

    # -- calls -------------------------------------------------------------------------

    async def __call__(
        self, input: Mapping[str, Any] | None = None, /, *, validate: bool = True, **inputs: Any
    ) -> T:
        # Held open (Prefer: wait, as run() does) unless the output streams: a short
        # model's whole answer then comes in the create's reply, with no poll.
        run: Run[T] = await self._create({**(input or {}), **inputs}, validate, hold=True)
        # This call started it: a caller that gives up (cancelled, timed out, leaves the
        # stream early) has it cancelled, as client.run() does.
        run._janitor = self._client._janitor
        if run.plan is not None and run.plan.kind == "iterator":
            result: Any = OutputIterator(run)
            return result  # type: ignore[no-any-return]
        return await run.output()

    async def create(
        self, input: Mapping[str, Any] | None = None, /, *, validate: bool = True, **inputs: Any
    ) -> Run[T]:
        """Check the input, create the prediction, return its :class:`Run` (not waiting)."""
        return await self._create({**(input or {}), **inputs}, validate, hold=False)

    async def _create(self, given: dict[str, Any], validate: bool, *, hold: bool) -> Run[T]:
        entry = await self._schemas.get(self.ref, self._ttl)
        if validate:
            problems = entry.schema.check(given, looks_like_file)
            if problems:
                raise InputValidationError.of(entry.schema.label, problems)
        model = self.ref.partition(":")[0]
        # The version that was checked is the version that runs; official models run
        # through their own endpoint (which takes no version).
        if entry.official or entry.version is None:
            target = model_target(model)
        else:
            target = version_target(f"{model}:{entry.version}")
        client = self._client
        from .protocol.creates import CreateOptions

        plan = entry.schema.output_plan()
        hold = hold and (plan is None or plan.kind != "iterator")
        prediction = await client._creator.create(
            target, CreateOptions(input=given, wait=hold), Prediction, cancel_on_exit=True
        )
        return Run(client, prediction, plan, key=target.label)

    def stream(
        self, input: Mapping[str, Any] | None = None, /, *, validate: bool = True, **inputs: Any
    ) -> OutputIterator[Any]:
        """The output as it is made, item by item.

        An iterator output's items come over the model's stream (never polled for while
        the stream works); a model with no iterator output yields its whole output once
        it ends.
        """
        given = {**(input or {}), **inputs}

        async def start() -> Run[Any]:
            run: Run[Any] = await self._create(given, validate, hold=False)
            run._janitor = self._client._janitor  # started here: cancelled if abandoned
            return run

        return OutputIterator(None, start=start)


class Run(Generic[T]):
    """A prediction started by a :class:`RemoteModel`: its state, output and controls."""

    __slots__ = ("_client", "_janitor", "key", "plan", "prediction")

    def __init__(
        self,
        client: AsyncReplicate,
        prediction: Prediction,
        plan: OutputPlan | None,
        *,
        key: str,
    ) -> None:
        self._client = client
        #: the latest state seen
        self.prediction = prediction
        #: how its output is decoded (None: the version publishes no Output schema)
        self.plan = plan
        self.key = key
        # Set when the call that made it owns it: giving up cancels it then.
        self._janitor: Janitor | None = None

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.prediction.status!r})"

    @property
    def id(self) -> str:
        """The prediction's id."""
        return self.prediction.id

    @property
    def logs(self) -> str | None:
        """Its logs as of the latest state seen."""
        return self.prediction.logs

    async def wait(self, timeout: float | None = None) -> Prediction:
        """Wait for the end (on the client's poller) and return the last state."""
        self.prediction = await wait_for(
            self._poller, self.prediction, key=self.key, timeout=timeout, janitor=self._janitor
        )
        return self.prediction

    async def output(self, timeout: float | None = None) -> T:
        """Wait for the end; the output decoded by the schema (raises if it failed)."""
        prediction = await self.wait(timeout)
        error = prediction_error(prediction)
        if error is not None:
            raise error
        return self.decode(prediction.output)  # type: ignore[no-any-return]

    def decode(self, value: Any) -> Any:
        """``value`` decoded by this version's Output schema (files where it says so)."""
        return decode_output(value, self._client._session, self.plan)

    async def text(self, timeout: float | None = None) -> str:
        """The output as one text: an iterator's items joined, or the output itself."""
        output: Any = await self.output(timeout)
        if isinstance(output, list):
            return "".join(str(item) for item in output)
        return str(output)

    async def cancel(self) -> Prediction:
        """Ask for it to stop; its state after the request."""
        self.prediction = await self._client.predictions.cancel(self.prediction.id)
        return self.prediction

    def watch(self, timeout: float | None = None) -> _RunWatch:
        """Each new state (status, output or logs changed), ending at a terminal one.

        ``run.prediction`` (and ``run.logs``) follow the states as they come.
        """
        return _RunWatch(self, PredictionWatch(self._poller, self.prediction, timeout=timeout))

    @property
    def _poller(self) -> Poller:
        return self._client._poller


class _RunWatch:
    """A :class:`PredictionWatch` that keeps its run's latest state up to date."""

    __slots__ = ("_run", "_watch")

    def __init__(self, run: Run[Any], watch: PredictionWatch) -> None:
        self._run = run
        self._watch = watch

    def __aiter__(self) -> _RunWatch:
        return self

    async def __anext__(self) -> Prediction:
        state = await self._watch.__anext__()
        self._run.prediction = state
        return state

    async def aclose(self) -> None:
        """Stop watching (the prediction goes on)."""
        await self._watch.aclose()

    async def __aenter__(self) -> _RunWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class OutputIterator(Generic[T]):
    """An iterator output, item by item as the model makes them, and its text.

    ``async for item in out`` streams the items (over the model's stream when it has
    one; otherwise as polls see the output grow); ``await out.text()`` waits for the
    end and joins them (what ``x-cog-array-display: concatenate`` models mean);
    ``str(out)`` is that text once the iteration has ended; ``await out.list()`` all
    items. ``out.run`` is the prediction's :class:`Run`.
    """

    __slots__ = ("_done", "_items", "_source", "_start", "run")

    def __init__(self, run: Run[Any] | None, *, start: Any = None) -> None:
        self.run = run
        self._start = start
        self._items: list[Any] = []
        self._done = False
        self._source: AsyncIterator[Any] | None = None

    def __aiter__(self) -> OutputIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        if self._source is None:
            self._source = self._items_of(await self._run())
        try:
            item = await self._source.__anext__()
        except StopAsyncIteration:
            self._done = True
            raise
        except BaseException:
            await self.aclose()
            raise
        self._items.append(item)
        return item  # type: ignore[no-any-return]

    async def _run(self) -> Run[Any]:
        if self.run is None:
            self.run = await self._start()
        assert self.run is not None
        return self.run

    async def _items_of(self, run: Run[Any]) -> AsyncIterator[Any]:
        plan = run.plan
        items = plan.items if plan is not None and plan.kind == "iterator" else None
        if plan is None or plan.kind != "iterator":
            # Not an iterator: one item, the whole output, at the end.
            yield await run.output()
            return
        urls = run.prediction.urls
        decode = _item_decoder(run, items or OutputPlan("value", type_name="str"))
        if urls is not None and urls.stream:
            # The stream raises at an error (or cancellation) event and ends at "done":
            # its end is known without asking.
            async with self._client(run).predictions.stream(run.prediction) as events:
                async for event in events:
                    if event.event == "output":
                        yield decode(_from_event(event.data, items))
            return
        # No stream: the output grows on the server; yield what each new state adds.
        seen = 0
        async with run.watch() as states:
            async for state in states:
                run.prediction = state
                output = state.output if isinstance(state.output, list) else []
                for item in output[seen:]:
                    yield decode(item)
                seen = max(seen, len(output))
        error = prediction_error(run.prediction)
        if error is not None:
            raise error

    @staticmethod
    def _client(run: Run[Any]) -> AsyncReplicate:
        return run._client

    async def list(self) -> list[T]:
        """Every item (waiting for the end)."""
        async for _ in self:
            pass
        return list(self._items)

    async def text(self) -> str:
        """The items joined into one text (waiting for the end)."""
        return "".join(str(item) for item in await self.list())

    def __str__(self) -> str:
        if not self._done:
            raise RuntimeError(
                "the output is not complete yet: `await out.text()` waits for it, or "
                "iterate it to the end first"
            )
        return "".join(str(item) for item in self._items)

    async def aclose(self) -> None:
        """Stop streaming.

        A prediction this iterator's call started is cancelled if it has not ended (one
        from ``model.create()`` goes on: cancel it yourself).
        """
        source, self._source = self._source, None
        if source is not None and hasattr(source, "aclose"):
            await source.aclose()
        run = self.run
        owned = run is not None and run._janitor is not None
        if not self._done and owned and run is not None and not run.prediction.done:
            assert run._janitor is not None
            run._janitor.cancel(run.id)

    def __del__(self) -> None:
        # Dropped before its end (a bare ``break``): a prediction its call started is
        # cancelled, as aclose() would.
        run = self.run
        if self._done or run is None or run._janitor is None or run.prediction.done:
            return
        with contextlib.suppress(Exception):  # the loop may be gone at interpreter exit
            run._janitor.cancel(run.id)

    async def __aenter__(self) -> OutputIterator[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _from_event(data: str, plan: OutputPlan | None) -> Any:
    """An item from an SSE event's data: text, or a JSON value unless items are text."""
    if plan is not None and (plan.kind == "file" or plan.type_name == "str"):
        return data
    if plan is None:
        return data  # no item schema: keep what came
    with contextlib.suppress(ValueError):
        return json.loads(data)
    return data


def _item_decoder(run: Run[Any], plan: OutputPlan) -> Callable[[Any], Any]:
    """Decode one item by its schema (files where it says so)."""
    session = run._client._session
    return lambda item: decode_output(item, session, plan)
