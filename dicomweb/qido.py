"""QIDO-RS (PS3.18 §10.6): search for studies, series and instances, from the index only.

Resources: ``/studies``, ``/series``, ``/instances``, ``/studies/{study}/series``,
``/studies/{study}/instances``, ``/studies/{study}/series/{series}/instances``.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from archive.index.models import Instance, Patient, Series, Study
from dicomweb.auth import Principal, require
from dicomweb.context import PREFIX, base_url, checked_uid, session, visible
from dicomweb.dicomjson import BY_TAG, dataset
from dicomweb.matching import BadQuery, Query, parse
from dicomweb.media import negotiate_json
from dicomweb.metadata import absolute_bulk

router = APIRouter(prefix=PREFIX, tags=["QIDO-RS"])

_RESPONSES = {
    200: {"description": "Matches as a DICOM JSON array (empty when nothing matches)",
          "content": {"application/dicom+json": {}}},
    400: {"description": "Invalid query parameter or UID"},
    406: {"description": "Accept names no type we can answer with"},
}


def _warning(request: Request, text: str) -> str:
    return f'299 {request.url.hostname or "l3net"}: "{text}"'


def _search(
    level: str,
    request: Request,
    db: Session,
    who: Principal,
    accept: str | None,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Response:
    media = negotiate_json(accept)
    fixed = {name for name, value in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid)) if value}
    settings = request.app.state.web.archive.settings
    try:
        query = parse(list(request.query_params.multi_items()), level, settings.qido_max_limit, fixed)
    except BadQuery as error:
        raise HTTPException(400, str(error)) from None

    entities = {"study": (Patient, Study), "series": (Patient, Study, Series),
                "instance": (Patient, Study, Series, Instance)}[level]
    stmt = select(*entities).join(Study, Study.patient_pk == Patient.pk)
    if level != "study":
        stmt = stmt.join(Series, Series.study_pk == Study.pk)
    if level == "instance":
        stmt = stmt.join(Instance, Instance.series_pk == Series.pk)
        if not _needs_header(query):
            stmt = stmt.options(defer(Instance.metadata_json))
    stmt = visible(stmt, who)
    if study_uid:
        stmt = stmt.where(Study.study_instance_uid == study_uid)
    if series_uid:
        stmt = stmt.where(Series.series_instance_uid == series_uid)
    stmt = stmt.where(*query.conditions)
    order = {"study": (Study.pk.desc(),), "series": (Series.series_number, Series.pk),
             "instance": (Instance.instance_number, Instance.pk)}[level]
    # One row more than asked for tells whether the results were cut.
    rows = db.execute(stmt.order_by(*order).offset(query.offset).limit(query.limit + 1)).all()
    cut = len(rows) > query.limit
    root = base_url(request)
    results = [_result(level, tuple(row) + (None,) * (4 - len(row)), root, query) for row in rows[: query.limit]]

    headers = {}
    warnings = []
    if cut:
        warnings.append(_warning(request, "The results are incomplete: there are additional results that can be requested"))
    if query.ignored:
        warnings.append(_warning(request, f"Query keys not supported and ignored: {', '.join(query.ignored)}"))
    if warnings:
        headers["Warning"] = ", ".join(warnings)
    return Response(json.dumps(results, separators=(",", ":")), media_type=media, headers=headers)


def _needs_header(query: Query) -> bool:
    return query.include_all or any(tag not in BY_TAG for tag in query.included or ())


def _result(level: str, rows: tuple, root: str, query: Query) -> dict:
    patient, study, series, instance = rows
    url = f"{root}/studies/{study.study_instance_uid}"
    if level != "study":
        url += f"/series/{series.series_instance_uid}"
    if level == "instance":
        url += f"/instances/{instance.sop_instance_uid}"
    extra = None
    if level == "instance" and _needs_header(query):
        # Attributes beyond the index columns come from the header stored at ingest.
        header = json.loads(absolute_bulk(instance.metadata_json, url))
        wanted = query.included or set()
        extra = {tag: value for tag, value in header.items() if query.include_all or tag in wanted}
    return dataset(level, rows, url, query.included, extra)


@router.get("/studies", summary="Search for studies", responses=_RESPONSES)
def search_studies(request: Request, accept: str | None = Header(None), db: Session = Depends(session),
                   who: Principal = Depends(require("viewer"))) -> Response:
    return _search("study", request, db, who, accept)


@router.get("/series", summary="Search for series", responses=_RESPONSES)
def search_series(request: Request, accept: str | None = Header(None), db: Session = Depends(session),
                  who: Principal = Depends(require("viewer"))) -> Response:
    return _search("series", request, db, who, accept)


@router.get("/instances", summary="Search for instances", responses=_RESPONSES)
def search_instances(request: Request, accept: str | None = Header(None), db: Session = Depends(session),
                     who: Principal = Depends(require("viewer"))) -> Response:
    return _search("instance", request, db, who, accept)


@router.get("/studies/{study}/series", summary="Search for series of a study", responses=_RESPONSES)
def search_study_series(study: str, request: Request, accept: str | None = Header(None),
                        db: Session = Depends(session), who: Principal = Depends(require("viewer"))) -> Response:
    return _search("series", request, db, who, accept, checked_uid(study, "Study Instance UID"))


@router.get("/studies/{study}/instances", summary="Search for instances of a study", responses=_RESPONSES)
def search_study_instances(study: str, request: Request, accept: str | None = Header(None),
                           db: Session = Depends(session), who: Principal = Depends(require("viewer"))) -> Response:
    return _search("instance", request, db, who, accept, checked_uid(study, "Study Instance UID"))


@router.get("/studies/{study}/series/{series}/instances", summary="Search for instances of a series",
            responses=_RESPONSES)
def search_series_instances(study: str, series: str, request: Request, accept: str | None = Header(None),
                            db: Session = Depends(session), who: Principal = Depends(require("viewer"))) -> Response:
    return _search("instance", request, db, who, accept, checked_uid(study, "Study Instance UID"),
                   checked_uid(series, "Series Instance UID"))
