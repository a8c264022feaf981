"""Job queue on the index database (SQLite or PostgreSQL): the ``jobs`` row is the message.

A receive takes the oldest visible job with an optimistic update (``WHERE attempts =
<seen> AND visible_at = <seen>``), which is portable and safe with several workers:
exactly one of two racing workers changes the row. The lease is ``visible_at``; a
heartbeat pushes it forward, and a job whose lease ran out is delivered again, or
dead-lettered (``state='dead'``) once ``max_attempts`` deliveries have been made.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from archive.index.jobs import message_for, retry_backoff
from archive.index.models import Job, utcnow
from archive.queue.base import Lease, LeaseLost
from archive.queue.message import JobMessage

_POLL_S = 0.5


class DatabaseJobQueue:
    def __init__(self, sessions: sessionmaker[Session], visibility_timeout_s: float) -> None:
        self.sessions = sessions
        self.visibility = timedelta(seconds=visibility_timeout_s)
        self._wake = threading.Event()

    def send(self, message: JobMessage) -> None:
        # The row written by create_job is already deliverable; just wake local waiters.
        self._wake.set()

    def receive(self, wait_s: float) -> Lease | None:
        deadline = time.monotonic() + wait_s
        while True:
            lease = self._take_one()
            if lease is not None or time.monotonic() >= deadline:
                return lease
            self._wake.wait(min(_POLL_S, max(0.0, deadline - time.monotonic())))
            self._wake.clear()

    def _take_one(self) -> Lease | None:
        now = utcnow()
        with self.sessions.begin() as session:
            candidates = session.scalars(
                select(Job)
                .where(or_(Job.state == "queued", Job.state == "running", Job.state == "failed"))
                .where(Job.visible_at <= now)
                .order_by(Job.created_at)
                .limit(8)
            ).all()
            for job in candidates:
                seen = {"attempts": job.attempts, "visible_at": job.visible_at}
                guard = (Job.id == job.id, Job.attempts == seen["attempts"], Job.visible_at == seen["visible_at"])
                if job.attempts >= job.max_attempts:
                    # Its last lease ran out without complete/fail: the worker died.
                    session.execute(
                        update(Job)
                        .where(*guard)
                        .values(
                            state="dead",
                            finished_at=now,
                            updated_at=now,
                            lease_token=None,
                            error=job.error or f"lease expired on attempt {job.attempts} of {job.max_attempts}",
                        )
                    )
                    continue
                token = str(uuid.uuid4())
                taken = session.execute(
                    update(Job)
                    .where(*guard)
                    .values(
                        state="running",
                        attempts=job.attempts + 1,
                        lease_token=token,
                        visible_at=now + self.visibility,
                        started_at=now,
                        updated_at=now,
                    )
                ).rowcount
                if taken == 1:
                    # The ORM UPDATE already synchronised job.attempts in this session; adding
                    # one more here was flushed at commit, counting each delivery twice.
                    return Lease(message_for(job), seen["attempts"] + 1, token)
        return None

    def _guarded(self, lease: Lease, **values) -> None:
        with self.sessions.begin() as session:
            changed = session.execute(
                update(Job)
                .where(Job.id == lease.message.job_id, Job.lease_token == lease.receipt)
                .values(updated_at=utcnow(), **values)
            ).rowcount
        if changed != 1:
            raise LeaseLost(f"job {lease.message.job_id}: lease lost")

    def heartbeat(self, lease: Lease) -> None:
        self._guarded(lease, visible_at=utcnow() + self.visibility)

    def complete(self, lease: Lease) -> None:
        self._guarded(lease, state="done", finished_at=utcnow(), lease_token=None, error=None)

    def fail(self, lease: Lease, error: str, permanent: bool = False) -> str:
        with self.sessions() as session:
            job = session.get(Job, lease.message.job_id)
            dead = permanent or (job is not None and lease.attempt >= job.max_attempts)
        if dead:
            self._guarded(lease, state="dead", finished_at=utcnow(), lease_token=None, error=error)
            return "dead"
        self._guarded(
            lease, state="failed", lease_token=None, error=error, visible_at=utcnow() + retry_backoff(lease.attempt)
        )
        return "failed"

    def describe(self) -> str:
        return "database"


