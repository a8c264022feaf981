"""Job queue on Amazon SQS.

* Long polling (``WaitTimeSeconds`` up to 20 s) so idle workers cost nothing.
* The heartbeat is ``ChangeMessageVisibility``.
* The attempt number is SQS's ``ApproximateReceiveCount``. A message received more
  than ``max_attempts`` times, or failed on its last attempt, is moved to the
  dead-letter queue here, so the index knows it is ``dead``; the queue's redrive
  policy (set by infra/, maxReceiveCount = max_attempts + 1) is the backstop for a
  worker that never comes back.
* The index keeps each job's state; the message is only the trigger.
"""

from __future__ import annotations

import logging
import math

import boto3
from botocore.config import Config
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from archive.index.jobs import mark_finished, mark_running, retry_backoff
from archive.queue.base import Lease, LeaseLost
from archive.queue.message import JobMessage

log = logging.getLogger("l3net.queue")

_MAX_WAIT_S = 20


class SQSJobQueue:
    def __init__(
        self,
        queue_url: str,
        sessions: sessionmaker[Session],
        visibility_timeout_s: float,
        max_attempts: int,
        dlq_url: str | None = None,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client=None,
    ) -> None:
        self.url = queue_url
        self.dlq_url = dlq_url
        self.sessions = sessions
        # SQS takes whole seconds: round up, never down, or a 0.5 s lease became 0 s and
        # the message was at once visible to every other worker.
        self.visibility = math.ceil(visibility_timeout_s)
        self.max_attempts = max_attempts
        self.client = client or boto3.client(
            "sqs", endpoint_url=endpoint_url, region_name=region, config=Config(retries={"mode": "standard"})
        )

    def send(self, message: JobMessage) -> None:
        self.client.send_message(QueueUrl=self.url, MessageBody=message.to_json())

    def _dead_letter(self, body: str, receipt: str) -> None:
        if self.dlq_url:
            self.client.send_message(QueueUrl=self.dlq_url, MessageBody=body)
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)

    def receive(self, wait_s: float) -> Lease | None:
        response = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=max(0, min(_MAX_WAIT_S, int(wait_s))),
            VisibilityTimeout=self.visibility,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        for raw in response.get("Messages", []):
            attempt = int(raw["Attributes"]["ApproximateReceiveCount"])
            try:
                message = JobMessage.from_json(raw["Body"])
            except ValidationError as error:
                log.error("event=job.malformed queue=%s error=%r", self.url, str(error)[:200])
                self._dead_letter(raw["Body"], raw["ReceiptHandle"])
                continue
            if attempt > self.max_attempts:
                self._dead_letter(raw["Body"], raw["ReceiptHandle"])
                mark_finished(self.sessions, message.job_id, "dead", f"delivered {attempt} times without completing")
                log.error("event=job.dead job=%s attempts=%d", message.job_id, attempt)
                continue
            mark_running(self.sessions, message.job_id, attempt)
            return Lease(message, attempt, raw["ReceiptHandle"])
        return None

    def heartbeat(self, lease: Lease) -> None:
        try:
            self.client.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=lease.receipt, VisibilityTimeout=self.visibility
            )
        except self.client.exceptions.ReceiptHandleIsInvalid as error:
            raise LeaseLost(str(error)) from error
        except Exception as error:  # moto/SQS answer an expired handle with InvalidParameterValue
            if "receipt" in str(error).lower() or "InvalidParameterValue" in str(error):
                raise LeaseLost(str(error)) from error
            raise

    def complete(self, lease: Lease) -> None:
        self.client.delete_message(QueueUrl=self.url, ReceiptHandle=lease.receipt)
        mark_finished(self.sessions, lease.message.job_id, "done")

    def fail(self, lease: Lease, error: str, permanent: bool = False) -> str:
        if permanent or lease.attempt >= self.max_attempts:
            self._dead_letter(lease.message.to_json(), lease.receipt)
            mark_finished(self.sessions, lease.message.job_id, "dead", error)
            return "dead"
        self.client.change_message_visibility(
            QueueUrl=self.url,
            ReceiptHandle=lease.receipt,
            VisibilityTimeout=int(retry_backoff(lease.attempt).total_seconds()),
        )
        mark_finished(self.sessions, lease.message.job_id, "failed", error)
        return "failed"

    def describe(self) -> str:
        return self.url
