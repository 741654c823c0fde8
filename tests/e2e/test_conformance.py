"""The emulator against Replicate: replies checked against the schema and the recordings.

Its replies are checked against the official OpenAPI schema, and their shapes against
the payloads recorded from the live API.

Raw HTTP here (aiohttp with no client of ours in between), so what is checked is what
any client would receive. Two checks, one scenario that calls every operation:

- every happy-path reply validates against the operation's documented response schema
  (``jsonschema``; OpenAPI 3.0's ``nullable`` translated);
- every recorded reply has a twin from the emulator, in the same operation and state,
  with the same keys (absent is not null) and the same JSON types, nested objects too.
  Where the recordings disagree with each other (older API generations), the exceptions
  are listed below with the reason.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import jsonschema
import pytest

from replicate_async.testing import Emulator

from ..conftest import FIXTURES

OPENAPI = json.loads((FIXTURES / "replicate-openapi.json").read_text())
RECORDED = FIXTURES / "recorded"
DOCUMENTED = FIXTURES / "documented"


# -- the scenario: every operation, raw ---------------------------------------------------------


class Calls:
    """The replies of one scenario, by name: (operationId, status, parsed body)."""

    def __init__(self, emulator: Emulator, session: aiohttp.ClientSession) -> None:
        self.emulator = emulator
        self.session = session
        self.replies: dict[str, tuple[str, int, Any]] = {}

    async def __call__(
        self,
        name: str,
        operation: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Any:
        sent = {"Authorization": f"Bearer {self.emulator.token}"} if auth else {}
        sent.update(headers or {})
        url = path if path.startswith("http") else f"{self.emulator.url}{path}"
        async with self.session.request(
            method, url, json=json_body, data=data, headers=sent
        ) as reply:
            raw = await reply.read()
            kind = reply.headers.get("Content-Type", "")
        body: Any = json.loads(raw) if raw and "json" in kind else raw.decode(errors="replace")
        self.replies[name] = (operation, reply.status, body)
        return body


async def run_scenario(emulator: Emulator) -> dict[str, tuple[str, int, Any]]:
    """Call every operation once or more, in the states the recordings show."""
    async with aiohttp.ClientSession() as session:
        call = Calls(emulator, session)
        version = (await call("model.get", "models.get", "GET", "/models/emulator/sleep"))[
            "latest_version"
        ]["id"]
        # Predictions through their life: starting, processing (no logs, then logs), done.
        emulator.add_model("emulator/slow", _slow, output=str)
        slow_version = emulator.catalog.latest("emulator/slow").version  # type: ignore[union-attr]
        created = await call(
            "prediction.create.starting",
            "predictions.create",
            "POST",
            "/predictions",
            json_body={"version": slow_version, "input": {}},
        )
        pid = created["id"]
        await call("prediction.get.starting", "predictions.get", "GET", f"/predictions/{pid}")
        await _until(emulator, pid, lambda job: job.status == "processing")
        await call("prediction.get.processing", "predictions.get", "GET", f"/predictions/{pid}")
        await _until(emulator, pid, lambda job: bool(job.logs))
        await call(
            "prediction.get.processing.logs", "predictions.get", "GET", f"/predictions/{pid}"
        )
        images = await call(
            "models.predictions.create.wait",
            "models.predictions.create",
            "POST",
            "/models/emulator/images/predictions",
            json_body={"input": {"num_outputs": 2, "size_bytes": 10}},
            headers={"Prefer": "wait"},
        )
        await call(
            "prediction.get.succeeded", "predictions.get", "GET", f"/predictions/{images['id']}"
        )
        await call(
            "models.predictions.create.starting",
            "models.predictions.create",
            "POST",
            "/models/emulator/slow/predictions",
            json_body={"input": {}},
        )
        await call(
            "prediction.create.stream",
            "predictions.create",
            "POST",
            "/predictions",
            json_body={
                "version": f"emulator/stream:{_version(emulator, 'emulator/stream')}",
                "input": {"tokens": 3, "delay": 0.5},
                "stream": True,
            },
        )
        await call(
            "models.predictions.create.partial",
            "models.predictions.create",
            "POST",
            "/models/emulator/stream/predictions",
            json_body={"input": {"tokens": 20, "delay": 0.1}},
            headers={"Prefer": "wait=1"},
        )
        await call("prediction.cancel", "predictions.cancel", "POST", f"/predictions/{pid}/cancel")
        await call("predictions.list", "predictions.list", "GET", "/predictions")
        # Trainings.
        training = await call(
            "training.create",
            "trainings.create",
            "POST",
            f"/models/emulator/sleep/versions/{version}/trainings",
            json_body={"destination": "emulator/trained", "input": {"seconds": 30}},
        )
        tid = training["id"]
        await _until(emulator, tid, lambda job: job.status == "processing")
        await call("training.get.processing", "trainings.get", "GET", f"/trainings/{tid}")
        await call("training.cancel", "trainings.cancel", "POST", f"/trainings/{tid}/cancel")
        await call("trainings.list", "trainings.list", "GET", "/trainings")
        # Models and versions.
        await call("models.list", "models.list", "GET", "/models")
        await call(
            "models.search",
            "models.search",
            "QUERY",
            "/models",
            data=b"echo",
            headers={"Content-Type": "text/plain"},
        )
        await call("search", "search", "GET", "/search?query=echo&limit=3")
        await call(
            "versions.list", "models.versions.list", "GET", "/models/emulator/sleep/versions"
        )
        await call(
            "version.get",
            "models.versions.get",
            "GET",
            f"/models/emulator/sleep/versions/{version}",
        )
        await call(
            "model.create",
            "models.create",
            "POST",
            "/models",
            json_body={
                "owner": "emulator",
                "name": "made",
                "visibility": "private",
                "hardware": "cpu",
            },
        )
        await call(
            "model.update",
            "models.update",
            "PATCH",
            "/models/emulator/made",
            json_body={"description": "Made in a test", "readme": "# Made\n"},
        )
        await call("model.readme", "models.readme.get", "GET", "/models/emulator/made/readme")
        emulator.add_example("emulator/images", images["id"])
        await call(
            "model.examples", "models.examples.list", "GET", "/models/emulator/images/examples"
        )
        await call("model.get.example", "models.get", "GET", "/models/emulator/images")
        await call("model.delete", "models.delete", "DELETE", "/models/emulator/made")
        emulator.add_model("emulator/doomed", _slow, version="d" * 64, visibility="private")
        emulator.add_model("emulator/doomed", _slow, version="e" * 64, visibility="private")
        await call(
            "version.delete",
            "models.versions.delete",
            "DELETE",
            f"/models/emulator/doomed/versions/{'d' * 64}",
        )
        # Deployments.
        deployment = {
            "name": "made",
            "model": "emulator/sleep",
            "version": version,
            "hardware": "cpu",
            "min_instances": 0,
            "max_instances": 1,
        }
        await call(
            "deployment.create", "deployments.create", "POST", "/deployments", json_body=deployment
        )
        await call("deployment.get", "deployments.get", "GET", "/deployments/emulator/made")
        await call(
            "deployment.update",
            "deployments.update",
            "PATCH",
            "/deployments/emulator/made",
            json_body={"max_instances": 3},
        )
        await call("deployments.list", "deployments.list", "GET", "/deployments")
        await call(
            "deployment.predictions.create",
            "deployments.predictions.create",
            "POST",
            "/deployments/emulator/made/predictions",
            json_body={"input": {"seconds": 0}},
        )
        await call(
            "deployment.delete", "deployments.delete", "DELETE", "/deployments/emulator/made"
        )
        # Collections, account, hardware, webhooks.
        await call("collections.list", "collections.list", "GET", "/collections")
        await call("collection.get", "collections.get", "GET", "/collections/emulator")
        await call("account.get", "account.get", "GET", "/account")
        await call("hardware.list", "hardware.list", "GET", "/hardware")
        await call(
            "webhooks.secret", "webhooks.default.secret.get", "GET", "/webhooks/default/secret"
        )
        # Files.
        form = aiohttp.FormData()
        form.add_field("content", b"hello", filename="hello.txt", content_type="text/plain")
        file = await call("file.create", "files.create", "POST", "/files", data=form)
        await call("file.get", "files.get", "GET", f"/files/{file['id']}")
        await call("files.list", "files.list", "GET", "/files")
        await call(
            "file.download",
            "files.download",
            "GET",
            emulator.signed_download_url(file["id"]),
            auth=False,
        )
        await call("file.delete", "files.delete", "DELETE", f"/files/{file['id']}")
        # Errors, for the shape check.
        await call(
            "error.422.streaming",
            "predictions.create",
            "POST",
            "/models/emulator/echo/predictions",
            json_body={"input": {"text": "x"}, "stream": True},
        )
        await call(
            "error.404.destination",
            "trainings.create",
            "POST",
            f"/models/emulator/sleep/versions/{version}/trainings",
            json_body={"destination": "nowhere", "input": {}},
        )
        await call("error.401", "predictions.list", "GET", "/predictions", auth=False)
        return call.replies


async def _slow(input: dict[str, Any], ctx: Any) -> str:
    await ctx.sleep(0.3)
    ctx.log("halfway")
    await ctx.sleep(30)
    return "done"


def _version(emulator: Emulator, ref: str) -> str:
    spec = emulator.catalog.latest(ref)
    assert spec is not None
    return spec.version


async def _until(emulator: Emulator, job_id: str, check: Any, within: float = 10.0) -> None:
    for _ in range(int(within / 0.01)):
        if check(emulator.predictions[job_id]):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{job_id} never reached the state the scenario needs")


@pytest.fixture(scope="module")
def replies() -> dict[str, tuple[str, int, Any]]:
    """The scenario's replies, once for the whole module (on a loop of its own)."""

    async def scenario() -> dict[str, tuple[str, int, Any]]:
        async with Emulator(start_delay=0.2, page_size=5) as emu:
            replies = await run_scenario(emu)
        # A 429 needs a bucket to run dry: an account short of credit (burst 1).
        async with (
            Emulator(enforce_limits=True, low_credit=True, create_burst=1) as poor,
            aiohttp.ClientSession() as session,
        ):
            call = Calls(poor, session)
            for name in ("create.allowed", "error.429.low-credit"):
                await call(
                    name,
                    "models.predictions.create",
                    "POST",
                    "/models/emulator/echo/predictions",
                    json_body={"input": {"text": "x"}},
                )
            replies.update(call.replies)
        return replies

    return asyncio.run(scenario())


# -- 1. the OpenAPI schema ---------------------------------------------------------------------


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` as JSON Schema: null is also allowed."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


def _components() -> dict[str, Any]:
    schemas = copy.deepcopy(OPENAPI["components"]["schemas"])
    # The schema requires "output" on every prediction, but the live API leaves it out
    # until there is some (recorded: prediction.create.201.starting.json, and every other
    # starting or processing reply): the emulator does as the API does.
    prediction = schemas["schemas_prediction_response"]
    prediction["required"] = [key for key in prediction["required"] if key != "output"]
    # And a training's output is null until it succeeds, its completed_at until it ends
    # (recorded: training.cancel.200.canceled.json, training.get.200.processing.json),
    # where the schema says object and string only.
    for key in ("output", "completed_at", "started_at", "logs"):
        schemas["schemas_training_response"]["properties"][key]["nullable"] = True
    schemas["schemas_prediction_response"]["properties"]["logs"]["nullable"] = True
    return _nullable(schemas)  # type: ignore[no-any-return]


#: operations whose success is not JSON: Markdown text, or the file's bytes
_TEXT = {"models.readme.get", "files.download"}


def _response_schema(operation: str, status: int) -> dict[str, Any] | None:
    for path in OPENAPI["paths"].values():
        for op in path.values():
            if isinstance(op, dict) and op.get("operationId") == operation:
                response = op["responses"].get(str(status))
                if response is None:
                    raise AssertionError(f"{operation} does not document status {status}")
                content = response.get("content", {})
                for kind in ("application/json", "application/problem+json"):
                    if kind in content:
                        return content[kind]["schema"]  # type: ignore[no-any-return]
                return None  # an empty body (204, 202) or bytes
    raise AssertionError(f"no operation {operation}")


def test_every_happy_reply_validates_against_the_openapi_schema(
    replies: dict[str, tuple[str, int, Any]],
) -> None:
    components = _components()
    checked: set[str] = set()
    for name, (operation, status, body) in replies.items():
        if name.startswith("error.") or status >= 400:
            continue
        schema = _response_schema(operation, status)
        checked.add(operation)
        if schema is None:
            if operation in _TEXT:
                assert isinstance(body, str), f"{name}: expected text"
                assert body
            else:
                assert body in ("", b""), f"{name}: {status} should have an empty body"
            continue
        document = {**_nullable(schema), "components": {"schemas": components}}
        errors = sorted(
            jsonschema.Draft7Validator(document).iter_errors(body), key=lambda e: e.path
        )
        assert not errors, f"{name} ({operation} {status}): " + "; ".join(
            f"{list(e.path)}: {e.message}" for e in errors[:5]
        )
    all_operations = {
        op["operationId"]
        for path in OPENAPI["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    }
    assert checked == all_operations, f"not exercised: {all_operations - checked}"


def test_the_schema_translation_allows_null_only_where_documented() -> None:
    model = _components()["schemas_model_response"]["properties"]
    assert model["description"]["type"] == ["string", "null"]
    assert model["name"]["type"] == "string"


# -- 2. shapes of the recorded payloads ---------------------------------------------------------

#: recorded file -> the scenario reply it is the twin of (None: compared as noted)
TWINS = {
    "prediction.create.201.starting.json": "prediction.create.starting",
    "prediction.create.201.starting.duplicate-model-key.json": "prediction.create.starting",
    "prediction.create.201.starting.to-cancel.json": "prediction.create.starting",
    "prediction.get.200.starting.json": "prediction.get.starting",
    "prediction.get.200.processing.no-logs.json": "prediction.get.processing",
    "prediction.get.200.processing.with-logs.json": "prediction.get.processing.logs",
    "prediction.get.200.succeeded.json": "prediction.get.succeeded",
    "prediction.get.200.succeeded.sdxl.json": "prediction.get.succeeded",
    "prediction.get.200.succeeded.legacy-shape.json": "prediction.get.succeeded",
    "prediction.create.201.stream-true.json": "prediction.create.stream",
    "prediction.create.201.prefer-wait.data-uri-output.json": "models.predictions.create.partial",
    "models.predictions.create.201.starting.official-model.json": (
        "models.predictions.create.starting"
    ),
    "models.predictions.create.201.starting.official-model.llama3.json": (
        "models.predictions.create.starting"
    ),
    "models.predictions.create.201.prefer-wait.processing-partial-output.json": (
        "models.predictions.create.partial"
    ),
    "models.predictions.create.201.prefer-wait-10.processing.json": (
        "models.predictions.create.partial"
    ),
    "prediction.cancel.200.canceled.json": "prediction.cancel",
    "training.create.201.starting.json": "training.create",
    "training.get.200.processing.json": "training.get.processing",
    "training.cancel.200.canceled.json": "training.cancel",
    "model.get.200.with-latest-version.json": "model.get",
    "model.get.200.with-cover-image.json": "model.get",
    "model.get.200.llama-2-70b-chat.json": "model.get",
    "model.get.200.no-versions.json": "model.create",
    "model.create.201.json": "model.create",
    "models.list.200.page.json": "models.list",
    "models.search.200.page.json": "models.search",
    "version.get.200.sdxl.json": "version.get",
    "version.get.200.sdxl.newer.json": "version.get",
    "version.get.200.llama-2-70b-chat.json": "version.get",
    "collections.list.200.json": "collections.list",
    "collection.get.200.text-to-image.json": "collection.get",
    "hardware.list.200.json": "hardware.list",
    "file.create.201.json": "file.create",
    "file.get.200.json": "file.get",
    "files.list.200.page.json": "files.list",
    "files.list.200.page.after-delete.json": "files.list",
    "error.401.unauthenticated.json": "error.401",
    "error.404.training-destination.json": "error.404.destination",
    "error.422.streaming-not-supported.json": "error.422.streaming",
    "error.429.throttled.low-credit.json": "error.429.low-credit",
    # documented examples (not recordings): compared the same way
    "documented/deployment.get.200.json": "deployment.get",
    "documented/deployment.create.200.json": "deployment.create",
    "documented/deployment.update.200.json": "deployment.update",
    "documented/deployments.list.200.json": "deployments.list",
    "documented/account.get.200.trailing-comma-removed.json": "account.get",
    "documented/webhooks.default.secret.get.200.json": "webhooks.secret",
    "documented/prediction.get.200.succeeded.json": "prediction.get.succeeded",
}

#: recorded payloads not compared, and why
NOT_COMPARED: set[str] = set()

#: where the emulator sends a key that some recordings lack, because the API added it
#: since they were made (paths below the reply; "[]" is any item of a list)
NEWER = {
    "data_removed",  # 2024 replies have it, 2023 ones do not; the schema requires it
    "source",  # in today's schema; not in the 2023-2024 recordings
    "urls.web",  # in the schema's example, not in the recordings
    "urls.stream",  # on every prediction of a model that can stream, since "stream": true
    "created_at",  # models: in the newest recording, not the older ones
    "results[].created_at",
    "models[].created_at",
    "full_description",  # collections.get: in today's schema
    "model",  # the 2022 "legacy-shape" recording predates it
    "metrics.total_time",  # the newest recording with metrics (a cancel) has it; older don't
    "current_release.created_by.avatar_url",  # the documented created_by has it
    "results[].current_release.created_by.avatar_url",
}

#: keys of older API generations the emulator does not send (legacy shapes)
LEGACY = {
    "webhook_completed",  # 2022-2023 replies: replaced by webhook_events_filter
}


def _shape(value: Any, depth: int = 0) -> Any:
    """JSON types, keys kept; nested two levels deep (lists by their first item)."""
    if isinstance(value, dict):
        if depth >= 3:
            return "object"
        return {key: _shape(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return ["array", _shape(value[0], depth + 1)] if value else ["array"]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def _differences(recorded: Any, ours: Any, where: str = "") -> Iterator[str]:
    if where.endswith((".input", ".openapi_schema", ".metadata", ".checksums", ".output")):
        return  # a model's own inputs and outputs, a schema, metadata: content, not shape
    if isinstance(recorded, dict) and isinstance(ours, dict):
        for key in recorded:
            if key in LEGACY:
                continue
            if key not in ours:
                yield f"{where}.{key}: recorded, absent from the emulator's"
            else:
                yield from _differences(recorded[key], ours[key], f"{where}.{key}")
        for key in ours:
            path = f"{where}.{key}".removeprefix("reply.")
            if key not in recorded and path not in NEWER:
                yield f"{where}.{key}: the emulator's, absent from the recording"
        return
    if isinstance(recorded, list) and isinstance(ours, list):
        if len(recorded) > 1 and len(ours) > 1:
            yield from _differences(recorded[1], ours[1], f"{where}[]")
        return
    if recorded == ours:
        return
    if "null" in (recorded, ours) and where.rsplit(".", 1)[-1] in _NULLABLE_BY_STATE:
        return
    yield f"{where}: recorded {recorded}, the emulator's {ours}"


#: fields whose null-ness depends on the prediction's run, not its shape
_NULLABLE_BY_STATE = {
    "output",  # a failed or canceled run: null; a successful one: its output
    "error",
    "logs",  # legacy replies send null logs
    "description",
    "cover_image_url",
    "github_url",
    "paper_url",
    "license_url",
    "default_example",
    "latest_version",
    "next",
    "previous",
    "webhook",
    "full_description",
    "deployment",
    "completed_at",
}


def _recorded(name: str) -> Any:
    path = FIXTURES / name if name.startswith("documented/") else RECORDED / name
    return json.loads(path.read_text())


def test_every_recorded_payload_has_a_twin() -> None:
    recorded = {p.name for p in RECORDED.glob("*.json") if not p.name.startswith("headers.")}
    assert recorded <= set(TWINS) | NOT_COMPARED, recorded - set(TWINS) - NOT_COMPARED


@pytest.mark.parametrize("recording", sorted(TWINS))
def test_shapes_match_the_recordings(
    recording: str, replies: dict[str, tuple[str, int, Any]]
) -> None:
    _, _, body = replies[TWINS[recording]]
    found = list(_differences(_shape(_recorded(recording)), _shape(body), "reply"))
    assert not found, "\n".join(found)
