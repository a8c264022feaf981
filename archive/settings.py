"""Settings shared by every part, read from ``L3NET_*`` environment variables.

One :class:`Settings` object is built by the composition root (``l3net``) and handed
to each part; nothing reads the environment anywhere else. ``docs/configuration.md``
lists every field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

DuplicatePolicy = Literal["keep-first", "overwrite"]


class Settings(BaseSettings):
    """Every setting of L3-net Node; each field maps to ``L3NET_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="L3NET_", extra="ignore")

    # -- where things live -------------------------------------------------------
    data_dir: Path = Field(Path("./l3net-data"), description="Root of all local state.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the study index; default sqlite:///{data_dir}/index.sqlite3."
    )
    object_store: str | None = Field(
        None, description="A directory, or s3://bucket/prefix; default {data_dir}/objects."
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, moto, ...); AWS when unset.")
    s3_multipart_threshold_mb: int = Field(16, description="Objects larger than this use multipart upload.")
    queue: str = Field("db", description="'db' for the database queue, or an SQS queue URL.")
    sqs_endpoint_url: str | None = Field(None, description="SQS endpoint; AWS when unset.")
    sqs_dlq_url: str | None = Field(None, description="SQS dead-letter queue URL (also set as redrive target).")
    aws_region: str = Field("us-east-1", description="AWS region for S3/SQS clients.")
    spool_dir: Path | None = Field(None, description="Durable receive spool; default {data_dir}/spool.")

    # -- DICOM node --------------------------------------------------------------
    ae_title: str = Field("L3NET", description="Our AE title; the called AE title must match.")
    dicom_host: str = Field("127.0.0.1", description="Address the DICOM SCP listens on.")
    dicom_port: int = Field(11112, description="Port the DICOM SCP listens on.")
    allowed_calling_aes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description="Comma-separated calling AE titles, each optionally AE@host; '*' accepts any.",
    )
    max_associations: int = Field(16, description="Concurrent associations accepted.")
    max_pdu_bytes: int = Field(1_048_576, description="Largest P-DATA PDU we accept (0 = unlimited).")
    duplicate_policy: DuplicatePolicy = Field("keep-first", description="What a re-sent SOP Instance UID does.")
    min_free_disk_mb: int = Field(512, description="Below this free space on the spool, C-STORE answers 0xA700.")
    stable_after_s: float = Field(30.0, description="Idle seconds after which a study is stable.")
    min_series_slices: int = Field(40, description="Fewest axial CT slices a series needs to be analysed.")
    owner_groups_by_ae: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="Comma-separated AE=group pairs: the owning group of studies an AE sends."
    )

    # -- jobs --------------------------------------------------------------------
    job_visibility_timeout_s: float = Field(300.0, description="Lease of a taken job before it is redelivered.")
    job_max_attempts: int = Field(3, description="Deliveries before a job is dead-lettered.")
    engine: str = Field("densitometry", description="Analysis engine queued jobs ask for.")
    unet_weights: str | None = Field(
        None, description="L3-net UNet checkpoint: a file path or s3://bucket/key (engine 'l3net')."
    )
    unet_phase: str = Field("3", description="L3-net model phase of the checkpoint: 1, 2 or 3.")
    unet_device: str | None = Field(None, description="Torch device for the UNet; default cuda when present, else cpu.")
    unet_fallback: bool = Field(
        False, description="When the UNet cannot run (no weights, no torch), use densitometry instead of failing."
    )
    unet_threshold: float = Field(
        0.8, description="Connected-component cleanup: keep opacity components whose peak probability reaches this."
    )
    score_floor_percent: float = Field(
        1.0, ge=0, le=25,
        description="Zone involvement below this percentage scores 0 (a normal lung keeps a few tenths of a percent of "
        "opacity-band voxels at the hila); 0 scores any involvement as 1.",
    )
    pdf_report: bool = Field(
        True, description="Also write an Encapsulated PDF report (modality DOC) for PACS that display neither SEG nor SR."
    )
    seg_compression: Literal["jpeg2000", "none"] = Field(
        "jpeg2000",
        description="Transfer syntax of the SEG the worker writes: JPEG 2000 Lossless (about 30x smaller) or none "
        "(bit-packed Explicit VR Little Endian). WADO-RS sends either to clients that ask for Explicit VR LE.",
    )

    # -- web ---------------------------------------------------------------------
    http_host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    http_port: int = Field(8080, description="Port the HTTP server listens on.")
    auth: Literal["none", "cognito"] = Field("none", description="'none' (loopback only) or 'cognito'.")
    auth_allow_insecure: bool = Field(
        False, description="Allow auth 'none' on a non-loopback HTTP address (anyone who can reach it has full access)."
    )
    cognito_region: str | None = Field(None, description="Region of the Cognito user pool; default aws_region.")
    cognito_user_pool_id: str | None = Field(None, description="Cognito user pool id (e.g. eu-west-1_AbCdEf123).")
    cognito_client_id: str | None = Field(None, description="App client id that access tokens must carry.")
    cognito_jwks_url: str | None = Field(
        None, description="JWKS URL; default {issuer}/.well-known/jwks.json (override for tests and private endpoints)."
    )
    role_groups: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {"viewer": "viewer", "uploader": "uploader", "admin": "admin"},
        description="Comma-separated role=group pairs: which cognito:groups entry grants viewer, uploader, admin.",
    )
    stow_owner_group: str | None = Field(
        None, description="Owning group of STOW-RS uploads by a user who has no group besides role groups."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins (the viewer's) allowed by CORS."
    )
    public_url: str | None = Field(
        None, description="External base URL (https://host) for RetrieveURL and BulkDataURI; default from each request."
    )
    # -- viewer (OHIF at /) --------------------------------------------------------
    viewer_dir: Path | None = Field(
        None, description="Unpacked OHIF build served at /; default viewer/dist of the checkout (viewer/fetch_ohif.py)."
    )
    cognito_domain: str | None = Field(
        None, description="Cognito hosted-UI base URL (https://PREFIX.auth.REGION.amazoncognito.com) for viewer login/logout."
    )
    cognito_authority: str | None = Field(
        None, description="OIDC authority the viewer discovers; default the pool issuer (override for cognito-local)."
    )
    viewer_oidc_scope: str = Field("openid email profile", description="OAuth scopes the viewer asks Cognito for.")
    viewer_hanging_protocol: str = Field(
        "@ohif/seg",
        description="Hanging protocol added to links that open a study (/viewer?StudyInstanceUIDs=...) without one, so "
        "the SEG overlay shows with no click; OHIF falls back to the plain layout for a study without SEG. Empty: off.",
    )
    stow_max_bytes: int = Field(1 << 30, description="Largest STOW-RS request body; larger ones get 413.")
    qido_max_limit: int = Field(1000, description="Most results one QIDO-RS response returns.")

    @field_validator("allowed_calling_aes", mode="before")
    @classmethod
    def _split_aes(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("owner_groups_by_ae", "role_groups", mode="before")
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
            return {ae.strip(): group.strip() for ae, group in pairs}
        return value

    # -- derived locations -------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'index.sqlite3'}"

    @property
    def resolved_object_store(self) -> str:
        return self.object_store or str(self.data_dir.resolve() / "objects")

    @property
    def cognito_issuer(self) -> str | None:
        """The ``iss`` claim Cognito puts in this pool's tokens."""
        if not self.cognito_user_pool_id:
            return None
        region = self.cognito_region or self.aws_region
        return f"https://cognito-idp.{region}.amazonaws.com/{self.cognito_user_pool_id}"

    @property
    def resolved_spool_dir(self) -> Path:
        return (self.spool_dir or self.data_dir / "spool").resolve()
