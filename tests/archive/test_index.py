"""The study index (archive.index): migrations, models vs. migrations, record_instance,
and UTC datetimes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import copy
import hashlib
import multiprocessing
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
from tests.archive.threads import run_together

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


def _migrate_in_a_process(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()


def test_processes_starting_together_migrate_one_at_a_time(db_url):
    """Node, web and worker started at once on a fresh database all come up (they raced
    on CREATE TABLE: 'table jobs already exists', a pg_type unique violation)."""
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_migrate_in_a_process, args=(db_url,)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0002"]
    finally:
        engine.dispose()


def test_threads_migrating_at_once_do_not_collide(db_url):
    engines = [make_engine(db_url) for _ in range(3)]
    try:
        run_together(migrate, [(engine,) for engine in engines])
        assert TABLES <= set(inspect(engines[0]).get_table_names())
    finally:
        for engine in engines:
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


@pytest.mark.filterwarnings("ignore:The value length")
def test_qido_attributes_are_indexed(sessions, small_series):
    path = small_series["LIDC-IDRI-0001"][0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ds.PatientName = "Doe^Jane"
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientBirthDate = "19600102"
    ds.PatientSex = "F"
    ds.StudyTime = "101500.5"
    ds.StudyID = "S42"
    ds.StudyDescription = "CT CHEST " + "X" * 80  # longer than the column: cut to 64
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.SeriesDescription = "Axial 2.5"
    ds.PerformedProcedureStepStartDate = "20000101"
    ds.PerformedProcedureStepStartTime = "101600"
    received = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    record(sessions, ds, stored_for(ds, path), received_at=received, owner_group="chest")
    with sessions() as session:
        patient = session.scalar(select(Patient))
        assert (patient.patient_id, patient.issuer_of_patient_id, patient.patient_name) == ("LIDC-IDRI-0001", "HOSP", "Doe^Jane")
        assert (patient.patient_birth_date, patient.patient_sex) == ("19600102", "F")
        study = session.scalar(select(Study))
        assert study.patient_pk == patient.pk
        assert (study.study_date, study.study_time, study.accession_number) == ("20000101", "101500.5", "2819497684894126")
        assert (study.study_id, study.referring_physician_name) == ("S42", "Ref^Doc")
        assert study.study_description == ("CT CHEST " + "X" * 80)[:64]
        assert (study.modalities_in_study, study.owner_group) == ("CT", "chest")
        assert study.first_received_at == study.last_received_at == received
        series = session.scalar(select(Series))
        assert (series.modality, series.series_number, series.series_description) == ("CT", 3000566, "Axial 2.5")
        assert (series.body_part_examined, series.frame_of_reference_uid) == ("CHEST", str(ds.FrameOfReferenceUID))
        assert (series.performed_procedure_step_start_date, series.performed_procedure_step_start_time) == ("20000101", "101600")
        assert series.image_orientation_patient == "\\".join(str(v) for v in ds.ImageOrientationPatient)
        assert (series.slice_thickness, series.convolution_kernel, series.image_type) == (2.5, "STANDARD", "ORIGINAL\\PRIMARY\\AXIAL")
        instance = session.scalar(select(Instance))
        assert (instance.sop_class_uid, instance.instance_number) == ("1.2.840.10008.5.1.4.1.1.2", int(ds.InstanceNumber))
        assert (instance.transfer_syntax_uid, instance.received_at, instance.number_of_frames) == ("1.2.840.10008.1.2.1", received, None)
        assert instance.object_key == instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


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


@pytest.mark.parametrize("stable_state", ["queued", "not_analysable"])
def test_changed_bytes_reopen_a_stable_study(sessions, small_series, stable_state):
    path = small_series["LIDC-IDRI-0002"][0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    record(sessions, ds, stored_for(ds, path))
    uid = str(ds.StudyInstanceUID)
    with sessions.begin() as session:
        study = session.scalar(select(Study).where(Study.study_instance_uid == uid))
        study.state, study.state_reason, study.stable_at = stable_state, "why", utcnow()
    outcome = record(sessions, ds, stored_for(ds, data=b"corrected bytes"))
    assert (outcome.status, outcome.reopened) == ("replaced", True)
    study = study_row(sessions, uid)
    assert (study.state, study.state_reason, study.generation, study.number_of_instances) == ("receiving", None, 2, 1)


def _in_new_series(ds, number: int, modality: str):
    other = copy.deepcopy(ds)
    other.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{number}"
    other.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{number}.1"
    other.Modality = modality
    return other


def test_concurrent_records_into_one_study_lose_no_change(sessions, small_series):
    """Threads adding series to one study at once: every modality, counter and the
    latest receive time survive (they were read-modify-written without a lock)."""
    path = small_series["LIDC-IDRI-0002"][0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    record(sessions, ds, stored_for(ds, path), received_at=start)
    modalities = ["MR", "PT", "NM", "US", "SR", "SEG", "PR", "RTSTRUCT"]

    def add(number, modality):
        other = _in_new_series(ds, number, modality)
        record(sessions, other, stored_for(other, data=modality.encode()), received_at=start + timedelta(seconds=number))

    run_together(add, list(enumerate(modalities, 1)))
    study = study_row(sessions, str(ds.StudyInstanceUID))
    assert set(study.modalities_in_study.split("\\")) == {"CT", *modalities}
    assert (study.number_of_series, study.number_of_instances) == (len(modalities) + 1, len(modalities) + 1)
    assert study.last_received_at == start + timedelta(seconds=len(modalities))


def test_a_stale_study_read_does_not_move_last_received_back(sessions, small_series):
    """A session that read the study before another committer's newer instance must
    not write its older receive time over the newer one."""
    files = small_series["LIDC-IDRI-0002"]
    dss = headers(files[:3])
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    record(sessions, dss[0], stored_for(dss[0], files[0]), received_at=start)
    uid = str(dss[0].StudyInstanceUID)
    with sessions() as slow:
        stale = slow.scalar(select(Study).where(Study.study_instance_uid == uid))  # read, then overtaken
        record(sessions, dss[1], stored_for(dss[1], files[1]), received_at=start + timedelta(seconds=20))
        record_instance(slow, dss[2], stored_for(dss[2], files[2]), "1.2.840.10008.1.2.1", "CT1", start + timedelta(seconds=10))
        slow.commit()
        assert stale.last_received_at == start + timedelta(seconds=20)
    study = study_row(sessions, uid)
    assert (study.last_received_at, study.number_of_instances) == (start + timedelta(seconds=20), 3)


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


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_libpq_style_urls_use_psycopg(postgres_url, scheme):
    """``postgres://`` and ``postgresql://`` (what psql, RDS and Heroku hand out) reach
    the server through the psycopg 3 driver the project installs."""
    url = scheme + "://" + postgres_url.split("://", 1)[1]
    engine = make_engine(url)
    try:
        assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        with engine.connect() as connection:
            assert connection.execute(text("select 1")).scalar() == 1
    finally:
        engine.dispose()
