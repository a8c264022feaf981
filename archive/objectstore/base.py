"""The object-store interface every backend implements."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_key(key: str) -> str:
    """``key`` unchanged when it is a plain relative key: ``/``-separated, non-empty
    parts, none ``.`` or ``..``. Every backend refuses the same keys, so an object
    stored under one is stored under it in all (``a//b`` was ``a/b`` on a filesystem
    but its own object on S3, and ``""`` made an S3 object named like a folder)."""
    if not isinstance(key, str) or any(part in ("", ".", "..") for part in key.split("/")) or "\x00" in key:
        raise ValueError(f"bad object key {key!r}: not a relative key, or it escapes the object store")
    return key


class ObjectNotFound(KeyError):
    """No object is stored under that key."""


@dataclass(frozen=True)
class StoredObject:
    """What a put wrote: the key, its size in bytes and its SHA-256 hex digest."""

    key: str
    size: int
    sha256: str


class ObjectStore(Protocol):
    """Durable key → bytes storage. A put returns only once the object is durable."""

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> StoredObject:
        """Store the file at ``path`` under ``key``; ``sha256`` skips re-hashing when known."""

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        """Store ``data`` under ``key``."""

    def get_bytes(self, key: str) -> bytes:
        """The whole object; :class:`ObjectNotFound` if absent."""

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the object; close it after use."""

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key``."""

    def delete(self, key: str) -> None:
        """Remove the object; absent keys are ignored."""

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, in no promised order."""

    def describe(self) -> str:
        """Where the objects live, for logs and health checks."""
