"""Files: saving a big output to disk, and uploading a 100 MB input; speed and memory.

Each contender runs in its own process (so its peak RSS is its own), against an emulator
in another process that generates the output bytes as they are sent:

- download: ``FileOutput.save`` vs two floors, raw aiohttp ``iter_any()`` written with
  a plain blocking ``f.write`` on the loop thread (what the machine can do) and raw
  aiohttp ``iter_chunked`` + aiofiles (what a careful async loop does), vs the official
  ``replicate`` package's ``FileOutput`` async iteration written with aiofiles; at
  256 MiB and 1 GiB. Every contender runs the same ticker (a 10 ms sleep loop) that
  records the event loop's worst stall: how long other tasks could not run;
- 100 saves at once (``--many`` MiB each): their memory together, and the few writer
  threads serving them all, vs 100 raw aiohttp plain-write loops;
- upload of a 100 MB file: ``client.files.create(path)`` vs a raw aiohttp multipart
  POST of the open file (the floor) vs the official ``files.async_create``.

Downloads run in two stated states of the VM's memory (see below: "backed" and
"returned"), each contender in each, since which one a run meets moved results 2x.

Reported: MB/s, CPU time per 100 MB, fresh pages the process touched per MiB (its own
buffers: a page the allocator gave back to the kernel and took again costs a fault and
a zeroing), peak RSS growth over the process's baseline and the loop's worst stall,
medians of the rounds; ratios are taken within each round, then their median. Before
each run the disk is synced and (as root) the page cache dropped.

    python -m benchmarks.files [--sizes 256,1024] [--rounds 9] [--memory backed,returned]
        [--clients ours,plain,floor,official] [--many 8] [--no-uploads]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024
MODEL = "emulator/images"


# -- the VM's memory: the state every run starts from ---------------------------------------
#
# On a VM whose free memory is handed back to the host (free page reporting: this one
# does it about 2 s after memory is freed), writing a file into pages the host has
# taken back costs a fault in the hypervisor per page: the page cache then takes
# 1 GiB at 350-750 MB/s, against 5 GB/s into pages it still backs. A download at
# 1 GB/s is bound by that, and whether a run gets backed pages depended on how long
# the previous run's process took to start: 1 GiB runs of the same client varied 2x.
# So each run starts from a stated state, the same for every contender:
#
# - "backed" (what the machine can do, and what a busy server's memory is like): just
#   before the timed part, a short-lived process touches size + 256 MiB of memory and
#   exits, so the page cache reuses pages the host has just provided;
# - "returned": after the disk is synced and the cache dropped, wait until the kernel
#   has reported the freed memory to the host (its count stops moving), so every page
#   the download writes is a fresh one.

PREFAULT_ENV = "BENCH_PREFAULT_MIB"
_REPORTED = Path("/sys/module/page_reporting/parameters/reported_kib")
_TOUCH = """
import mmap, sys
size = int(sys.argv[1]) << 20
block = b"\\1" * (8 << 20)
area = mmap.mmap(-1, size)
for offset in range(0, size, len(block)):
    area[offset : offset + len(block)] = block
"""


def _ready() -> resource.struct_rusage:
    """Put memory in the run's state, then return the process's usage so far."""
    mib = int(os.environ.get(PREFAULT_ENV, "0"))
    if mib:
        # A child process, so this process's own peak RSS is not the touched memory.
        subprocess.run([sys.executable, "-c", _TOUCH, str(mib)], check=True)
    return resource.getrusage(resource.RUSAGE_SELF)


def _wait_returned(timeout: float = 20.0) -> None:
    """Wait until freed memory has gone back to the host: the reported count is still."""
    if not _REPORTED.exists():
        time.sleep(3)  # no free page reporting here: freed memory stays backed anyway
        return
    deadline = time.monotonic() + timeout
    last, still_since = _REPORTED.read_text(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = _REPORTED.read_text()
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= 3.0:
            return


# -- the contenders, each run in a child process ------------------------------------------


class _Stalls:
    """The event loop's worst stall while a download runs, seen by a 10 ms ticker."""

    INTERVAL = 0.01

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.INTERVAL)
            self.worst = max(self.worst, loop.time() - before - self.INTERVAL)

    def __enter__(self) -> _Stalls:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def download_ours(url: str, token: str, size: int, target: Path) -> None:
    from replicate_async import AsyncReplicate

    async with AsyncReplicate(api_token=token, base_url=url) as client:
        (image,) = await client.run(MODEL, input={"size_bytes": size})
        base = _ready()
        started = time.perf_counter()
        with _Stalls() as stalls:
            saved = await image.save(target)
        _report(started, base, saved.size, stalls)


async def _floor_url(session: Any, url: str, token: str, size: int) -> str:
    headers = {"Authorization": f"Bearer {token}", "Prefer": "wait"}
    body = {"input": {"size_bytes": size}}
    async with session.post(f"{url}/models/{MODEL}/predictions", json=body, headers=headers) as r:
        file_url: str = (await r.json())["output"][0]
        return file_url


async def _plain_save(session: Any, file_url: str, path: Path) -> int:
    """The floor: aiohttp's chunks written with blocking writes, on the loop thread."""
    written = 0
    async with session.get(file_url) as resp:
        with path.open("wb") as out:
            async for chunk in resp.content.iter_any():
                out.write(chunk)
                written += len(chunk)
    return written


async def download_plain(url: str, token: str, size: int, target: Path) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        file_url = await _floor_url(session, url, token, size)
        base = _ready()
        started = time.perf_counter()
        with _Stalls() as stalls:
            written = await _plain_save(session, file_url, target)
        _report(started, base, written, stalls)


async def download_floor(url: str, token: str, size: int, target: Path) -> None:
    import aiofiles
    import aiohttp

    async with aiohttp.ClientSession() as session:
        file_url = await _floor_url(session, url, token, size)
        base = _ready()
        started = time.perf_counter()
        written = 0
        with _Stalls() as stalls:
            async with session.get(file_url) as resp, aiofiles.open(target, "wb") as out:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    await out.write(chunk)
                    written += len(chunk)
        _report(started, base, written, stalls)


async def download_official(url: str, token: str, size: int, target: Path) -> None:
    import aiofiles
    import replicate

    client = replicate.Client(api_token=token, base_url=url.removesuffix("/v1"))
    try:
        (url_out,) = await client.async_run(MODEL, input={"size_bytes": size})
        # It wraps only https: URLs in its FileOutput; the emulator serves plain http.
        from replicate.helpers import FileOutput

        image = url_out if not isinstance(url_out, str) else FileOutput(url_out, client)
        base = _ready()
        started = time.perf_counter()
        written = 0
        with _Stalls() as stalls:
            async with aiofiles.open(target, "wb") as out:
                async for chunk in image:
                    await out.write(chunk)
                    written += len(chunk)
        _report(started, base, written, stalls)
    finally:
        await client._async_client.aclose()


MANY = 100


async def many_ours(url: str, token: str, size: int, target: Path) -> None:
    from replicate_async import AsyncReplicate

    async with AsyncReplicate(api_token=token, base_url=url) as client:
        images = await client.run(MODEL, input={"size_bytes": size, "num_outputs": MANY})
        base = _ready()
        started = time.perf_counter()
        with _Stalls() as stalls:
            saved = await asyncio.gather(
                *(image.save(target.with_suffix(f".{i}")) for i, image in enumerate(images))
            )
        _report(started, base, sum(s.size for s in saved), stalls)


async def many_plain(url: str, token: str, size: int, target: Path) -> None:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Prefer": "wait"}
    body = {"input": {"size_bytes": size, "num_outputs": MANY}}
    connector = aiohttp.TCPConnector(limit=MANY)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            f"{url}/models/{MODEL}/predictions", json=body, headers=headers
        ) as r:
            urls: list[str] = (await r.json())["output"]
        base = _ready()
        started = time.perf_counter()
        with _Stalls() as stalls:
            sizes = await asyncio.gather(
                *(_plain_save(session, u, target.with_suffix(f".{i}")) for i, u in enumerate(urls))
            )
        _report(started, base, sum(sizes), stalls)


async def upload_ours(url: str, token: str, source: Path) -> None:
    from replicate_async import AsyncReplicate

    async with AsyncReplicate(api_token=token, base_url=url) as client:
        base = _ready()
        started = time.perf_counter()
        uploaded = await client.files.create(source)
        _report(started, base, uploaded.size or 0)


async def upload_floor(url: str, token: str, source: Path) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        base = _ready()
        started = time.perf_counter()
        with source.open("rb") as handle:
            form = aiohttp.FormData()
            form.add_field("content", handle, filename=source.name)
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(f"{url}/files", data=form, headers=headers) as resp:
                size = (await resp.json())["size"]
        _report(started, base, size)


async def upload_official(url: str, token: str, source: Path) -> None:
    import replicate

    client = replicate.Client(api_token=token, base_url=url.removesuffix("/v1"))
    try:
        base = _ready()
        started = time.perf_counter()
        with source.open("rb") as handle:
            uploaded = await client.files.async_create(handle)
        _report(started, base, uploaded.size)
    finally:
        await client._async_client.aclose()


def _report(
    started: float, base: resource.struct_rusage, size: int, stalls: _Stalls | None = None
) -> None:
    seconds = time.perf_counter() - started
    now = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "seconds": seconds,
        "bytes": size,
        # ru_maxrss is the peak so far, in KiB on Linux.
        "rss_growth_mb": (now.ru_maxrss - base.ru_maxrss) / 1024,
        "cpu_s": now.ru_utime + now.ru_stime - base.ru_utime - base.ru_stime,
        # Pages this process touched for the first time (its own buffers, not the cache).
        "minor_faults": now.ru_minflt - base.ru_minflt,
    }
    if stalls is not None:
        result["stall_ms"] = stalls.worst * 1000
    print(json.dumps(result))


CHILDREN: dict[str, Any] = {
    "download:ours": download_ours,
    "download:plain": download_plain,
    "download:floor": download_floor,
    "download:official": download_official,
    "many:ours": many_ours,
    "many:plain": many_plain,
    "upload:ours": upload_ours,
    "upload:floor": upload_floor,
    "upload:official": upload_official,
}


def child(args: argparse.Namespace) -> None:
    run = CHILDREN[args.child]
    if args.child.startswith(("download", "many")):
        asyncio.run(run(args.url, args.token, args.size, Path(args.target)))
    else:
        asyncio.run(run(args.url, args.token, Path(args.target)))


# -- the parent: start the emulator, run the children, print the tables -------------------


def run_child(
    kind: str, url: str, token: str, target: Path, size: int = 0, prefault_mib: int = 0
) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.files",
            "--child",
            kind,
            "--url",
            url,
            "--token",
            token,
            "--target",
            str(target),
            "--size",
            str(size),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, PREFAULT_ENV: str(prefault_mib)},
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


DOWNLOADERS = {
    "ours": "replicate_async FileOutput.save",
    "plain": "raw aiohttp + plain write (floor)",
    "floor": "raw aiohttp + aiofiles",
    "official": "replicate (official) FileOutput",
}


def main(
    sizes: list[int],
    rounds: int,
    states: list[str],
    clients: list[str],
    uploads: bool,
    many: int,
) -> None:
    from ._emulator import emulator_process

    names = {key: DOWNLOADERS[key] for key in clients}
    with (
        emulator_process("--max-file-size", str(200 * 1024 * 1024)) as emu,
        tempfile.TemporaryDirectory(dir=os.getcwd(), prefix=".bench-files-") as tmp,
    ):
        for mib in sizes:
            size = mib * 1024 * 1024
            for state in states:
                results: dict[str, list[dict[str, float]]] = {k: [] for k in names}
                for r in range(rounds):
                    # Rotate who goes first; each run starts from the same disk and memory.
                    for key in _rotated(list(names), r):
                        target = Path(tmp) / f"{key}.bin"
                        _settle_disk()
                        if state == "returned":
                            _wait_returned()
                        prefault = 2 * mib + 512 if state == "backed" else 0
                        results[key].append(
                            run_child(f"download:{key}", emu.url, emu.token, target, size, prefault)
                        )
                        target.unlink()
                print(f"\ndownload of {mib} MiB to disk, memory {state}, medians of {rounds}:\n")
                _download_table(names, results)
        if many:
            _many(emu, Path(tmp), rounds, many)
        if uploads:
            _uploads(emu, Path(tmp), rounds)


def _many(emu: Any, tmp: Path, rounds: int, mib: int) -> None:
    """100 saves at once: their memory together, and the pool's threads serving all."""
    names = {"ours": "replicate_async, 100 saves", "plain": "raw aiohttp + plain write, 100"}
    results: dict[str, list[dict[str, float]]] = {k: [] for k in names}
    for r in range(rounds):
        for key in _rotated(list(names), r):
            target = tmp / f"many-{key}"
            _settle_disk()
            prefault = 2 * MANY * mib + 512
            results[key].append(
                run_child(f"many:{key}", emu.url, emu.token, target, mib << 20, prefault)
            )
            for i in range(MANY):
                target.with_suffix(f".{i}").unlink()
    print(f"\n{MANY} saves of {mib} MiB at once, memory backed, medians of {rounds}:\n")
    _download_table(names, results)


def _uploads(emu: Any, tmp: Path, rounds: int) -> None:
    source = tmp / "upload.bin"
    with source.open("wb") as out:
        block = os.urandom(1024 * 1024)
        for _ in range(100):
            out.write(block)
    up_names = {
        "ours": "replicate_async files.create(path)",
        "floor": "raw aiohttp multipart (floor)",
        "official": "replicate (official) files.async_create",
    }
    up: dict[str, list[dict[str, float]]] = {k: [] for k in up_names}
    for r in range(rounds):
        for key in _rotated(list(up_names), r):
            _settle_disk()
            up[key].append(run_child(f"upload:{key}", emu.url, emu.token, source))
    print(f"\nupload of a 100 MiB file, medians of {rounds}:\n")
    _table(up_names, up, "ours")


def _settle_disk() -> None:
    """Start each run from the same state: nothing dirty, and (as root) no page cache.

    Without dropping the cache, runs of the same client varied 4x on this VM: a fresh
    file lands on pages never used since boot, which the host must first provide.
    """
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as drop:
            drop.write("3\n")
    except OSError:
        pass  # not root, or not Linux: sync alone


def _rotated(keys: list[str], r: int) -> list[str]:
    return keys[r % len(keys) :] + keys[: r % len(keys)]


def _download_table(names: dict[str, str], results: dict[str, list[dict[str, float]]]) -> None:
    print(
        "| client | MB/s | vs plain-write floor (quartiles) | vs aiofiles loop | CPU ms / 100 MB "
        "| fresh pages / MiB | peak RSS growth (MB) | worst loop stall (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rates = {k: [r["bytes"] / r["seconds"] / 1e6 for r in v] for k, v in results.items()}

    def ratio(key: str, floor: str) -> str:
        # Within each round, then the median: the machine drifts between rounds. The
        # quartiles show how far single runs scatter.
        ratios = [a / b for a, b in zip(rates[key], rates[floor], strict=True)]
        if key == floor:
            return "100%"
        low, mid, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        return f"{mid:.0%} ({low:.0%}-{high:.0%})"

    for key, label in names.items():
        runs = results[key]
        rss = statistics.median(r["rss_growth_mb"] for r in runs)
        stall = statistics.median(r["stall_ms"] for r in runs)
        cpu = statistics.median(r["cpu_s"] / r["bytes"] * 1e8 * 1000 for r in runs)
        faults = statistics.median(r["minor_faults"] / (r["bytes"] / (1 << 20)) for r in runs)
        aiofiles_ratio = ratio(key, "floor") if "floor" in rates else "-"
        print(
            f"| {label} | {statistics.median(rates[key]):,.0f} | {ratio(key, 'plain')} "
            f"| {aiofiles_ratio} | {cpu:.0f} | {faults:.1f} | {rss:.1f} | {stall:.1f} |"
        )


def _table(names: dict[str, str], results: dict[str, list[dict[str, float]]], ours: str) -> None:
    print("| client | MB/s | vs floor | peak RSS growth (MB) |")
    print("|---|---:|---:|---:|")
    speed = {
        k: statistics.median(r["bytes"] / r["seconds"] / 1e6 for r in v) for k, v in results.items()
    }
    for key, label in names.items():
        rss = statistics.median(r["rss_growth_mb"] for r in results[key])
        print(f"| {label} | {speed[key]:,.0f} | {speed[key] / speed['floor']:.0%} | {rss:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,1024", help="download sizes in MiB")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--memory",
        default="backed,returned",
        help="the VM memory states to run downloads in (backed, returned)",
    )
    parser.add_argument(
        "--clients",
        default=",".join(DOWNLOADERS),
        help="the downloaders to run (ours, plain, floor, official); plain is required",
    )
    parser.add_argument("--uploads", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--many", type=int, default=8, help="MiB each of 100 saves at once (0: skip)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    else:
        states = args.memory.split(",")
        if not set(states) <= {"backed", "returned"}:
            parser.error("--memory takes backed, returned or both, comma-separated")
        clients = args.clients.split(",")
        if "plain" not in clients or not set(clients) <= set(DOWNLOADERS):
            parser.error(f"--clients takes plain and any of {', '.join(DOWNLOADERS)}")
        main(
            [int(s) for s in args.sizes.split(",") if s],
            args.rounds,
            states,
            clients,
            args.uploads,
            args.many,
        )
