"""Object-store key layout (documented in docs/storage.md).

``studies/{study}/series/{series}/instances/{sop}.dcm``
    every received or produced instance, exactly as stored.
``studies/{study}/results/{job}/summary.json``
    the analysis summary of one job.

Every UID is checked with :func:`archive.uids.check_uid` first, so a key can never
hold ``..`` or a slash that was not put there by this module.
"""

from __future__ import annotations

from archive.uids import check_uid


def instance_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """Key of one DICOM instance."""
    return (
        f"studies/{check_uid(study_uid, 'Study Instance UID')}"
        f"/series/{check_uid(series_uid, 'Series Instance UID')}"
        f"/instances/{check_uid(sop_uid, 'SOP Instance UID')}.dcm"
    )


def result_key(study_uid: str, job_id: str, name: str) -> str:
    """Key of a non-DICOM result file (``summary.json``, ``report.pdf``) of one job."""
    if not job_id.replace("-", "").isalnum() or "/" in name or name.startswith("."):
        raise ValueError(f"bad result key part: {job_id!r} {name!r}")
    return f"studies/{check_uid(study_uid, 'Study Instance UID')}/results/{job_id}/{name}"
