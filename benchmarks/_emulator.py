"""Start the emulator in its own process, so the benchmark process measures only clients."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def emulator_process(*extra: str) -> Iterator[RunningEmulator]:
    """Run ``python -m replicate_async.testing`` on a free port; stop it on exit."""
    token = "r8_benchmark"
    proc = subprocess.Popen(
        [sys.executable, "-m", "replicate_async.testing", "--port", "0", "--token", token, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"emulator did not start: {line!r}")
        yield RunningEmulator(line.split("listening on ")[1].strip(), token)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
