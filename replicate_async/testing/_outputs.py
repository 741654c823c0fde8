"""Output files the models publish: generated from a seed as they are downloaded.

A 1 GiB output costs no memory: byte ``i`` of a file is ``pattern[i % 64 KiB]``, so any
range can be produced without the rest.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator

import attrs

from ._state import Hosts

__all__ = ["OutputStore", "PublishedFile", "pattern_chunks"]

_BLOCK = 64 * 1024


def _pattern(seed: int) -> bytes:
    return hashlib.sha256(seed.to_bytes(8, "big")).digest() * (_BLOCK // 32)


def pattern_chunks(seed: int, size: int, start: int = 0, chunk: int = _BLOCK) -> Iterator[bytes]:
    """Bytes ``start`` to ``size`` of a generated file, a chunk at a time."""
    block = _pattern(seed)
    doubled = block + block
    at = start
    while at < size:
        n = min(chunk, size - at, _BLOCK)
        offset = at % _BLOCK
        yield doubled[offset : offset + n]
        at += n


@attrs.define(kw_only=True)
class PublishedFile:
    """A file on the delivery host: its bytes are a function of (seed, size)."""

    name: str
    size: int
    seed: int
    content_type: str

    @property
    def etag(self) -> str:
        """A strong ETag: the same file, the same bytes."""
        return f'"{self.seed:x}-{self.size:x}"'


class OutputStore:
    """Every published output file, by the key in its URL."""

    def __init__(self, hosts: Hosts) -> None:
        self._hosts = hosts
        self.files: dict[str, PublishedFile] = {}

    def publish(self, name: str, size: int, *, seed: int | None, content_type: str) -> str:
        """Register a generated file and return its delivery URL."""
        key = secrets.token_urlsafe(12)
        self.files[key] = PublishedFile(
            name=name,
            size=size,
            seed=seed if seed is not None else len(self.files),
            content_type=content_type,
        )
        return f"{self._hosts.delivery_url}/{key}/{name}"
