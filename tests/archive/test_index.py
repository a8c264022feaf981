"""The study index (archive.index): migrations, models vs. migrations, record_instance,
and UTC datetimes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pydicom
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from archive.index.db import make_engine, migrate, session_factory
from archive.index.jobs import create_job
from archive.index.models import Base, Instance, Job, Patient, Series, Study, utcnow
from archive.index.record import record_instance
from archive.keys import instance_key
from archive.objectstore.base import StoredObject

TABLES = {"patients", "studies", "series", "instances", "jobs", "alembic_version"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    return session_factory(engine)


def headers(files):
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in files]


def stored_for(ds, path=None, data: bytes | None = None) -> StoredObject:
    data = data if data is not None else path.read_bytes()
    key = instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())


def record(sessions, ds, stored, **kwargs):
    kwargs.setdefault("received_at", utcnow())
    with sessions.begin() as session:
        return record_instance(session, ds, stored, "1.2.840.10008.1.2.1", "CT1", **kwargs)


# -- migrations ------------------------------------------------------------------------


def test_migrations_create_every_table_and_are_idempotent(db_url):
    engine = make_engine(db_url)
    try:
        migrate(engine)
        migrate(engine)  # a second run is a no-op, not an error
        assert TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == ["0002"]
        job_columns = {column["name"] for column in inspect(engine).get_columns("jobs")}
        assert {"summary_key", "seg_sop_instance_uid", "sr_sop_instance_uid", "superseded_by"} <= job_columns
    finally:
        engine.dispose()


def test_models_match_migrations(db_url):
    """The equivalent of ``alembic check``: autogenerate finds nothing to add."""
    engine = make_engine(db_url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
        assert diffs == []
    finally:
        engine.dispose()


def test_migrate_keeps_existing_rows(sessions, engine, small_series):
    first = small_series["LIDC-IDRI-0001"][0]
    ds = pydicom.dcmread(first, stop_before_pixels=True)
    record(sessions, ds, stored_for(ds, first))
    migrate(engine)
    with sessions() as session:
        assert session.scalar(select(Instance.sop_instance_uid)) == str(ds.SOPInstanceUID)


# -- record_instance -------------------------------------------------------------------


def study_row(sessions, uid) -> Study:
    with sessions() as session:
        return session.scalar(select(Study).where(Study.study_instance_uid == uid))


def test_record_series_builds_rows_and_counters(sessions, small_series):
    files = small_series["LIDC-IDRI-0001"]
    dss = headers(files)
    for ds, path in zip(dss, files):
        outcome = record(sessions, ds, stored_for(ds, path))
        assert (outcome.status, outcome.reopened) == ("new", False)
        assert outcome.study_uid == str(ds.StudyInstanceUID)
    first = dss[0]
    study = study_row(sessions, str(first.StudyInstanceUID))
    assert (study.number_of_instances, study.number_of_series) == (len(files), 1)
    assert (study.state, study.generation) == ("receiving", 1)
    assert study.modalities_in_study == "CT"
    with sessions() as session:
        series = session.scalar(select(Series))
        assert series.series_instance_uid == str(first.SeriesInstanceUID)
        assert series.number_of_instances == len(files)
        assert series.modality == "CT"
        patient = session.scalar(select(Patient))
        assert patient.patient_id == str(first.PatientID)
        instances = session.scalars(select(Instance)).all()
        assert len(instances) == len(files)
        one = next(i for i in instances if i.sop_instance_uid == str(first.SOPInstanceUID))
        assert one.sha256 == hashlib.sha256(files[0].read_bytes()).hexdigest()
        assert one.size == files[0].stat().st_size
        assert one.rows == first.Rows and one.columns == first.Columns
        assert one.source_ae == "CT1"
        assert '"0020000D"' in one.metadata_json and "7FE00010" not in one.metadata_json


def test_two_studies_two_patients(sessions, small_series):
    for name in ("LIDC-IDRI-0002", "LIDC-IDRI-0003"):
        path = small_series[name][0]
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        record(sessions, ds, stored_for(ds, path))
    with sessions() as session:
        assert len(session.scalars(select(Study)).all()) == 2
        assert len(session.scalars(select(Patient)).all()) == 2


def test_identical_re_record_changes_nothing(sessions, small_series):
    path = small_series["LIDC-IDRI-0002"][0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert record(sessions, ds, stored_for(ds, path)).status == "new"
    assert record(sessions, ds, stored_for(ds, path)).status == "identical"
    study = study_row(sessions, str(ds.StudyInstanceUID))
    assert (study.number_of_instances, study.number_of_series, study.generation) == (1, 1, 1)


def test_different_bytes_replace_without_counting_twice(sessions, small_series):
    path = small_series["LIDC-IDRI-0002"][0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    record(sessions, ds, stored_for(ds, path))
    replacement = stored_for(ds, data=b"other bytes")
    assert record(sessions, ds, replacement).status == "replaced"
    with sessions() as session:
        assert session.scalar(select(Instance.sha256)) == replacement.sha256
        assert len(session.scalars(select(Instance)).all()) == 1
    assert study_row(sessions, str(ds.StudyInstanceUID)).number_of_instances == 1


def _make_queued(sessions, uid):
    with sessions.begin() as session:
        study = session.scalar(select(Study).where(Study.study_instance_uid == uid))
        study.state, study.stable_at, study.state_reason = "queued", utcnow(), None


def test_new_instance_reopens_a_queued_study_to_the_next_generation(sessions, small_series):
    files = small_series["LIDC-IDRI-0003"]
    dss = headers(files)
    for ds, path in zip(dss[:-1], files[:-1]):
        record(sessions, ds, stored_for(ds, path))
    uid = str(dss[0].StudyInstanceUID)
    _make_queued(sessions, uid)
    late = record(sessions, dss[-1], stored_for(dss[-1], files[-1]))
    assert (late.status, late.reopened) == ("new", True)
    study = study_row(sessions, uid)
    assert (study.state, study.generation, study.stable_at) == ("receiving", 2, None)
    assert study.number_of_instances == len(files)
    # Re-sending an instance already there (identical) does not reopen it again.
    _make_queued(sessions, uid)
    again = record(sessions, dss[0], stored_for(dss[0], files[0]))
    assert (again.status, again.reopened) == ("identical", False)
    assert (study_row(sessions, uid).state, study_row(sessions, uid).generation) == ("queued", 2)


def test_reopens_study_false_leaves_a_queued_study(sessions, small_series):
    files = small_series["LIDC-IDRI-0003"]
    dss = headers(files)
    for ds, path in zip(dss[:-1], files[:-1]):
        record(sessions, ds, stored_for(ds, path), received_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    uid = str(dss[0].StudyInstanceUID)
    _make_queued(sessions, uid)
    ours = record(sessions, dss[-1], stored_for(dss[-1], files[-1]), reopens_study=False)
    assert (ours.status, ours.reopened) == ("new", False)
    study = study_row(sessions, uid)
    assert (study.state, study.generation) == ("queued", 1)
    assert study.number_of_instances == len(files)
    assert study.last_received_at == datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_owner_group_is_set_when_the_study_is_created(sessions, small_series):
    files = small_series["LIDC-IDRI-0002"]
    dss = headers(files[:2])
    record(sessions, dss[0], stored_for(dss[0], files[0]), owner_group="radiology")
    record(sessions, dss[1], stored_for(dss[1], files[1]), owner_group="other")
    assert study_row(sessions, str(dss[0].StudyInstanceUID)).owner_group == "radiology"


# -- datetimes -------------------------------------------------------------------------


def test_utc_datetimes_round_trip_aware(sessions):
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 3, 4, 12, 30, 15, 123456, tzinfo=plus_two)
    with sessions.begin() as session:
        job = create_job(session, "1.2.3", "1.2.3.4", 1, "densitometry", 3, sent=True)
        job.visible_at = moment
        job_id = job.id
    with sessions() as session:
        stored = session.get(Job, job_id)
        assert stored.visible_at.tzinfo is not None
        assert stored.visible_at.utcoffset() == timedelta(0)
        assert stored.visible_at == moment
        assert stored.visible_at.hour == 10  # stored as UTC
        assert stored.created_at.tzinfo is not None
        assert abs(stored.created_at - utcnow()) < timedelta(minutes=1)
        # Comparisons in SQL treat the stored values as UTC as well.
        earlier = session.scalar(select(Job.id).where(Job.visible_at < datetime(2026, 3, 4, 10, 31, tzinfo=timezone.utc)))
        later = session.scalar(select(Job.id).where(Job.visible_at < datetime(2026, 3, 4, 10, 30, tzinfo=timezone.utc)))
        assert (earlier, later) == (job_id, None)


def test_naive_datetimes_are_refused(sessions):
    with pytest.raises(Exception, match="naive datetime"):
        with sessions.begin() as session:
            job = create_job(session, "1.2.3", "1.2.3.4", 1, "densitometry", 3, sent=True)
            job.visible_at = datetime(2026, 1, 1)
