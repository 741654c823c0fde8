"""pytest plugin (registered by the package's entry point): the ``replicate_emulator`` fixture.

The fixture runs a fresh :class:`~replicate_async.testing.Emulator` in a background thread,
so it works in sync and async tests alike, with this client or any other. It also sets,
for the test, ``REPLICATE_API_TOKEN`` and ``REPLICATE_BASE_URL`` (code under test that
reads them talks to the emulator, with this client or the official one),
``SSL_CERT_FILE`` (the system's authorities plus the emulator's, so Python's ``ssl``,
httpx and this client trust its HTTPS hosts with verification on) and
``NODE_EXTRA_CA_CERTS`` (the same for Node processes the test starts).
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
        monkeypatch.setenv("SSL_CERT_FILE", emulator.ca_bundle)
        monkeypatch.setenv("NODE_EXTRA_CA_CERTS", emulator.ca_file)
        yield emulator
