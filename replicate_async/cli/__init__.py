"""Command line: ``replicate-async`` (also ``python -m replicate_async``) over the public API.

``replicate-async --help`` lists the commands; each has its own ``--help``. Results go
to stdout (text, or JSON with ``--json``), errors to stderr as one line (a traceback
only with ``--debug``), progress to stderr when stdout is a terminal. Exit codes: 0
success, 1 a prediction failed or was canceled, 2 usage error, 3 API or transport
error, 130 interrupted (Ctrl-C cancels the predictions the command started).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import AsyncIterator
from typing import Any

from ..client import AsyncReplicate
from ..errors import PredictionCanceled, PredictionFailed, ReplicateError, redact
from ._commands import COMMANDS, UsageError, verify_delivery
from ._parser import build_parser
from ._show import Printer

__all__ = ["main"]

OK, FAILED, USAGE, API_ERROR, INTERRUPTED = 0, 1, 2, 3, 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``replicate-async`` and ``python -m replicate_async``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if _command_of(argv) == "emulator":
        return _emulator(argv[argv.index("emulator") + 1 :])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse: --help (0) or a usage error (2)
        return int(exit.code or 0)
    printer = Printer(json_mode=args.json)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    try:
        if args.command == "webhooks" and args.action == "verify":
            return verify_delivery(args, printer)
        if args.command == "demo":
            from ._demo import demo

            return asyncio.run(demo(args.out))
        return _run(args, printer)
    except UsageError as error:
        return _fail(args, error, USAGE, prefix="usage error")
    except KeyboardInterrupt:
        _say("interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): nothing more to say, to anyone.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stops the flush at exit
        return OK
    except Exception as error:  # anything else: one line, a traceback only if asked
        return _fail(args, error, API_ERROR)


def _command_of(argv: list[str]) -> str | None:
    """The command word (the first that is not an option or an option's value)."""
    valued = {"--base-url", "--token"}
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in valued:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def _run(args: argparse.Namespace, printer: Printer) -> int:
    handler = COMMANDS[args.command]

    async def work() -> int:
        async with _client(args) as client:
            return await handler(client, args, printer)

    received: list[int] = []

    async def guarded() -> int:
        # Ctrl-C (and SIGTERM) cancel the work, so that what it started is cancelled on
        # Replicate and the client closes its connections, before the exit.
        task = asyncio.ensure_future(work())
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            received.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop, signum)
        try:
            return await task
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None

    try:
        return asyncio.run(guarded())
    except KeyboardInterrupt:
        _say("interrupted: what this command started was cancelled on Replicate")
        # 130 for Ctrl-C; 128 + 15 for a SIGTERM, as shells report it.
        return 128 + signal.SIGTERM if signal.SIGTERM in received else INTERRUPTED
    except (PredictionFailed, PredictionCanceled) as error:
        return _fail(args, error, FAILED)
    except UsageError:
        raise
    except ReplicateError as error:
        return _fail(args, error, API_ERROR)
    except (ValueError, TypeError, OSError) as error:
        # Refused before any request (a bad ref, a file that cannot be read): usage.
        return _fail(args, error, USAGE if not isinstance(error, OSError) else API_ERROR)


@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[AsyncReplicate]:
    if args.emulator:
        from ..testing import Emulator

        async with Emulator() as emulator, AsyncReplicate(emulator.token, emulator.url) as client:
            yield client
        return
    async with AsyncReplicate(api_token=args.token, base_url=args.base_url) as client:
        yield client


def _fail(args: Any, error: BaseException, code: int, *, prefix: str = "error") -> int:
    if getattr(args, "debug", False):
        # The exceptions are scrubbed of the token already; the traceback's frames hold
        # no argument values.
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    if isinstance(error, (PredictionFailed, PredictionCanceled)):
        # The model's error, and where its logs are (they may hold anything).
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        prediction = getattr(error, "prediction", None)
        hint = f" (logs: replicate-async predictions get {prediction.id})" if prediction else ""
        _say(f"{prefix}: {first}{hint}")
        return code
    # One line: what failed, the server's words, what to try (newlines folded).
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    _say(f"{prefix}: {text or type(error).__name__}")
    return code


def _say(text: str) -> None:
    token = os.environ.get("REPLICATE_API_TOKEN")
    text = redact(text)
    if token:
        text = text.replace(token, "r8_…")
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _emulator(options: list[str]) -> int:
    from ..testing.__main__ import main as serve

    try:
        serve(options)
    except SystemExit as exit:
        return int(exit.code or 0) if isinstance(exit.code, int) else USAGE
    return OK
