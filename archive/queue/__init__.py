"""Job queues: one interface (:class:`JobQueue`), a database and an SQS backend."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from archive.queue.base import JobQueue, Lease, LeaseLost
from archive.queue.database import DatabaseJobQueue
from archive.queue.message import JobMessage


def open_job_queue(settings, sessions: sessionmaker[Session]) -> JobQueue:
    """``settings.queue``: ``db``, or an SQS queue URL."""
    if settings.queue == "db":
        return DatabaseJobQueue(sessions, settings.job_visibility_timeout_s)
    from archive.queue.sqs import SQSJobQueue

    return SQSJobQueue(
        settings.queue,
        sessions,
        visibility_timeout_s=settings.job_visibility_timeout_s,
        max_attempts=settings.job_max_attempts,
        dlq_url=settings.sqs_dlq_url,
        endpoint_url=settings.sqs_endpoint_url,
        region=settings.aws_region,
    )


def is_external(queue: JobQueue) -> bool:
    """True when messages must be sent besides writing the job row (the outbox case)."""
    return not isinstance(queue, DatabaseJobQueue)


__all__ = ["DatabaseJobQueue", "JobMessage", "JobQueue", "Lease", "LeaseLost", "is_external", "open_job_queue"]
