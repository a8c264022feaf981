"""What the routers share, built once per app by :func:`dicomweb.app.create_app` and
reached through the :func:`web` dependency (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from archive.context import Archive
from archive.index.models import Study
from archive.uids import is_valid_uid
from dicomweb.auth import Authenticator, Principal
from dicomweb.frames import FrameSource
from dicomweb.metrics import Metrics
from dicomweb.stow_ingest import StowIngest

PREFIX = "/dicomweb"


@dataclass
class WebContext:
    archive: Archive
    authenticator: Authenticator
    frames: FrameSource
    metrics: Metrics
    stow: StowIngest | None  # None: this app accepts no uploads (503)


def web(request: Request) -> WebContext:
    """Dependency: the app's shared handles."""
    return request.app.state.web


def session(request: Request):
    """Dependency: an index session for one request, closed after it."""
    with request.app.state.web.archive.sessions() as db:
        yield db


def base_url(request: Request) -> str:
    """The DICOMweb root as clients reach it: ``L3NET_PUBLIC_URL`` if set, else this
    request's scheme and host (uvicorn applies X-Forwarded-* from trusted proxies)."""
    public = request.app.state.web.archive.settings.public_url
    root = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return root + PREFIX


def checked_uid(value: str, what: str) -> str:
    """A UID taken from the path; 400 when it is not one (which also stops injection)."""
    if not is_valid_uid(value):
        raise HTTPException(400, f"{what} {value[:70]!r} is not a valid DICOM UID")
    return value


def visible(stmt: Select, who: Principal) -> Select:
    """Only the studies ``who`` may see: all for admins, else those its groups own.
    A study of another group is then simply not found (404), never forbidden (403),
    so its existence does not leak."""
    if who.is_admin:
        return stmt
    return stmt.where(Study.owner_group.in_(sorted(who.groups)))


def visible_study(db: Session, who: Principal, study_uid: str) -> Study:
    """The study, or 404 when it does not exist or ``who`` may not see it."""
    study = db.scalar(visible(select(Study), who).where(Study.study_instance_uid == study_uid))
    if study is None:
        raise HTTPException(404, f"study {study_uid} not found")
    return study
