"""C-STORE (Storage, PS3.4 Annex B): pynetdicom and dcmtk storescu push real CT series;
every instance lands byte-identical in the object store and the index, on each variant."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless, generate_uid
from sqlalchemy import select

from archive.index.models import Job, Series, Study
from archive.keys import instance_key
from tests.dicom_node.helpers import (
    SCU_AE,
    STORESCU_AE,
    assert_stored,
    association,
    instance_count,
    push,
    scu,
    sop_uids,
    spool_files,
    store,
    storescu,
)


def _all(small_series: dict[str, list[Path]]) -> list[Path]:
    return [path for files in small_series.values() for path in files]


def _check_landed(node, files: list[Path], calling_ae: str, request, variant: str) -> None:
    """After the committer is idle: every file stored and indexed, byte-identical, the
    spool empty, and on the cloud variant the objects really in the moto bucket."""
    assert node.committer.wait_idle(timeout=60)
    archive = node.archive
    rows = [assert_stored(archive, path, calling_ae) for path in files]
    assert instance_count(archive) == len(files)
    assert spool_files(archive.settings) == []
    with archive.sessions() as session:
        studies = {s.study_instance_uid: s for s in session.scalars(select(Study))}
        series = session.scalars(select(Series)).all()
        assert session.scalars(select(Job)).all() == []  # nothing is stable yet
    expected_studies = {sop_uids(path)[0] for path in files}
    assert set(studies) == expected_studies
    assert sum(s.number_of_instances for s in studies.values()) == len(files)
    assert sum(s.number_of_instances for s in series) == len(files)
    assert all(s.state == "receiving" and s.generation == 1 for s in studies.values())
    if variant == "cloud":
        cloud = request.getfixturevalue("cloud_resources")
        for path, row in zip(files, rows):
            obj = cloud["s3"].get_object(Bucket=cloud["bucket"], Key=f"archive/{instance_key(*sop_uids(path))}")
            assert hashlib.sha256(obj["Body"].read()).hexdigest() == row.sha256
        attributes = cloud["sqs"].get_queue_attributes(QueueUrl=cloud["queue_url"], AttributeNames=["ApproximateNumberOfMessages"])
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_pynetdicom_push_lands_byte_identical(archive_variant, start_node, small_series, request):
    files = _all(small_series)
    node = start_node(archive_variant)
    statuses = push(node.port, files, SCU_AE)
    assert list(statuses.values()) == [0x0000] * len(files)
    assert set(statuses) == {sop_uids(path)[2] for path in files}
    _check_landed(node, files, SCU_AE, request, archive_variant)


def test_storescu_push_lands_byte_identical(archive_variant, start_node, small_series, request):
    files = _all(small_series)
    node = start_node(archive_variant)
    storescu(node.port, files, STORESCU_AE)
    _check_landed(node, files, STORESCU_AE, request, archive_variant)


@pytest.mark.slow
def test_storescu_full_lidc_series(start_node, lidc_0001, request):
    node = start_node("embedded")
    storescu(node.port, lidc_0001, STORESCU_AE)
    _check_landed(node, lidc_0001, STORESCU_AE, request, "embedded")
    with node.archive.sessions() as session:
        (series,) = session.scalars(select(Series)).all()
    assert series.number_of_instances == 133
    assert series.modality == "CT"


def _with_uids(sources: list[Path], folder: Path) -> list[Path]:
    """Copies (under tmp_path) of the abdomen series with its blanked UIDs filled in:
    the files ship with empty SOP Class/Instance, Study and Series UIDs, which no SCU
    can send. Only UI elements change; the JPEG 2000 pixel data is written as it is."""
    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    copies = []
    for source in sources:
        ds = pydicom.dcmread(source)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.save_as(folder / source.name, enforce_file_format=True)
        copies.append(folder / source.name)
    return copies


def test_storescu_jpeg2000_is_kept_compressed(start_node, shared_data, tmp_path):
    sources = sorted((shared_data / "ct" / "abdomen-j2k").iterdir())
    assert len(sources) == 20
    files = _with_uids(sources, tmp_path / "j2k")
    assert pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID == JPEG2000Lossless
    node = start_node("embedded")
    # -xv: propose JPEG 2000 lossless (besides uncompressed), as a PACS sending
    # compressed studies does; the node must accept it and keep it compressed.
    storescu(node.port, files, STORESCU_AE, options=("-xv",))
    assert node.committer.wait_idle(timeout=60)
    rows = [assert_stored(node.archive, path, STORESCU_AE, transfer_syntax=JPEG2000Lossless) for path in files]
    assert {row.transfer_syntax_uid for row in rows} == {"1.2.840.10008.1.2.4.90"}
    # Still decodable as it is stored (what the analysis will do).
    stored = pydicom.dcmread(node.archive.store.open(rows[0].object_key))
    original = pydicom.dcmread(files[0])
    assert stored.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert (stored.pixel_array == original.pixel_array).all()


def test_resent_instance_is_stored_once(start_node, small_series):
    files = small_series["LIDC-IDRI-0003"][:3]
    node = start_node("embedded")
    assert set(push(node.port, files).values()) == {0x0000}
    assert node.committer.wait_idle(timeout=60)
    first = [assert_stored(node.archive, path, SCU_AE) for path in files]
    with association(node.port) as assoc:
        assert store(assoc, pydicom.dcmread(files[0])).Status == 0x0000
    assert node.committer.wait_idle(timeout=60)
    assert instance_count(node.archive) == len(files)
    again = assert_stored(node.archive, files[0], SCU_AE)
    assert (again.pk, again.sha256, again.received_at) == (first[0].pk, first[0].sha256, first[0].received_at)
    assert spool_files(node.archive.settings) == []


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian])
def test_other_transfer_syntaxes_are_stored_as_sent(syntax, start_node, send_raw, small_series, tmp_path):
    """An instance in Implicit VR or Deflated Explicit VR is stored in that syntax,
    its dataset bytes exactly as they came over the wire."""
    source = pydicom.dcmread(small_series["LIDC-IDRI-0001"][0])
    source.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "recoded.dcm"
    source.save_as(path, implicit_vr=syntax.is_implicit_VR, little_endian=True, enforce_file_format=True)
    node = start_node()
    with association(node.port, ae=scu(SCU_AE, [syntax])) as assoc:
        assert store(assoc, path).Status == 0x0000
    assert node.committer.wait_idle(timeout=30)
    row = assert_stored(node.archive, path, SCU_AE, transfer_syntax=syntax)
    stored = pydicom.dcmread(node.archive.store.open(row.object_key))
    assert stored.PatientID == source.PatientID
    assert (stored.pixel_array == source.pixel_array).all()
