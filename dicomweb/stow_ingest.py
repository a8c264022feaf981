"""STOW-RS instances onto the durable path C-STORE uses: the same checks
(:func:`archive.ingest.check_dataset`), a spool fsync before the answer, and a
:class:`archive.committer.Committer` that puts them into the object store and index.

The web process has its own spool folder (``{spool_dir}/stow``) and committer, so it
never races the node's committer over the same files; the study-stability monitor then
treats the study like any other, and analysis follows.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
# The public read_file_meta_info takes only a path; this reads the group from a buffer.
from pydicom.filereader import _read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.committer import Committer
from archive.index.models import Instance, Series, Study
from archive.ingest import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    Accepted,
    Refused,
    check_dataset,
    mark_owner_group,
)
from archive.settings import Settings
from archive.spool import Spool

log = logging.getLogger("l3net.stow")

# Recorded as the Source AE in the spooled file meta, as C-STORE records the calling AE.
STOW_SOURCE_AE = "DICOMWEB"


@dataclass(frozen=True)
class Stored:
    """An instance written durably to the spool."""

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    spool_path: Path  # gone from the spool once committed


def split_part10(data: bytes) -> tuple[pydicom.dataset.FileMetaDataset, int]:
    """The file meta of a Part 10 file and where its data set starts; ValueError if
    ``data`` is not a Part 10 file (PS3.10 §7.1)."""
    if len(data) < 132 + 12 or data[128:132] != b"DICM":
        raise ValueError("not a DICOM Part 10 file (no DICM prefix)")
    # (0002,0000) File Meta Information Group Length tells where the data set begins.
    if data[132:136] != b"\x02\x00\x00\x00" or data[136:138] != b"UL":
        raise ValueError("file meta does not start with its group length")
    group_length = struct.unpack("<I", data[140:144])[0]
    start = 144 + group_length
    if start > len(data):
        raise ValueError("file meta group length runs past the end")
    meta = _read_file_meta_info(BytesIO(data[132:start]))
    if "TransferSyntaxUID" not in meta:
        raise ValueError("file meta has no Transfer Syntax UID")
    return meta, start


class StowIngest:
    """Checks and spools uploaded instances; ``committer`` takes them from there."""

    def __init__(self, settings: Settings, spool: Spool, committer: Committer) -> None:
        self.settings = settings
        self.spool = spool
        self.committer = committer

    def store(
        self,
        data: bytes,
        db: Session,
        target_study: str | None,
        owner_group: str | None,
        visible_groups: frozenset[str] | None,
    ) -> Stored | Refused:
        """Check one Part 10 file and spool it. ``target_study``: the study the URL
        names, if any; ``visible_groups``: the groups whose studies the uploader may
        add to (None: any, for admins)."""
        try:
            meta, start = split_part10(data)
        except Exception as error:  # the uploader's bytes, not our failure
            return Refused(CANNOT_UNDERSTAND, f"Cannot parse file: {str(error)[:80]}")
        syntax = str(meta.TransferSyntaxUID)
        expected = str(meta.get("MediaStorageSOPInstanceUID", "")) or None
        body = data[start:]
        checked = check_dataset(data[:start], body, syntax, expected)
        if isinstance(checked, Refused):
            return checked
        refused = self._check_target(checked, db, target_study, visible_groups)
        if refused is not None:
            return refused
        if self.spool.free_bytes() < self.settings.min_free_disk_mb << 20:
            return Refused(OUT_OF_RESOURCES, "Out of resources: receive spool below free-disk watermark",
                           checked.sop_class_uid, checked.sop_uid)
        meta.SourceApplicationEntityTitle = STOW_SOURCE_AE
        mark_owner_group(meta, owner_group)
        head = BytesIO()
        head.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(head, meta, enforce_standard=True)
        try:
            path = self.spool.write([head.getvalue(), body])
        except OSError as error:
            log.error("event=stow.refused reason=spool_write sop=%s error=%r", checked.sop_uid, str(error))
            return Refused(OUT_OF_RESOURCES, f"Cannot write spool: {error.strerror}",
                           checked.sop_class_uid, checked.sop_uid)
        self.committer.submit(path, checked.study_uid)
        return Stored(checked.sop_class_uid, checked.sop_uid, checked.study_uid, checked.series_uid, path)

    @staticmethod
    def _check_target(
        checked: Accepted, db: Session, target_study: str | None, visible_groups: frozenset[str] | None
    ) -> Refused | None:
        """The instance must belong to the study the URL names, and must not add to
        (or, by SOP Instance UID, replace an instance of) a study of another group."""
        refuse = lambda why: Refused(PROCESSING_FAILURE, why, checked.sop_class_uid, checked.sop_uid)  # noqa: E731
        if target_study is not None and checked.study_uid != target_study:
            return Refused(0xA900, f"Study Instance UID differs from the request's: {checked.study_uid}",
                           checked.sop_class_uid, checked.sop_uid)
        if visible_groups is None:
            return None
        owners = set(db.scalars(select(Study.owner_group).where(Study.study_instance_uid == checked.study_uid)))
        owners |= set(
            db.scalars(
                select(Study.owner_group).join(Series).join(Instance)
                .where(Instance.sop_instance_uid == checked.sop_uid)
            )
        )
        if any(owner not in visible_groups for owner in owners):
            return refuse("the study or instance belongs to a group you are not in")
        return None
