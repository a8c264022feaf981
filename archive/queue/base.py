"""The job-queue interface. Delivery is at-least-once: a worker that dies mid-job
loses its lease when the visibility timeout runs out, and the job is delivered again
until ``max_attempts`` deliveries, after which it is dead-lettered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from archive.queue.message import JobMessage


class LeaseLost(RuntimeError):
    """The lease expired and the job may now be running elsewhere."""


@dataclass
class Lease:
    """A job taken from the queue: the message, this delivery's number and its handle."""

    message: JobMessage
    attempt: int
    receipt: str


class JobQueue(Protocol):
    def send(self, message: JobMessage) -> None:
        """Make ``message`` deliverable (its index row must already exist)."""

    def receive(self, wait_s: float) -> Lease | None:
        """Take one job, waiting up to ``wait_s`` seconds; None when there is none."""

    def heartbeat(self, lease: Lease) -> None:
        """Extend the lease by the visibility timeout; raises :class:`LeaseLost`."""

    def complete(self, lease: Lease) -> None:
        """The job succeeded: remove it from the queue and mark it done."""

    def fail(self, lease: Lease, error: str, permanent: bool = False) -> str:
        """The job failed: retry later, or dead-letter it after max attempts, or at
        once when ``permanent`` (no retry can help). Returns ``failed`` or ``dead``."""

    def describe(self) -> str:
        """Which queue this is, for logs and health checks."""
