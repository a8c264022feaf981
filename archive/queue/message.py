"""The job message: a small versioned JSON document (docs/queue.md).

Version 1::

    {"schema": "l3net.job/1", "job_id": "…", "study_instance_uid": "…",
     "series_instance_uid": "…", "generation": 1, "engine": "densitometry",
     "queued_at": "2026-01-01T00:00:00Z"}

Readers refuse any other ``schema`` value, so a future v2 cannot be misread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from archive.uids import check_uid

SCHEMA_V1 = "l3net.job/1"


class JobMessage(BaseModel):
    """What a worker needs to run one analysis job."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    schema_: Literal["l3net.job/1"] = Field(SCHEMA_V1, alias="schema")
    job_id: str = Field(description="Index key of the job (a UUID).")
    study_instance_uid: str
    series_instance_uid: str = Field(description="The series the node chose to analyse.")
    generation: int = Field(description="Study generation this job analyses; newer ones supersede it.")
    engine: str = Field(description="Name of the analysis engine to run.")
    queued_at: datetime

    @field_validator("study_instance_uid", "series_instance_uid")
    @classmethod
    def _uid(cls, value: str) -> str:
        return check_uid(value)

    @model_validator(mode="before")
    @classmethod
    def _schema_named(cls, data: object, info: ValidationInfo) -> object:
        # On the wire the schema must be named: a body without it is not known to be v1
        # (the field's default is only for building messages in code).
        if info.context and info.context.get("wire") and isinstance(data, dict) and "schema" not in data:
            raise ValueError("no 'schema': not an l3net job message")
        return data

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "JobMessage":
        return cls.model_validate_json(text, context={"wire": True})
