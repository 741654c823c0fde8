"""The emulator's built-in models, owner ``emulator``: deterministic, fast, documented.

Users' test suites rely on these names and inputs; change them only compatibly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._jobs import ModelSpec, RunContext
from ._schema import ConcatenateIterator, Input

__all__ = ["builtin_models"]


def _echo(input: dict[str, Any], ctx: RunContext) -> str:
    ctx.log(f"echoing {len(input['text'])} characters")
    return str(input["text"])


async def _sleep(input: dict[str, Any], ctx: RunContext) -> None:
    seconds = float(input["seconds"])
    ctx.log(f"sleeping {seconds:g} s")
    await ctx.sleep(seconds)
    ctx.log("done")


def _fail(input: dict[str, Any], ctx: RunContext) -> None:
    ctx.log("about to fail")
    ctx.log("Traceback (most recent call last): emulator/fail always fails")
    raise RuntimeError(input.get("message") or "emulator/fail failed, as it always does")


def _images(input: dict[str, Any], ctx: RunContext) -> list[str]:
    count = int(input["num_outputs"])
    size = int(input["size_bytes"])
    if count < 0 or size < 0:
        raise ValueError("num_outputs and size_bytes must be >= 0")
    urls = []
    for i in range(count):
        ctx.log(f"generating image {i + 1}/{count}")
        urls.append(ctx.file(f"out-{i}.png", size, seed=i, content_type="image/png"))
    return urls


async def _stream(input: dict[str, Any], ctx: RunContext) -> list[str]:
    tokens = int(input["tokens"])
    delay = float(input["delay"])
    for i in range(tokens):
        if delay:
            await ctx.sleep(delay)
        ctx.emit(f"token{i} ")
    return [f"token{i} " for i in range(tokens)]


async def _checksum(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Report (size, sha256) of every file input, at any depth, keyed by its path."""
    found: dict[str, Any] = {}

    async def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                await walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                await walk(item, f"{path}[{i}]")
        else:
            digest = await ctx.digest(value)
            if digest is not None:
                found[path] = {"size": digest[0], "sha256": digest[1]}

    await walk(input, "")
    ctx.log(f"{len(found)} file input(s)")
    return found


def builtin_models() -> list[ModelSpec]:
    """Fresh specs of every built-in model."""
    return [
        ModelSpec(
            owner="emulator",
            name="echo",
            fn=_echo,
            inputs={"text": Input(str, description="The text to return.")},
            output=str,
            description="Returns its text input.",
        ),
        ModelSpec(
            owner="emulator",
            name="sleep",
            fn=_sleep,
            inputs={"seconds": Input(float, default=1.0, ge=0, description="How long to sleep.")},
            description="Sleeps for `seconds`, then returns null.",
        ),
        ModelSpec(
            owner="emulator",
            name="fail",
            fn=_fail,
            inputs={"message": Input(str, default=None, description="The error to fail with.")},
            description="Always fails, with an error and logs.",
        ),
        ModelSpec(
            owner="emulator",
            name="images",
            fn=_images,
            inputs={
                "num_outputs": Input(int, default=1, ge=0, description="How many files."),
                "size_bytes": Input(int, default=1024, ge=0, description="Bytes in each file."),
            },
            output=list[Path],
            description="Returns `num_outputs` file URLs of `size_bytes` deterministic bytes.",
        ),
        ModelSpec(
            owner="emulator",
            name="stream",
            fn=_stream,
            inputs={
                "tokens": Input(int, default=10, ge=0, description="How many text chunks."),
                "delay": Input(float, default=0.0, ge=0, description="Seconds between chunks."),
            },
            output=ConcatenateIterator[str],
            description="Produces `tokens` text chunks (an iterator of strings).",
        ),
        ModelSpec(
            owner="emulator",
            name="checksum",
            fn=_checksum,
            output=dict,
            description="Reports the size and sha256 of each file input, by its path.",
        ),
    ]
