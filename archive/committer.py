"""Moves acknowledged instances from the spool into the object store and the index.

Order per file: object put (durable) → index commit → spool file removed. A crash at
any point leaves the spool file in place, and committing it again is idempotent (same
key, same bytes, ``identical`` in the index), so replaying the spool at start loses
nothing and duplicates nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from pathlib import Path

import pydicom
from sqlalchemy.exc import IntegrityError, OperationalError

from archive.context import Archive
from archive.index.record import find_instance, record_instance
from archive.ingest import owner_group_of
from archive.keys import instance_key
from archive.index.locks import sop_lock
from archive.objectstore.base import sha256_file
from archive.spool import Spool

log = logging.getLogger("l3net.committer")

class Committer:
    """Background threads that commit spool files; ``pending_studies`` tells the
    stability monitor which studies still have uncommitted instances."""

    def __init__(self, archive: Archive, spool: Spool, threads: int = 2) -> None:
        self.archive = archive
        self.spool = spool
        self.threads = threads
        self._work: queue.Queue[Path | None] = queue.Queue()
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0

    # -- fed by receivers --------------------------------------------------------
    def submit(self, path: Path, study_uid: str | None) -> None:
        with self._lock:
            self._in_flight += 1
            if study_uid:
                self._pending[study_uid] += 1
        self._work.put((path, study_uid))  # type: ignore[arg-type]

    def pending_studies(self) -> set[str]:
        with self._lock:
            return {uid for uid, count in self._pending.items() if count > 0}

    def replay(self) -> int:
        """Queue every acknowledged file left in the spool (after a crash or restart)."""
        files = self.spool.pending()
        for path in files:
            study_uid = None
            try:
                study_uid = str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]).StudyInstanceUID)
            except Exception:  # committed below, where the reason gets logged
                pass
            self.submit(path, study_uid)
        if files:
            log.info("event=spool.replay files=%d", len(files))
        return len(files)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted file is committed; for tests and shutdown."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # -- threads -----------------------------------------------------------------
    def start(self) -> None:
        for number in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"committer-{number}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        for _ in self._workers:
            self._work.put(None)
        for thread in self._workers:
            thread.join()
        self._workers.clear()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            path, study_uid = item  # type: ignore[misc]
            try:
                self._commit_with_retry(path)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    if study_uid:
                        self._pending[study_uid] -= 1
                        if self._pending[study_uid] <= 0:
                            del self._pending[study_uid]
                    self._idle.notify_all()

    def _commit_with_retry(self, path: Path) -> None:
        for attempt in range(5):
            try:
                self.commit(path)
                return
            except (IntegrityError, OperationalError) as error:
                # Two threads creating the same new study or series race on its unique
                # UID; the loser simply tries again and finds the row.
                log.debug("event=commit.retry file=%s attempt=%d error=%s", path.name, attempt, error)
            except Exception as error:
                log.exception("event=commit.error file=%s error=%r", path.name, str(error))
                return  # stays in ready/; the next start replays it
        log.error("event=commit.gave_up file=%s", path.name)

    def commit(self, path: Path) -> str:
        """Commit one spool file; returns new, identical, replaced, duplicate or rejected."""
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            key = instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            transfer_syntax = str(ds.file_meta.TransferSyntaxUID)
        except Exception as error:  # noqa: BLE001 - any parse failure
            # The receiver validated before acknowledging; reaching here means the file
            # changed on disk. Keep it for a person to look at. Not only the usual parse
            # errors: a corrupt element raises NotImplementedError (unknown VR),
            # struct.error and the like, and such a file stayed in ready/ for ever.
            self.spool.set_aside(path, "rejected", f"cannot commit: {error}")
            log.error("event=commit.rejected file=%s reason=%r", path.name, str(error))
            return "rejected"

        digest = sha256_file(path)
        # Commits of one SOP Instance UID run one at a time, across threads and processes
        # (node and web may be separate processes): two differing copies committed at
        # once both passed the duplicate check, so under keep-first the later put
        # overwrote the first, acknowledged copy and recorded itself as "replaced".
        with sop_lock(self.archive.engine, str(ds.SOPInstanceUID)):
            return self._commit_checked(path, ds, key, transfer_syntax, digest)

    def _commit_checked(self, path: Path, ds, key: str, transfer_syntax: str, digest: str) -> str:
        settings = self.archive.settings
        source_ae = str(ds.file_meta.get("SourceApplicationEntityTitle", "")).strip()
        with self.archive.sessions() as session:
            existing = find_instance(session, str(ds.SOPInstanceUID))
            if existing is not None and existing.sha256 != digest and settings.duplicate_policy != "overwrite":
                self.spool.set_aside(path, "duplicates", f"differs from indexed {existing.object_key} ({existing.sha256})")
                log.warning(
                    "event=instance.duplicate_differs sop=%s policy=%s source_ae=%s",
                    ds.SOPInstanceUID, settings.duplicate_policy, source_ae,
                )
                return "duplicate"
            if existing is not None and existing.sha256 == digest:
                self.spool.remove(path)
                return "identical"

        stored = self.archive.store.put_file(key, path, sha256=digest)
        with self.archive.sessions.begin() as session:
            outcome = record_instance(
                session,
                ds,
                stored,
                transfer_syntax,
                source_ae,
                self.spool.received_at(path),
                owner_group=owner_group_of(ds.file_meta, settings.owner_groups_by_ae),
            )
        self.spool.remove(path)
        log.info(
            "event=instance.committed sop=%s study=%s status=%s bytes=%d%s",
            ds.SOPInstanceUID, outcome.study_uid, outcome.status, stored.size,
            " reopened=1" if outcome.reopened else "",
        )
        return outcome.status
