"""Shared fixtures: data paths, the three archive variants, and the peers' tools.

Variants (``archive_variant`` fixture, parametrised where a test asks for it):

``embedded``  filesystem object store, SQLite index, database queue;
``postgres``  the same on the PostgreSQL server at 127.0.0.1:5432 (a fresh database per test);
``cloud``     S3 and SQS on moto's ThreadedMotoServer over HTTP, index on SQLite.

Tools the tests need (dcmtk, dciodvfy, PostgreSQL) are required: a missing one fails
the test with the install hint; nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("L3NET_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
PG_ADMIN_URL = os.environ.get("L3NET_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def require_tool(name: str) -> str:
    """Path of an external tool; fails (never skips) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test` (as root it installs dcmtk and dicom3tools)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "ct").is_dir():
        pytest.fail(f"test data not found at {SHARED_DATA} (set L3NET_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def lidc_0001(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "ct" / "LIDC-IDRI-0001").glob("*.dcm"))
    assert len(files) == 133
    return files


@pytest.fixture(scope="session")
def small_series(shared_data: Path) -> dict[str, list[Path]]:
    root = shared_data / "ct" / "small"
    return {d.name: sorted(p for p in d.iterdir() if p.is_file()) for d in sorted(root.iterdir())}


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"l3net_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def moto_server():
    """moto's ThreadedMotoServer on 127.0.0.1 and a random port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def cloud_resources(moto_server: str):
    """A fresh bucket, job queue and dead-letter queue (redrive after 4 receives)."""
    import json

    import boto3

    suffix = uuid.uuid4().hex[:8]
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1")
    bucket = f"l3net-{suffix}"
    s3.create_bucket(Bucket=bucket)
    dlq_url = sqs.create_queue(QueueName=f"l3net-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=f"l3net-jobs-{suffix}",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "4"})},
    )["QueueUrl"]
    return {"endpoint": moto_server, "bucket": bucket, "queue_url": queue_url, "dlq_url": dlq_url, "s3": s3, "sqs": sqs}


def variant_settings(variant: str, tmp_path: Path, request: pytest.FixtureRequest, **overrides):
    """Settings for one archive variant, rooted in ``tmp_path``."""
    from archive.settings import Settings

    values: dict = {"data_dir": tmp_path / "data", "dicom_port": 0}
    if variant == "postgres":
        values["database_url"] = request.getfixturevalue("postgres_url")
    elif variant == "cloud":
        cloud = request.getfixturevalue("cloud_resources")
        values.update(
            object_store=f"s3://{cloud['bucket']}/archive",
            s3_endpoint_url=cloud["endpoint"],
            queue=cloud["queue_url"],
            sqs_dlq_url=cloud["dlq_url"],
            sqs_endpoint_url=cloud["endpoint"],
        )
    elif variant != "embedded":
        raise ValueError(variant)
    values.update(overrides)
    return Settings(**values)


VARIANTS = [
    "embedded",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("cloud", marks=pytest.mark.cloud),
]


@pytest.fixture(params=VARIANTS)
def archive_variant(request) -> str:
    return request.param


@pytest.fixture
def open_archives():
    """``open(settings)``: ``archive.context.open_archive(settings)``, closed after the test."""
    from archive.context import open_archive

    opened = []

    def _open(settings):
        opened.append(open_archive(settings))
        return opened[-1]

    yield _open
    for archive in opened:
        archive.close()
