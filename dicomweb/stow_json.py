"""STOW-RS with metadata and bulk data (PS3.18 §10.5.1.2.2): a
``multipart/related; type="application/dicom+json"`` body whose JSON parts hold DICOM
JSON datasets (PS3.18 Annex F) and whose other parts hold the bulk data they refer to
by ``BulkDataURI``, each identified by its ``Content-Location``.

Each dataset is turned back into a Part 10 instance here and then stored exactly like
one sent as ``application/dicom`` (same checks, same spool). The transfer syntax is
the one named by the Pixel Data part's ``transfer-syntax`` parameter; uncompressed
pixels (``application/octet-stream``) and one compressed frame per Pixel Data part
(``image/jp2``, ``image/jpeg``, ``image/jls``, ``image/dicom-rle``) are understood.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Iterator

import pydicom.encaps
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

from dicomweb.media import DEFAULT_SYNTAX, DICOM_JSON, OCTETS
from dicomweb.multipart import Part, parse_params

PIXEL_DATA = "7FE00010"


class Unusable(ValueError):
    """A dataset of the request that cannot become an instance; the message says why.
    ``sop_class_uid`` / ``sop_instance_uid``: what it claimed to be, if readable."""

    def __init__(self, reason: str, sop_class_uid: str = "", sop_instance_uid: str = "") -> None:
        super().__init__(reason)
        self.sop_class_uid, self.sop_instance_uid = sop_class_uid, sop_instance_uid


@dataclass(frozen=True)
class _Bulk:
    data: bytes
    media_type: str
    transfer_syntax: str | None


def _bulk_parts(parts: list[Part]) -> dict[str, _Bulk]:
    """The bulk-data parts by Content-Location."""
    found = {}
    for part in parts:
        location = part.headers.get("content-location")
        if part.media_type != DICOM_JSON and location:
            media, params = parse_params(part.headers.get("content-type", ""))
            found[location] = _Bulk(bytes(part.content), media, params.get("transfer-syntax"))
    return found


def datasets(parts: list[Part]) -> Iterator[bytes | Unusable]:
    """Each dataset of the JSON parts as Part 10 bytes, or the reason it cannot be one."""
    bulk = _bulk_parts(parts)
    for number, part in enumerate(parts, 1):
        if part.media_type != DICOM_JSON:
            continue
        try:
            documents = json.loads(bytes(part.content))
        except (ValueError, RecursionError) as error:  # RecursionError: nesting too deep
            yield Unusable(f"part {number} is not JSON: {str(error)[:200]}")
            continue
        for document in documents if isinstance(documents, list) else [documents]:
            try:
                yield _part10(document, bulk)
            except Unusable as error:
                yield error


def _claimed(document: dict, tag: str) -> str:
    values = document.get(tag, {}).get("Value") if isinstance(document.get(tag), dict) else None
    return str(values[0]) if isinstance(values, list) and values else ""


def _part10(document: object, bulk: dict[str, _Bulk]) -> bytes:
    if not isinstance(document, dict):
        raise Unusable("a DICOM JSON dataset must be an object")
    sop_class, sop_instance = _claimed(document, "00080016"), _claimed(document, "00080018")
    if not sop_class or not sop_instance:
        raise Unusable("the dataset has no SOP Class UID or SOP Instance UID", sop_class, sop_instance)
    pixel = document.get(PIXEL_DATA)
    # Pixel Data by reference is placed here, with its transfer syntax; inline, pydicom reads it.
    by_reference = isinstance(pixel, dict) and "BulkDataURI" in pixel

    def resolve(tag: str, vr: str, uri: str) -> bytes:
        if uri not in bulk:
            raise Unusable(f"BulkDataURI {uri[:100]!r} of ({tag[:4]},{tag[4:]}) names no part of the request",
                           sop_class, sop_instance)
        return bulk[uri].data

    try:
        ds = Dataset.from_json({key: value for key, value in document.items() if not (by_reference and key == PIXEL_DATA)},
                               bulk_data_uri_handler=resolve)
        syntax = _place_pixel_data(ds, bulk.get(pixel["BulkDataURI"])) if by_reference else UID(ExplicitVRLittleEndian)
    except Unusable as error:
        raise Unusable(str(error), sop_class, sop_instance) from None
    except Exception as error:  # noqa: BLE001 - pydicom raises many kinds for bad JSON
        raise Unusable(f"not a valid DICOM JSON dataset: {error}", sop_class, sop_instance) from None
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return out.getvalue()


def _place_pixel_data(ds: Dataset, part: _Bulk | None) -> UID:
    """Put the Pixel Data part into ``ds``; returns the transfer syntax it is in."""
    if part is None:
        raise Unusable("the Pixel Data BulkDataURI names no part of the request")
    if part.media_type in (OCTETS, ""):
        syntax = UID(part.transfer_syntax or ExplicitVRLittleEndian)
        if syntax.is_compressed:
            raise Unusable(f"octet-stream Pixel Data in compressed syntax {syntax} is not understood")
        ds.PixelData = part.data
        ds["PixelData"].VR = "OW" if int(ds.get("BitsAllocated", 8)) > 8 else "OB"
        return syntax
    if not part.media_type.startswith("image/") or part.media_type not in DEFAULT_SYNTAX:
        raise Unusable(f"Pixel Data of type {part.media_type} is not understood")
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise Unusable("compressed multi-frame Pixel Data must come as stored instances (application/dicom)")
    ds.PixelData = pydicom.encaps.encapsulate([part.data])
    ds["PixelData"].VR = "OB"
    return UID(part.transfer_syntax or DEFAULT_SYNTAX[part.media_type])
