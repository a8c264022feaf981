"""The worker end to end on the archive: job → SEG + SR + summary in store and index,
idempotent on redelivery, not-analysable series dead at once, superseded jobs skipped."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from archive.committer import Committer
from archive.context import open_archive
from archive.index.models import Instance, Job, Series
from archive.spool import Spool
from dicom_node.stability import settle_idle_studies
from inference.job import process_job
from inference.worker import run_one
from tests.conftest import variant_settings
from tests.inference.phantom import build, to_datasets


def ingest(archive, datasets) -> None:
    spool = Spool(archive.settings.resolved_spool_dir)
    committer = Committer(archive, spool)
    committer.start()
    for ds in datasets:
        from io import BytesIO

        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        committer.submit(spool.write(buffer.getvalue()), str(ds.StudyInstanceUID))
    assert committer.wait_idle(60)
    committer.stop()


@pytest.fixture(params=["embedded", pytest.param("cloud", marks=pytest.mark.cloud)])
def archive(request, tmp_path):
    settings = variant_settings(request.param, tmp_path, request, stable_after_s=0, min_series_slices=10, job_visibility_timeout_s=60)
    archive = open_archive(settings)
    yield archive
    archive.close()


def run_job(archive) -> bool:
    return run_one(archive.queue, lambda lease: process_job(archive, lease), wait_s=5, heartbeat_s=20)


def count_outputs(archive) -> int:
    with archive.sessions() as session:
        return session.scalar(select(func.count(Instance.pk)).join(Series).where(Series.modality.in_(["SEG", "SR", "DOC"])))


def test_job_produces_seg_sr_and_summary_once(archive):
    datasets = to_datasets(build(depth=40).hu)
    ingest(archive, datasets)
    [job_id] = settle_idle_studies(archive)
    assert run_job(archive)
    with archive.sessions() as session:
        job = session.get(Job, job_id)
        assert job.state == "done", job.error
        assert job.seg_sop_instance_uid and job.sr_sop_instance_uid
    summary = json.loads(archive.store.get_bytes(job.summary_key))
    assert summary["job_id"] == job_id and summary["prognosis"]["label"].startswith("suggested")
    # SEG, SR and the PDF report (modality DOC), each indexed under the UIDs the summary names.
    assert count_outputs(archive) == 3
    with archive.sessions() as session:
        indexed = set(session.scalars(select(Instance.sop_instance_uid).join(Series).where(Series.modality == "DOC")))
    assert indexed == {summary["outputs"]["pdf"]["sop_instance_uid"]}
    # Redelivery (same job id) overwrites the same instances: still one result set.
    from archive.index.jobs import message_for
    from archive.queue import Lease

    process_job(archive, Lease(message_for(job), 2, "redelivered"))
    assert count_outputs(archive) == 3
    # Our own outputs do not re-open the study or queue another job.
    assert settle_idle_studies(archive) == []


def test_not_analysable_series_is_dead_at_once(archive):
    hu = build(depth=40).hu
    hu[...] = 40  # no lungs at all
    ingest(archive, to_datasets(hu))
    [job_id] = settle_idle_studies(archive)
    assert run_job(archive)
    with archive.sessions() as session:
        job = session.get(Job, job_id)
    assert job.state == "dead" and job.attempts == 1
    assert "not a chest CT: no lungs found" in job.error


def test_engine_that_cannot_run_fails_the_job_for_a_retry_not_as_not_analysable(request, tmp_path, monkeypatch):
    """No UNet weights is the server's configuration: the job fails with the reason and
    stays retryable (an admin fixes the setting and re-runs it); it is not dead at once."""
    monkeypatch.delenv("L3NET_UNET_WEIGHTS", raising=False)
    settings = variant_settings("embedded", tmp_path, request, stable_after_s=0, min_series_slices=10,
                                job_visibility_timeout_s=60, engine="l3net")
    archive = open_archive(settings)
    try:
        ingest(archive, to_datasets(build(depth=40).hu))
        [job_id] = settle_idle_studies(archive)
        assert run_job(archive)
        with archive.sessions() as session:
            job = session.get(Job, job_id)
        assert job.state != "dead" and job.attempts == 1
        assert "no weights: set L3NET_UNET_WEIGHTS" in (job.error or "")
        assert count_outputs(archive) == 0
    finally:
        archive.close()
