"""Study stability: a study idle for ``stable_after_s`` seconds gets exactly one job.

Exactly-once comes from the database, not from this process: the study row is moved
from ``receiving`` to ``queued`` by a conditional UPDATE that also names the
``last_received_at``, ``number_of_instances`` and ``generation`` it read, and the job
row is unique per study generation. The instance count matters because an instance is
recorded with the time it was received: one spooled earlier but committed late leaves
``last_received_at`` as it was. Two monitors (node and web) may run; only one of them wins.

For an external queue (SQS) the job row is written first and the message sent after
the commit; a row whose message was never sent (a crash in between) is sent by the
next pass: the outbox pattern.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select, update

from archive.context import Archive
from archive.index.jobs import create_job, mark_sent, message_for, unsent_jobs
from archive.index.models import Series, Study, utcnow
from archive.queue import is_external
from dicom_node.series_selection import choose_series

log = logging.getLogger("l3net.stability")

# The pass that writes a job row sends its message right after the commit. Another pass
# (node and web each run a monitor) looking in between must not send it as well, so the
# outbox only takes rows older than this: those whose own pass died before sending.
OUTBOX_GRACE_S = 30.0


def _settle(archive: Archive, study: Study, now: datetime) -> str | None:
    """Move one idle study to ``queued`` (with a job) or ``not_analysable``; returns
    the new job id, or None when nothing was queued."""
    settings = archive.settings
    external = is_external(archive.queue)
    with archive.sessions.begin() as session:
        series = session.scalars(select(Series).where(Series.study_pk == study.pk)).all()
        choice = choose_series(series, settings.min_series_slices)
        state = "queued" if choice.series_uid else "not_analysable"
        won = session.execute(
            update(Study)
            .where(
                Study.pk == study.pk,
                Study.state == "receiving",
                Study.generation == study.generation,
                Study.last_received_at == study.last_received_at,
                Study.number_of_instances == study.number_of_instances,
            )
            .values(
                state=state,
                state_reason=None if choice.series_uid else choice.reason,
                selected_series_uid=choice.series_uid,
                stable_at=now,
            )
        ).rowcount
        if won != 1:
            return None  # new data arrived, or another monitor got there first
        if not choice.series_uid:
            log.info(
                "event=study.not_analysable study=%s generation=%d reason=%r",
                study.study_instance_uid, study.generation, choice.reason,
            )
            return None
        job = create_job(
            session,
            study.study_instance_uid,
            choice.series_uid,
            study.generation,
            settings.engine,
            settings.job_max_attempts,
            sent=not external,
        )
    log.info(
        "event=study.stable study=%s generation=%d series=%s job=%s selected=%r",
        study.study_instance_uid, study.generation, choice.series_uid, job.id, choice.reason,
    )
    archive.queue.send(message_for(job))
    if external:
        mark_sent(archive.sessions, job.id)
    log.info("event=job.queued job=%s study=%s queue=%s", job.id, study.study_instance_uid, archive.queue.describe())
    return job.id


def flush_outbox(archive: Archive, now: datetime | None = None) -> int:
    """Send the messages of jobs written at least ``OUTBOX_GRACE_S`` before ``now`` (the
    wall clock, which stamps ``created_at``) but never sent (external queues only)."""
    if not is_external(archive.queue):
        return 0
    cutoff = (now or utcnow()) - timedelta(seconds=OUTBOX_GRACE_S)
    jobs = [job for job in unsent_jobs(archive.sessions) if job.created_at <= cutoff]
    for job in jobs:
        archive.queue.send(message_for(job))
        mark_sent(archive.sessions, job.id)
        log.info("event=job.queued job=%s study=%s outbox=1", job.id, job.study_instance_uid)
    return len(jobs)


def settle_idle_studies(archive: Archive, busy: set[str] = frozenset(), now: datetime | None = None) -> list[str]:
    """One pass: every ``receiving`` study idle long enough, and not in ``busy`` (studies
    with instances still in this process's spool), becomes stable. Returns new job ids."""
    flush_outbox(archive)  # on the wall clock, whatever ``now`` a test passes
    now = now or utcnow()
    cutoff = now - timedelta(seconds=archive.settings.stable_after_s)
    with archive.sessions() as session:
        idle = session.scalars(
            select(Study).where(Study.state == "receiving", Study.last_received_at <= cutoff)
        ).all()
    return [job for study in idle if study.study_instance_uid not in busy if (job := _settle(archive, study, now))]


class BusyStudies:
    """The studies with instances still in some spool of this process: the union over
    every committer registered with :meth:`add`. Under ``l3net serve`` the node's
    spool and the web part's STOW-RS spool both register, so the one monitor that
    runs (the node's) leaves a study alone while STOW instances of it await their
    commit, as it does for C-STORE ones."""

    def __init__(self, *sources: Callable[[], set[str]]) -> None:
        self._lock = threading.Lock()
        self._sources: list[Callable[[], set[str]]] = list(sources)

    def add(self, source: Callable[[], set[str]]) -> None:
        with self._lock:
            self._sources.append(source)

    def __call__(self) -> set[str]:
        with self._lock:
            sources = list(self._sources)
        return set().union(*(source() for source in sources))


def run_monitor(
    archive: Archive, busy: Callable[[], set[str]], stop: threading.Event, interval_s: float | None = None
) -> None:
    """Check for stable studies until ``stop`` is set; errors are logged, never fatal."""
    interval = interval_s or max(0.2, min(5.0, archive.settings.stable_after_s / 4))
    while not stop.wait(interval):
        try:
            settle_idle_studies(archive, busy())
        except Exception:
            log.exception("event=stability.error")
