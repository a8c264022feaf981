"""Shared pieces of the dicom_node tests: a running node, DICOM peers (pynetdicom and
dcmtk), and the checks that an instance landed byte-identical in object store and index."""

from __future__ import annotations

import hashlib
import subprocess
import time
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Callable, Iterator

import pydicom
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset, read_preamble
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from archive.context import Archive, open_archive
from archive.index.models import Instance
from archive.index.record import find_instance
from archive.keys import instance_key
from tests.conftest import require_tool, variant_settings

NODE_AE = "L3NET"  # the node's AE title (settings default)
SCU_AE = "TESTSCU"  # the calling AE the pynetdicom peer uses
STORESCU_AE = "STORESCU"  # the calling AE dcmtk's storescu uses
HOST = "127.0.0.1"
TIMEOUT_S = 30  # every network wait in these tests is bounded by this


def node_settings(variant: str, tmp_path: Path, request, **overrides):
    """Settings for a node under test: any free port, tiny free-disk watermark, and
    studies that never become stable unless a test says otherwise."""
    values = {
        "allowed_calling_aes": [SCU_AE, STORESCU_AE],
        "min_free_disk_mb": 1,
        "stable_after_s": 3600.0,
    }
    values.update(overrides)
    return variant_settings(variant, tmp_path, request, **values)


@contextmanager
def running_node(settings) -> Iterator["Node"]:  # noqa: F821
    """An archive and a started :class:`dicom_node.service.Node` on it; stopped after."""
    from dicom_node.service import Node

    archive = open_archive(settings)
    node = Node(archive).start()
    try:
        yield node
    finally:
        node.stop()
        archive.close()


def wait_until(predicate: Callable[[], object], timeout: float = TIMEOUT_S, interval: float = 0.1, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


# -- DICOM peers ---------------------------------------------------------------------


def scu(ae_title: str = SCU_AE, store_syntaxes: list[str] | None = None) -> AE:
    """A pynetdicom SCU proposing Verification and CT Image Storage."""
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, store_syntaxes or [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


@contextmanager
def association(port: int, calling_ae: str = SCU_AE, called_ae: str = NODE_AE, ae: AE | None = None):
    """An association from ``calling_ae`` (may be rejected: check ``is_established``)."""
    assoc = (ae or scu(calling_ae)).associate(HOST, port, ae_title=called_ae)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def store(assoc, dataset: Dataset | Path) -> Dataset:
    """One C-STORE on an established association; returns the status dataset."""
    assert assoc.is_established, "association not established"
    status = assoc.send_c_store(dataset)
    assert "Status" in status, f"no C-STORE response (association aborted?): {status}"
    return status


def push(port: int, files: list[Path], calling_ae: str = SCU_AE) -> dict[str, int]:
    """C-STORE every file on one association; returns SOP Instance UID → status."""
    statuses = {}
    with association(port, calling_ae) as assoc:
        assert assoc.is_established, "association rejected"
        for path in files:
            ds = pydicom.dcmread(path)
            statuses[str(ds.SOPInstanceUID)] = store(assoc, ds).Status
    return statuses


def storescu(
    port: int, files: list[Path], calling_ae: str = STORESCU_AE, called_ae: str = NODE_AE,
    options: tuple[str, ...] = (), check: bool = True,
):
    """Send ``files`` with dcmtk's storescu; returns the completed process."""
    command = [require_tool("storescu"), "-aet", calling_ae, "-aec", called_ae, *options, HOST, str(port), *map(str, files)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check:  # storescu stops at the first refused instance and exits non-zero
        assert done.returncode == 0, done.stdout + done.stderr
    return done


# -- what landed where -----------------------------------------------------------------


def split_part10(data: bytes) -> tuple[Dataset, bytes]:
    """A Part 10 file's meta group (as a dataset) and the dataset bytes after it."""
    fp = BytesIO(data)
    read_preamble(fp, False)
    meta = read_dataset(fp, is_implicit_VR=False, is_little_endian=True, stop_when=lambda tag, vr, length: tag.group != 2)
    return meta, data[fp.tell() :]


def sop_uids(path: Path) -> tuple[str, str, str]:
    """(study, series, SOP instance) UIDs of a file."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def assert_stored(archive: Archive, source: Path, calling_ae: str, transfer_syntax: str | None = None) -> Instance:
    """The instance of ``source`` is in the object store and the index, byte-identical:
    same dataset bytes after the file meta, sha256/size of the index row match the
    stored object, and the file meta records the calling AE. Returns the index row."""
    source_meta, source_body = split_part10(source.read_bytes())
    study, series, sop = sop_uids(source)
    key = instance_key(study, series, sop)
    stored = archive.store.get_bytes(key)
    meta, body = split_part10(stored)
    assert body == source_body, f"{source.name}: stored dataset bytes differ from the source"
    assert meta.SourceApplicationEntityTitle == calling_ae
    assert meta.MediaStorageSOPInstanceUID == sop
    expected_ts = transfer_syntax or source_meta.TransferSyntaxUID
    assert meta.TransferSyntaxUID == expected_ts
    with archive.sessions() as session:
        row = find_instance(session, sop)
    assert row is not None, f"{sop} is not in the index"
    assert row.object_key == key
    assert row.size == len(stored)
    assert row.sha256 == hashlib.sha256(stored).hexdigest()
    assert row.transfer_syntax_uid == expected_ts
    assert row.source_ae == calling_ae
    return row


def instance_count(archive: Archive) -> int:
    from sqlalchemy import func, select

    with archive.sessions() as session:
        return session.scalar(select(func.count()).select_from(Instance))


def spool_files(settings) -> list[Path]:
    """Every file left in the spool (ready, tmp, rejected, duplicates)."""
    return sorted(p for p in settings.resolved_spool_dir.rglob("*") if p.is_file())
