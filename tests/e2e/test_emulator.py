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
    assert "InputValidationError: txt: not an input of emulator/echo (did you mean 'text'?)" in out
    assert "second run: 10 replayed from job.journal.jsonl, 0 requests" in out


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
    assert ran.stdout == "hello\n"
    ran = cli("run", "emulator/echo", "text=hello", "--json")
    assert json.loads(ran.stdout)["output"] == "hello"
    listed = cli("predictions", "list")
    assert listed.returncode == 0
    assert "succeeded" in listed.stdout and "emulator/echo" in listed.stdout
    bad = cli("run", "not-a-ref")
    assert bad.returncode == 2  # refused before any request: a usage error
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


# -- TLS like production ------------------------------------------------------------------------


async def test_outputs_are_https_and_verified_with_the_emulator_s_authority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ssl

    from replicate_async.errors import ConnectError

    async with Emulator() as emu:
        assert emu.url.startswith("http://")  # the API stays plain unless tls="all"
        assert emu.delivery_url.startswith("https://")
        assert emu.stream_url.startswith("https://")
        ca, bundle = Path(emu.ca_file), Path(emu.ca_bundle)
        assert b"BEGIN CERTIFICATE" in ca.read_bytes()
        assert ca.read_bytes() in bundle.read_bytes()
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        # A client of this process trusts the emulator this process made, with no setting
        # (the authority's key never left the process): the usage DESIGN.md shows.
        async with AsyncReplicate(api_token=emu.token, base_url=emu.url) as plain:
            (image,) = await plain.run("emulator/images", input={"size_bytes": 10})
            assert len(await image.read()) == 10
        # Verification is on: a client told to trust only the system is refused, and told
        # what to do (an emulator in another process looks like this)...
        async with AsyncReplicate(
            api_token=emu.token, base_url=emu.url, ssl=ssl.create_default_context()
        ) as stranger:
            (image,) = await stranger.run("emulator/images", input={"size_bytes": 10})
            with pytest.raises(ConnectError, match=r"not trusted.*ca_file"):
                await image.read()
        # ...one given its context, or SSL_CERT_FILE pointing at the bundle, is not.
        async with AsyncReplicate(
            api_token=emu.token, base_url=emu.url, ssl=emu.ssl_context()
        ) as trusting:
            (image,) = await trusting.run("emulator/images", input={"size_bytes": 10})
            assert len(await image.read()) == 10
        monkeypatch.setenv("SSL_CERT_FILE", emu.ca_bundle)
        async with AsyncReplicate(api_token=emu.token, base_url=emu.url) as by_env:
            (image,) = await by_env.run("emulator/images", input={"size_bytes": 10})
            assert len(await image.read()) == 10
    # No file outlives the emulator.
    assert not ca.exists()
    assert not bundle.exists()


async def test_tls_all_serves_the_api_over_https_and_off_serves_plain_http() -> None:
    async with Emulator(tls="all") as emu:
        assert emu.url.startswith("https://")
        async with AsyncReplicate(
            api_token=emu.token, base_url=emu.url, ssl=emu.ssl_context()
        ) as client:
            assert await client.run("emulator/echo", input={"text": "tls"}) == "tls"
    async with Emulator(tls=False) as emu:
        assert emu.delivery_url.startswith("http://")
        assert emu.trust_files is None
        with pytest.raises(RuntimeError, match="tls=False"):
            _ = emu.ca_file
    with pytest.raises(ValueError, match="tls must be"):
        Emulator(tls="sometimes")


async def test_a_failed_start_leaves_no_listener_and_no_file() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        emu = Emulator(port=port)
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await emu.start()
        assert emu.trust_files is None
        assert not emu._runners


# -- the command line for other languages -------------------------------------------------------


def test_the_command_line_prints_json_and_takes_models_deployments_and_page_size(
    tmp_path: Path,
) -> None:
    import signal

    models = Path(__file__).parents[2] / "examples" / "emulator_models.py"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replicate_async.testing",
            "--port",
            "0",
            "--json",
            "--page-size",
            "2",
            "--models",
            str(models),
            "--deployment",
            "acme/echoes=emulator/echo",
            "--webhook-retry-scale",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert set(info) >= {"url", "token", "stream_url", "delivery_url", "ca_file", "ca_bundle"}
        assert {"acme/shout", "acme/poem", "acme/thumbnails"} <= set(info["models"])
        assert info["deployments"] == ["acme/echoes", "acme/shouter"]
        assert info["webhook_secret"].startswith("whsec_")

        async def use() -> None:
            import ssl

            context = ssl.create_default_context(cafile=info["ca_file"])
            async with AsyncReplicate(
                api_token=info["token"], base_url=info["url"], ssl=context
            ) as client:
                assert await client.run("acme/shout", input={"text": "hi", "times": 2}) == ("HI HI")
                poem = [str(e) async for e in client.stream("acme/poem", input={"topic": "x"})]
                assert len(poem) == 3
                (thumb,) = await client.run("acme/thumbnails")
                assert len(await thumb.read()) == 2048
                p = await client.deployments.predictions.create(
                    "acme/echoes", {"text": "d"}, wait=True
                )
                assert p.output == "d"
                # Page size 2: four predictions come in two pages.
                ids = [p.id async for p in client.predictions.list()]
                assert len(ids) == 4

        asyncio.run(use())
        with urllib.request.urlopen(f"{info['root_url']}/_emulator/stats", timeout=10) as reply:
            stats = json.load(reply)
        pages = [r["count"] for r in stats["requests"] if r["route"] == "/predictions"]
        assert pages == [2]
        ca_file = Path(info["ca_file"])
        assert ca_file.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == 0
    assert not ca_file.exists()  # removed when it stopped


def test_the_command_line_explains_a_bad_models_file(tmp_path: Path) -> None:
    empty = tmp_path / "models.py"
    empty.write_text("X = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "replicate_async.testing", "--port", "0", "--models", str(empty)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "must define register(emulator)" in result.stderr
