"""The durable receive spool: where an instance is fsynced before it is acknowledged.

Layout below the spool root:

``ready/{received_ns}-{random}.dcm``
    acknowledged instances (Part 10 files) waiting for the committer;
``.tmp/``
    files being written; never acknowledged, so safe to discard at start;
``rejected/`` and ``duplicates/``
    acknowledged files the committer could not or would not index, kept for audit
    with a ``.reason`` text beside each: nothing acknowledged is ever deleted unseen.

A file reaches ``ready/`` by write → fsync → rename → fsync of ``ready/``; after that the
instance survives ``kill -9`` and a power cut, and replaying ``ready/`` at start commits it.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from archive.objectstore.filesystem import fsync_dir


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.ready = self.root / "ready"
        self.tmp = self.root / ".tmp"
        for folder in (self.ready, self.tmp, self.root / "rejected", self.root / "duplicates"):
            folder.mkdir(parents=True, exist_ok=True)
        # Leftovers in .tmp were never acknowledged (the ack follows the rename).
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)

    def write(self, chunks: list[bytes] | bytes) -> Path:
        """Write one Part 10 file durably into ``ready/``; returns its path."""
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.dcm"
        tmp = self.tmp / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            for chunk in [chunks] if isinstance(chunks, (bytes, bytearray, memoryview)) else chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.ready / name
        os.replace(tmp, final)
        fsync_dir(self.ready)
        return final

    def pending(self) -> list[Path]:
        """Acknowledged files not yet committed, oldest first."""
        return sorted(self.ready.glob("*.dcm"))

    @staticmethod
    def received_at(path: Path) -> datetime:
        """When the file was acknowledged, from its name."""
        return datetime.fromtimestamp(int(path.name.split("-", 1)[0]) / 1e9, timezone.utc)

    def set_aside(self, path: Path, folder: str, reason: str) -> Path:
        """Move an acknowledged file to ``rejected/`` or ``duplicates/`` with its reason."""
        target = self.root / folder / path.name
        with open(self.root / folder / (path.name + ".reason"), "w") as note:
            note.write(reason + "\n")
            note.flush()
            os.fsync(note.fileno())
        os.replace(path, target)  # one file system: atomic
        # The new entries become durable before the old one's removal does, so a crash
        # in between leaves the file in both places (handled again), never in neither.
        fsync_dir(self.root / folder)
        fsync_dir(path.parent)
        return target

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free
