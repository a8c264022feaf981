"""A lock on one SOP Instance UID across threads and processes, held while a copy of
that instance is checked against the index, stored and indexed.

Under keep-first, two differing copies committed at once must not both pass the
duplicate check: the later put would overwrite the first copy's object, which was
already acknowledged. Node and web may run as separate processes (or hosts), so a
thread lock is not enough:

* PostgreSQL: a session-level advisory lock (``pg_advisory_lock``) on a 64-bit key
  derived from the UID, on a connection held for the duration; it works across hosts.
* SQLite (one host by nature): a POSIX record lock on one byte of a file beside the
  database. Record locks belong to the process, so a thread lock on the same stripe is
  taken first; and they are dropped when the process closes *any* descriptor of the
  file, so each process opens the file once and keeps it.

UIDs are hashed onto :data:`STRIPES` stripes: two different UIDs may share one and then
wait for each other, which costs a little time and never correctness.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, text

STRIPES = 64
_THREAD_LOCKS = tuple(threading.Lock() for _ in range(STRIPES))
_FILES: dict[str, int] = {}
_FILES_LOCK = threading.Lock()


def _stripe(sop_uid: str) -> tuple[int, int]:
    """(stripe index, 63-bit advisory key) of a UID."""
    digest = hashlib.sha256(sop_uid.encode()).digest()
    return digest[0] % STRIPES, int.from_bytes(digest[1:9], "big") >> 1


def _lock_file(database: str) -> int:
    path = database + ".sop-locks"
    with _FILES_LOCK:
        if path not in _FILES:
            _FILES[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        return _FILES[path]


@contextmanager
def sop_lock(engine: Engine, sop_uid: str) -> Iterator[None]:
    """Hold the lock on ``sop_uid`` for the ``with`` block, against every thread of this
    process and every process using the same database."""
    stripe, key = _stripe(sop_uid)
    with _THREAD_LOCKS[stripe]:
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
            return
        database = engine.url.database
        if not database or database == ":memory:":
            yield  # a private in-memory database: no other process can see it
            return
        fd = _lock_file(database)
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, stripe)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, stripe)
