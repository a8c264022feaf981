"""Finding the instances a WADO-RS path names, within what the caller may see."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from archive.index.models import Instance, Series, Study
from dicomweb.auth import Principal
from dicomweb.context import checked_uid, visible


@dataclass(frozen=True)
class Target:
    """An instance to serve: its row and the UIDs of its study and series."""

    instance: Instance
    study_uid: str
    series_uid: str

    def url(self, root: str) -> str:
        return f"{root}/studies/{self.study_uid}/series/{self.series_uid}/instances/{self.instance.sop_instance_uid}"


def targets(
    db: Session,
    who: Principal,
    study: str,
    series: str | None = None,
    instance: str | None = None,
    with_header: bool = False,
) -> list[Target]:
    """Instances of the study (and series, and instance) the path names, in series and
    instance number order; 400 for a malformed UID, 404 when nothing visible matches."""
    checked_uid(study, "Study Instance UID")
    stmt = (
        select(Instance, Study.study_instance_uid, Series.series_instance_uid)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .where(Study.study_instance_uid == study)
    )
    if series is not None:
        stmt = stmt.where(Series.series_instance_uid == checked_uid(series, "Series Instance UID"))
    if instance is not None:
        stmt = stmt.where(Instance.sop_instance_uid == checked_uid(instance, "SOP Instance UID"))
    if not with_header:
        stmt = stmt.options(defer(Instance.metadata_json))
    stmt = visible(stmt, who).order_by(Series.series_number, Series.pk, Instance.instance_number, Instance.pk)
    found = [Target(row[0], row[1], row[2]) for row in db.execute(stmt).all()]
    if not found:
        what = "instance" if instance else "series" if series else "study"
        raise HTTPException(404, f"{what} not found")
    return found
