"""Models for the emulator's command line: ``--models examples/emulator_models.py``.

A test suite in any language can start the emulator with models of its own: this file
defines ``register(emulator)``, which the command line calls once the emulator runs.
Each model declares its inputs and output as Cog would, so its version publishes the
same schema a real model does, and bad input is refused with Replicate's words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replicate_async.testing import ConcatenateIterator, Emulator, Input, RunContext


def shout(input: dict[str, Any], ctx: RunContext) -> str:
    """Upper-cases its text, ``times`` times over."""
    ctx.log("shouting")
    return " ".join([str(input["text"]).upper()] * int(input["times"]))


async def poem(input: dict[str, Any], ctx: RunContext) -> list[str]:
    """Writes ``lines`` lines, one output event each (it streams)."""
    lines = [f"line {i + 1} about {input['topic']}\n" for i in range(int(input["lines"]))]
    for line in lines:
        await ctx.sleep(0.05)
        ctx.emit(line)
    return lines


def thumbnails(input: dict[str, Any], ctx: RunContext) -> list[str]:
    """Returns ``count`` files of deterministic bytes (served over HTTPS)."""
    return [
        ctx.file(f"thumb-{i}.png", 2048, seed=i, content_type="image/png")
        for i in range(int(input["count"]))
    ]


def register(emulator: Emulator) -> None:
    """Add this file's models (and a deployment of one) to a running emulator."""
    emulator.add_model(
        "acme/shout",
        shout,
        inputs={
            "text": Input(str, description="What to shout"),
            "times": Input(int, default=1, ge=1, le=3, description="How many times"),
        },
        output=str,
        description="Shouts its input.",
    )
    emulator.add_model(
        "acme/poem",
        poem,
        inputs={"topic": Input(str), "lines": Input(int, default=3, ge=1, le=20)},
        output=ConcatenateIterator[str],
        description="A short poem, streamed line by line.",
    )
    emulator.add_model(
        "acme/thumbnails",
        thumbnails,
        inputs={"count": Input(int, default=1, ge=0, le=10)},
        output=list[Path],
        description="Deterministic image files.",
    )
    emulator.add_deployment("acme/shouter", "acme/shout")
