"""What every receiver (DIMSE C-STORE, DICOMweb STOW-RS) checks before it acknowledges
an instance, and how it marks the group that owns what it spools.

Both receivers refuse the same things with the same status codes (PS3.4 Annex B.2.3):

``0xC000``  the bytes are not a data set in the transfer syntax they claim;
``0xA900``  the data set lacks valid Study/Series/SOP Instance UIDs, or its SOP
            Instance UID differs from the one the request named;
``0xC122``  (STOW-RS only: C-STORE negotiates it away) a transfer syntax we cannot read.

An accepted instance then goes to a :class:`archive.spool.Spool` and a
:class:`archive.committer.Committer`, the one durable path into the archive.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from io import BytesIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import data_element_generator
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import VR

from archive.uids import is_valid_uid

# The transfer syntaxes we accept (PS3.5 Annex A): uncompressed, deflated, and the
# compressed ones our decoders (pylibjpeg, GDCM) can read for analysis.
ACCEPTED_TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
]

# Statuses shared by C-STORE and STOW-RS FailureReason (PS3.4 B.2.3, PS3.18 10.5.3).
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
PROCESSING_FAILURE = 0x0110

_VALID_VRS = frozenset(vr.value for vr in VR if len(vr.value) == 2)


def encoding_problem(body: bytes, transfer_syntax: str) -> str | None:
    """Why ``body`` is not a data set encoded in ``transfer_syntax`` (PS3.5 §7), or None.

    pydicom reads leniently: garbage comes out as a few odd elements (it even switches
    to implicit VR when explicit was negotiated), which would then pass as a data set
    merely lacking its UIDs (0xA900) instead of one we cannot understand (0xC000). So
    walk the top-level elements in the negotiated encoding: each needs a real VR
    (explicit VR) and a value that fits in the bytes received, with nothing left over.
    """
    syntax = UID(transfer_syntax)
    if syntax == DeflatedExplicitVRLittleEndian:
        try:
            body = zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error as error:
            return f"cannot inflate: {error}"
    fp = BytesIO(body)
    end = 0
    try:
        for element in data_element_generator(fp, syntax.is_implicit_VR, syntax.is_little_endian, defer_size=1024):
            tag = f"({element.tag >> 16:04X},{element.tag & 0xFFFF:04X})"
            if not syntax.is_implicit_VR and element.VR not in _VALID_VRS:
                return f"no valid VR at {tag} for {syntax.name}"
            end = fp.tell()
            short = (
                isinstance(element, RawDataElement)
                and element.length != 0xFFFFFFFF
                and element.value is not None
                and len(element.value) != element.length
            )
            if short or end > len(body):
                return f"value of {tag} runs past the end"
    except Exception as error:  # the generator's own complaints about broken structure
        return f"broken structure: {error}"
    if end != len(body):
        return f"{len(body) - end} bytes after the last element"
    return None


@dataclass(frozen=True)
class Refused:
    """An instance a receiver must not acknowledge: the status and why."""

    status: int
    reason: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""


@dataclass(frozen=True)
class Accepted:
    """A checked instance: its header (no pixel data) and its identifying UIDs."""

    header: Dataset
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str


def check_dataset(meta: bytes, body: bytes, transfer_syntax: str, expected_sop_uid: str | None) -> Accepted | Refused:
    """The C-STORE acceptance rules for one data set: ``meta`` is the Part 10 preamble and
    file meta, ``body`` the data set bytes in ``transfer_syntax``; ``expected_sop_uid`` is
    the SOP Instance UID the request named (C-STORE's Affected SOP Instance UID, the
    file meta's Media Storage SOP Instance UID for STOW-RS)."""
    if transfer_syntax not in ACCEPTED_TRANSFER_SYNTAXES:
        return Refused(TRANSFER_SYNTAX_NOT_SUPPORTED, f"Transfer syntax {transfer_syntax} is not supported")
    problem = encoding_problem(body, transfer_syntax)
    if problem is not None:
        return Refused(CANNOT_UNDERSTAND, f"Cannot parse dataset: {problem}")
    try:
        ds = pydicom.dcmread(BytesIO(meta + body), stop_before_pixels=True)
        uids = {key: str(ds.get(key, "")) for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")}
        sop_class = str(ds.get("SOPClassUID", ""))
    except Exception as error:  # any parse failure is the sender's data, not our crash
        return Refused(CANNOT_UNDERSTAND, f"Cannot parse dataset: {str(error)[:40]}")
    bad = [key for key, value in uids.items() if not is_valid_uid(value)]
    if bad or (expected_sop_uid is not None and uids["SOPInstanceUID"] != expected_sop_uid):
        why = f"missing or invalid {', '.join(bad)}" if bad else "SOP Instance UID differs from the request"
        return Refused(DATASET_DOES_NOT_MATCH_SOP_CLASS, why, sop_class, uids["SOPInstanceUID"])
    return Accepted(ds, uids["StudyInstanceUID"], uids["SeriesInstanceUID"], uids["SOPInstanceUID"], sop_class)


# -- owning group ---------------------------------------------------------------------
# A STOW-RS upload belongs to the uploader's group, which must survive a crash between
# the spool write and the commit just as the bytes do. So it travels inside the spooled
# file itself, in the file meta's Private Information (PS3.10 §7.1), under our creator UID.
OWNER_GROUP_CREATOR_UID = "1.2.826.0.1.3680043.8.498.36921751390327428421358196637254830911"


def mark_owner_group(meta: FileMetaDataset, group: str | None) -> None:
    """Record ``group`` as the owner in ``meta`` (or remove any owner mark, for None)."""
    for keyword in ("PrivateInformationCreatorUID", "PrivateInformation"):
        if keyword in meta:
            delattr(meta, keyword)
    if group:
        meta.PrivateInformationCreatorUID = OWNER_GROUP_CREATOR_UID
        raw = group.encode()
        meta.PrivateInformation = raw + b"\x00" * (len(raw) % 2)  # OB values have even length


def owner_group_of(meta: FileMetaDataset, owner_groups_by_ae: dict[str, str]) -> str | None:
    """The owning group of a spooled instance: the one its receiver marked, else the one
    configured for the AE that sent it."""
    if meta.get("PrivateInformationCreatorUID") == OWNER_GROUP_CREATOR_UID and meta.get("PrivateInformation"):
        return bytes(meta.PrivateInformation).rstrip(b"\x00").decode(errors="replace") or None
    return owner_groups_by_ae.get(str(meta.get("SourceApplicationEntityTitle", "")).strip())
