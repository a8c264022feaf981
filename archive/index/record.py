"""Adding one received instance to the index, and what that does to its study."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from archive.index.models import Instance, Patient, Series, Study
from archive.objectstore.base import StoredObject

# Values above this many bytes are left out of the stored DICOM JSON and served as bulk data.
BULK_THRESHOLD = 1024


def _text(ds: Dataset, keyword: str, limit: int) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in value)[:limit]
    return str(value)[:limit]


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _float(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def header_json(ds: Dataset) -> str:
    """DICOM JSON of the header; large values become relative ``BulkDataURI`` s
    (``bulk/{tag}``) that the web tier turns into absolute ones."""

    def bulk(element) -> str:
        return f"bulk/{element.tag:08X}"

    return json.dumps(ds.to_json_dict(bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=bulk))


@dataclass(frozen=True)
class Recorded:
    """Outcome of :func:`record_instance`.

    ``status``: ``new``, ``identical`` (same bytes already indexed) or ``replaced``.
    ``reopened``: a stable study received new data and went back to ``receiving``."""

    status: str
    study_uid: str
    reopened: bool = False


def _bump(row, column: str) -> None:
    """Add one to a counter: in SQL for stored rows, since committer threads add to the
    same study at once and a read-modify-write in Python would lose updates."""
    if row.pk is None:
        setattr(row, column, (getattr(row, column) or 0) + 1)
    else:
        setattr(row, column, getattr(type(row), column) + 1)


def find_instance(session: Session, sop_uid: str) -> Instance | None:
    return session.scalar(select(Instance).where(Instance.sop_instance_uid == sop_uid))


def _patient(session: Session, ds: Dataset) -> Patient:
    pid, issuer = _text(ds, "PatientID", 64), _text(ds, "IssuerOfPatientID", 64)
    patient = session.scalar(
        select(Patient).where(Patient.patient_id == pid, Patient.issuer_of_patient_id == issuer)
    )
    if patient is None:
        patient = Patient(patient_id=pid, issuer_of_patient_id=issuer)
        session.add(patient)
    patient.patient_name = _text(ds, "PatientName", 324) or patient.patient_name or ""
    patient.patient_birth_date = _text(ds, "PatientBirthDate", 8) or patient.patient_birth_date or ""
    patient.patient_sex = _text(ds, "PatientSex", 16) or patient.patient_sex or ""
    return patient


def _study(session: Session, ds: Dataset, received_at: datetime, owner_group: str | None) -> Study:
    uid = str(ds.StudyInstanceUID)
    study = session.scalar(
        select(Study).where(Study.study_instance_uid == uid).execution_options(populate_existing=True)
    )
    if study is None:
        study = Study(
            study_instance_uid=uid,
            patient=_patient(session, ds),
            state="receiving",
            generation=1,
            first_received_at=received_at,
            last_received_at=received_at,
            owner_group=owner_group,
            number_of_series=0,
            number_of_instances=0,
        )
        session.add(study)
    for column, keyword, limit in (
        ("study_date", "StudyDate", 8),
        ("study_time", "StudyTime", 16),
        ("accession_number", "AccessionNumber", 16),
        ("study_id", "StudyID", 16),
        ("study_description", "StudyDescription", 64),
        ("referring_physician_name", "ReferringPhysicianName", 324),
    ):
        if not getattr(study, column):
            setattr(study, column, _text(ds, keyword, limit))
    return study


def _series(session: Session, ds: Dataset, study: Study) -> Series:
    uid = str(ds.SeriesInstanceUID)
    series = session.scalar(select(Series).where(Series.series_instance_uid == uid))
    if series is None:
        series = Series(
            series_instance_uid=uid,
            study=study,
            modality=_text(ds, "Modality", 16),
            series_number=_int(ds, "SeriesNumber"),
            series_description=_text(ds, "SeriesDescription", 64),
            body_part_examined=_text(ds, "BodyPartExamined", 16),
            performed_procedure_step_start_date=_text(ds, "PerformedProcedureStepStartDate", 8),
            performed_procedure_step_start_time=_text(ds, "PerformedProcedureStepStartTime", 16),
            frame_of_reference_uid=_text(ds, "FrameOfReferenceUID", 64),
            image_orientation_patient=_text(ds, "ImageOrientationPatient", 128),
            slice_thickness=_float(ds, "SliceThickness"),
            convolution_kernel=_text(ds, "ConvolutionKernel", 64),
            image_type=_text(ds, "ImageType", 128),
            number_of_instances=0,
        )
        session.add(series)
        _bump(study, "number_of_series")
        modalities = set(filter(None, study.modalities_in_study.split("\\")))
        if series.modality and series.modality not in modalities:
            study.modalities_in_study = "\\".join(sorted(modalities | {series.modality}))
    return series


def record_instance(
    session: Session,
    ds: Dataset,
    stored: StoredObject,
    transfer_syntax_uid: str,
    source_ae: str,
    received_at: datetime,
    owner_group: str | None = None,
    reopens_study: bool = True,
) -> Recorded:
    """Index one instance whose bytes are already durable in the object store.

    An instance already indexed with the same SHA-256 changes nothing (``identical``);
    one with other bytes is ``replaced`` (the caller applied the duplicate policy).
    A new instance in a study that was stable re-opens it with the next generation,
    unless ``reopens_study`` is False (our own analysis results)."""
    study_uid = str(ds.StudyInstanceUID)
    existing = find_instance(session, str(ds.SOPInstanceUID))
    if existing is not None and existing.sha256 == stored.sha256:
        return Recorded("identical", study_uid)

    # Lock the study row before reading it (a no-op UPDATE: SQLite has no SELECT … FOR
    # UPDATE, and the UPDATE takes its write lock too). State, generation, last_received_at
    # and modalities_in_study are read, changed and written back here; without the lock,
    # committer threads adding to one study at once lost each other's changes (a new
    # series' modality vanished from ModalitiesInStudy, last_received_at went back).
    session.execute(
        update(Study)
        .where(Study.study_instance_uid == study_uid)
        .values(number_of_instances=Study.number_of_instances)
        .execution_options(synchronize_session=False)
    )
    study = _study(session, ds, received_at, owner_group)
    reopened = False
    if reopens_study:
        if study.state != "receiving":
            study.state, study.state_reason, study.generation = "receiving", None, study.generation + 1
            study.stable_at = None
            reopened = True
        study.last_received_at = max(study.last_received_at, received_at)
    series = _series(session, ds, study)

    instance = existing or Instance(sop_instance_uid=str(ds.SOPInstanceUID))
    instance.series = series
    instance.sop_class_uid = str(ds.SOPClassUID)
    instance.instance_number = _int(ds, "InstanceNumber")
    instance.rows, instance.columns = _int(ds, "Rows"), _int(ds, "Columns")
    instance.number_of_frames = _int(ds, "NumberOfFrames")
    instance.transfer_syntax_uid = transfer_syntax_uid
    instance.source_ae = source_ae[:16]
    instance.received_at = received_at
    instance.object_key = stored.key
    instance.size = stored.size
    instance.sha256 = stored.sha256
    instance.metadata_json = header_json(ds)
    if existing is None:
        session.add(instance)
        _bump(series, "number_of_instances")
        _bump(study, "number_of_instances")
    return Recorded("replaced" if existing is not None else "new", study_uid, reopened)
