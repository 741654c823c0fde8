"""``python -m replicate_async.testing``: run the emulator until interrupted, for any language.

A test suite in Node, Go or anything else starts it as a subprocess, reads its first
line (``--json``: one JSON object with the URLs, the token and the certificate files),
points its client there, and stops it at the end (SIGTERM or Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import signal
import sys
from pathlib import Path
from typing import Any

from . import Emulator

__all__ = ["main"]

_TLS: dict[str, bool | str] = {"on": True, "off": False, "all": "all"}


def _load_models(emu: Emulator, path: str) -> None:
    """Run ``path`` (a Python file) and call its ``register(emulator)``."""
    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"--models: no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"_emulator_models_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--models: cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs, as an import would: dataclasses and pickling look it up.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        register = getattr(module, "register", None)
        if not callable(register):
            raise SystemExit(
                f"--models: {path} must define register(emulator), which adds its models "
                "with emulator.add_model(...) (see examples/emulator_models.py)"
            )
        register(emu)
    except SystemExit:
        raise
    except Exception as error:
        # The file's own mistake: say where, briefly (the traceback is the user's to ask).
        raise SystemExit(f"--models {path}: {type(error).__name__}: {error}") from None


def _add_deployment(emu: Emulator, text: str) -> None:
    ref, sep, model = text.partition("=")
    if not sep or ref.count("/") != 1 or model.count("/") != 1:
        raise SystemExit(f"--deployment takes owner/name=owner/model, got {text!r}")
    try:
        emu.add_deployment(ref, model)
    except ValueError as error:
        raise SystemExit(f"--deployment {text}: {error}") from None


def _describe(emu: Emulator) -> dict[str, Any]:
    tls = emu.trust_files is not None
    return {
        "url": emu.url,
        "root_url": emu.root_url,
        "token": emu.token,
        "stream_url": emu.stream_url,
        "delivery_url": emu.delivery_url,
        "ca_file": emu.ca_file if tls else None,
        "ca_bundle": emu.ca_bundle if tls else None,
        "models": emu.models,
        "deployments": sorted(emu.catalog.deployments),
        "webhook_secret": emu.webhook_secret,
    }


async def _serve(args: argparse.Namespace) -> None:
    async with Emulator(
        host=args.host,
        port=args.port,
        token=args.token,
        start_delay=args.start_delay,
        page_size=args.page_size,
        create_per_minute=args.create_per_minute,
        other_per_minute=args.other_per_minute,
        get_per_minute=args.get_per_minute,
        create_burst=args.create_burst,
        other_burst=args.other_burst,
        get_burst=args.get_burst,
        enforce_limits=args.enforce_limits,
        low_credit=args.low_credit,
        max_file_size=args.max_file_size,
        chaos=args.chaos,
        chaos_seed=args.chaos_seed,
        tls=_TLS[args.tls],
        username=args.username,
        webhook_retry_scale=args.webhook_retry_scale,
    ) as emu:
        for path in args.models:
            _load_models(emu, path)
        for text in args.deployment:
            _add_deployment(emu, text)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Before anything is printed: a caller may stop it as soon as it has read the line.
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        info = _describe(emu)
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            print(f"Replicate emulator listening on {emu.url}", flush=True)
            print(f"  export REPLICATE_BASE_URL={emu.url}")
            print(f"  export REPLICATE_API_TOKEN={emu.token}")
            if info["ca_file"]:
                print(f"  export SSL_CERT_FILE={info['ca_bundle']}  # Python, curl, OpenSSL")
                print(f"  export NODE_EXTRA_CA_CERTS={info['ca_file']}  # Node")
            print(f"  request counts: curl {emu.root_url}/_emulator/stats")
            print(f"  webhook deliveries: curl {emu.root_url}/_emulator/webhooks")
            print("Models: " + ", ".join(emu.models))
            print("Ctrl-C to stop.", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(
        prog="python -m replicate_async.testing",
        description="A local Replicate API server for tests, usable from any language.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8008, help="the API's port (0: any free)")
    parser.add_argument("--token", default=None, help="accepted API token (default: random)")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line (url, token, stream/delivery URLs, CA files, models) and "
        "nothing else",
    )
    parser.add_argument(
        "--tls",
        choices=("on", "off", "all"),
        default="on",
        help="HTTPS for the file and stream hosts (on, the default, as Replicate), for the "
        "API too (all), or plain HTTP everywhere (off)",
    )
    parser.add_argument(
        "--no-tls", dest="tls", action="store_const", const="off", help="same as --tls off"
    )
    parser.add_argument(
        "--models",
        action="append",
        default=[],
        metavar="FILE.py",
        help="a Python file defining register(emulator) that adds models (repeatable)",
    )
    parser.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="OWNER/NAME=OWNER/MODEL",
        help="serve a deployment running a model's newest version (repeatable)",
    )
    parser.add_argument("--page-size", type=int, default=100, help="results per list page")
    parser.add_argument("--username", default="emulator", help="the account tokens belong to")
    parser.add_argument(
        "--start-delay", type=float, default=0.0, help="seconds predictions stay starting"
    )
    parser.add_argument("--create-per-minute", type=float, default=600)
    parser.add_argument("--other-per-minute", type=float, default=3000)
    parser.add_argument("--get-per-minute", type=float, default=3000)
    parser.add_argument("--create-burst", type=float, default=None)
    parser.add_argument("--other-burst", type=float, default=None)
    parser.add_argument("--get-burst", type=float, default=None)
    parser.add_argument("--enforce-limits", action="store_true", help="answer 429 over limits")
    parser.add_argument("--low-credit", action="store_true", help="429s state the limit")
    parser.add_argument("--max-file-size", type=int, default=100 * 1024 * 1024)
    parser.add_argument(
        "--chaos", type=float, default=0.0, help="share of requests (0-1) that meet a random fault"
    )
    parser.add_argument("--chaos-seed", type=int, default=None, help="repeat a chaos run")
    parser.add_argument(
        "--webhook-retry-scale",
        type=float,
        default=1.0,
        help="scale the waits between webhook retries (0.5, 1, 2, 4, 8 s)",
    )
    args = parser.parse_args(argv)
    if args.page_size < 1:
        parser.error("--page-size must be at least 1")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except SystemExit:
        raise
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
