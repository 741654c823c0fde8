"""What each command does, over the public API of :class:`~replicate_async.AsyncReplicate`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from ..client import AsyncReplicate
from ..errors import PredictionCanceled, PredictionFailed, ReplicateError, prediction_error
from ..fanout import RunResult
from ..files import FileOutput
from ..progress import bar
from ..protocol.creates import CreateOptions
from ..protocol.refs import parse_ref
from ..types import Prediction, Status
from ..webhooks import WebhookVerificationError, verify
from ._show import ByteBar, Printer, Spinner, jsonable, model_progress

__all__ = ["COMMANDS", "UsageError"]


class UsageError(Exception):
    """The command line was used wrongly (exit 2): the message says how to fix it."""


# -- inputs ---------------------------------------------------------------------------------


def parse_inputs(words: list[str]) -> dict[str, Any]:
    """``key=value`` words; JSON values where they parse, ``key=@path`` as a file."""
    found: dict[str, Any] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"an input must be key=value, got {word!r}")
        if raw.startswith("@"):
            path = Path(raw[1:]).expanduser()
            if not path.is_file():
                raise UsageError(f"input {key}: no file at {raw[1:]!r} (key=@path uploads a file)")
            found[key] = path
            continue
        try:
            found[key] = json.loads(raw)
        except ValueError:
            found[key] = raw
    return found


def _input_lines(path: str) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file, read as they are needed."""
    with open(path, encoding="utf-8") as handle:  # read lazily, as inputs are taken
        for line in handle:
            if line.strip():
                yield json.loads(line)


class _InputFile:
    """The inputs of a JSON-lines file: read lazily, and counted (for the bar's total)."""

    def __init__(self, path: str, count: int) -> None:
        self.path = path
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return _input_lines(self.path)


def _check_input_file(path: str) -> int:
    """Count the inputs of a JSON-lines file, refusing a bad line before anything runs."""
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        raise UsageError(f"--input-file {path}: {error.strerror or error}") from None
    count = 0
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as error:
                raise UsageError(
                    f"--input-file {path}, line {number}: not JSON ({error})"
                ) from None
            if not isinstance(value, dict):
                raise UsageError(f"--input-file {path}, line {number}: not a JSON object")
            count += 1
    if not count:
        raise UsageError(f"--input-file {path} holds no inputs")
    return count


# -- creating -------------------------------------------------------------------------------


async def _create(
    client: AsyncReplicate, ref: str, input: dict[str, Any], wait: bool
) -> Prediction:
    target = parse_ref(ref)  # a malformed ref: the error names every form that works
    # Through the one create path with cancel_on_exit: Ctrl-C while a create is held
    # open (its id not known yet) still finds and cancels what it made.
    return await client._creator.create(
        target, CreateOptions(input=input, wait=wait), Prediction, cancel_on_exit=True
    )


async def _save_files(
    output: Any, directory: str | None, prefix: str = "", interactive: bool = False
) -> dict[str, str]:
    """Save every file in ``output`` into ``directory``: url to the path it was saved at."""
    if directory is None:
        return {}
    target = Path(directory)
    await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
    saved: dict[str, str] = {}
    files: list[FileOutput] = []

    def collect(value: Any) -> None:
        if isinstance(value, FileOutput):
            files.append(value)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    collect(output)
    taken: set[str] = set()
    for number, file in enumerate(files):
        name = file.url.rsplit("/", 1)[-1].split("?", 1)[0] or f"output-{number}"
        if file.url.startswith("data:"):
            name = f"output-{number}"
        if name in taken:  # two outputs of one name (a/out.wav, b/out.wav): both kept
            name = f"{number}-{name}"
        taken.add(name)
        path = target / f"{prefix}{name}"
        show = ByteBar(path.name, enabled=interactive)
        try:
            result = await file.save(path, progress=show)
        finally:
            show.close()
        saved[file.url] = str(result.path)
    return saved


# -- run and stream -------------------------------------------------------------------------


async def run(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    inputs = parse_inputs(args.inputs + args.pairs)
    if args.input_file:
        if inputs:
            raise UsageError("give inputs with -i or with --input-file, not both")
        return await _fan_out(client, args, printer)
    # Held open (one request for a short model) unless a person watches the spinner,
    # which shows the model's own progress as it goes.
    hold = args.wait and not printer.interactive
    prediction = await _create(client, args.model, inputs, wait=hold)
    if not args.wait:
        if printer.json:
            printer.document(prediction)
        else:
            printer.line(f"{prediction.id}  {prediction.status}")
        return 0
    prediction = await _follow(client, prediction, printer, args.model)
    error = prediction_error(prediction)
    output = None if error else client.output_of(prediction)
    saved = await _save_files(output, args.output_dir, interactive=printer.interactive)
    # A language model's tokens: one text, as its schema says (concatenate).
    chunks = output if error is None and not printer.json and _is_text_chunks(output) else None
    if chunks is not None and await _concatenated(client, args.model):
        output = "".join(chunks)
    if printer.json:
        printer.document(_with_output(prediction, output), saved)
    elif error is None:
        printer.output(output, saved)
    if error is not None:
        raise error
    return 0


def _is_text_chunks(output: Any) -> bool:
    return isinstance(output, list) and bool(output) and all(isinstance(x, str) for x in output)


async def _concatenated(client: AsyncReplicate, ref: str) -> bool:
    """Whether the model's Output schema says its items make one text."""
    try:
        plan = (await client.use(ref).schema()).output_plan()
    except (ReplicateError, ValueError):
        return False  # no schema to go by: one item a line
    return plan is not None and plan.kind == "iterator" and plan.concatenate


def _with_output(prediction: Prediction, output: Any) -> dict[str, Any]:
    document: dict[str, Any] = jsonable(prediction)
    if output is not None:
        document["output"] = output
    return document


async def _follow(
    client: AsyncReplicate,
    prediction: Prediction,
    printer: Printer,
    label: str,
    *,
    started_here: bool = True,
) -> Prediction:
    """Wait for a prediction with a spinner; on Ctrl-C cancel it if this command started it."""
    if prediction.done:
        return prediction
    spinner = Spinner(label, enabled=printer.interactive)
    try:
        spinner.update(prediction.status, prediction.logs)
        async with client.predictions.watch(prediction) as states:
            async for state in states:
                prediction = state
                spinner.update(state.status, state.logs)
        return prediction
    except asyncio.CancelledError:
        if started_here:
            await _cancel_quietly(client, prediction.id)
        raise
    finally:
        spinner.close()


async def _cancel_quietly(client: AsyncReplicate, prediction_id: str) -> None:
    # Interrupted: stop what this command started (a bounded wait, whatever happens).
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(client.predictions.cancel(prediction_id)), 5)


async def _fan_out(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    inputs = _InputFile(args.input_file, _check_input_file(args.input_file))
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, got {args.concurrency}")
    show = _fan_out_bar() if printer.interactive else None
    failed = api_errors = 0
    pending: dict[int, RunResult] = {}
    next_index = 0

    async def emit(result: RunResult) -> None:
        saved = await _save_files(result.output, args.output_dir, prefix=f"{result.index}-")
        if printer.json:
            printer.document(_result_document(result), saved)
        else:
            text = (
                json.dumps(jsonable(result.output, saved), ensure_ascii=False)
                if result.ok
                else (str(result.error).splitlines() or [type(result.error).__name__])[0]
            )
            status = result.prediction.status if result.prediction else "error"
            printer.line(f"{result.index}\t{status}\t{text}")

    jobs = client.run_many(
        args.model,
        inputs,
        concurrency=args.concurrency,
        progress=show,
        journal=args.journal,
        cancel_on_exit=True,
        wait=False,
    )
    try:
        async with jobs:
            async for result in jobs:
                failed += not result.ok
                api_errors += isinstance(result.error, ReplicateError) and not isinstance(
                    result.error, (PredictionFailed, PredictionCanceled)
                )
                if args.order == "completion":
                    await emit(result)
                    continue
                pending[result.index] = result
                while next_index in pending:
                    await emit(pending.pop(next_index))
                    next_index += 1
    finally:
        if show is not None:
            show.close()
    if api_errors:
        return 3  # creates the API refused (a bad model, a bad token): not a model failing
    return 1 if failed else 0


def _fan_out_bar() -> Any:
    """The fan-out bar, drawn on stderr (stdout carries the results)."""
    if importlib.util.find_spec("rich") is not None:
        from rich.console import Console

        from ..progress import RichBar

        return RichBar(console=Console(file=sys.stderr))
    return bar()


def _result_document(result: RunResult) -> dict[str, Any]:
    document: dict[str, Any] = {"index": result.index}
    if result.prediction is not None:
        document["id"] = result.prediction.id
        document["status"] = result.prediction.status
    else:
        document["status"] = "error"
    if result.ok:
        document["output"] = result.output
    else:
        document["error"] = str(result.error)
    return document


async def stream(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    inputs = parse_inputs(args.inputs + args.pairs)
    async with client.stream(args.model, inputs) as events:
        async for event in events:
            if printer.json:
                printer.document({"event": event.event, "id": event.id, "data": event.data})
            else:
                printer.out.write(str(event))
                printer.out.flush()
    if not printer.json:
        printer.line()
    return 0


# -- predictions, files, models, ... --------------------------------------------------------


def _prediction_row(p: Prediction) -> list[str]:
    when = p.created_at.isoformat(timespec="seconds") if p.created_at else ""
    return [p.id, p.status, p.model or (p.version or "")[:12], when]


async def _first(items: AsyncIterator[Any], limit: int) -> list[Any]:
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    found = []
    try:
        async for item in items:
            found.append(item)
            if len(found) >= limit:
                break
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()
    return found


def _print_list(printer: Printer, items: list[Any], row: Callable[[Any], list[str]]) -> None:
    if printer.json:
        printer.document(items)
    else:
        printer.table([row(item) for item in items])


def _print_one(printer: Printer, item: Any, fields: list[tuple[str, Any]]) -> None:
    if printer.json:
        printer.document(item)
        return
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if value is None or value == "":
            continue
        shown = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)
        printer.line(f"{name.ljust(width)}  {shown}")


def _prediction_fields(p: Prediction) -> list[tuple[str, Any]]:
    return [
        ("id", p.id),
        ("status", p.status),
        ("model", p.model),
        ("version", p.version),
        ("created_at", p.created_at.isoformat() if p.created_at else None),
        ("completed_at", p.completed_at.isoformat() if p.completed_at else None),
        ("input", p.input),
        ("output", p.output),
        ("error", p.error),
        ("logs", (p.logs or "").rstrip() or None),
    ]


async def predictions(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    action = args.action
    if action == "list":
        found = await _first(client.predictions.list(), args.limit)
        _print_list(printer, found, _prediction_row)
        return 0
    if action == "get":
        _print_one(printer, p := await client.predictions.get(args.id), _prediction_fields(p))
        return 0
    if action == "cancel":
        p = await client.predictions.cancel(args.id)
        _print_one(printer, p, [("id", p.id), ("status", p.status)])
        return 0
    if action == "wait":
        p = await client.predictions.get(args.id)
        p = await _follow(client, p, printer, args.id, started_here=False)
        _print_one(printer, p, _prediction_fields(p))
        return 1 if p.status in (Status.FAILED, Status.CANCELED, Status.ABORTED) else 0
    # watch: a line (or a JSON line) per new state
    p = await client.predictions.get(args.id)
    if p.done:
        _print_state(printer, p)
    else:
        async with client.predictions.watch(p) as states:
            async for state in states:
                _print_state(printer, state)
                p = state
    return 1 if p.status in (Status.FAILED, Status.CANCELED, Status.ABORTED) else 0


def _print_state(printer: Printer, state: Prediction) -> None:
    if printer.json:
        printer.document(state)
        return
    progress = model_progress(state.logs)
    line = f"{state.id}  {state.status}" + (f"  {progress}" if progress else "")
    last = (state.logs or "").rstrip().rsplit("\n", 1)[-1]
    printer.line(line + (f"  | {last}" if last and not progress else ""))


async def files(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    action = args.action
    if action == "upload":
        path = Path(args.path)  # the shell expanded any ~
        if not await asyncio.to_thread(path.is_file):
            raise UsageError(f"no file at {args.path!r}")
        f = await client.files.create(path)
        _print_one(
            printer,
            f,
            [
                ("id", f.id),
                ("name", f.name),
                ("size", str(f.size)),
                ("url", (f.urls or {}).get("get") if isinstance(f.urls, dict) else None),
            ],
        )
        return 0
    if action == "list":
        found = await _first(client.files.list(), args.limit)
        _print_list(
            printer, found, lambda f: [f.id, f.name or "", str(f.size or ""), f.content_type or ""]
        )
        return 0
    if action == "get":
        f = await client.files.get(args.id)
        _print_one(
            printer,
            f,
            [
                ("id", f.id),
                ("name", f.name),
                ("size", str(f.size)),
                ("content_type", f.content_type),
                ("created_at", str(f.created_at or "")),
            ],
        )
        return 0
    if action == "delete":
        await client.files.delete(args.id)
        if printer.json:
            printer.document({"id": args.id, "deleted": True})
        else:
            printer.line(f"deleted {args.id}")
        return 0
    # download: a signed /files/{id}/download URL, or any output URL
    url: str = args.url
    handle = (
        client.files.download(url)
        if "/files/" in url and "/download" in url
        else FileOutput(url, client._session)
    )
    name = args.output or url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "download"
    if name == "download":
        name = url.split("/files/", 1)[-1].split("/", 1)[0] if "/files/" in url else name
    show = ByteBar(Path(name).name, enabled=printer.interactive)
    try:
        saved = await handle.save(name, progress=show)
    finally:
        show.close()
    if printer.json:
        printer.document({"url": url, "path": str(saved.path), "size": saved.size})
    else:
        printer.line(f"{saved.path}  ({saved.size:,} bytes)")
    return 0


async def models(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    action = args.action
    if action == "get":
        m = await client.models.get(args.model)
        latest = m.latest_version.id if m.latest_version else None
        _print_one(
            printer,
            m,
            [
                ("model", m.ref),
                ("description", m.description),
                ("visibility", m.visibility),
                ("latest_version", latest),
                ("run_count", str(m.run_count) if m.run_count is not None else None),
                ("url", m.url),
            ],
        )
        return 0
    if action == "list":
        found = await _first(client.models.list(), args.limit)
        _print_list(printer, found, lambda m: [m.ref, (m.description or "")[:60]])
        return 0
    if action == "search":
        results = await client.search(args.query, limit=min(max(args.limit, 1), 50))
        if printer.json:
            printer.document(results)
        else:
            printer.table(
                [[hit.model.ref, (hit.model.description or "")[:60]] for hit in results.models]
            )
        return 0
    if action == "versions":
        found = await _first(client.models.versions.list(args.model), args.limit)
        _print_list(
            printer,
            found,
            lambda v: [
                v.id,
                v.created_at.isoformat(timespec="seconds") if v.created_at else "",
                v.cog_version or "",
            ],
        )
        return 0
    text = await client.use(args.model).signature()
    if printer.json:
        schema = await client.use(args.model).schema()
        printer.document(
            {
                "model": args.model,
                "inputs": schema.fields,
                "required": list(schema.required),
                "output": schema.output,
                "signature": text,
            }
        )
    else:
        printer.line(text)
    return 0


async def deployments(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    if args.action == "list":
        found = await _first(client.deployments.list(), args.limit)
        _print_list(printer, found, lambda d: [f"{d.owner}/{d.name}", _release(d)])
        return 0
    d = await client.deployments.get(args.deployment)
    _print_one(printer, d, [("deployment", f"{d.owner}/{d.name}"), ("release", _release(d))])
    return 0


def _release(deployment: Any) -> str:
    release = getattr(deployment, "current_release", None)
    if release is None:
        return ""
    return f"{getattr(release, 'model', '')}:{(getattr(release, 'version', '') or '')[:12]}"


async def trainings(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    if args.action == "list":
        found = await _first(client.trainings.list(), args.limit)
        _print_list(
            printer,
            found,
            lambda t: [
                t.id,
                t.status,
                t.model or "",
                t.created_at.isoformat(timespec="seconds") if t.created_at else "",
            ],
        )
        return 0
    if args.action == "get":
        t = await client.trainings.get(args.id)
    else:
        t = await client.trainings.cancel(args.id)
    _print_one(
        printer,
        t,
        [
            ("id", t.id),
            ("status", t.status),
            ("model", t.model),
            ("version", t.version),
            ("error", t.error),
        ],
    )
    return 0


async def hardware(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    found = await client.hardware.list()
    _print_list(printer, found, lambda h: [h.sku, h.name])
    return 0


async def account(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    a = await client.account.get()
    _print_one(
        printer,
        a,
        [
            ("username", a.username),
            ("name", a.name),
            ("type", a.type),
            ("github_url", a.github_url),
        ],
    )
    return 0


async def webhooks(client: AsyncReplicate, args: argparse.Namespace, printer: Printer) -> int:
    secret = await client.webhooks.default_secret()
    if printer.json:
        printer.document(secret)
    else:
        printer.line(secret.key)
    return 0


def verify_delivery(args: argparse.Namespace, printer: Printer) -> int:
    """``webhooks verify``: no client needed."""
    try:
        headers_text = Path(args.headers).read_text(encoding="utf-8")
        body = Path(args.body).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    headers: dict[str, str]
    try:
        parsed = json.loads(headers_text)
        if not isinstance(parsed, dict):
            raise ValueError
        headers = {str(k): str(v) for k, v in parsed.items()}
    except ValueError:
        headers = {}
        for line in headers_text.splitlines():
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip()] = value.strip()
    try:
        verify(headers, body, args.secret, tolerance=args.tolerance)
    except WebhookVerificationError as error:
        if printer.json:
            printer.document({"valid": False, "reason": str(error)})
        else:
            printer.line(f"invalid: {error}")
        return 1
    except ValueError as error:  # a malformed secret or tolerance: the caller's mistake
        raise UsageError(str(error)) from None
    if printer.json:
        printer.document({"valid": True, "webhook_id": headers.get("webhook-id")})
    else:
        printer.line("valid")
    return 0


Handler = Callable[[AsyncReplicate, argparse.Namespace, Printer], Awaitable[int]]

COMMANDS: dict[str, Handler] = {
    "run": run,
    "stream": stream,
    "predictions": predictions,
    "files": files,
    "models": models,
    "deployments": deployments,
    "trainings": trainings,
    "hardware": hardware,
    "account": account,
    "webhooks": webhooks,
}
