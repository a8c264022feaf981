"""What the worker does with one job: load the chosen series from the archive, analyse
it, and store the SEG, the SR, the PDF report and ``summary.json`` where DICOMweb
serves them.

Idempotent by construction: the output UIDs are derived from the job id
(:meth:`inference.pipeline.OutputUIDs.from_job`), so a redelivered job writes the same
keys and index rows again rather than a second result set.
"""

from __future__ import annotations

import io
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select

from archive.context import Archive
from archive.index.jobs import current_generation, record_results
from archive.index.models import Instance, Series, utcnow
from archive.index.record import record_instance
from archive.keys import instance_key, result_key
from archive.queue import Lease
from inference.worker import PermanentJobError

log = logging.getLogger("l3net.worker")

# Reading objects is I/O bound (S3 above all); a few threads hide the latency.
_READ_THREADS = 8


def load_series(archive: Archive, series_uid: str) -> list[Dataset]:
    """Every instance of the series, read from the object store."""
    with archive.sessions() as session:
        keys = session.scalars(
            select(Instance.object_key).join(Series).where(Series.series_instance_uid == series_uid)
        ).all()
    if not keys:
        raise PermanentJobError(f"series {series_uid} has no instances in the archive")

    def read(key: str) -> Dataset:
        return pydicom.dcmread(io.BytesIO(archive.store.get_bytes(key)))

    with ThreadPoolExecutor(_READ_THREADS) as pool:
        return list(pool.map(read, keys))


def store_output(archive: Archive, ds: Dataset) -> None:
    """Put one produced instance into the object store and the index, like a received
    one, but without re-opening the study (our own results must not trigger a new job)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    key = instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    stored = archive.store.put_bytes(key, buffer.getvalue())
    # Index what was stored, read back: highdicom keeps typed values (DA, TM objects)
    # that the DICOM JSON encoder cannot write, while parsed bytes are plain strings.
    ds = pydicom.dcmread(io.BytesIO(buffer.getvalue()), stop_before_pixels=True)
    with archive.sessions.begin() as session:
        record_instance(
            session, ds, stored, str(ds.file_meta.TransferSyntaxUID), archive.settings.ae_title,
            utcnow(), reopens_study=False,
        )


def process_job(archive: Archive, lease: Lease) -> None:
    """Run one analysis job end to end; raises to fail it (PermanentJobError: no retry)."""
    from inference.pipeline import OutputUIDs, SeriesNotAnalysable, analyze

    job = lease.message
    now_generation = current_generation(archive.sessions, job.study_instance_uid)
    if now_generation is not None and now_generation > job.generation:
        # The study received more data after this job was queued; its own job will
        # analyse the complete study, and this one must not publish stale results.
        log.info("event=job.superseded job=%s generation=%d current=%d", job.job_id, job.generation, now_generation)
        return

    datasets = load_series(archive, job.series_instance_uid)
    try:
        result = analyze(datasets, job.engine, uids=OutputUIDs.from_job(job.job_id), settings=archive.settings)
    except SeriesNotAnalysable as error:
        raise PermanentJobError(str(error)) from error

    for output in (result.seg, result.sr, result.pdf):
        if output is not None:
            store_output(archive, output)
    summary_key = result_key(job.study_instance_uid, job.job_id, "summary.json")
    summary = {**result.summary, "job_id": job.job_id, "generation": job.generation}
    archive.store.put_bytes(summary_key, json.dumps(summary, indent=2).encode())
    record_results(
        archive.sessions, job.job_id, summary_key, str(result.seg.SOPInstanceUID), str(result.sr.SOPInstanceUID)
    )
