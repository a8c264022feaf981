"""Study stability: a study idle for ``stable_after_s`` gets exactly one job (or becomes
``not_analysable`` with the reason); a late instance re-opens it for one more job.

Most tests call :func:`settle_idle_studies` with an explicit ``now`` on an index filled
by the committer, so they are deterministic; the last ones go through a running Node."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from archive.committer import Committer
from archive.index.models import Job, Series, Study, utcnow
from archive.queue.message import JobMessage
from archive.spool import Spool
from dicom_node.stability import BusyStudies, run_monitor, settle_idle_studies
from tests.dicom_node.helpers import node_settings, push, sop_uids, wait_until

STABLE_AFTER_S = 60.0


@pytest.fixture
def make_archive(tmp_path, request, open_archives):
    """``make_archive(variant, **overrides)``: an archive (no node) with small series
    eligible (10 slices suffice) and a 60 s stability delay."""

    def _make(variant: str, **overrides):
        values = {"stable_after_s": STABLE_AFTER_S, "min_series_slices": 10, **overrides}
        return open_archives(node_settings(variant, tmp_path, request, **values))

    return _make


def ingest(archive, files: list[Path]) -> None:
    """Commit ``files`` into the index the way the node does (spool, then committer)."""
    spool = Spool(archive.settings.resolved_spool_dir)
    committer = Committer(archive, spool, threads=1)
    for path in files:
        assert committer.commit(spool.write(path.read_bytes())) == "new"


def ingest_all(archive, small_series: dict[str, list[Path]]) -> dict[str, int]:
    """Commit the three small studies; returns study UID → generation 1 for each."""
    for files in small_series.values():
        ingest(archive, files)
    return {study_uid(files): 1 for files in small_series.values()}


def idle() -> object:
    """A ``now`` at which everything received so far is idle long enough."""
    return utcnow() + timedelta(seconds=STABLE_AFTER_S + 1)


def study_uid(files: list[Path]) -> str:
    return sop_uids(files[0])[0]


def jobs(archive) -> list[Job]:
    with archive.sessions() as session:
        return list(session.scalars(select(Job).order_by(Job.created_at)))


def study(archive, uid: str) -> Study:
    with archive.sessions() as session:
        return session.scalar(select(Study).where(Study.study_instance_uid == uid))


def delivered(archive, request) -> list[str]:
    """Job ids waiting in the queue: sent rows of the database queue, or the SQS messages."""
    if archive.settings.queue == "db":
        return [job.id for job in jobs(archive) if job.state == "queued" and job.sent_at is not None]
    cloud = request.getfixturevalue("cloud_resources")
    ids = []
    for _ in range(100):  # bounded: each round takes up to 10 messages, hidden for 60 s
        batch = cloud["sqs"].receive_message(
            QueueUrl=cloud["queue_url"], MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return ids
        ids += [JobMessage.from_json(message["Body"]).job_id for message in batch]
    raise AssertionError("queue never drained")


def assert_one_job_per_study(archive, request, expected: dict[str, int]) -> list[Job]:
    """Exactly one job per (study, generation) in ``expected`` (study → generation),
    each queued, and each delivered exactly once."""
    rows = jobs(archive)
    assert sorted((job.study_instance_uid, job.generation) for job in rows) == sorted(expected.items())
    assert all(job.state == "queued" and job.sent_at is not None for job in rows)
    assert sorted(delivered(archive, request)) == sorted(job.id for job in rows)
    return rows


def test_each_stable_study_queues_exactly_one_job(archive_variant, make_archive, small_series, request):
    archive = make_archive(archive_variant)
    expected = ingest_all(archive, small_series)
    # Not idle yet: nothing happens.
    assert settle_idle_studies(archive, now=utcnow()) == []
    assert {study(archive, uid).state for uid in expected} == {"receiving"}

    created = settle_idle_studies(archive, now=idle())
    assert len(created) == 3
    assert settle_idle_studies(archive, now=idle() + timedelta(hours=1)) == []  # and never again
    rows = assert_one_job_per_study(archive, request, expected)
    assert sorted(created) == sorted(job.id for job in rows)
    for job in rows:
        row = study(archive, job.study_instance_uid)
        assert row.state == "queued" and row.state_reason is None and row.stable_at is not None
        assert job.series_instance_uid == row.selected_series_uid
        assert job.engine == archive.settings.engine


def test_late_instance_reopens_study_for_one_new_job(archive_variant, make_archive, small_series, request):
    archive = make_archive(archive_variant)
    files = small_series["LIDC-IDRI-0001"]
    uid = study_uid(files)
    ingest(archive, files[:-1])
    assert len(settle_idle_studies(archive, now=idle())) == 1
    assert study(archive, uid).generation == 1

    ingest(archive, files[-1:])  # arrives after the study was stable
    reopened = study(archive, uid)
    assert (reopened.state, reopened.generation, reopened.stable_at) == ("receiving", 2, None)
    assert reopened.number_of_instances == len(files)
    assert settle_idle_studies(archive, now=utcnow()) == []  # idle clock restarted
    assert len(settle_idle_studies(archive, now=idle())) == 1
    assert settle_idle_studies(archive, now=idle()) == []
    rows = jobs(archive)
    assert [(job.generation, job.state) for job in rows] == [(1, "queued"), (2, "queued")]
    assert len(delivered(archive, request)) == 2
    assert study(archive, uid).state == "queued"


def test_too_short_study_is_not_analysable(archive_variant, make_archive, small_series, request):
    archive = make_archive(archive_variant, min_series_slices=20)
    files = small_series["LIDC-IDRI-0001"]
    ingest(archive, files)
    assert settle_idle_studies(archive, now=idle()) == []
    row = study(archive, study_uid(files))
    assert row.state == "not_analysable"
    assert row.state_reason == f"no axial CT series with at least 20 slices (largest has {len(files)})"
    assert row.selected_series_uid is None
    assert jobs(archive) == [] and delivered(archive, request) == []


def _recoded(files: list[Path], folder: Path, **changes) -> list[Path]:
    """Copies (under tmp_path) with some attributes changed and fresh UIDs."""
    folder.mkdir()
    study_uid, series_uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    copies = []
    for path in files:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
        ds.save_as(folder / path.name, enforce_file_format=True)
        copies.append(folder / path.name)
    return copies


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"Modality": "MR"}, "no CT images in the study (modalities: MR)"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, "no CT images in the study (modalities: CT)"),
        ({"ImageOrientationPatient": [1, 0, 0, 0, 0, -1]}, "no axial CT series in the study"),
    ],
    ids=["not-ct", "localizer", "coronal"],
)
def test_study_without_eligible_series_is_not_analysable(changes, reason, make_archive, small_series, tmp_path):
    archive = make_archive("embedded")
    files = _recoded(small_series["LIDC-IDRI-0001"], tmp_path / "recoded", **changes)
    ingest(archive, files)
    assert settle_idle_studies(archive, now=idle()) == []
    row = study(archive, study_uid(files))
    assert (row.state, row.state_reason) == ("not_analysable", reason)
    assert jobs(archive) == []


def test_racing_passes_create_one_job_per_study(archive_variant, make_archive, small_series, request):
    archive = make_archive(archive_variant)
    expected = ingest_all(archive, small_series)
    now = idle()
    start = threading.Barrier(4)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def monitor() -> None:
        start.wait(timeout=10)
        try:
            results.append(settle_idle_studies(archive, now=now))
        except BaseException as error:  # a loser must lose quietly, not crash
            errors.append(error)

    threads = [threading.Thread(target=monitor) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sorted(job for result in results for job in result) == sorted(job.id for job in jobs(archive))
    assert_one_job_per_study(archive, request, expected)


def test_busy_study_is_not_settled(make_archive, small_series, request):
    archive = make_archive("embedded")
    busy_files, quiet_files = small_series["LIDC-IDRI-0001"], small_series["LIDC-IDRI-0002"]
    ingest(archive, busy_files[:4])
    ingest(archive, quiet_files)
    busy = study_uid(busy_files)
    # The rest of the busy study is acknowledged (in the spool) but not committed yet.
    spool = Spool(archive.settings.resolved_spool_dir)
    committer = Committer(archive, spool, threads=1)
    for path in busy_files[4:]:
        spool.write(path.read_bytes())
    assert committer.replay() == len(busy_files) - 4
    assert committer.pending_studies() == {busy}

    created = settle_idle_studies(archive, committer.pending_studies(), now=idle())
    assert [job.study_instance_uid for job in jobs(archive)] == [study_uid(quiet_files)]
    assert len(created) == 1
    assert study(archive, busy).state == "receiving"

    committer.start()
    try:
        assert committer.wait_idle(timeout=30)
    finally:
        committer.stop()
    assert committer.pending_studies() == set()
    assert len(settle_idle_studies(archive, committer.pending_studies(), now=idle())) == 1
    row = study(archive, busy)
    assert (row.state, row.number_of_instances) == ("queued", len(busy_files))
    assert_one_job_per_study(archive, request, {busy: 1, study_uid(quiet_files): 1})


def test_monitor_survives_errors_and_stops(make_archive, small_series, caplog):
    archive = make_archive("embedded", stable_after_s=0.2)
    ingest(archive, small_series["LIDC-IDRI-0003"])
    calls = []

    def busy() -> set[str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("index briefly unreachable")
        return set()

    stop = threading.Event()
    thread = threading.Thread(target=run_monitor, args=(archive, busy, stop, 0.05), daemon=True)
    thread.start()
    try:
        wait_until(lambda: jobs(archive), timeout=15, what="a job from the monitor")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert "event=stability.error" in caplog.text
    assert len(jobs(archive)) == 1


def test_busy_studies_is_the_union_of_its_sources():
    busy = BusyStudies(lambda: {"1.2.3"})
    assert busy() == {"1.2.3"}
    busy.add(lambda: {"1.2.4", "1.2.3"})
    busy.add(set)
    assert busy() == {"1.2.3", "1.2.4"}
    assert BusyStudies()() == set()


@pytest.mark.slow
def test_node_monitor_waits_for_stow_instances_of_the_process(make_archive, small_series, request):
    """``l3net serve``: the node's monitor also asks the web part's STOW spool. A study
    whose STOW instances are acknowledged but not yet committed stays ``receiving``,
    however long it has been idle in the index; once they are committed it gets one
    job, over the whole series."""
    from dicom_node.service import Node

    archive = make_archive("embedded", stable_after_s=0.3, min_series_slices=10)
    files = small_series["LIDC-IDRI-0001"]
    uid = study_uid(files)
    ingest(archive, files[:4])  # committed earlier (over C-STORE, say): idle at once
    # The rest came over STOW-RS into the web part's spool; its committer has not run.
    stow_spool = Spool(archive.settings.resolved_spool_dir / "stow")
    stow = Committer(archive, stow_spool, threads=1)
    for path in files[4:]:
        stow_spool.write(path.read_bytes())
    assert stow.replay() == len(files) - 4
    busy = BusyStudies()
    busy.add(stow.pending_studies)  # what start_web does
    node = Node(archive, busy=busy).start()
    try:
        assert busy() == {uid} and node.busy is busy
        # Many monitor passes (every 0.2 s) over a study idle for longer than 0.3 s.
        threading.Event().wait(2.0)
        assert study(archive, uid).state == "receiving" and jobs(archive) == []
        stow.start()
        try:
            assert stow.wait_idle(timeout=30)
        finally:
            stow.stop()
        wait_until(lambda: study(archive, uid).state == "queued", timeout=30, what="the study queued")
    finally:
        node.stop()
    row = study(archive, uid)
    assert (row.number_of_instances, row.generation) == (len(files), 1)
    assert_one_job_per_study(archive, request, {uid: 1})


# -- end to end, through a running node ----------------------------------------------------


@pytest.mark.slow
def test_node_queues_one_job_per_stable_study(archive_variant, start_node, small_series, request):
    node = start_node(archive_variant, stable_after_s=1.0, min_series_slices=10)
    archive = node.archive
    held_back = small_series["LIDC-IDRI-0003"][-1]
    first = [p for files in small_series.values() for p in files if p != held_back]
    assert set(push(node.port, first).values()) == {0}
    expected = {study_uid(files): 1 for files in small_series.values()}

    def all_queued() -> bool:
        # The study row turns "queued" with its job's row; with an external queue the
        # message is sent (and sent_at set) just after that commit: wait for both.
        return all(study(archive, uid) is not None and study(archive, uid).state == "queued" for uid in expected) and all(
            job.sent_at is not None for job in jobs(archive)
        )

    wait_until(all_queued, timeout=30, what="every study queued and its job sent")
    assert_one_job_per_study(archive, request, expected)
    with archive.sessions() as session:
        selected = {s.series_instance_uid: s.number_of_instances for s in session.scalars(select(Series))}
    assert all(selected[job.series_instance_uid] >= 10 for job in jobs(archive))

    # A late instance re-opens its study; once stable again it gets one more job.
    assert set(push(node.port, [held_back]).values()) == {0}
    late = study_uid(small_series["LIDC-IDRI-0003"])
    wait_until(lambda: study(archive, late).generation == 2 and study(archive, late).state == "queued"
               and all(job.sent_at is not None for job in jobs(archive)),
               timeout=30, what="the re-opened study queued and its job sent again")
    rows = jobs(archive)
    assert sorted((j.study_instance_uid, j.generation) for j in rows) == sorted([*expected.items(), (late, 2)])
    if archive_variant == "cloud":
        assert len(delivered(archive, request)) == 1  # the first three were drained above
    else:
        assert len(delivered(archive, request)) == 4


# -- the outbox (external queues) ---------------------------------------------------------


@pytest.mark.cloud
def test_pass_in_the_send_window_does_not_send_twice(make_archive, small_series, request, monkeypatch):
    """Another monitor (node and web both run one) whose pass falls between this pass's
    commit of the job row and its send must not send that job's message as well."""
    archive = make_archive("cloud")
    ingest(archive, small_series["LIDC-IDRI-0003"])
    send = archive.queue.send
    other_passes: list[list[str]] = []

    def send_after_another_pass(message) -> None:
        if not other_passes:
            other_passes.append([])
            other_passes[0] = settle_idle_studies(archive)  # now: the moment of the send
        send(message)

    monkeypatch.setattr(archive.queue, "send", send_after_another_pass)
    assert len(settle_idle_studies(archive, now=idle())) == 1
    assert other_passes == [[]]
    assert_one_job_per_study(archive, request, {study_uid(small_series["LIDC-IDRI-0003"]): 1})


@pytest.mark.cloud
def test_outbox_sends_a_job_whose_send_was_lost(make_archive, small_series, request, monkeypatch):
    """A crash between committing the job row and sending its message: a later pass sends it."""
    from dicom_node import stability

    archive = make_archive("cloud")
    ingest(archive, small_series["LIDC-IDRI-0003"])

    def crash(message) -> None:
        raise ConnectionError("process died before the send")

    monkeypatch.setattr(archive.queue, "send", crash)
    with pytest.raises(ConnectionError):
        settle_idle_studies(archive, now=idle())
    (job,) = jobs(archive)
    assert job.sent_at is None and delivered(archive, request) == []
    monkeypatch.undo()
    # Not yet: the row is young, its own pass may still be sending it.
    assert settle_idle_studies(archive, now=idle()) == []
    assert stability.flush_outbox(archive) == 0 and delivered(archive, request) == []
    later = utcnow() + timedelta(seconds=stability.OUTBOX_GRACE_S + 1)
    assert stability.flush_outbox(archive, now=later) == 1
    assert_one_job_per_study(archive, request, {job.study_instance_uid: 1})
    assert stability.flush_outbox(archive, now=later) == 0


def test_instance_committed_late_with_an_earlier_receive_time_keeps_the_study_open(
    archive_variant, make_archive, small_series, request, monkeypatch
):
    """An instance acknowledged before the others but committed only after a pass read
    the study leaves ``last_received_at`` as it was; the instance count still changes,
    so that pass must lose its conditional UPDATE, and the next one queue the whole study."""
    import dicom_node.stability as stability

    archive = make_archive(archive_variant)
    files = small_series["LIDC-IDRI-0001"]
    uid = study_uid(files)
    spool = Spool(archive.settings.resolved_spool_dir)
    committer = Committer(archive, spool, threads=1)
    late = spool.write(files[0].read_bytes())  # received first: the earliest timestamp
    ingest(archive, files[1:])
    settle = stability._settle
    commits = []

    def commit_late_first(archive_, study_, now):
        if not commits:
            commits.append(committer.commit(late))  # lands after the pass read the study
        return settle(archive_, study_, now)

    monkeypatch.setattr(stability, "_settle", commit_late_first)
    assert settle_idle_studies(archive, now=idle()) == []
    assert commits == ["new"]
    row = study(archive, uid)
    assert (row.state, row.number_of_instances) == ("receiving", len(files))
    assert jobs(archive) == []
    [job_id] = settle_idle_studies(archive, now=idle())
    assert [job.id for job in jobs(archive)] == [job_id]
    assert study(archive, uid).state == "queued"
