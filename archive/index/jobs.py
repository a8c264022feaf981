"""Job rows: creation and the state changes every queue backend records."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from archive.index.models import Job, utcnow

if TYPE_CHECKING:
    from archive.queue.message import JobMessage


def create_job(
    session: Session,
    study_uid: str,
    series_uid: str,
    generation: int,
    engine: str,
    max_attempts: int,
    sent: bool,
) -> Job:
    """Add a ``queued`` job for one study generation (unique per study and generation).

    ``sent`` is True for the database queue, whose row is the message itself; for an
    external queue it stays False until the message is sent (the outbox pattern)."""
    now = utcnow()
    job = Job(
        id=str(uuid.uuid4()),
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        generation=generation,
        engine=engine,
        state="queued",
        attempts=0,
        max_attempts=max_attempts,
        created_at=now,
        updated_at=now,
        visible_at=now,
        sent_at=now if sent else None,
    )
    session.add(job)
    return job


def message_for(job: Job) -> JobMessage:
    # Imported here: archive.queue imports this module, so importing archive.queue at the
    # top made "import archive.index.jobs" fail when nothing had imported archive.queue yet.
    from archive.queue.message import JobMessage

    return JobMessage(
        job_id=job.id,
        study_instance_uid=job.study_instance_uid,
        series_instance_uid=job.series_instance_uid,
        generation=job.generation,
        engine=job.engine,
        queued_at=job.created_at,
    )


def unsent_jobs(sessions: sessionmaker[Session]) -> list[Job]:
    """Queued jobs whose message has not been handed to the external queue yet."""
    with sessions() as session:
        return list(session.scalars(select(Job).where(Job.sent_at.is_(None), Job.state == "queued")))


def mark_sent(sessions: sessionmaker[Session], job_id: str) -> None:
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(sent_at=utcnow()))


def mark_running(sessions: sessionmaker[Session], job_id: str, attempt: int) -> None:
    now = utcnow()
    with sessions.begin() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="running", attempts=attempt, started_at=now, updated_at=now)
        )


def mark_finished(sessions: sessionmaker[Session], job_id: str, state: str, error: str | None = None) -> None:
    """Record ``done``, ``failed`` (will be retried) or ``dead``."""
    now = utcnow()
    values = {"state": state, "updated_at": now, "error": error, "lease_token": None}
    if state in ("done", "dead"):
        values["finished_at"] = now
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def retry_backoff(attempt: int) -> timedelta:
    """Delay before a failed job is delivered again: 5 s, 10 s, 20 s … capped at 5 min."""
    return timedelta(seconds=min(300, 5 * 2 ** max(0, attempt - 1)))


def record_results(
    sessions: sessionmaker[Session],
    job_id: str,
    summary_key: str,
    seg_sop_instance_uid: str,
    sr_sop_instance_uid: str,
) -> None:
    """Attach a job's results, and mark done jobs of older generations of the same
    study as superseded by it (their results stay stored but are no longer current)."""
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise KeyError(job_id)
        job.summary_key = summary_key
        job.seg_sop_instance_uid = seg_sop_instance_uid
        job.sr_sop_instance_uid = sr_sop_instance_uid
        session.execute(
            update(Job)
            .where(
                Job.study_instance_uid == job.study_instance_uid,
                Job.generation < job.generation,
                Job.superseded_by.is_(None),
            )
            .values(superseded_by=job.id, updated_at=utcnow())
        )


def current_generation(sessions: sessionmaker[Session], study_uid: str) -> int | None:
    """The study's generation now; a job for an older one is superseded before it runs."""
    from archive.index.models import Study

    with sessions() as session:
        return session.scalar(select(Study.generation).where(Study.study_instance_uid == study_uid))


RERUNNABLE = ("failed", "dead")


def requeue(sessions: sessionmaker[Session], job_id: str, sent: bool) -> Job | None:
    """Queue a failed or dead job again from its first attempt (an administrator's
    re-run). The job keeps its id, study generation and last error until it runs.
    Returns the job, or None when it is not in a re-runnable state (a conditional
    UPDATE, so two re-runs at once queue it only once). ``sent`` as for :func:`create_job`."""
    now = utcnow()
    with sessions.begin() as session:
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_(RERUNNABLE), Job.superseded_by.is_(None))
            .values(
                state="queued", attempts=0, visible_at=now, updated_at=now, lease_token=None,
                started_at=None, finished_at=None, sent_at=now if sent else None,
            )
        ).rowcount
        return session.get(Job, job_id) if changed == 1 else None
