"""The durable receive spool (archive.spool) and the committer that moves spooled files
into the object store and the index (archive.committer), on every archive variant."""

from __future__ import annotations

import hashlib
import logging
import threading
from io import BytesIO

import pydicom
import pytest
from sqlalchemy import select

from archive.committer import Committer
from archive.context import open_archive
from archive.index.models import Instance, Series, Study
from archive.keys import instance_key
from archive.spool import Spool
from tests.archive.threads import run_together
from tests.conftest import variant_settings


@pytest.fixture
def make_archive(archive_variant, tmp_path, request, open_archives):
    """``make_archive(**overrides)``: an archive of this test's variant."""
    return lambda **overrides: open_archives(variant_settings(archive_variant, tmp_path, request, **overrides))


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


def test_differing_duplicate_is_kept_aside_under_keep_first(make_archive, small_series, caplog):
    caplog.set_level(logging.WARNING, logger="l3net.committer")
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
    sop = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
    (line,) = [r.getMessage() for r in caplog.records if "instance.duplicate_differs" in r.getMessage()]
    assert f"sop={sop}" in line and "policy=keep-first" in line


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


def unknown_vr(source: bytes) -> bytes:
    """A real file whose SOP Instance UID element has a VR that is no VR."""
    at = source.index(b"\x08\x00\x18\x00UI")
    return source[: at + 4] + b"Q\x01" + source[at + 6 :]


UNPARSEABLE = {
    "text": lambda source: b"not a dicom file at all",
    "preamble only": lambda source: b"\x00" * 128 + b"DICM" + b"\xff" * 40,
    "empty": lambda source: b"",
    "unknown VR": unknown_vr,  # NotImplementedError in pydicom: it stayed in ready/ for ever
}


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_unparseable_files_are_rejected(make_archive, small_series, caplog):
    caplog.set_level(logging.ERROR, logger="l3net.committer")
    source = small_series["LIDC-IDRI-0002"][0].read_bytes()
    archive = make_archive()
    spool = spool_of(archive)
    committer = Committer(archive, spool)
    for kind, make_body in UNPARSEABLE.items():
        body = make_body(source)
        path = spool.write(body)
        assert committer.commit(path) == "rejected", kind
        assert (spool.root / "rejected" / path.name).read_bytes() == body
        assert (spool.root / "rejected" / (path.name + ".reason")).read_text().startswith("cannot commit")
        assert any(f"event=commit.rejected file={path.name}" in r.getMessage() for r in caplog.records), kind
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


def run_committer(committer: Committer, spooled: list) -> None:
    """Submit spool files to running committer threads and wait until all are done."""
    committer.start()
    try:
        for path in spooled:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
            committer.submit(path, str(ds.StudyInstanceUID))
        assert committer.wait_idle(120)
    finally:
        committer.stop()


def test_committer_threads_keep_one_study_counters_right(make_archive, small_series):
    """Every small series, re-labelled into one study, committed by six threads at once."""
    archive = make_archive()
    spool = spool_of(archive)
    first = pydicom.dcmread(small_series["LIDC-IDRI-0001"][0], stop_before_pixels=True)
    bodies: dict[str, list[bytes]] = {}
    for files in small_series.values():
        for path in files:
            ds = pydicom.dcmread(path)
            ds.StudyInstanceUID, ds.PatientID = first.StudyInstanceUID, first.PatientID
            out = BytesIO()
            ds.save_as(out, enforce_file_format=True)
            bodies.setdefault(str(ds.SeriesInstanceUID), []).append(out.getvalue())
    everything = [body for series in bodies.values() for body in series]
    committer = Committer(archive, spool, threads=6)
    run_committer(committer, [spool.write(body) for body in everything])
    assert spool.pending() == [] and committer.pending_studies() == set()
    assert list((spool.root / "rejected").iterdir()) == []
    with archive.sessions() as session:
        (study,) = session.scalars(select(Study)).all()
        assert study.study_instance_uid == str(first.StudyInstanceUID)
        assert (study.number_of_instances, study.number_of_series) == (len(everything), len(bodies))
        assert (study.generation, study.modalities_in_study) == (1, "CT")
        counts = {s.series_instance_uid: s.number_of_instances for s in session.scalars(select(Series))}
        assert counts == {uid: len(series) for uid, series in bodies.items()}
        assert len(session.scalars(select(Instance)).all()) == len(everything)
    for series in bodies.values():
        ds = pydicom.dcmread(BytesIO(series[-1]), stop_before_pixels=True)
        assert archive.store.get_bytes(instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)) == series[-1]


def test_concurrent_identical_resends_count_once(make_archive, small_series):
    archive = make_archive()
    spool = spool_of(archive)
    source = small_series["LIDC-IDRI-0003"][0]
    copies = [spool.write(source.read_bytes()) for _ in range(6)]
    run_committer(Committer(archive, spool, threads=6), copies)
    assert spool.pending() == []
    assert list((spool.root / "duplicates").iterdir()) == []
    with archive.sessions() as session:
        assert len(session.scalars(select(Instance)).all()) == 1
        assert (session.scalar(select(Study.number_of_instances)), session.scalar(select(Series.number_of_instances))) == (1, 1)
    assert archive.store.get_bytes(key_of(source)) == source.read_bytes()


def test_concurrent_differing_copies_keep_the_first_committed(make_archive, small_series, monkeypatch):
    """Two differing copies of one instance committed at once under keep-first: one is
    stored and indexed, the other set aside. Both used to pass the duplicate check, and
    the later put overwrote the first copy, which the index then called ``replaced``."""
    archive = make_archive(duplicate_policy="keep-first")
    spool = spool_of(archive)
    source = small_series["LIDC-IDRI-0001"][3]
    bodies = [altered(source, "copy one"), altered(source, "copy two")]
    slow_sha = hashlib.sha256(bodies[1]).hexdigest()
    both_put = threading.Barrier(2)
    real_put = archive.store.put_file

    def put_file(key, path, sha256=None):
        try:  # unserialised, both copies meet here; copy two is then put last
            both_put.wait(0.5)
        except threading.BrokenBarrierError:
            pass
        if sha256 == slow_sha:
            threading.Event().wait(0.2)
        return real_put(key, path, sha256=sha256)

    monkeypatch.setattr(archive.store, "put_file", put_file)
    committer = Committer(archive, spool)
    paths = [spool.write(body) for body in bodies]
    outcomes: dict[int, str] = {}

    def commit(n):
        outcomes[n] = committer.commit(paths[n])

    run_together(commit, [(0,), (1,)])
    assert sorted(outcomes.values()) == ["duplicate", "new"]
    kept = next(n for n, outcome in outcomes.items() if outcome == "new")
    aside = 1 - kept
    assert archive.store.get_bytes(key_of(source)) == bodies[kept]
    assert indexed_sha(archive, source) == hashlib.sha256(bodies[kept]).hexdigest()
    assert (spool.root / "duplicates" / paths[aside].name).read_bytes() == bodies[aside]


def _commit_in_a_process(settings, spool_root, body: bytes, slow: bool, barrier, results) -> None:
    """One process (a node or a web part) committing its own copy from its own spool."""
    import time

    archive = open_archive(settings, run_migrations=False)
    real_put = archive.store.put_file

    def put_file(key, path, sha256=None):
        try:  # without a lock across processes both copies meet here
            barrier.wait(1.0)
        except threading.BrokenBarrierError:
            pass
        if slow:
            time.sleep(0.3)  # copy two is put last: it would overwrite copy one
        return real_put(key, path, sha256=sha256)

    archive.store.put_file = put_file
    spool = Spool(spool_root)
    try:
        results.put((slow, Committer(archive, spool).commit(spool.write(body))))
    finally:
        archive.close()


def test_differing_copies_from_two_processes_keep_the_first(make_archive, small_series, tmp_path):
    """Node and web as separate processes, each committing a differing copy of one
    instance at the same moment under keep-first: one copy is stored and indexed, the
    other set aside in its process's duplicates/, and the stored object is the indexed
    one. A lock held only within a process let both pass the duplicate check."""
    import multiprocessing

    archive = make_archive(duplicate_policy="keep-first")  # migrated here, once
    source = small_series["LIDC-IDRI-0001"][5]
    bodies = {False: altered(source, "copy one"), True: altered(source, "copy two")}
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    processes = [
        spawn.Process(target=_commit_in_a_process,
                      args=(archive.settings, tmp_path / f"spool-{slow}", bodies[slow], slow, barrier, results))
        for slow in (False, True)
    ]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(30)
    assert [process.exitcode for process in processes] == [0, 0]
    assert sorted(outcomes.values()) == ["duplicate", "new"]
    kept = next(slow for slow, outcome in outcomes.items() if outcome == "new")
    assert archive.store.get_bytes(key_of(source)) == bodies[kept]
    assert indexed_sha(archive, source) == hashlib.sha256(bodies[kept]).hexdigest()
    [aside] = list((tmp_path / f"spool-{not kept}" / "duplicates").glob("*[!n]"))  # not the .reason
    assert aside.read_bytes() == bodies[not kept]
