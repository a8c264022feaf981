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

from dicomweb.multipart import Part, parse_params

DICOM_JSON = "application/dicom+json"
PIXEL_DATA = "7FE00010"
# A compressed frame's media type and the transfer syntax it implies when the part names none.
_DEFAULT_SYNTAX = {
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpeg": "1.2.840.10008.1.2.4.70",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
}


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
    pixel = document.get(PIXEL_DATA) if isinstance(document.get(PIXEL_DATA), dict) else None
    pixel_bulk = bulk.get(pixel.get("BulkDataURI", "")) if pixel else None
    def resolve(tag: str, vr: str, uri: str) -> bytes:
        if uri not in bulk:
            raise Unusable(f"BulkDataURI {uri[:100]!r} of ({tag[:4]},{tag[4:]}) names no part of the request",
                           sop_class, sop_instance)
        return bulk[uri].data

    try:
        ds = Dataset.from_json({key: value for key, value in document.items() if key != PIXEL_DATA},
                               bulk_data_uri_handler=resolve)
    except Unusable:
        raise
    except Exception as error:  # noqa: BLE001 - pydicom raises many kinds for bad JSON
        raise Unusable(f"not a valid DICOM JSON dataset: {error}", sop_class, sop_instance) from None
    syntax = UID(ExplicitVRLittleEndian)
    if pixel is not None:
        if "InlineBinary" in pixel:
            ds.PixelData = Dataset.from_json({PIXEL_DATA: pixel}).PixelData
        elif pixel_bulk is None:
            raise Unusable("the Pixel Data BulkDataURI names no part of the request", sop_class, sop_instance)
        elif pixel_bulk.media_type in ("application/octet-stream", ""):
            syntax = UID(pixel_bulk.transfer_syntax or ExplicitVRLittleEndian)
            if syntax.is_compressed:
                raise Unusable(f"octet-stream Pixel Data in compressed syntax {syntax} is not understood",
                               sop_class, sop_instance)
            ds.PixelData = pixel_bulk.data
        elif pixel_bulk.media_type in _DEFAULT_SYNTAX:
            if int(ds.get("NumberOfFrames", 1) or 1) != 1:
                raise Unusable("compressed multi-frame Pixel Data must come as stored instances (application/dicom)",
                               sop_class, sop_instance)
            syntax = UID(pixel_bulk.transfer_syntax or _DEFAULT_SYNTAX[pixel_bulk.media_type])
            ds.PixelData = pydicom.encaps.encapsulate([pixel_bulk.data])
        else:
            raise Unusable(f"Pixel Data of type {pixel_bulk.media_type} is not understood", sop_class, sop_instance)
        ds["PixelData"].VR = "OW" if int(ds.get("BitsAllocated", 8)) > 8 and not syntax.is_compressed else "OB"
    if not sop_class or not sop_instance:
        raise Unusable("the dataset has no SOP Class UID or SOP Instance UID", sop_class, sop_instance)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return out.getvalue()
