"""The command line, driven as a user drives it: a process per command, against the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from replicate_async.testing import Emulator, RunContext
from replicate_async.testing._webhooks import sign
from tests.conftest import none_running

ROOT = Path(__file__).parents[2]


async def cli(
    emulator: Emulator | None, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Run ``python -m replicate_async ARGS`` against the emulator: (exit code, out, err)."""
    process = await asyncio.create_subprocess_exec(
        *argv(emulator, *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def argv(emulator: Emulator | None, *args: str) -> list[str]:
    """The command line of ``python -m replicate_async ARGS`` against the emulator."""
    base = [] if emulator is None else ["--base-url", emulator.url, "--token", emulator.token]
    return [sys.executable, "-m", "replicate_async", *base, *args]


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


# -- help ---------------------------------------------------------------------------------

COMMANDS = [
    ["run"],
    ["stream"],
    ["predictions", "get"],
    ["predictions", "list"],
    ["predictions", "cancel"],
    ["predictions", "wait"],
    ["predictions", "watch"],
    ["files", "upload"],
    ["files", "list"],
    ["files", "get"],
    ["files", "delete"],
    ["files", "download"],
    ["models", "get"],
    ["models", "list"],
    ["models", "search"],
    ["models", "versions"],
    ["models", "signature"],
    ["deployments", "list"],
    ["deployments", "get"],
    ["trainings", "get"],
    ["trainings", "list"],
    ["trainings", "cancel"],
    ["hardware"],
    ["account"],
    ["webhooks", "secret"],
    ["webhooks", "verify"],
    ["demo"],
]


def test_every_command_has_complete_help() -> None:
    from replicate_async.cli._parser import build_parser

    parser = build_parser()
    top = parser.format_help()
    assert "exit codes" in top and "REPLICATE_API_TOKEN" in top
    for words in COMMANDS:
        sub: Any = parser
        for word in words:
            action = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction")
            sub = action.choices[word]
        text = sub.format_help()
        assert sub.description, words
        for option in ("--base-url", "--token", "--emulator", "--json", "--debug"):
            assert option in text, (words, option)
        # Every argument and option says what it is for.
        for action in sub._actions:
            if action.dest not in ("help", "action") and action.option_strings != ["-h", "--help"]:
                assert action.help, (words, action.dest)


async def test_help_exits_0_and_a_bad_command_line_exits_2() -> None:
    code, out, _ = await cli(None, "run", "--help")
    assert code == 0 and "--input-file" in out and "key=@path" in out
    code, _, err = await cli(None, "fly")
    assert code == 2 and "invalid choice" in err
    code, _, err = await cli(None, "run")
    assert code == 2 and "model" in err


# -- run and stream -----------------------------------------------------------------------


async def test_run_prints_the_output_and_json_is_one_document(emulator: Emulator) -> None:
    code, out, err = await cli(emulator, "run", "emulator/echo", "-i", "text=hello world")
    assert (code, out, err) == (0, "hello world\n", "")
    code, out, _ = await cli(emulator, "run", "emulator/echo", "-i", "text=hi", "--json")
    document = json.loads(out)
    assert code == 0 and document["output"] == "hi" and document["status"] == "succeeded"
    # Values parse as JSON when they can; bare key=value words work too.
    code, out, _ = await cli(
        emulator, "run", "emulator/images", "num_outputs=2", "-i", "size_bytes=16"
    )
    assert code == 0 and [line.startswith("https://") for line in out.splitlines()] == [True, True]


async def test_run_saves_files_and_uploads_at_paths(emulator: Emulator, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, _ = await cli(
        emulator,
        "run",
        "emulator/images",
        "-i",
        "num_outputs=2",
        "-i",
        "size_bytes=100",
        "--output-dir",
        str(out_dir),
    )
    assert code == 0
    paths = [Path(line) for line in out.splitlines()]
    assert [p.stat().st_size for p in paths] == [100, 100] and all(
        p.parent == out_dir for p in paths
    )
    data = tmp_path / "in.bin"
    data.write_bytes(b"x" * 1000)
    code, out, _ = await cli(emulator, "run", "emulator/checksum", "-i", f"file=@{data}", "--json")
    assert code == 0
    assert json.loads(out)["output"]["file"]["size"] == 1000
    code, _, err = await cli(emulator, "run", "emulator/checksum", "-i", "file=@/no/such/file")
    assert code == 2 and "no file at" in one_line_error(err)


async def test_no_wait_prints_the_prediction_at_once(emulator: Emulator) -> None:
    code, out, _ = await cli(
        emulator, "run", "emulator/sleep", "-i", "seconds=5", "--no-wait", "--json"
    )
    prediction = json.loads(out)
    assert code == 0 and prediction["status"] in ("starting", "processing")
    assert emulator.predictions[prediction["id"]].status in ("starting", "processing")


async def test_a_failing_model_exits_1_with_one_line(emulator: Emulator) -> None:
    code, out, err = await cli(emulator, "run", "emulator/fail", "-i", "message=it broke")
    assert code == 1 and out == ""
    line = one_line_error(err)
    assert line.startswith("error: ") and "it broke" in line


async def test_a_bad_token_exits_3_and_the_token_is_never_printed(emulator: Emulator) -> None:
    secret = "r8_this-is-not-a-valid-token-123456"
    for extra in ([], ["--debug"]):
        options = ["--base-url", emulator.url, "--token", secret, *extra]
        code, out, err = await cli(None, *options, "run", "emulator/echo", "-i", "text=x")
        assert code == 3
        assert secret not in out + err
        assert "401" in err or "authentic" in err.lower()


async def test_an_unknown_model_is_an_api_error(emulator: Emulator) -> None:
    code, _, err = await cli(emulator, "run", "nobody/nothing", "-i", "x=1")
    line = one_line_error(err)
    assert code == 3
    assert "404" in line or "not found" in line.lower()


async def test_stream_prints_text_as_it_comes(emulator: Emulator) -> None:
    code, out, _ = await cli(emulator, "stream", "emulator/stream", "-i", "tokens=4")
    assert code == 0 and out == "token0 token1 token2 token3 \n"
    code, out, _ = await cli(emulator, "stream", "emulator/stream", "-i", "tokens=2", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["data"] for e in events if e["event"] == "output"] == ["token0 ", "token1 "]


# -- fan-out --------------------------------------------------------------------------------


async def numbered(input: dict[str, Any], ctx: RunContext) -> int:
    await ctx.sleep((input["i"] * 7 % 5) / 100)
    if input.get("fail"):
        raise ValueError("on purpose")
    return int(input["i"]) * 2


async def test_an_input_file_of_200_lines_runs_as_a_fan_out(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.add_model("me/numbered", numbered)
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(200)))
    code, out, _ = await cli(
        emulator, "run", "me/numbered", "--input-file", str(inputs), "--json", "--order", "input"
    )
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [r["index"] for r in results] == list(range(200))
    assert all(r["output"] == r["index"] * 2 and r["status"] == "succeeded" for r in results)
    # One failure: its line says so, the rest go on, and the exit code is 1.
    inputs.write_text(json.dumps({"i": 0}) + "\n" + json.dumps({"i": 1, "fail": True}) + "\n")
    code, out, _ = await cli(emulator, "run", "me/numbered", "--input-file", str(inputs))
    lines = sorted(out.splitlines())
    assert code == 1 and lines[0] == "0\tsucceeded\t0" and lines[1].startswith("1\tfailed\t")
    # A bad line is refused before anything runs.
    inputs.write_text('{"i": 0}\nnot json\n')
    before = len(emulator.predictions)
    code, _, err = await cli(emulator, "run", "me/numbered", "--input-file", str(inputs))
    assert code == 2 and "line 2" in one_line_error(err) and len(emulator.predictions) == before


async def test_ctrl_c_during_a_fan_out_cancels_what_it_started(
    emulator: Emulator, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"seconds": 30}) + "\n" for _ in range(20)))
    process = await asyncio.create_subprocess_exec(
        *argv(emulator, "run", "emulator/sleep", "--input-file", str(inputs)),
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    for _ in range(200):  # until the predictions run
        if sum(not job.terminal for job in emulator.predictions.values()) >= 20:
            break
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    assert await none_running(emulator), "a prediction is still running after Ctrl-C"


# -- progress -------------------------------------------------------------------------------


async def tqdm_model(input: dict[str, Any], ctx: RunContext) -> str:
    for step in range(1, 11):
        ctx.log(
            f"{step * 10:3d}%|{'█' * step}{' ' * (10 - step)}| {step}/10 [00:01<00:01, 9.9it/s]"
        )
        await ctx.sleep(0.08)
    return "done"


async def on_a_terminal(emulator: Emulator, *args: str) -> tuple[int, str]:
    """Run the command line with a pseudo-terminal for stdout and stderr: (code, screen)."""
    main, secondary = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *argv(emulator, *args),
        stdout=secondary,
        stderr=secondary,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(secondary)
    seen = b""
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.run_in_executor(None, os.read, main, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    await process.wait()
    os.close(main)
    assert process.returncode is not None
    return process.returncode, seen.decode(errors="replace")


async def test_progress_is_drawn_on_a_terminal_and_absent_in_a_pipe(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.add_model("me/steps", tqdm_model)
    code, out, err = await cli(emulator, "run", "me/steps")
    assert (code, out, err) == (0, "done\n", "")  # piped: data only
    code, text = await on_a_terminal(emulator, "run", "me/steps")
    assert code == 0
    assert "me/steps" in text and "% (" in text and "/10)" in text  # the model's own progress
    assert text.rstrip().endswith("done")
    # A fan-out's bar, and a download's, at a terminal too.
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"text": str(i)}) + "\n" for i in range(20)))
    code, text = await on_a_terminal(emulator, "run", "emulator/echo", "--input-file", str(inputs))
    assert code == 0 and "20/20" in text
    code, out, err = await cli(emulator, "run", "emulator/echo", "--input-file", str(inputs))
    assert code == 0 and err == "" and len(out.splitlines()) == 20


# -- the rest of the API ------------------------------------------------------------------


async def test_predictions_commands(emulator: Emulator) -> None:
    _, out, _ = await cli(
        emulator, "run", "emulator/sleep", "-i", "seconds=0.3", "--no-wait", "--json"
    )
    pid = json.loads(out)["id"]
    code, out, _ = await cli(emulator, "predictions", "wait", pid, "--json")
    assert code == 0 and json.loads(out)["status"] == "succeeded"
    code, out, _ = await cli(emulator, "predictions", "get", pid)
    fields = dict(line.split(None, 1) for line in out.splitlines() if " " in line.strip())
    assert code == 0 and fields["id"] == pid and fields["status"] == "succeeded"
    code, out, _ = await cli(emulator, "predictions", "list", "--limit", "5", "--json")
    assert code == 0 and pid in [p["id"] for p in json.loads(out)]
    _, out, _ = await cli(
        emulator, "run", "emulator/sleep", "-i", "seconds=30", "--no-wait", "--json"
    )
    long = json.loads(out)["id"]
    code, out, _ = await cli(emulator, "predictions", "cancel", long, "--json")
    assert code == 0 and json.loads(out)["status"] == "canceled"
    code, out, _ = await cli(emulator, "predictions", "watch", long, "--json")
    assert code == 1 and json.loads(out.splitlines()[-1])["status"] == "canceled"


async def test_files_commands(emulator: Emulator, tmp_path: Path) -> None:
    source = tmp_path / "hello.txt"
    source.write_text("hello")
    code, out, _ = await cli(emulator, "files", "upload", str(source), "--json")
    uploaded = json.loads(out)
    assert code == 0 and uploaded["size"] == 5
    code, out, _ = await cli(emulator, "files", "list", "--json")
    assert uploaded["id"] in [f["id"] for f in json.loads(out)]
    code, out, _ = await cli(emulator, "files", "get", uploaded["id"])
    assert code == 0 and "hello.txt" in out
    target = tmp_path / "back.txt"
    url = emulator.signed_download_url(uploaded["id"])
    code, out, _ = await cli(emulator, "files", "download", url, "-o", str(target))
    assert code == 0 and target.read_text() == "hello"
    code, out, _ = await cli(emulator, "files", "delete", uploaded["id"])
    assert code == 0 and out.strip() == f"deleted {uploaded['id']}"
    code, _, _ = await cli(emulator, "files", "get", uploaded["id"])
    assert code == 3


async def test_models_deployments_trainings_hardware_account_commands(emulator: Emulator) -> None:
    emulator.add_deployment("emulator/echoes", "emulator/echo")
    code, out, _ = await cli(emulator, "models", "get", "emulator/echo", "--json")
    assert code == 0 and json.loads(out)["name"] == "echo"
    code, out, _ = await cli(emulator, "models", "list", "--limit", "3")
    assert code == 0 and len(out.splitlines()) == 3
    code, out, _ = await cli(emulator, "models", "search", "echo")
    assert code == 0 and "emulator/echo" in out
    code, out, _ = await cli(emulator, "models", "versions", "emulator/echo", "--json")
    assert code == 0 and len(json.loads(out)) >= 1
    code, out, _ = await cli(emulator, "models", "signature", "emulator/echo")
    assert code == 0 and out.startswith("emulator/echo(")
    code, out, _ = await cli(emulator, "deployments", "list")
    assert code == 0 and "emulator/echoes" in out
    code, out, _ = await cli(emulator, "deployments", "get", "emulator/echoes", "--json")
    assert code == 0 and json.loads(out)["name"] == "echoes"
    code, out, _ = await cli(emulator, "trainings", "list", "--json")
    assert code == 0 and json.loads(out) == []
    from replicate_async import AsyncReplicate

    async with AsyncReplicate(emulator.token, emulator.url) as client:
        version = (await client.models.get("emulator/sleep")).latest_version
        assert version is not None
        training = await client.trainings.create(
            "emulator/sleep", version.id, destination="emulator/trained", input={"seconds": 30}
        )
    code, out, _ = await cli(emulator, "trainings", "get", training.id)
    assert code == 0 and training.id in out
    assert "starting" in out or "processing" in out
    code, out, _ = await cli(emulator, "trainings", "cancel", training.id, "--json")
    assert code == 0 and json.loads(out)["status"] == "canceled"
    code, out, _ = await cli(emulator, "trainings", "list")
    assert code == 0 and training.id in out
    code, out, _ = await cli(emulator, "hardware")
    assert code == 0 and "cpu" in out
    code, out, _ = await cli(emulator, "account", "--json")
    assert code == 0 and json.loads(out)["username"] == "emulator"


async def test_webhooks_secret_and_verify(emulator: Emulator, tmp_path: Path) -> None:
    code, out, _ = await cli(emulator, "webhooks", "secret")
    assert code == 0 and out.strip() == emulator.webhook_secret
    body = b'{"id": "p1", "status": "succeeded"}'
    import time as clock

    stamp = int(clock.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(emulator.webhook_secret, "msg_1", stamp, body),
    }
    (tmp_path / "headers.json").write_text(json.dumps(headers))
    (tmp_path / "body").write_bytes(body)
    args = [
        "webhooks",
        "verify",
        "--secret",
        emulator.webhook_secret,
        "--headers",
        str(tmp_path / "headers.json"),
        "--body",
        str(tmp_path / "body"),
    ]
    code, out, _ = await cli(None, *args)
    assert (code, out) == (0, "valid\n")
    (tmp_path / "body").write_bytes(body + b" ")
    code, out, _ = await cli(None, *args)
    assert code == 1 and out.startswith("invalid:")
    # Headers as "Name: value" lines work too.
    (tmp_path / "headers.json").write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
    (tmp_path / "body").write_bytes(body)
    code, _, _ = await cli(None, *args)
    assert code == 0


async def test_the_emulator_option_and_command(tmp_path: Path) -> None:
    code, out, _ = await cli(None, "--emulator", "run", "emulator/echo", "-i", "text=local")
    assert (code, out) == (0, "local\n")
    process = await asyncio.create_subprocess_exec(
        *argv(None, "emulator", "--port", "0", "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    info = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
    code, out, _ = await cli(
        None,
        "--base-url",
        info["url"],
        "--token",
        info["token"],
        "run",
        "emulator/echo",
        "-i",
        "text=over there",
    )
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 30)
    assert (code, out) == (0, "over there\n")
    assert process.returncode == 0


@pytest.mark.parametrize("words", [["predictions", "get"], ["files", "upload"]])
async def test_missing_arguments_are_usage_errors(words: list[str]) -> None:
    code, _, err = await cli(None, *words)
    assert code == 2 and "required" in err


async def test_ctrl_c_during_a_held_create_cancels_the_prediction(emulator: Emulator) -> None:
    # Piped and --json: the create is held open (Prefer: wait), its id not known yet.
    process = await asyncio.create_subprocess_exec(
        *argv(emulator, "run", "emulator/sleep", "-i", "seconds=30", "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    for _ in range(200):
        if any(not job.terminal for job in emulator.predictions.values()):
            break
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGINT)
    await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130
    assert await none_running(emulator), "the prediction still runs after Ctrl-C"
    assert [job.status for job in emulator.predictions.values()] == ["canceled"]


async def test_a_language_models_tokens_print_as_one_text(emulator: Emulator) -> None:
    code, out, _ = await cli(emulator, "run", "emulator/stream", "-i", "tokens=4")
    assert (code, out) == (0, "token0 token1 token2 token3 \n")


async def test_a_fan_out_the_api_refuses_exits_3(emulator: Emulator, tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"x": 1}\n{"x": 2}\n')
    code, out, _ = await cli(emulator, "run", "nobody/nothing", "--input-file", str(inputs))
    assert code == 3 and len(out.splitlines()) == 2
