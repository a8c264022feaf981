"""WADO-RS (PS3.18 §10.4): instances, metadata and bulk data.

Instances go out as ``multipart/related; type="application/dicom"``, streamed from the
object store: as stored when the client accepts that (``transfer-syntax=*`` or the
stored syntax), else transcoded to Explicit VR Little Endian, the default.
Metadata comes from the headers stored at ingest (no object read).
"""

from __future__ import annotations

import io
from typing import Iterator

import pydicom
import pydicom.pixels
from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from sqlalchemy.orm import Session

from archive.index.record import BULK_THRESHOLD
from archive.objectstore import ObjectStore
from dicomweb import multipart
from dicomweb.auth import Principal, require
from dicomweb.context import PREFIX, WebContext, base_url, session, web
from dicomweb.lookup import Target, targets
from dicomweb.media import DICOM, OCTETS, accepted, negotiate_instances, negotiate_json, not_acceptable
from dicomweb.metadata import instance_metadata
from dicomweb.pixels import frames_response

router = APIRouter(prefix=PREFIX, tags=["WADO-RS"])

_CHUNK = 1 << 20
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
_RETRIEVE = {
    200: {"description": 'multipart/related; type="application/dicom"', "content": {"multipart/related": {}}},
    400: {"description": "Invalid UID"},
    404: {"description": "No such study, series or instance (or not yours)"},
    406: {"description": "Accept names no media type or transfer syntax we can send"},
}
_METADATA = {**_RETRIEVE, 200: {"description": "DICOM JSON", "content": {"application/dicom+json": {}}}}


def _chunks(store: ObjectStore, key: str) -> Iterator[bytes]:
    with store.open(key) as stream:
        while chunk := stream.read(_CHUNK):
            yield chunk


def transcode(data: bytes, syntax: str) -> tuple[bytes, str]:
    """A Part 10 file re-encoded in ``syntax`` (one of :data:`TRANSCODABLE`), and the
    syntax it is actually in: pixels are decompressed first, then compressed losslessly.
    1-bit pixels (a BINARY SEG) have no lossless encoder here but JPEG 2000 through
    highdicom at write time, so such an instance asked for in another compressed syntax
    is sent in Explicit VR Little Endian, and its part's Content-Type says so."""
    ds = pydicom.dcmread(io.BytesIO(data))
    if ds.file_meta.TransferSyntaxUID == syntax:
        return data, syntax
    one_bit = int(ds.get("BitsAllocated", 0)) == 1
    if ds.file_meta.TransferSyntaxUID.is_compressed and one_bit:
        # pydicom's decompress() would store one byte per pixel; native 1-bit pixel
        # data is bit-packed, frames back to back.
        ds.PixelData = pydicom.pixels.pack_bits(ds.pixel_array)  # padded to even length
        ds["PixelData"].VR = "OB"
    elif ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress(generate_instance_uid=False)  # also sets the transfer syntax; same instance, same UID
    target = UID(syntax)
    if target.is_compressed and "PixelData" in ds:
        if one_bit:
            target = UID(ExplicitVRLittleEndian)
        else:
            # Lossless: RLE, JPEG-LS or JPEG 2000 (sets the syntax). The same instance, so
            # the same SOP Instance UID (pydicom would make a new one by default).
            ds.compress(target, generate_instance_uid=False)
    ds.file_meta.TransferSyntaxUID = target
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)  # deflates if Deflated
    return out.getvalue(), str(target)


def _retrieve(ctx: WebContext, found: list[Target], accept: str | None) -> StreamingResponse:
    stored = {target.instance.transfer_syntax_uid for target in found}
    wanted = negotiate_instances(accept, stored)
    store = ctx.archive.store
    boundary = multipart.new_boundary()

    def parts() -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
        for target in found:
            syntax = target.instance.transfer_syntax_uid
            if wanted is None or wanted == syntax:
                yield {"Content-Type": f"{DICOM}; transfer-syntax={syntax}"}, _chunks(store, target.instance.object_key)
            else:
                data, sent = transcode(store.get_bytes(target.instance.object_key), wanted)
                yield {"Content-Type": f"{DICOM}; transfer-syntax={sent}"}, iter((data,))

    # A sync generator: Starlette runs each step in its thread pool, off the event loop.
    return StreamingResponse(
        multipart.stream(parts(), boundary),
        media_type=multipart.content_type(DICOM, boundary, wanted),
    )


@router.get("/studies/{study}", summary="Retrieve a study", response_class=Response, responses=_RETRIEVE)
def retrieve_study(study: str, accept: str | None = Header(None), db: Session = Depends(session),
                   ctx: WebContext = Depends(web), who: Principal = Depends(require("viewer"))) -> Response:
    return _retrieve(ctx, targets(db, who, study), accept)


@router.get("/studies/{study}/series/{series}", summary="Retrieve a series", response_class=Response,
            responses=_RETRIEVE)
def retrieve_series(study: str, series: str, accept: str | None = Header(None), db: Session = Depends(session),
                    ctx: WebContext = Depends(web), who: Principal = Depends(require("viewer"))) -> Response:
    return _retrieve(ctx, targets(db, who, study, series), accept)


@router.get("/studies/{study}/series/{series}/instances/{instance}", summary="Retrieve an instance",
            response_class=Response, responses=_RETRIEVE)
def retrieve_instance(study: str, series: str, instance: str, accept: str | None = Header(None),
                      db: Session = Depends(session), ctx: WebContext = Depends(web),
                      who: Principal = Depends(require("viewer"))) -> Response:
    return _retrieve(ctx, targets(db, who, study, series, instance), accept)


def _metadata(request: Request, found: list[Target], accept: str | None) -> Response:
    media = negotiate_json(accept)
    root = base_url(request)
    body = "[" + ", ".join(instance_metadata(t.instance, t.url(root)) for t in found) + "]"
    return Response(body, media_type=media)


@router.get("/studies/{study}/metadata", summary="Metadata of a study", response_class=Response,
            responses=_METADATA)
def study_metadata(study: str, request: Request, accept: str | None = Header(None), db: Session = Depends(session),
                   who: Principal = Depends(require("viewer"))) -> Response:
    return _metadata(request, targets(db, who, study, with_header=True), accept)


@router.get("/studies/{study}/series/{series}/metadata", summary="Metadata of a series", response_class=Response,
            responses=_METADATA)
def series_metadata(study: str, series: str, request: Request, accept: str | None = Header(None),
                    db: Session = Depends(session), who: Principal = Depends(require("viewer"))) -> Response:
    return _metadata(request, targets(db, who, study, series, with_header=True), accept)


@router.get("/studies/{study}/series/{series}/instances/{instance}/metadata", summary="Metadata of an instance",
            response_class=Response, responses=_METADATA)
def instance_metadata_route(study: str, series: str, instance: str, request: Request,
                            accept: str | None = Header(None), db: Session = Depends(session),
                            who: Principal = Depends(require("viewer"))) -> Response:
    return _metadata(request, targets(db, who, study, series, instance, with_header=True), accept)


def _find_element(ds: Dataset, tag: int) -> DataElement | None:
    """The element with ``tag``: at the top level, else the first one nested in a sequence
    (the stored BulkDataURIs name the tag only)."""
    if tag in ds:
        return ds[tag]
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                found = _find_element(item, tag)
                if found is not None:
                    return found
    return None


@router.get("/studies/{study}/series/{series}/instances/{instance}/bulk/{tag}", summary="Bulk data of an instance",
            response_class=Response, responses=_RETRIEVE)
def bulk_data(study: str, series: str, instance: str, tag: str, accept: str | None = Header(None),
              db: Session = Depends(session), ctx: WebContext = Depends(web),
              who: Principal = Depends(require("viewer"))) -> Response:
    try:
        number = int(tag, 16)
        if len(tag) != 8:
            raise ValueError
    except ValueError:
        raise HTTPException(400, f"{tag[:20]!r} is not a tag (8 hex digits)") from None
    target = targets(db, who, study, series, instance)[0]
    if number == 0x7FE00010:
        layout = ctx.frames.layout(target.instance.object_key)
        return frames_response(ctx, target, list(range(1, layout.frame_count + 1)), accept)
    if not any(m.type in ("*/*", "multipart/*", OCTETS) or (m.type == "multipart/related" and m.part_type in (None, OCTETS))
               for m in accepted(accept)):
        raise not_acceptable(accept, f'multipart/related; type="{OCTETS}"')
    ds = pydicom.dcmread(io.BytesIO(ctx.archive.store.get_bytes(target.instance.object_key)))
    element = _find_element(ds, number)
    value = None if element is None or element.VR == "SQ" else (
        element.value if isinstance(element.value, bytes) else ds_value_bytes(element))
    # Only what the metadata offers as bulk data: binary values, or values too long to inline.
    if value is None or (element.VR not in _BINARY_VRS and len(value) <= BULK_THRESHOLD):
        raise HTTPException(404, f"instance has no bulk data element {tag}")
    boundary = multipart.new_boundary()
    body = b"".join(multipart.stream([({"Content-Type": OCTETS}, iter((value,)))], boundary))
    return Response(body, media_type=multipart.content_type(OCTETS, boundary))


def ds_value_bytes(element: DataElement) -> bytes:
    """A non-bytes value (a long text, numbers) as it would be encoded little endian."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_data_element(out, element)
    raw = out.getvalue()
    header = 12 if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UC", "UR", "UT", "UN") else 8
    return raw[header:]
