"""What a sender gets for data the node cannot take, and that the node keeps serving:
0xC000 for an unparseable dataset, 0xA900 for one without valid identifying UIDs,
0xA700 when the spool is below its free-disk watermark (PS3.4 B.2.3)."""

from __future__ import annotations

import random
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)
from pynetdicom.sop_class import CTImageStorage

from archive.ingest import encoding_problem
from tests.dicom_node.helpers import (
    SCU_AE,
    STORESCU_AE,
    association,
    instance_count,
    scu,
    split_part10,
    spool_files,
    store,
    storescu,
)

OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
RANDOM = random.Random(20240101)


def _part10(folder: Path, body: bytes, transfer_syntax=ExplicitVRLittleEndian, sop_uid: str | None = None) -> Path:
    """A file with a valid file meta group and ``body`` as its dataset bytes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    path = folder / f"{meta.MediaStorageSOPInstanceUID}.dcm"
    with open(path, "wb") as out:
        out.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(out, meta, enforce_standard=True)
        out.write(body)
    return path


def _assert_refused(status, expected: int) -> None:
    """``expected`` exactly; for 0xC000 any status of the Cxxx "cannot understand" family.
    Either way with an ErrorComment saying why."""
    code = status.Status
    if expected == CANNOT_UNDERSTAND:
        assert 0xC000 <= code <= 0xCFFF, hex(code)
    else:
        assert code == expected, hex(code)
    assert str(status.get("ErrorComment", "")).strip(), "a refusal must say why (ErrorComment)"


GARBAGE = {
    "random": RANDOM.randbytes(4096),
    "text": b"this is not a DICOM data set, just some text " * 40,
    "all-ones": b"\xff" * 2048,
    "truncated-element": bytes.fromhex("08001800") + b"UI" + (200).to_bytes(2, "little") + b"1.2.3",
}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_garbage_body_is_refused_and_node_keeps_serving(kind, start_node, send_raw, small_series, tmp_path):
    node = start_node()
    good = small_series["LIDC-IDRI-0003"][0]
    with association(node.port) as assoc:
        status = store(assoc, _part10(tmp_path, GARBAGE[kind]))
        _assert_refused(status, CANNOT_UNDERSTAND)
        assert str(status.ErrorComment).startswith("Cannot parse dataset")
        # The same association goes on working.
        assert store(assoc, good).Status == 0x0000
    assert node.committer.wait_idle(timeout=30)
    assert instance_count(node.archive) == 1
    assert spool_files(node.archive.settings) == []


def test_garbage_in_implicit_vr_is_refused(start_node, send_raw, tmp_path):
    node = start_node()
    with association(node.port, ae=scu(SCU_AE, [ImplicitVRLittleEndian])) as assoc:
        status = store(assoc, _part10(tmp_path, RANDOM.randbytes(4096), ImplicitVRLittleEndian))
        _assert_refused(status, CANNOT_UNDERSTAND)
    assert spool_files(node.archive.settings) == []


@pytest.mark.parametrize("missing", ["StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_uid_gets_a900(missing, start_node, small_series):
    node = start_node()
    ds = pydicom.dcmread(small_series["LIDC-IDRI-0002"][0])
    del ds[missing]
    with association(node.port) as assoc:
        status = store(assoc, ds)
        _assert_refused(status, DATASET_DOES_NOT_MATCH_SOP_CLASS)
        assert missing in str(status.ErrorComment)
    # A new association is served as usual.
    with association(node.port) as assoc:
        assert store(assoc, small_series["LIDC-IDRI-0002"][1]).Status == 0x0000
    assert node.committer.wait_idle(timeout=30)
    assert instance_count(node.archive) == 1


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_invalid_uid_gets_a900(start_node, small_series):
    node = start_node()
    ds = pydicom.dcmread(small_series["LIDC-IDRI-0002"][0])
    ds.StudyInstanceUID = "1.2.3.04/../etc"  # pydicom warns (setting and encoding), sends it anyway
    with association(node.port) as assoc:
        _assert_refused(store(assoc, ds), DATASET_DOES_NOT_MATCH_SOP_CLASS)
    assert spool_files(node.archive.settings) == []


def test_sop_instance_uid_differing_from_request_gets_a900(start_node, send_raw, small_series, tmp_path):
    node = start_node()
    source = small_series["LIDC-IDRI-0002"][0]
    _, body = split_part10(source.read_bytes())
    # The command (from the file meta) names another SOP Instance UID than the dataset.
    with association(node.port) as assoc:
        status = store(assoc, _part10(tmp_path, body, sop_uid=generate_uid()))
        _assert_refused(status, DATASET_DOES_NOT_MATCH_SOP_CLASS)
        assert "differs" in str(status.ErrorComment)
    assert spool_files(node.archive.settings) == []


def test_blank_uids_of_the_shipped_jpeg2000_files_get_a900(start_node, send_raw, shared_data):
    """abdomen-j2k ships with empty UIDs in the dataset (only the file meta has them)."""
    node = start_node()
    source = sorted((shared_data / "ct" / "abdomen-j2k").iterdir())[0]
    with association(node.port, ae=scu(SCU_AE, [JPEG2000Lossless])) as assoc:
        status = store(assoc, source)
        _assert_refused(status, DATASET_DOES_NOT_MATCH_SOP_CLASS)
    assert spool_files(node.archive.settings) == []


def test_disk_below_watermark_gets_a700_and_spools_nothing(start_node, small_series):
    node = start_node(min_free_disk_mb=1 << 40)  # a million terabytes: never free
    files = small_series["LIDC-IDRI-0003"][:2]
    with association(node.port) as assoc:
        for path in files:
            status = store(assoc, path)
            _assert_refused(status, OUT_OF_RESOURCES)
            assert "free-disk" in str(status.ErrorComment)
    done = storescu(node.port, files, STORESCU_AE, options=("-v",), check=False)
    assert done.returncode != 0
    assert "Received Store Response (Refused: OutOfResources)" in done.stdout + done.stderr
    assert node.committer.wait_idle(timeout=30)
    assert spool_files(node.archive.settings) == []
    assert instance_count(node.archive) == 0


def test_encoding_check_passes_real_data_and_catches_garbage(lidc_0001, shared_data):
    """The structural check in front of pydicom's lenient reader: real CT in explicit VR,
    implicit VR and JPEG 2000 passes, every kind of garbage is caught with a reason."""
    for path in [lidc_0001[0], lidc_0001[-1], *sorted((shared_data / "ct" / "abdomen-j2k").iterdir())[:2]]:
        meta, body = split_part10(path.read_bytes())
        assert encoding_problem(body, meta.TransferSyntaxUID) is None, path
    ds = pydicom.dcmread(lidc_0001[0])
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = BytesIO()
    ds.save_as(implicit, enforce_file_format=True)
    _, implicit_body = split_part10(implicit.getvalue())
    assert encoding_problem(implicit_body, ImplicitVRLittleEndian) is None
    # The same bytes read as explicit VR are not a data set.
    assert "VR" in encoding_problem(implicit_body, ExplicitVRLittleEndian)
    _, body = split_part10(lidc_0001[0].read_bytes())
    assert "runs past the end" in encoding_problem(body[:-10], ExplicitVRLittleEndian)
    assert "after the last element" in encoding_problem(body + b"\x00\x00\x00", ExplicitVRLittleEndian)
    assert "inflate" in encoding_problem(b"not deflated at all", DeflatedExplicitVRLittleEndian)
    for kind, garbage in GARBAGE.items():
        assert encoding_problem(garbage, ExplicitVRLittleEndian) is not None, kind
