"""STOW-RS (PS3.18 §10.5): ``POST /studies`` and ``POST /studies/{study}`` with
``multipart/related; type="application/dicom"`` (Part 10 instances), or
``type="application/dicom+json"`` (metadata with bulk-data parts, turned back into
instances by :mod:`dicomweb.stow_json`).

The body is received into an unlinked temporary file (never all in memory) up to
``L3NET_STOW_MAX_BYTES`` (413 beyond), then split into parts. Each part is checked
and spooled as C-STORE would (see :mod:`dicomweb.stow_ingest`). The answer is a DICOM
JSON dataset with ReferencedSOPSequence and FailedSOPSequence: 200 when every instance
was stored, 202 when some failed, 409 when none was stored.
"""

from __future__ import annotations

import json
import logging
import mmap
import tempfile
import time
from pathlib import Path
from typing import Iterator

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydicom.dataset import Dataset
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from archive.ingest import CANNOT_UNDERSTAND, Refused
from dicomweb import multipart, stow_json
from dicomweb.auth import Principal, require
from dicomweb.context import PREFIX, WebContext, base_url, checked_uid, web
from dicomweb.media import DICOM, DICOM_JSON, negotiate_json
from dicomweb.stow_ingest import Stored

log = logging.getLogger("l3net.stow")
router = APIRouter(prefix=PREFIX, tags=["STOW-RS"])

# A STOW answer waits this long for its instances to be committed, so that a search
# right after it finds them; past that it answers anyway (they are durable already).
COMMIT_WAIT_S = 30.0
_CHUNK = 1 << 20

_RESPONSES = {
    200: {"description": "Every instance stored", "content": {DICOM_JSON: {}}},
    202: {"description": "Some instances stored, some failed (see FailedSOPSequence)", "content": {DICOM_JSON: {}}},
    400: {"description": "Malformed multipart body or invalid study UID"},
    401: {"description": "No valid access token"},
    403: {"description": "The uploader role is required"},
    409: {"description": "No instance stored (see FailedSOPSequence)", "content": {DICOM_JSON: {}}},
    413: {"description": "Body larger than L3NET_STOW_MAX_BYTES"},
    415: {"description": 'Not multipart/related; type="application/dicom" or "application/dicom+json"'},
}


def _boundary(content_type: str | None) -> tuple[str, str]:
    """The body's boundary and its root part type (application/dicom or dicom+json)."""
    main, params = multipart.parse_params(content_type or "")
    if main != "multipart/related":
        raise HTTPException(415, f'STOW-RS takes multipart/related; type="{DICOM}" or "{DICOM_JSON}"')
    part_type = params.get("type", DICOM).lower()
    if part_type not in (DICOM, DICOM_JSON):
        raise HTTPException(415, f'parts of type {params.get("type")!r} are not supported; send type="{DICOM}" '
                                 f'or "{DICOM_JSON}" with bulk data')
    if not params.get("boundary"):
        raise HTTPException(400, "the Content-Type has no boundary parameter")
    return params["boundary"], part_type


async def _receive(request: Request, limit: int, spool_root: Path):
    """The body in an unlinked temporary file beside the spool; 413 past ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {declared} bytes exceeds the limit of {limit}")
    body = tempfile.TemporaryFile(dir=spool_root, prefix=".upload-")
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # chunked uploads declare no length: count as they come
                raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
            body.write(chunk)
        body.flush()
    except BaseException:
        body.close()
        raise
    return body, size


def _failure_item(refused: Refused) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = refused.sop_class_uid or None
    item.ReferencedSOPInstanceUID = refused.sop_instance_uid or None
    item.FailureReason = refused.status
    # PS3.18 gives the code only; the text is C-STORE's Error Comment, for people.
    item.ErrorComment = refused.reason[:64]
    return item


def _instances(parts: list[multipart.Part], part_type: str) -> Iterator[bytes | Refused]:
    """The Part 10 bytes of each instance of the request, or why one is refused."""
    if part_type == DICOM_JSON:
        for made in stow_json.datasets(parts):
            if isinstance(made, stow_json.Unusable):
                yield Refused(CANNOT_UNDERSTAND, str(made), made.sop_class_uid, made.sop_instance_uid)
            else:
                yield made
        return
    for number, part in enumerate(parts, 1):
        if part.media_type not in (DICOM, ""):
            yield Refused(CANNOT_UNDERSTAND, f"part {number} is {part.media_type}, not {DICOM}")
        else:
            yield bytes(part.content)


def _process(ctx: WebContext, who: Principal, db: Session, body, size: int, boundary: str, part_type: str,
             study: str | None, root: str) -> tuple[int, Dataset, list[Stored]]:
    """Parse, check and spool every part; the status code and response dataset."""
    if size == 0:
        raise HTTPException(400, "empty request body")
    stow = ctx.stow
    settings = ctx.archive.settings
    with mmap.mmap(body.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        try:
            parts = multipart.parse(mapped, boundary)
        except multipart.MalformedMultipart as error:
            raise HTTPException(400, f"malformed multipart body: {error}") from None
        if not parts:
            raise HTTPException(400, "the multipart body has no parts")
        owner = who.owner_group(settings.stow_owner_group)
        groups = None if who.is_admin else who.groups
        stored: list[Stored] = []
        failed: list[Refused] = []
        try:
            for instance in _instances(parts, part_type):
                outcome = instance if isinstance(instance, Refused) else stow.store(instance, db, study, owner, groups)
                (stored if isinstance(outcome, Stored) else failed).append(outcome)
        finally:
            for part in parts:  # the map cannot close while views of it remain
                part.content.release()
    _wait_committed(stored)

    response = Dataset()
    study_uids = {s.study_uid for s in stored} | ({study} if study else set())
    if len(study_uids) == 1:
        response.RetrieveURL = f"{root}/studies/{study_uids.pop()}"
    if stored:
        response.ReferencedSOPSequence = []
        for s in stored:
            item = Dataset()
            item.ReferencedSOPClassUID = s.sop_class_uid
            item.ReferencedSOPInstanceUID = s.sop_instance_uid
            item.RetrieveURL = f"{root}/studies/{s.study_uid}/series/{s.series_uid}/instances/{s.sop_instance_uid}"
            response.ReferencedSOPSequence.append(item)
    if failed:
        response.FailedSOPSequence = [_failure_item(f) for f in failed]
    ctx.metrics.stow_instances.labels("stored").inc(len(stored))
    ctx.metrics.stow_instances.labels("failed").inc(len(failed))
    for refused in failed:
        log.warning("event=stow.refused sop=%s status=0x%04X reason=%r subject=%s",
                    refused.sop_instance_uid or "-", refused.status, refused.reason, who.subject)
    log.info("event=stow.received stored=%d failed=%d bytes=%d subject=%s", len(stored), len(failed), size, who.subject)
    status = 200 if not failed else 202 if stored else 409
    return status, response, stored


def _wait_committed(stored: list[Stored]) -> None:
    """Wait (bounded) until the committer has taken these files out of the spool: it
    removes each one after its index commit (or sets it aside with a reason)."""
    deadline = time.monotonic() + COMMIT_WAIT_S
    waiting = [s.spool_path for s in stored]
    while waiting and time.monotonic() < deadline:
        waiting = [path for path in waiting if path.exists()]
        if waiting:
            time.sleep(0.005)


async def _stow(request: Request, study: str | None, ctx: WebContext, who: Principal) -> Response:
    media = negotiate_json(request.headers.get("accept"))
    if study is not None:
        checked_uid(study, "Study Instance UID")
    if ctx.stow is None:
        raise HTTPException(503, "this server accepts no uploads")
    boundary, part_type = _boundary(request.headers.get("content-type"))
    body, size = await _receive(request, ctx.archive.settings.stow_max_bytes, ctx.stow.spool.root)
    root = base_url(request)
    try:
        def work() -> tuple[int, Dataset, list[Stored]]:
            with ctx.archive.sessions() as db:
                return _process(ctx, who, db, body, size, boundary, part_type, study, root)

        status, dataset, _ = await run_in_threadpool(work)
    finally:
        body.close()
    return Response(json.dumps(dataset.to_json_dict()), status_code=status, media_type=media)


@router.post("/studies", summary="Store instances", response_class=Response, responses=_RESPONSES)
async def store_instances(request: Request, ctx: WebContext = Depends(web),
                          who: Principal = Depends(require("uploader"))) -> Response:
    return await _stow(request, None, ctx, who)


@router.post("/studies/{study}", summary="Store instances of one study", response_class=Response,
             responses=_RESPONSES)
async def store_study_instances(study: str, request: Request, ctx: WebContext = Depends(web),
                                who: Principal = Depends(require("uploader"))) -> Response:
    return await _stow(request, study, ctx, who)
