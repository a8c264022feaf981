"""The worker loop: take a job, heartbeat while it runs, then complete or fail it.

Delivery is at-least-once, so ``process`` must be idempotent: a redelivered job
(after a crash or an expired lease) must not create a second result set.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from archive.queue import JobQueue, Lease, LeaseLost

log = logging.getLogger("l3net.worker")


class PermanentJobError(Exception):
    """A job that no retry can fix (e.g. the series is not analysable)."""


def _heartbeat(queue: JobQueue, lease: Lease, every_s: float, done: threading.Event, lost: threading.Event) -> None:
    while not done.wait(every_s):
        try:
            queue.heartbeat(lease)
        except LeaseLost:
            log.error("event=job.lease_lost job=%s", lease.message.job_id)
            lost.set()
            return
        except Exception:
            log.exception("event=job.heartbeat_error job=%s", lease.message.job_id)


def run_one(queue: JobQueue, process: Callable[[Lease], None], wait_s: float, heartbeat_s: float) -> bool:
    """Take and run at most one job; False when the queue had none within ``wait_s``."""
    lease = queue.receive(wait_s)
    if lease is None:
        return False
    job = lease.message
    log.info("event=job.started job=%s study=%s attempt=%d engine=%s", job.job_id, job.study_instance_uid, lease.attempt, job.engine)
    done, lost = threading.Event(), threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(queue, lease, heartbeat_s, done, lost), daemon=True)
    beat.start()
    started = time.monotonic()
    try:
        process(lease)
    except Exception as error:
        done.set()
        beat.join()
        reason = str(error) or error.__class__.__name__
        if isinstance(error, PermanentJobError):
            state = queue.fail(lease, reason, permanent=True)
        else:
            log.exception("event=job.error job=%s", job.job_id)
            state = queue.fail(lease, reason)
        log.warning("event=job.%s job=%s attempt=%d reason=%r", state, job.job_id, lease.attempt, reason[:300])
        return True
    done.set()
    beat.join()
    if lost.is_set():
        log.error("event=job.abandoned job=%s: lease lost while running; the redelivery will redo it", job.job_id)
        return True
    queue.complete(lease)
    log.info("event=job.done job=%s study=%s seconds=%.2f", job.job_id, job.study_instance_uid, time.monotonic() - started)
    return True


def run_worker(
    queue: JobQueue,
    process: Callable[[Lease], None],
    stop: threading.Event,
    visibility_timeout_s: float,
    wait_s: float = 2.0,
) -> None:
    """Run jobs until ``stop`` is set; a job in progress is finished first."""
    heartbeat_s = max(0.2, visibility_timeout_s / 3)
    log.info("event=worker.started queue=%s", queue.describe())
    while not stop.is_set():
        try:
            run_one(queue, process, wait_s, heartbeat_s)
        except Exception:
            log.exception("event=worker.error")
            stop.wait(1.0)
    log.info("event=worker.stopped")
