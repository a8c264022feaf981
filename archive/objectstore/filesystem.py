"""Object store on a local directory: write to a temp file, fsync, rename, fsync the directory.

The rename is atomic on POSIX, so a reader sees either no object or the whole one, and
the directory fsync makes the new name itself survive a power cut.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from archive.objectstore.base import ObjectNotFound, StoredObject, check_key

_CHUNK = 1 << 20
# What reading a key that names a folder, or runs through a file, raises: no object there.
_ABSENT = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


def fsync_dir(path: Path) -> None:
    """fsync a directory so that entries created or renamed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(target: Path, chunks: Iterator[bytes] | bytes) -> tuple[int, str]:
    """Write ``chunks`` to ``target`` via temp file + fsync + rename; return (size, sha256)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in [chunks] if isinstance(chunks, (bytes, bytearray, memoryview)) else chunks:
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return size, digest.hexdigest()


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            yield chunk


class FilesystemObjectStore:
    """Objects as files below ``root``; the key is the relative path."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self._inside(check_key(key))

    def _inside(self, relative: str) -> Path:
        # resolve() follows symlinks, so a link inside the root cannot lead out of it.
        path = (self.root / relative).resolve()
        if self.root not in path.parents:
            raise ValueError(f"bad object key {relative!r}: it escapes the object store")
        return path

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> StoredObject:
        target = self._path(key)
        size, digest = write_durably(target, _read_chunks(Path(path)))
        return StoredObject(key, size, digest)

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        size, digest = write_durably(self._path(key), bytes(data))
        return StoredObject(key, size, digest)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except _ABSENT:
            raise ObjectNotFound(key) from None

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except _ABSENT:
            raise ObjectNotFound(key) from None

    def local_path(self, key: str) -> Path:
        """The file holding ``key``; lets same-host readers avoid a copy."""
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except _ABSENT:
            pass

    def list(self, prefix: str) -> Iterator[str]:
        # A prefix is a string prefix, not a folder: "studies/1.2" also covers "studies/1.20/…",
        # so walk from its last complete folder ("studies/"), then filter on the string.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self._inside(folder) if folder else self.root
        for path in start.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def describe(self) -> str:
        return f"file://{self.root}"


