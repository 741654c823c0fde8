"""``python -m replicate_async.testing``: run the emulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio

from . import Emulator


async def _serve(args: argparse.Namespace) -> None:
    async with Emulator(
        host=args.host,
        port=args.port,
        token=args.token,
        start_delay=args.start_delay,
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
    ) as emu:
        print(f"Replicate emulator listening on {emu.url}", flush=True)
        print(f"  export REPLICATE_BASE_URL={emu.url}")
        print(f"  request counts: curl {emu.root_url}/_emulator/stats")
        print(f"  export REPLICATE_API_TOKEN={emu.token}")
        print("Models: " + ", ".join(emu.models))
        print("Ctrl-C to stop.", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m replicate_async.testing")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8008)
    parser.add_argument("--token", default=None, help="accepted API token (default: random)")
    parser.add_argument("--start-delay", type=float, default=0.0)
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
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
