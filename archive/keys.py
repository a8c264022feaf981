"""Object-store key layout (documented in docs/storage.md).

``studies/{study}/series/{series}/instances/{sop}.dcm``
    every received or produced instance, exactly as stored.
``studies/{study}/results/{job}/summary.json``
    the analysis summary of one job.

Every UID is checked with :func:`archive.uids.check_uid` first, so a key can never
hold ``..`` or a slash that was not put there by this module.
"""

from __future__ import annotations

import re

from archive.uids import check_uid

_JOB_ID = re.compile(r"[A-Za-z0-9-]+")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def instance_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """Key of one DICOM instance."""
    return (
        f"studies/{check_uid(study_uid, 'Study Instance UID')}"
        f"/series/{check_uid(series_uid, 'Series Instance UID')}"
        f"/instances/{check_uid(sop_uid, 'SOP Instance UID')}.dcm"
    )


def result_key(study_uid: str, job_id: str, name: str) -> str:
    """Key of a non-DICOM result file (``summary.json``, ``report.pdf``) of one job."""
    # Whitelists, not blacklists: an empty name, a backslash or a NUL must not get through.
    if not (isinstance(job_id, str) and _JOB_ID.fullmatch(job_id)) or not (
        isinstance(name, str) and _NAME.fullmatch(name)
    ):
        raise ValueError(f"bad result key part: {job_id!r} {name!r}")
    return f"studies/{check_uid(study_uid, 'Study Instance UID')}/results/{job_id}/{name}"
