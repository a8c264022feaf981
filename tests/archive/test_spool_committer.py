"""The durable receive spool (archive.spool) and the committer that moves spooled files
into the object store and the index (archive.committer), on every archive variant."""

from __future__ import annotations

import hashlib
from io import BytesIO

import pydicom
import pytest
from sqlalchemy import select

from archive.committer import Committer
from archive.context import open_archive
from archive.index.models import Instance, Series, Study
from archive.keys import instance_key
from archive.spool import Spool
from tests.conftest import variant_settings


@pytest.fixture
def make_archive(archive_variant, tmp_path, request):
    opened = []

    def make(**overrides):
        archive = open_archive(variant_settings(archive_variant, tmp_path, request, **overrides))
        opened.append(archive)
        return archive

    yield make
    for archive in opened:
        archive.close()


def spool_of(archive) -> Spool:
    return Spool(archive.settings.resolved_spool_dir)


def altered(path, comment="altered") -> bytes:
    """The same instance (same UIDs) with other bytes."""
    ds = pydicom.dcmread(path)
    ds.ImageComments = comment
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def key_of(path) -> str:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def indexed_sha(archive, path) -> str | None:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    with archive.sessions() as session:
        return session.scalar(select(Instance.sha256).where(Instance.sop_instance_uid == str(ds.SOPInstanceUID)))


# -- spool -----------------------------------------------------------------------------


def test_spool_write_lands_in_ready(tmp_path):
    spool = Spool(tmp_path / "spool")
    path = spool.write([b"DICM", b"-part-", b"two"])
    assert path.parent == tmp_path / "spool" / "ready"
    assert path.read_bytes() == b"DICM-part-two"
    assert spool.pending() == [path]
    assert list((tmp_path / "spool" / ".tmp").iterdir()) == []
    second = spool.write(b"single")
    assert spool.pending() == [path, second]  # oldest first
    assert spool.received_at(second) >= spool.received_at(path)
    assert spool.received_at(path).tzinfo is not None


def test_spool_discards_leftover_tmp_files_at_start(tmp_path):
    spool = Spool(tmp_path / "spool")
    kept = spool.write(b"acknowledged")
    (tmp_path / "spool" / ".tmp" / "half-written.dcm").write_bytes(b"partial")
    Spool(tmp_path / "spool")
    assert list((tmp_path / "spool" / ".tmp").iterdir()) == []
    assert kept.read_bytes() == b"acknowledged"


def test_spool_set_aside_keeps_file_and_reason(tmp_path):
    spool = Spool(tmp_path / "spool")
    path = spool.write(b"x")
    moved = spool.set_aside(path, "rejected", "because")
    assert moved.read_bytes() == b"x" and not path.exists()
    assert (moved.parent / (moved.name + ".reason")).read_text() == "because\n"
    assert spool.pending() == []


# -- committer -------------------------------------------------------------------------


def test_commit_is_byte_identical_and_empties_the_spool(make_archive, small_series):
    archive = make_archive()
    spool = spool_of(archive)
    committer = Committer(archive, spool)
    source = small_series["LIDC-IDRI-0002"][0]
    spooled = spool.write(source.read_bytes())
    assert committer.commit(spooled) == "new"
    assert spool.pending() == []
    assert archive.store.get_bytes(key_of(source)) == source.read_bytes()
    assert indexed_sha(archive, source) == hashlib.sha256(source.read_bytes()).hexdigest()


def test_replay_after_a_crash_commits_what_was_left_in_ready(make_archive, small_series):
    archive = make_archive()
    files = small_series["LIDC-IDRI-0003"]
    spool = spool_of(archive)
    for path in files:
        spool.write(path.read_bytes())  # acknowledged, then the process "died"
    (spool.tmp / "never-acknowledged.dcm").write_bytes(b"partial")

    spool = spool_of(archive)  # restart: a new spool and committer on the same folder
    committer = Committer(archive, spool, threads=2)
    committer.start()
    try:
        assert committer.replay() == len(files)
        assert committer.wait_idle(60)
    finally:
        committer.stop()
    assert spool.pending() == [] and list(spool.tmp.iterdir()) == []
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    with archive.sessions() as session:
        study = session.scalar(select(Study).where(Study.study_instance_uid == str(ds.StudyInstanceUID)))
        assert study.number_of_instances == len(files)
    for path in files:
        assert archive.store.get_bytes(key_of(path)) == path.read_bytes()
    assert committer.pending_studies() == set()


def test_replay_of_an_already_committed_file_is_identical(make_archive, small_series):
    """A crash after the index commit but before the spool file was removed."""
    archive = make_archive()
    spool = spool_of(archive)
    source = small_series["LIDC-IDRI-0002"][1]
    first = spool.write(source.read_bytes())
    leftover = spool.ready / (first.name.split("-", 1)[0] + "-leftover.dcm")
    leftover.write_bytes(first.read_bytes())
    assert Committer(archive, spool).commit(first) == "new"
    assert Committer(archive, spool_of(archive)).commit(leftover) == "identical"
    assert spool.pending() == []
    with archive.sessions() as session:
        assert len(session.scalars(select(Instance)).all()) == 1


def test_identical_resend(make_archive, small_series):
    archive = make_archive()
    spool = spool_of(archive)
    committer = Committer(archive, spool)
    source = small_series["LIDC-IDRI-0001"][0]
    assert committer.commit(spool.write(source.read_bytes())) == "new"
    assert committer.commit(spool.write(source.read_bytes())) == "identical"
    assert spool.pending() == []
    assert list((spool.root / "duplicates").iterdir()) == []
    with archive.sessions() as session:
        assert session.scalar(select(Study.number_of_instances)) == 1


def test_differing_duplicate_is_kept_aside_under_keep_first(make_archive, small_series):
    archive = make_archive(duplicate_policy="keep-first")
    spool = spool_of(archive)
    committer = Committer(archive, spool)
    source = small_series["LIDC-IDRI-0001"][1]
    original = source.read_bytes()
    committer.commit(spool.write(original))
    other = altered(source)
    resent = spool.write(other)
    assert committer.commit(resent) == "duplicate"
    kept = spool.root / "duplicates" / resent.name
    assert kept.read_bytes() == other
    reason = (spool.root / "duplicates" / (resent.name + ".reason")).read_text()
    assert key_of(source) in reason and hashlib.sha256(original).hexdigest() in reason
    assert spool.pending() == []
    assert archive.store.get_bytes(key_of(source)) == original  # the first one stays
    assert indexed_sha(archive, source) == hashlib.sha256(original).hexdigest()


def test_overwrite_policy_replaces(make_archive, small_series):
    archive = make_archive(duplicate_policy="overwrite")
    spool = spool_of(archive)
    committer = Committer(archive, spool)
    source = small_series["LIDC-IDRI-0001"][2]
    committer.commit(spool.write(source.read_bytes()))
    other = altered(source, "second version")
    assert committer.commit(spool.write(other)) == "replaced"
    assert archive.store.get_bytes(key_of(source)) == other
    assert indexed_sha(archive, source) == hashlib.sha256(other).hexdigest()
    assert list((spool.root / "duplicates").iterdir()) == []
    with archive.sessions() as session:
        assert session.scalar(select(Study.number_of_instances)) == 1
        assert session.scalar(select(Series.number_of_instances)) == 1


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
@pytest.mark.parametrize("body", [b"not a dicom file at all", b"\x00" * 128 + b"DICM" + b"\xff" * 40, b""])
def test_unparseable_file_is_rejected(make_archive, body):
    archive = make_archive()
    spool = spool_of(archive)
    path = spool.write(body)
    assert Committer(archive, spool).commit(path) == "rejected"
    assert (spool.root / "rejected" / path.name).read_bytes() == body
    assert (spool.root / "rejected" / (path.name + ".reason")).read_text().startswith("cannot commit")
    assert spool.pending() == []
    with archive.sessions() as session:
        assert session.scalars(select(Instance)).all() == []


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_file_with_an_invalid_uid_is_rejected(make_archive, small_series):
    archive = make_archive()
    spool = spool_of(archive)
    ds = pydicom.dcmread(small_series["LIDC-IDRI-0002"][0])
    ds.SOPInstanceUID = "1.2.03"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.03"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    path = spool.write(out.getvalue())
    assert Committer(archive, spool).commit(path) == "rejected"
    assert (spool.root / "rejected" / path.name).exists()


def test_owner_group_from_the_sending_ae(make_archive, small_series):
    archive = make_archive(owner_groups_by_ae={"CT1": "radiology"})
    spool = spool_of(archive)
    ds = pydicom.dcmread(small_series["LIDC-IDRI-0002"][0])
    ds.file_meta.SourceApplicationEntityTitle = "CT1"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert Committer(archive, spool).commit(spool.write(out.getvalue())) == "new"
    with archive.sessions() as session:
        assert session.scalar(select(Study.owner_group)) == "radiology"
        assert session.scalar(select(Instance.source_ae)) == "CT1"


def test_committer_threads_keep_counters_right(make_archive, small_series):
    archive = make_archive()
    spool = spool_of(archive)
    committer = Committer(archive, spool, threads=4)
    committer.start()
    try:
        for name, files in small_series.items():
            for path in files:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
                committer.submit(spool.write(path.read_bytes()), str(ds.StudyInstanceUID))
        assert committer.wait_idle(120)
    finally:
        committer.stop()
    assert spool.pending() == []
    assert list((spool.root / "rejected").iterdir()) == []
    with archive.sessions() as session:
        studies = session.scalars(select(Study)).all()
        assert len(studies) == len(small_series)
        by_study = {}
        for files in small_series.values():
            ds = pydicom.dcmread(files[0], stop_before_pixels=True)
            by_study[str(ds.StudyInstanceUID)] = len(files)
        for study in studies:
            assert study.number_of_instances == by_study[study.study_instance_uid]
            assert study.number_of_series == 1
            (series,) = session.scalars(select(Series).where(Series.study_pk == study.pk)).all()
            assert series.number_of_instances == study.number_of_instances
        assert len(session.scalars(select(Instance)).all()) == sum(by_study.values())
    for files in small_series.values():
        assert archive.store.get_bytes(key_of(files[-1])) == files[-1].read_bytes()
