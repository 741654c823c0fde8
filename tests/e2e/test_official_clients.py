"""The official clients, written by others, against the emulator, with TLS verification on.

They must not tell it from Replicate: file objects, streams, pages, errors.

The Python client (``replicate``, on httpx) runs here in-process, configured only by the
environment the ``replicate_emulator`` fixture sets. The JavaScript client runs under
Node when ``node`` and the ``replicate`` npm package are there (``.ci/run`` installs them
into ``tests/js``); otherwise its test is skipped, saying what is missing.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import replicate
from replicate.helpers import FileOutput

from replicate_async.testing import Emulator

JS = Path(__file__).parents[1] / "js"


@pytest.fixture
def official(replicate_emulator: Emulator) -> replicate.Client:
    client = replicate.Client()  # the environment the fixture set: token, URL, trust
    yield client
    client._client.close()  # the official client has no public close()


def test_run_gives_file_objects_over_https(official: replicate.Client) -> None:
    images = official.run("emulator/images", input={"num_outputs": 2, "size_bytes": 100})
    assert all(isinstance(image, FileOutput) for image in images)
    assert all(image.url.startswith("https://") for image in images)
    assert [len(image.read()) for image in images] == [100, 100]
    plain = official.run(
        "emulator/images", input={"num_outputs": 1, "size_bytes": 10}, use_file_output=False
    )
    assert isinstance(plain[0], str)
    assert plain[0].startswith("https://")
    assert official.run("emulator/echo", input={"text": "hi"}) == "hi"


def test_async_run_and_stream(official: replicate.Client) -> None:
    async def both() -> tuple[object, list[str]]:
        try:
            out = await official.async_run("emulator/echo", input={"text": "async"})
            stream = await official.async_stream("emulator/stream", input={"tokens": 3})
            tokens = [str(event) async for event in stream]
            return out, tokens
        finally:
            await official._async_client.aclose()  # bound to this loop: close it in it

    out, tokens = asyncio.run(both())
    assert out == "async"
    assert "".join(tokens) == "token0 token1 token2 "
    # The sync stream, by model ref: it needs urls.stream, which the emulator gives.
    events = [str(e) for e in official.stream("emulator/stream", input={"tokens": 2})]
    assert "".join(events) == "token0 token1 "


def test_predictions_pages_models_and_deployments(
    official: replicate.Client, replicate_emulator: Emulator
) -> None:
    for i in range(3):
        official.predictions.create(model="emulator/echo", input={"text": str(i)})
    first = official.predictions.list()
    assert first.results
    model = official.models.get("emulator/images")
    assert model.latest_version is not None
    version = model.versions.get(model.latest_version.id)
    assert version.openapi_schema["components"]["schemas"]["Output"]["items"]["format"] == "uri"
    assert [m.name for m in official.models.list().results]
    created = official.models.create(
        owner="emulator", name="made-by-official", visibility="private", hardware="cpu"
    )
    assert created.name == "made-by-official"
    replicate_emulator.add_deployment("emulator/echoes", "emulator/echo")
    deployment = official.deployments.get("emulator/echoes")
    assert deployment.current_release.model == "emulator/echo"
    prediction = deployment.predictions.create(input={"text": "dep"})
    prediction.wait()
    assert prediction.output == "dep"
    collection = official.collections.get("emulator")
    assert "echo" in [m.name for m in collection.models]


def test_the_python_client_follows_pages(tmp_path: Path) -> None:
    from replicate_async.testing._thread import emulator_thread

    with emulator_thread(page_size=2) as emu:
        client = replicate.Client(api_token=emu.token, base_url=emu.root_url)
        try:
            made = {
                client.predictions.create(model="emulator/echo", input={"text": "x"}).id
                for _ in range(3)
            }
            first = client.predictions.list()
            assert len(first.results) == 2
            assert first.next is not None
            second = client.predictions.list(first.next)
            assert {p.id for p in first.results + second.results} == made
        finally:
            client._client.close()


def test_trainings_files_webhooks_and_errors(
    official: replicate.Client, replicate_emulator: Emulator
) -> None:
    version = official.models.get("emulator/sleep").latest_version.id
    training = official.trainings.create(
        model="emulator/sleep",
        version=version,
        input={"seconds": 30},
        destination="emulator/trained",
    )
    assert official.trainings.get(training.id).status in ("starting", "processing")
    assert official.trainings.cancel(training.id).status == "canceled"
    uploaded = official.files.create(io.BytesIO(b"some bytes"))
    assert official.files.get(uploaded.id).size == 10
    assert official.webhooks.default.secret().key == replicate_emulator.webhook_secret
    with pytest.raises(replicate.exceptions.ReplicateError) as info:
        official.models.predictions.create(model="emulator/echo", input={"text": 1})
    assert info.value.status == 422
    assert info.value.title == "Input validation failed"
    assert "Invalid type. Expected: string, given: integer" in (info.value.detail or "")
    with pytest.raises(replicate.exceptions.ModelError):
        official.run("emulator/fail", input={})


# -- the JavaScript client ---------------------------------------------------------------------

_SCRIPT = """
import Replicate from "replicate";
const replicate = new Replicate({ auth: process.env.TOKEN, baseUrl: process.env.BASE_URL });
const out = {};
const images = await replicate.run(
  "emulator/images", { input: { num_outputs: 1, size_bytes: 64 } });
out.fileOutput = images[0] instanceof ReadableStream;
out.url = String(images[0]);
out.bytes = (await (await images[0].blob()).arrayBuffer()).byteLength;
out.echo = await replicate.run("emulator/echo", { input: { text: "from node" } });
const tokens = [];
for await (const event of replicate.stream("emulator/stream", { input: { tokens: 3 } })) {
  if (event.event === "output") tokens.push(String(event));
}
out.stream = tokens.join("");
const page = await replicate.predictions.list();
out.listed = page.results.length;
out.secret = (await replicate.webhooks.default.secret.get()).key;
const model = await replicate.models.get("emulator", "images");
out.schemaOutput = model.latest_version.openapi_schema.components.schemas.Output.items.format;
const made = await replicate.models.create("emulator", "from-node",
  { visibility: "private", hardware: "cpu" });
out.created = made.name;
const deployment = await replicate.deployments.create({
  name: "node-dep", model: "emulator/echo",
  version: (await replicate.models.get("emulator", "echo")).latest_version.id,
  hardware: "cpu", min_instances: 0, max_instances: 1 });
out.deployment = deployment.current_release.number;
const viaDeployment = await replicate.deployments.predictions.create(
  "emulator", "node-dep", { input: { text: "dep" }, wait: 10 });
out.deploymentOutput = viaDeployment.output;
const upload = await replicate.files.create(new Blob(["node bytes"]));
out.fileSize = upload.size;
const version = (await replicate.models.get("emulator", "sleep")).latest_version.id;
const training = await replicate.trainings.create("emulator", "sleep", version,
  { destination: "emulator/trained", input: { seconds: 30 } });
out.trainingCanceled = (await replicate.trainings.cancel(training.id)).status;
try {
  await replicate.run("emulator/echo", { input: { text: 5 } });
} catch (e) {
  out.error = { name: e.name, status: e.response && e.response.status };
}
console.log(JSON.stringify(out));
"""


def _node_client() -> str | None:
    """Why the JS client cannot run here, or None if it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (JS / "node_modules" / "replicate" / "package.json").is_file():
        return "the replicate npm package is not installed in tests/js (.ci/run installs it)"
    return None


@pytest.mark.skipif(_node_client() is not None, reason=str(_node_client()))
def test_the_javascript_client(replicate_emulator: Emulator, tmp_path: Path) -> None:
    # Beside node_modules (Node resolves "replicate" from the script's folder), named for
    # this process: CI runs the suite on several Pythons at once in one checkout.
    script = JS / f"conformance-{os.getpid()}.mjs"
    script.write_text(_SCRIPT)
    try:
        env = {
            **os.environ,
            "TOKEN": replicate_emulator.token,
            "BASE_URL": replicate_emulator.url,
            "NODE_EXTRA_CA_CERTS": replicate_emulator.ca_file,
        }
        result = subprocess.run(
            ["node", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=JS,
            check=False,
        )
    finally:
        script.unlink(missing_ok=True)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["fileOutput"] is True
    assert out["url"].startswith("https://")
    assert out["bytes"] == 64
    assert out["echo"] == "from node"
    assert out["stream"] == "token0 token1 token2 "
    assert out["listed"] >= 3
    assert out["secret"] == replicate_emulator.webhook_secret
    assert out["error"] == {"name": "ApiError", "status": 422}
    assert out["schemaOutput"] == "uri"
    assert out["created"] == "from-node"
    assert out["deployment"] == 1
    assert out["deploymentOutput"] == "dep"
    assert out["fileSize"] == len("node bytes")
    assert out["trainingCanceled"] == "canceled"
