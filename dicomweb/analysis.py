"""The analysis API (JSON under ``/api``): a study's analysis state and results, the job
list, and re-running a failed job."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.index.jobs import mark_sent, message_for, requeue
from archive.index.models import Instance, Job, Series, Study
from archive.objectstore import ObjectNotFound
from archive.queue import is_external
from dicomweb.auth import Principal, require
from dicomweb.context import WebContext, base_url, checked_uid, session, visible, visible_study, web

log = logging.getLogger("l3net.api")
router = APIRouter(prefix="/api", tags=["analysis"])

JobState = Literal["queued", "running", "done", "failed", "dead"]


class JobView(BaseModel):
    """One analysis job."""

    id: str
    study_instance_uid: str
    series_instance_uid: str = Field(description="The series analysed.")
    generation: int = Field(description="The study generation analysed; a newer one supersedes it.")
    engine: str
    state: JobState
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(description="The last failure, if any.")
    superseded_by: str | None = Field(description="The newer job whose results replace this one's.")

    @classmethod
    def of(cls, job: Job) -> "JobView":
        return cls.model_validate(job, from_attributes=True)


class ResultLinks(BaseModel):
    """Where the results are served (WADO-RS URLs)."""

    seg: str | None = Field(None, description="The DICOM SEG instance (lung and opacity segments).")
    sr: str | None = Field(None, description="The DICOM SR (TID 1500) instance with the measurements.")
    report: str | None = Field(None, description="The Encapsulated PDF report instance, when one was written.")


class StudyAnalysis(BaseModel):
    """A study's analysis: state, current job and its results."""

    study_instance_uid: str
    study_state: str = Field(description="receiving, queued or not_analysable.")
    state_reason: str | None = Field(description="Why the study is not analysable.")
    generation: int
    job: JobView | None = Field(description="The current job: the newest one not superseded.")
    measurements: dict[str, Any] | None = Field(description="The job's summary.json, less its prognosis.")
    prognosis: dict[str, Any] | None = Field(
        description="The suggested prognosis with the rule that fired (not for diagnostic use)."
    )
    links: ResultLinks
    history: list[JobView] = Field(description="Every job of the study, newest first.")


class JobList(BaseModel):
    jobs: list[JobView]
    total: int = Field(description="Jobs matching the filters, before limit and offset.")
    limit: int
    offset: int


def _instance_url(db: Session, root: str, study_uid: str, sop_uid: str | None) -> str | None:
    if not sop_uid:
        return None
    series_uid = db.scalar(
        select(Series.series_instance_uid).join(Instance).where(Instance.sop_instance_uid == sop_uid)
    )
    if series_uid is None:
        return None
    return f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"


@router.get("/studies/{study}/analysis", response_model=StudyAnalysis, summary="Analysis state and results of a study")
def study_analysis(study: str, request: Request, db: Session = Depends(session), ctx: WebContext = Depends(web),
                   who: Principal = Depends(require("viewer"))) -> StudyAnalysis:
    row = visible_study(db, who, checked_uid(study, "Study Instance UID"))
    jobs = list(db.scalars(select(Job).where(Job.study_instance_uid == study)
                           .order_by(Job.generation.desc(), Job.created_at.desc())))
    current = next((job for job in jobs if job.superseded_by is None), None)
    measurements = prognosis = None
    links = ResultLinks()
    if current is not None and current.state == "done" and current.summary_key:
        try:
            summary = json.loads(ctx.archive.store.get_bytes(current.summary_key))
        except (ObjectNotFound, ValueError) as error:
            log.error("event=api.summary_unreadable job=%s error=%r", current.id, str(error))
            summary = None
        if isinstance(summary, dict):
            prognosis = summary.get("prognosis") if isinstance(summary.get("prognosis"), dict) else None
            measurements = {key: value for key, value in summary.items() if key != "prognosis"}
        root = base_url(request)
        outputs = summary.get("outputs") if isinstance(summary, dict) else None
        report_uid = (outputs or {}).get("pdf", {}).get("sop_instance_uid")
        links = ResultLinks(seg=_instance_url(db, root, study, current.seg_sop_instance_uid),
                            sr=_instance_url(db, root, study, current.sr_sop_instance_uid),
                            report=_instance_url(db, root, study, report_uid))
    return StudyAnalysis(
        study_instance_uid=study, study_state=row.state, state_reason=row.state_reason, generation=row.generation,
        job=JobView.of(current) if current else None, measurements=measurements, prognosis=prognosis, links=links,
        history=[JobView.of(job) for job in jobs],
    )


@router.get("/jobs", response_model=JobList, summary="Analysis jobs, newest first")
def list_jobs(
    db: Session = Depends(session),
    who: Principal = Depends(require("viewer")),
    state: JobState | None = Query(None, description="Only jobs in this state."),
    study: str | None = Query(None, description="Only jobs of this Study Instance UID."),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> JobList:
    stmt = select(Job).join(Study, Study.study_instance_uid == Job.study_instance_uid)
    stmt = visible(stmt, who)
    if state:
        stmt = stmt.where(Job.state == state)
    if study:
        stmt = stmt.where(Job.study_instance_uid == checked_uid(study, "Study Instance UID"))
    total = db.scalar(select(func.count()).select_from(stmt.subquery()))
    jobs = db.scalars(stmt.order_by(Job.created_at.desc(), Job.id).offset(offset).limit(limit)).all()
    return JobList(jobs=[JobView.of(job) for job in jobs], total=total or 0, limit=limit, offset=offset)


@router.post("/jobs/{job_id}/rerun", response_model=JobView, summary="Re-run a failed or dead job (admin)",
             responses={404: {"description": "No such job"}, 409: {"description": "The job is not failed or dead, "
                        "or a newer study generation replaced it"}})
def rerun_job(job_id: str, db: Session = Depends(session), ctx: WebContext = Depends(web),
              who: Principal = Depends(require("admin"))) -> JobView:
    job = db.get(Job, job_id[:36])
    if job is None:
        raise HTTPException(404, "job not found")
    generation = db.scalar(select(Study.generation).where(Study.study_instance_uid == job.study_instance_uid))
    if generation is not None and generation > job.generation:
        raise HTTPException(409, f"the study is at generation {generation}; this job analysed {job.generation}")
    archive = ctx.archive
    external = is_external(archive.queue)
    queued = requeue(archive.sessions, job.id, sent=not external)
    if queued is None:
        raise HTTPException(409, f"job is {job.state}; only failed or dead jobs can be re-run")
    archive.queue.send(message_for(queued))
    if external:
        mark_sent(archive.sessions, queued.id)
    log.info("event=job.rerun job=%s study=%s by=%s", queued.id, queued.study_instance_uid, who.subject)
    return JobView.of(queued)
