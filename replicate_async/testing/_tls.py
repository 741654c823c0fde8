"""HTTPS for the emulator's hosts, with a throwaway certificate authority (``trustme``).

Replicate serves outputs from ``https://replicate.delivery``, and the official clients
turn only ``https:`` (and ``data:``) strings into file objects: an emulator serving
plain ``http://`` URLs makes them behave unlike production. So the emulator serves its
hosts over HTTPS with certificates from a certificate authority made in memory, once per
process (every emulator of a test session shares it; this process's clients trust it,
see ``replicate_async._trust``). Per emulator it writes the files other programs need
to trust it: the CA alone (``NODE_EXTRA_CA_CERTS`` adds it to Node's own) and a bundle
of the system's authorities plus it (``SSL_CERT_FILE`` replaces OpenSSL's, for Python's
``ssl``, httpx and this client). The files are removed when the emulator stops.
Verification is never turned off anywhere.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import ssl
import tempfile
from pathlib import Path

import attrs

from .._trust import add_authority

__all__ = ["TrustFiles", "authority_pem", "server_context", "write_trust_files"]

#: the names every emulator certificate is valid for (hosts bind to loopback)
_NAMES = ("127.0.0.1", "localhost", "::1")


@functools.lru_cache(maxsize=1)
def _authority() -> tuple[object, object]:
    """The process's CA and a server certificate issued by it (made on first use)."""
    try:
        import trustme
    except ImportError as error:  # pragma: no cover - trustme is a dependency
        raise RuntimeError(
            "The emulator's HTTPS needs the 'trustme' package (pip install trustme), "
            "or start it with Emulator(tls=False) for plain HTTP."
        ) from error
    # ECDSA keys: a few milliseconds to make, where RSA takes a noticeable fraction of a second.
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    cert = ca.issue_cert(*_NAMES, key_type=trustme.KeyType.ECDSA)
    # This process's clients trust it from now on (its key never leaves this process).
    add_authority(ca.cert_pem.bytes().decode())
    return ca, cert


def authority_pem() -> bytes:
    """The CA certificate (PEM) that signs every emulator host of this process."""
    ca, _ = _authority()
    return ca.cert_pem.bytes()  # type: ignore[attr-defined, no-any-return]


def server_context() -> ssl.SSLContext:
    """A server-side context presenting the emulator's certificate."""
    _, cert = _authority()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)  # type: ignore[attr-defined]
    return context


@attrs.frozen
class TrustFiles:
    """Where the files that make other programs trust the emulator were written."""

    #: the CA certificate alone (for NODE_EXTRA_CA_CERTS, curl --cacert)
    ca_file: Path
    #: the system's CAs and the emulator's (for SSL_CERT_FILE: it replaces the default)
    bundle_file: Path

    def remove(self) -> None:
        """Delete them (the emulator stops)."""
        with contextlib.suppress(OSError):
            shutil.rmtree(self.ca_file.parent)


def _system_authorities() -> bytes:
    """The PEM bundle Python's ssl trusts by default, if it is a file we can read."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            with contextlib.suppress(OSError):
                return Path(candidate).read_bytes()
    with contextlib.suppress(ImportError, OSError):
        import certifi

        return Path(certifi.where()).read_bytes()
    return b""


def write_trust_files() -> TrustFiles:
    """Write the CA and a bundle of it with the system's authorities to a new directory."""
    directory = Path(tempfile.mkdtemp(prefix="replicate-emulator-ca-"))
    pem = authority_pem()
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(pem)
    bundle_file = directory / "bundle.pem"
    system = _system_authorities()
    bundle_file.write_bytes(system + (b"" if system.endswith(b"\n") or not system else b"\n") + pem)
    return TrustFiles(ca_file=ca_file, bundle_file=bundle_file)
