"""Certificate authorities this process made for itself, which its clients trust too.

An emulator of ``replicate_async.testing`` running in this process serves HTTPS with a
throwaway authority whose private key lives only in this process's memory; nothing
outside can sign with it. Its certificate is registered here, and the clients this
process makes from then on trust it beside the system's authorities, so
``AsyncReplicate(api_token=emu.token, base_url=emu.url)`` reads the emulator's
``https://`` outputs with verification on and no setting. An emulator in another
process is another matter: trust its ``ca_file`` (``ssl=``) or ``ca_bundle``
(``SSL_CERT_FILE``).
"""

from __future__ import annotations

import threading

__all__ = ["add_authority", "authorities"]

_AUTHORITIES: list[str] = []
_LOCK = threading.Lock()


def add_authority(pem: str) -> None:
    """Trust the authority of ``pem`` in clients made from now on in this process."""
    with _LOCK:
        if pem not in _AUTHORITIES:
            _AUTHORITIES.append(pem)


def authorities() -> tuple[str, ...]:
    """The authorities registered so far (PEM), oldest first."""
    with _LOCK:
        return tuple(_AUTHORITIES)
