"""pytest plugin (registered by the package's entry point): the ``replicate_emulator`` fixture.

The fixture runs a fresh :class:`~replicate_async.testing.Emulator` in a background thread,
so it works in sync and async tests alike, with this client or any other. It also sets
``REPLICATE_API_TOKEN`` and ``REPLICATE_BASE_URL`` for the test, so code under test that
reads them (with this client or the official one) talks to the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import Emulator
from ._thread import emulator_thread


@pytest.fixture
def replicate_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A running emulator; the environment points Replicate clients at it."""
    with emulator_thread() as emulator:
        monkeypatch.setenv("REPLICATE_API_TOKEN", emulator.token)
        # Without /v1: the official client appends it, and replicate_async accepts both.
        monkeypatch.setenv("REPLICATE_BASE_URL", emulator.root_url)
        yield emulator
