"""Start the emulator in its own process, so the benchmark process measures only clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs


@attrs.frozen
class RunningEmulator:
    """Where the emulator listens and the token it accepts."""

    url: str
    token: str

    @property
    def root_url(self) -> str:
        """The base URL without /v1, as the official client takes it."""
        return self.url.removesuffix("/v1")

    def stats(self) -> dict[str, Any]:
        """The emulator's request and reply counts."""
        with urllib.request.urlopen(f"{self.root_url}/_emulator/stats", timeout=10) as reply:
            data: dict[str, Any] = json.load(reply)
            return data

    def replies_with(self, status: int) -> int:
        """How many replies had this status."""
        return sum(r["count"] for r in self.stats()["replies"] if r["status"] == status)


def scaled_limits(creates: int, burst: int, other: int) -> tuple[str, ...]:
    """Emulator arguments enforcing Replicate's limits scaled up, to run quickly.

    ``creates`` a second after a burst of ``burst``; ``other`` requests a second (gets too).
    """
    return (
        "--enforce-limits",
        "--create-per-minute",
        str(creates * 60),
        "--create-burst",
        str(burst),
        "--other-per-minute",
        str(other * 60),
        "--get-per-minute",
        str(other * 60),
    )


@contextmanager
def emulator_process(*extra: str) -> Iterator[RunningEmulator]:
    """Run ``python -m replicate_async.testing`` on a free port; stop it on exit."""
    token = "r8_benchmark"
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = len(cores) >= 2

    def server_core() -> None:  # in the child, before exec
        if pin:
            os.sched_setaffinity(0, {cores[-1]})

    proc = subprocess.Popen(
        # Plain HTTP, as the benchmarks' earlier tables: they measure the clients, not TLS.
        [
            sys.executable,
            "-m",
            "replicate_async.testing",
            "--port",
            "0",
            "--token",
            token,
            "--no-tls",
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=server_core,
    )
    if pin:
        # Client and server each on a core of its own: neither's CPU time includes being
        # moved between cores, or waiting for the other to be descheduled.
        os.sched_setaffinity(0, set(cores[:-1]))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"emulator did not start: {line!r}")
        yield RunningEmulator(line.split("listening on ")[1].strip(), token)
    finally:
        if pin:
            os.sched_setaffinity(0, set(cores))
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
