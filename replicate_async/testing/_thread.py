"""Run an emulator on its own event loop in a background thread.

For tests that are not async, or that use a synchronous client: the emulator keeps
serving while the test's thread blocks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import Emulator

__all__ = ["emulator_thread"]


@contextmanager
def emulator_thread(**kwargs: Any) -> Iterator[Emulator]:
    """Start an :class:`Emulator` in a daemon thread; stop it (and the thread) on exit."""
    loop = asyncio.new_event_loop()
    emulator = Emulator(**kwargs)
    thread = threading.Thread(target=loop.run_forever, name="replicate-emulator", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(emulator.start(), loop).result(timeout=30)
        yield emulator
    finally:
        try:
            asyncio.run_coroutine_threadsafe(emulator.stop(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
