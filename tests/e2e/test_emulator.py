"""The emulator as a product: any client works, the fixture, the command line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import replicate

from replicate_async import AsyncReplicate
from replicate_async.testing import Emulator


def test_the_pytest_fixture_works_in_sync_tests(replicate_emulator: Emulator) -> None:
    assert os.environ["REPLICATE_BASE_URL"] == replicate_emulator.root_url
    request = urllib.request.Request(
        f"{replicate_emulator.url}/models/emulator/echo/predictions",
        data=json.dumps({"input": {"text": "sync"}}).encode(),
        headers={
            "Authorization": f"Bearer {replicate_emulator.token}",
            "Prefer": "wait",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 201
        assert reply.headers["Location"].startswith(replicate_emulator.url)
        assert reply.headers["ratelimit-remaining"].isdigit()
        body = json.load(reply)
    assert body["status"] == "succeeded" and body["output"] == "sync"


def test_the_official_client_works_against_it(replicate_emulator: Emulator) -> None:
    official = replicate.Client()  # configured by the environment the fixture set
    try:
        assert official.run("emulator/echo", input={"text": "official"}) == "official"
        prediction = official.predictions.create(model="emulator/sleep", input={"seconds": 0.2})
        prediction.wait()
        assert prediction.status == "succeeded"
        with pytest.raises(replicate.exceptions.ModelError):
            official.run("emulator/fail", input={})
    finally:
        official._client.close()  # the official client has no public close()


def test_401_body_and_headers_match_the_real_service(replicate_emulator: Emulator) -> None:
    request = urllib.request.Request(
        f"{replicate_emulator.url}/account", headers={"Authorization": "Bearer wrong"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    with info.value as err:
        assert err.code == 401
        assert err.headers["Content-Type"] == "application/problem+json"
        assert "ratelimit-remaining" not in err.headers
        assert json.load(err) == {
            "title": "Unauthenticated",
            "detail": "You did not pass a valid authentication token",
            "status": 401,
        }


def test_the_demo_runs_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLICATE_")}
    result = subprocess.run(
        [sys.executable, "-m", "replicate_async", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "hello from replicate_async" in out
    assert "40/40 succeeded" in out
    assert "".join(f"token{i} " for i in range(12)) in out
    assert "PredictionFailed" in out
    assert (tmp_path / "image-0.png").stat().st_size == 2_000_000


def test_the_emulator_command_line_starts_and_prints_its_url() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "replicate_async.testing", "--port", "0", "--token", "r8_cli"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        url = first.split("listening on ")[1].strip()
        request = urllib.request.Request(
            f"{url}/hardware", headers={"Authorization": "Bearer r8_cli"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.load(reply)[0]["sku"] == "cpu"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_command_line_runs_and_lists(replicate_emulator: Emulator) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replicate_async", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ran = cli("run", "emulator/echo", "text=hello")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == "hello"
    listed = cli("predictions", "list")
    assert listed.returncode == 0
    assert "succeeded" in listed.stdout and "emulator/echo" in listed.stdout
    bad = cli("run", "not-a-ref")
    assert bad.returncode == 1
    assert "Invalid model reference" in bad.stderr


async def test_tokens_see_only_their_own_predictions() -> None:
    from replicate_async import AsyncReplicate
    from replicate_async.errors import NotFoundError

    async with Emulator() as emu:
        emu.add_token("r8_second")
        async with (
            AsyncReplicate(api_token=emu.token, base_url=emu.url) as first,
            AsyncReplicate(api_token="r8_second", base_url=emu.url) as second,
        ):
            p = await first.predictions.create(model="emulator/echo", input={"text": "x"})
            assert [q.id async for q in second.predictions.list()] == []
            with pytest.raises(NotFoundError):
                await second.predictions.get(p.id)
            assert [q.id async for q in first.predictions.list()] == [p.id]


async def test_one_fault_mechanism_serves_the_delivery_and_stream_hosts(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    from replicate_async.errors import ServerError
    from replicate_async.files import MAX_RESUMES
    from replicate_async.testing import Fault

    (image,) = await client.run("emulator/images", input={"num_outputs": 1, "size_bytes": 10})
    emulator.inject(Fault(host="delivery", status=503, body=b"busy", times=MAX_RESUMES + 1))
    with pytest.raises(ServerError):
        await image.read()  # a 503 is tried again, but not for ever
    requests = len(emulator.delivery_requests)
    emulator.inject(Fault(host="delivery", status=503, body=b"busy"))
    assert len(await image.read()) == 10  # used once, then gone: the second try works
    assert len(emulator.delivery_requests) == requests + 2
    # The stream host failing every time: the stream gets its output by polling instead.
    emulator.inject(Fault(host="stream", status=502, times=20))
    events = [e async for e in client.stream("emulator/stream", input={"tokens": 2})]
    assert "".join(map(str, events)) == "".join(
        str(e) for e in [e async for e in client.stream("emulator/stream", input={"tokens": 2})]
    )
    started = asyncio.get_running_loop().time()
    emulator.inject(Fault(host="stream", delay=0.3))
    assert len([e async for e in client.stream("emulator/stream", input={"tokens": 2})]) == 2
    assert asyncio.get_running_loop().time() - started >= 0.3


async def test_chaos_mode_faults_every_host_and_the_client_loses_nothing() -> None:
    from collections import Counter

    import aiohttp

    from replicate_async import RetryPolicy
    from replicate_async.errors import ReplicateError
    from tests.conftest import FAST_POLLING

    quick = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
    async with (
        Emulator(chaos=0.05, chaos_seed=3) as emu,
        AsyncReplicate(
            api_token=emu.token, base_url=emu.url, polling=FAST_POLLING, retry=quick
        ) as client,
    ):
        inputs = [{"text": f"t{i}"} for i in range(300)]
        results = [r async for r in client.run_many("emulator/echo", inputs, concurrency=50)]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{emu.root_url}/_emulator/predictions") as reply,
        ):
            jobs = await reply.json()
        injected = emu.faults_injected
    assert sorted(r.index for r in results) == list(range(300))  # one result per input
    for result in results:
        if result.ok:
            assert result.output == result.input["text"]
        else:
            assert isinstance(result.error, ReplicateError) and str(result.error)
    made = Counter(job["input"]["text"] for job in jobs)
    assert max(made.values()) == 1  # no duplicate prediction
    succeeded = {job["input"]["text"] for job in jobs if job["status"] == "succeeded"}
    lost = [r for r in results if not r.ok and r.input["text"] in succeeded]
    assert lost == []  # no result the server has that the client failed to hand back
    assert sum(injected.values()) > 10 and any(k.startswith("api ") for k in injected)
    assert sum(r.ok for r in results) >= 280
