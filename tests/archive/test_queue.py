"""Job queues (archive.queue): the database queue on SQLite and PostgreSQL, SQS on moto,
and the versioned job message."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from archive.index.db import make_engine, migrate, session_factory
from archive.index.jobs import create_job
from archive.index.models import Job, utcnow
from archive.queue.base import LeaseLost
from archive.queue.database import DatabaseJobQueue
from archive.queue.message import JobMessage
from archive.queue.sqs import SQSJobQueue
from tests.archive.threads import run_together

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.1.1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sessions(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def add_job(sessions, generation=1, max_attempts=3, sent=True) -> Job:
    with sessions.begin() as session:
        return create_job(session, STUDY, SERIES, generation, "densitometry", max_attempts, sent=sent)


def job_row(sessions, job_id) -> Job:
    with sessions() as session:
        return session.get(Job, job_id)


def make_visible(sessions, job_id):
    """As if the retry backoff had run out."""
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(visible_at=utcnow() - timedelta(seconds=1)))


# -- database queue ----------------------------------------------------------------------


def test_receive_and_complete(sessions):
    job = add_job(sessions)
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=30)
    lease = queue.receive(0)
    assert lease is not None and lease.attempt == 1
    assert lease.message.job_id == job.id
    assert (lease.message.study_instance_uid, lease.message.generation) == (STUDY, 1)
    row = job_row(sessions, job.id)
    assert (row.state, row.attempts, row.lease_token) == ("running", 1, lease.receipt)
    assert queue.receive(0) is None  # leased
    queue.complete(lease)
    row = job_row(sessions, job.id)
    assert (row.state, row.lease_token, row.error) == ("done", None, None)
    assert row.finished_at is not None
    assert queue.receive(0) is None


def test_receive_waits_then_returns_none(sessions):
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=30)
    started = time.monotonic()
    assert queue.receive(0.3) is None
    assert 0.25 <= time.monotonic() - started < 2


def test_send_wakes_a_waiting_receiver(sessions):
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=30)
    got = []
    waiter = threading.Thread(target=lambda: got.append(queue.receive(5)))
    waiter.start()
    time.sleep(0.1)
    job = add_job(sessions)
    queue.send(None)  # the row is the message
    waiter.join(5)
    assert got and got[0] is not None and got[0].message.job_id == job.id


def test_lease_expiry_redelivers_with_the_next_attempt(sessions):
    job = add_job(sessions)
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=0.3)
    first = queue.receive(0)
    assert first.attempt == 1
    time.sleep(0.4)
    second = queue.receive(0)
    assert second is not None and second.message.job_id == job.id
    assert second.attempt == 2 and second.receipt != first.receipt
    assert job_row(sessions, job.id).attempts == 2


def test_heartbeat_extends_the_lease(sessions):
    add_job(sessions)
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=0.5)
    lease = queue.receive(0)
    for _ in range(3):
        time.sleep(0.25)
        queue.heartbeat(lease)
    assert queue.receive(0) is None  # 0.75 s after taking it, still leased
    queue.complete(lease)
    assert job_row(sessions, lease.message.job_id).state == "done"


def test_old_lease_is_lost_once_taken_over(sessions):
    add_job(sessions)
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=0.3)
    old = queue.receive(0)
    time.sleep(0.4)
    new = queue.receive(0)
    assert new.attempt == 2
    with pytest.raises(LeaseLost):
        queue.heartbeat(old)
    with pytest.raises(LeaseLost):
        queue.complete(old)
    with pytest.raises(LeaseLost):
        queue.fail(old, "late")
    queue.complete(new)
    assert job_row(sessions, new.message.job_id).state == "done"
    with pytest.raises(LeaseLost):
        queue.heartbeat(new)  # completed: nothing left to extend


def test_fail_backs_off_then_dead_at_max_attempts(sessions):
    job = add_job(sessions, max_attempts=2)
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=30)
    lease = queue.receive(0)
    assert queue.fail(lease, "boom 1") == "failed"
    row = job_row(sessions, job.id)
    assert (row.state, row.error, row.lease_token) == ("failed", "boom 1", None)
    assert row.visible_at > utcnow() + timedelta(seconds=3)  # 5 s backoff after attempt 1
    assert queue.receive(0) is None
    make_visible(sessions, job.id)
    lease = queue.receive(0)
    assert lease.attempt == 2
    assert queue.fail(lease, "boom 2") == "dead"
    row = job_row(sessions, job.id)
    assert (row.state, row.error, row.attempts) == ("dead", "boom 2", 2)
    assert row.finished_at is not None
    make_visible(sessions, job.id)
    assert queue.receive(0) is None


def test_permanent_failure_is_dead_at_once(sessions):
    job = add_job(sessions, max_attempts=5)
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=30)
    lease = queue.receive(0)
    assert queue.fail(lease, "not a CT", permanent=True) == "dead"
    row = job_row(sessions, job.id)
    assert (row.state, row.attempts, row.error) == ("dead", 1, "not a CT")
    make_visible(sessions, job.id)
    assert queue.receive(0) is None


def test_lease_running_out_on_the_last_attempt_is_dead_on_next_receive(sessions):
    job = add_job(sessions, max_attempts=1)
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=0.2)
    assert queue.receive(0).attempt == 1
    time.sleep(0.3)
    assert queue.receive(0) is None
    row = job_row(sessions, job.id)
    assert (row.state, row.attempts) == ("dead", 1)
    assert "lease expired" in row.error
    assert row.finished_at is not None


def test_every_delivery_counts_once_up_to_max_attempts(sessions):
    job = add_job(sessions, max_attempts=3)
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=0.1)
    attempts = []
    for _ in range(6):
        lease = queue.receive(0)
        if lease is not None:
            attempts.append(lease.attempt)
        time.sleep(0.15)
    assert attempts == [1, 2, 3]
    assert job_row(sessions, job.id).state == "dead"


def test_jobs_come_oldest_first(sessions):
    ids = [add_job(sessions, generation=g).id for g in (1, 2, 3)]
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=30)
    assert [queue.receive(0).message.job_id for _ in ids] == ids


def test_concurrent_receivers_get_each_job_exactly_once(sessions):
    ids = {add_job(sessions, generation=g).id for g in range(1, 21)}
    queue = DatabaseJobQueue(sessions, visibility_timeout_s=60)
    got: list[str] = []
    lock = threading.Lock()

    def worker():
        for _ in range(40):  # bounded: more than enough for 20 jobs
            lease = queue.receive(0)
            if lease is None:
                return
            with lock:
                got.append(lease.message.job_id)
            queue.complete(lease)

    run_together(worker, [()] * 4)
    assert sorted(got) == sorted(ids)
    with sessions() as session:
        assert {job.state for job in session.query(Job)} == {"done"}
        assert {job.attempts for job in session.query(Job)} == {1}


# -- message ---------------------------------------------------------------------------


def test_job_message_v1_round_trip():
    message = JobMessage(
        job_id="0b7e4f6c-3f1e-4a51-9b0a-6f3f0f1f2a3b",
        study_instance_uid=STUDY,
        series_instance_uid=SERIES,
        generation=2,
        engine="densitometry",
        queued_at=utcnow(),
    )
    text = message.to_json()
    assert json.loads(text)["schema"] == "l3net.job/1"
    assert JobMessage.from_json(text) == message
    assert JobMessage.from_json(text.encode()) == message


def _body(**changes) -> str:
    body = {
        "schema": "l3net.job/1",
        "job_id": "j",
        "study_instance_uid": STUDY,
        "series_instance_uid": SERIES,
        "generation": 1,
        "engine": "densitometry",
        "queued_at": "2026-01-01T00:00:00Z",
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None})


@pytest.mark.parametrize(
    "body",
    [
        _body(schema="l3net.job/2"),
        _body(schema=None),
        _body(study_instance_uid="1.2/../3"),
        _body(generation="two"),
        _body(job_id=None),
        "not json",
    ],
)
def test_job_message_refuses_other_schemas_and_bad_bodies(body):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        JobMessage.from_json(body)


# -- SQS queue (moto) ------------------------------------------------------------------


@pytest.fixture
def sqs_setup(cloud_resources, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    migrate(engine)
    sessions = session_factory(engine)

    def make(max_attempts=3, visibility=30):
        return SQSJobQueue(
            cloud_resources["queue_url"],
            sessions,
            visibility_timeout_s=visibility,
            max_attempts=max_attempts,
            dlq_url=cloud_resources["dlq_url"],
            endpoint_url=cloud_resources["endpoint"],
        )

    yield cloud_resources, sessions, make
    engine.dispose()


def queue_counts(sqs, url) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def dlq_bodies(cloud) -> list[str]:
    bodies = []
    for _ in range(5):
        messages = cloud["sqs"].receive_message(QueueUrl=cloud["dlq_url"], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        bodies += [m["Body"] for m in messages]
    return bodies


def assert_dead_lettered(cloud, job):
    """The job's message left the queue and is the one message in the DLQ."""
    assert queue_counts(cloud["sqs"], cloud["queue_url"]) == (0, 0)
    bodies = dlq_bodies(cloud)
    assert len(bodies) == 1 and JobMessage.from_json(bodies[0]).job_id == job.id


def send_job(sessions, queue, max_attempts=3) -> Job:
    job = add_job(sessions, max_attempts=max_attempts, sent=False)
    from archive.index.jobs import message_for

    queue.send(message_for(job))
    return job


@pytest.mark.cloud
def test_sqs_send_receive_complete(sqs_setup):
    cloud, sessions, make = sqs_setup
    queue = make()
    job = send_job(sessions, queue)
    lease = queue.receive(1)
    assert lease is not None and lease.attempt == 1 and lease.message.job_id == job.id
    assert job_row(sessions, job.id).state == "running"
    queue.complete(lease)
    row = job_row(sessions, job.id)
    assert row.state == "done" and row.finished_at is not None
    assert queue_counts(cloud["sqs"], cloud["queue_url"]) == (0, 0)
    assert queue.receive(0) is None
    assert dlq_bodies(cloud) == []


@pytest.mark.cloud
def test_sqs_heartbeat(sqs_setup):
    cloud, sessions, make = sqs_setup
    queue = make(visibility=1)
    send_job(sessions, queue)
    lease = queue.receive(1)
    time.sleep(0.6)
    queue.heartbeat(lease)  # pushes the lease to 1 s from now
    time.sleep(0.6)
    assert queue.receive(0) is None  # 1.2 s after receipt: visible again only without the heartbeat
    assert queue_counts(cloud["sqs"], cloud["queue_url"]) == (0, 1)
    queue.complete(lease)
    with pytest.raises(LeaseLost):
        queue.heartbeat(lease)  # the message is gone


@pytest.mark.cloud
def test_sqs_fractional_visibility_rounds_up(sqs_setup):
    """SQS takes whole seconds; a 0.5 s lease must not become 0 s (visible at once)."""
    cloud, sessions, make = sqs_setup
    queue = make(visibility=0.5)
    assert queue.visibility == 1
    job = send_job(sessions, queue)
    assert queue.receive(1).message.job_id == job.id
    assert queue.receive(0) is None
    assert queue_counts(cloud["sqs"], cloud["queue_url"]) == (0, 1)


@pytest.mark.cloud
def test_sqs_fail_then_dead_on_the_last_attempt(sqs_setup):
    cloud, sessions, make = sqs_setup
    queue = make(max_attempts=2)
    job = send_job(sessions, queue, max_attempts=2)
    lease = queue.receive(1)
    assert queue.fail(lease, "boom 1") == "failed"
    row = job_row(sessions, job.id)
    assert (row.state, row.error) == ("failed", "boom 1")
    assert queue.receive(0) is None  # backoff: not visible yet
    cloud["sqs"].change_message_visibility(QueueUrl=cloud["queue_url"], ReceiptHandle=lease.receipt, VisibilityTimeout=0)
    lease = queue.receive(1)
    assert lease is not None and lease.attempt == 2
    row = job_row(sessions, job.id)
    assert (row.state, row.attempts) == ("running", 2)
    assert queue.fail(lease, "boom 2") == "dead"
    row = job_row(sessions, job.id)
    assert (row.state, row.error) == ("dead", "boom 2")
    assert_dead_lettered(cloud, job)


@pytest.mark.cloud
def test_sqs_permanent_failure_is_dead_at_once(sqs_setup):
    cloud, sessions, make = sqs_setup
    queue = make(max_attempts=3)
    job = send_job(sessions, queue)
    assert queue.fail(queue.receive(1), "bad input", permanent=True) == "dead"
    assert job_row(sessions, job.id).state == "dead"
    assert len(dlq_bodies(cloud)) == 1


@pytest.mark.cloud
def test_sqs_received_more_than_max_attempts_is_dead_lettered(sqs_setup):
    cloud, sessions, make = sqs_setup
    queue = make(max_attempts=1, visibility=0)  # every lease runs out at once
    job = send_job(sessions, queue, max_attempts=1)
    assert queue.receive(1).attempt == 1
    assert queue.receive(1) is None  # second delivery: over max_attempts
    row = job_row(sessions, job.id)
    assert row.state == "dead" and "delivered 2 times" in row.error
    assert_dead_lettered(cloud, job)


@pytest.mark.cloud
def test_sqs_malformed_bodies_go_to_the_dlq(sqs_setup):
    cloud, sessions, make = sqs_setup
    queue = make()
    for body in ("not json", _body(schema="l3net.job/2")):
        cloud["sqs"].send_message(QueueUrl=cloud["queue_url"], MessageBody=body)
    for _ in range(4):
        assert queue.receive(0) is None
    assert queue_counts(cloud["sqs"], cloud["queue_url"]) == (0, 0)
    assert sorted(dlq_bodies(cloud)) == sorted(["not json", _body(schema="l3net.job/2")])
