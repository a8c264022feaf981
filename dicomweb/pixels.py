"""WADO-RS frames, rendered images and thumbnails (PS3.18 §10.4.1.1.3-5)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from dicomweb import multipart
from dicomweb.auth import Principal, require
from dicomweb.context import PREFIX, WebContext, session, web
from dicomweb.frames import FrameNotFound
from dicomweb.lookup import Target, targets
from dicomweb.media import negotiate_frames, negotiate_rendered
from dicomweb.rendering import BadRendering, encode, parse_quality, parse_viewport, parse_window, to_8bit

router = APIRouter(prefix=PREFIX, tags=["WADO-RS"])

_FRAMES = {
    200: {"description": "multipart/related, one part per frame", "content": {"multipart/related": {}}},
    400: {"description": "Invalid UID or frame list"},
    404: {"description": "No such instance or frame"},
    406: {"description": "Accept names no media type or transfer syntax we can send"},
}
_RENDERED = {
    200: {"description": "JPEG or PNG", "content": {"image/jpeg": {}, "image/png": {}}},
    400: {"description": "Invalid UID, window, viewport or quality"},
    404: {"description": "No such instance or frame"},
    406: {"description": "Accept names neither image/jpeg nor image/png"},
}


def parse_frame_list(text: str) -> list[int]:
    """``1,3,5`` → [1, 3, 5]; 400 unless every entry is a positive integer."""
    try:
        numbers = [int(item) for item in text.split(",")]
    except ValueError:
        raise HTTPException(400, f"frame list {text[:40]!r} must be comma-separated numbers") from None
    if not numbers or min(numbers) < 1 or len(numbers) > 10_000:
        raise HTTPException(400, "frame numbers start at 1")
    return numbers


def frames_response(ctx: WebContext, target: Target, numbers: list[int], accept: str | None) -> Response:
    """The frames as multipart/related, as stored or decoded as negotiated."""
    key = target.instance.object_key
    layout = ctx.frames.layout(key)
    if layout.frame_count == 0:
        raise HTTPException(404, "instance has no pixel data")
    choice = negotiate_frames(accept, layout.transfer_syntax if layout.whole is None else "1.2.840.10008.1.2.1")
    try:
        if choice.as_stored:
            pieces = [ctx.frames.stored_frame(key, number) for number in numbers]
        else:
            pieces = [(ctx.frames.native_frame(key, number), "1.2.840.10008.1.2.1") for number in numbers]
    except FrameNotFound as error:
        raise HTTPException(404, f"no such frame: {error}") from None
    boundary = multipart.new_boundary()
    body = b"".join(
        multipart.stream([({"Content-Type": choice.part_content_type(syntax)}, (data,)) for data, syntax in pieces],
                         boundary)
    )
    # Same-syntax frames: name it on the whole response too, as PS3.18 §8.7.3.5.2 allows.
    syntaxes = {syntax for _, syntax in pieces}
    return Response(body, media_type=multipart.content_type(choice.part_type, boundary,
                                                            syntaxes.pop() if len(syntaxes) == 1 else None))


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", summary="Frames of an instance",
            response_class=Response, responses=_FRAMES)
def retrieve_frames(study: str, series: str, instance: str, frames: str, accept: str | None = Header(None),
                    db: Session = Depends(session), ctx: WebContext = Depends(web),
                    who: Principal = Depends(require("viewer"))) -> Response:
    numbers = parse_frame_list(frames)
    return frames_response(ctx, targets(db, who, study, series, instance)[0], numbers, accept)


def _render(ctx: WebContext, target: Target, number: int, media: str, window: str | None, viewport: str | None,
            quality: str | None) -> bytes:
    """Frame ``number`` of ``target`` as ``media`` bytes (400 for bad parameters, 404
    for a frame that cannot be rendered)."""
    try:
        voi, size, level = parse_window(window), parse_viewport(viewport), parse_quality(quality)
    except BadRendering as error:
        raise HTTPException(400, str(error)) from None
    key = target.instance.object_key
    layout = ctx.frames.layout(key)
    try:
        stored = ctx.frames.pixels(key, number)
    except FrameNotFound as error:
        raise HTTPException(404, f"cannot render: {error}") from None
    return encode(to_8bit(stored, layout.header, voi), media, size, level)


def _rendered(ctx: WebContext, target: Target, number: int, accept: str | None, window: str | None,
              viewport: str | None, quality: str | None) -> Response:
    media = negotiate_rendered(accept)
    return Response(_render(ctx, target, number, media, window, viewport, quality), media_type=media)


def _rendered_collection(ctx: WebContext, found: list[Target], accept: str | None, window: str | None,
                         viewport: str | None, quality: str | None) -> Response:
    """A study or series rendered (PS3.18 §10.4.1.1.3): multipart/related, one part per
    instance with pixels (its first frame), in instance order. Instances without pixels
    (SR, PDF) or with 1-bit pixels (SEG) have no rendering and are left out; none at all
    is 404."""
    media = negotiate_rendered(accept, several=True)
    images = iter([target for target in found if target.instance.rows])

    def next_rendering() -> bytes | None:
        """The next image that renders; a 1-bit SEG does not (404) and is left out."""
        for target in images:
            try:
                return _render(ctx, target, 1, media, window, viewport, quality)
            except HTTPException as error:
                if error.status_code != 404:
                    raise
        return None

    first = next_rendering()  # bad parameters (400) and nothing to render (404) fail before streaming
    if first is None:
        raise HTTPException(404, "nothing to render: no instance with renderable pixel data")

    boundary = multipart.new_boundary()

    def parts():
        rendering = first
        while rendering is not None:
            yield {"Content-Type": media}, iter((rendering,))
            rendering = next_rendering()

    return StreamingResponse(multipart.stream(parts(), boundary), media_type=multipart.content_type(media, boundary))


_Window = Query(None, description="center,width[,function]: linear, linear-exact or sigmoid; default from the dataset")
_Viewport = Query(None, description="width,height to fit the image in")
_Quality = Query(None, description="JPEG quality, 1-100")


@router.get("/studies/{study}/rendered", summary="Rendered study (each image's first frame)", response_class=Response,
            responses=_RENDERED)
def rendered_study(study: str, accept: str | None = Header(None), window: str | None = _Window,
                   viewport: str | None = _Viewport, quality: str | None = _Quality, db: Session = Depends(session),
                   ctx: WebContext = Depends(web), who: Principal = Depends(require("viewer"))) -> Response:
    return _rendered_collection(ctx, targets(db, who, study), accept, window, viewport, quality)


@router.get("/studies/{study}/series/{series}/rendered", summary="Rendered series (each image's first frame)",
            response_class=Response, responses=_RENDERED)
def rendered_series(study: str, series: str, accept: str | None = Header(None), window: str | None = _Window,
                    viewport: str | None = _Viewport, quality: str | None = _Quality, db: Session = Depends(session),
                    ctx: WebContext = Depends(web), who: Principal = Depends(require("viewer"))) -> Response:
    return _rendered_collection(ctx, targets(db, who, study, series), accept, window, viewport, quality)


@router.get("/studies/{study}/series/{series}/instances/{instance}/rendered", summary="Rendered instance (frame 1)",
            response_class=Response, responses=_RENDERED)
def rendered_instance(study: str, series: str, instance: str, accept: str | None = Header(None),
                      window: str | None = _Window, viewport: str | None = _Viewport, quality: str | None = _Quality,
                      db: Session = Depends(session), ctx: WebContext = Depends(web),
                      who: Principal = Depends(require("viewer"))) -> Response:
    return _rendered(ctx, targets(db, who, study, series, instance)[0], 1, accept, window, viewport, quality)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            summary="Rendered frame", response_class=Response, responses=_RENDERED)
def rendered_frame(study: str, series: str, instance: str, frames: str, accept: str | None = Header(None),
                   window: str | None = _Window, viewport: str | None = _Viewport, quality: str | None = _Quality,
                   db: Session = Depends(session), ctx: WebContext = Depends(web),
                   who: Principal = Depends(require("viewer"))) -> Response:
    numbers = parse_frame_list(frames)
    if len(numbers) != 1:
        raise HTTPException(400, "a rendered frame request names one frame")
    return _rendered(ctx, targets(db, who, study, series, instance)[0], numbers[0], accept, window, viewport, quality)


def _thumbnail(ctx: WebContext, found: list[Target], accept: str | None, viewport: str | None) -> Response:
    # The middle instance represents a series or study: for a CT, a slice through the
    # middle of the scanned range rather than its first, often empty, edge.
    with_pixels = [t for t in found if t.instance.rows] or found
    return _rendered(ctx, with_pixels[len(with_pixels) // 2], 1, accept, None, viewport or "128,128", None)


@router.get("/studies/{study}/thumbnail", summary="Thumbnail of a study", response_class=Response,
            responses=_RENDERED)
def study_thumbnail(study: str, accept: str | None = Header(None), viewport: str | None = _Viewport,
                    db: Session = Depends(session), ctx: WebContext = Depends(web),
                    who: Principal = Depends(require("viewer"))) -> Response:
    return _thumbnail(ctx, targets(db, who, study), accept, viewport)


@router.get("/studies/{study}/series/{series}/thumbnail", summary="Thumbnail of a series", response_class=Response,
            responses=_RENDERED)
def series_thumbnail(study: str, series: str, accept: str | None = Header(None), viewport: str | None = _Viewport,
                     db: Session = Depends(session), ctx: WebContext = Depends(web),
                     who: Principal = Depends(require("viewer"))) -> Response:
    return _thumbnail(ctx, targets(db, who, study, series), accept, viewport)


@router.get("/studies/{study}/series/{series}/instances/{instance}/thumbnail", summary="Thumbnail of an instance",
            response_class=Response, responses=_RENDERED)
def instance_thumbnail(study: str, series: str, instance: str, accept: str | None = Header(None),
                       viewport: str | None = _Viewport, db: Session = Depends(session),
                       ctx: WebContext = Depends(web), who: Principal = Depends(require("viewer"))) -> Response:
    return _thumbnail(ctx, targets(db, who, study, series, instance), accept, viewport)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
            summary="Thumbnail of a frame", response_class=Response, responses=_RENDERED)
def frame_thumbnail(study: str, series: str, instance: str, frames: str, accept: str | None = Header(None),
                    viewport: str | None = _Viewport, db: Session = Depends(session),
                    ctx: WebContext = Depends(web), who: Principal = Depends(require("viewer"))) -> Response:
    numbers = parse_frame_list(frames)
    if len(numbers) != 1:
        raise HTTPException(400, "a thumbnail names one frame")
    target = targets(db, who, study, series, instance)[0]
    return _rendered(ctx, target, numbers[0], accept, None, viewport or "128,128", None)
