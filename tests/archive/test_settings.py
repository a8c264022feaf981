"""L3NET_* environment parsing and the locations derived from data_dir (archive.settings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from archive.settings import Settings


@pytest.fixture
def clean_env(monkeypatch):
    """No L3NET_* variable from the surrounding shell leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("L3NET_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_allowed_calling_aes_comma_list(clean_env):
    clean_env.setenv("L3NET_ALLOWED_CALLING_AES", " CT1 ,PACS@10.0.0.5,, MR2 ")
    assert Settings().allowed_calling_aes == ["CT1", "PACS@10.0.0.5", "MR2"]


def test_allowed_calling_aes_default_is_wildcard(clean_env):
    assert Settings().allowed_calling_aes == ["*"]


def test_owner_groups_by_ae_pairs(clean_env):
    clean_env.setenv("L3NET_OWNER_GROUPS_BY_AE", "CT1=radiology, MR2 = neuro=lab ,")
    # Split on the first '=' only: a group name may itself hold '='.
    assert Settings().owner_groups_by_ae == {"CT1": "radiology", "MR2": "neuro=lab"}


def test_owner_groups_by_ae_default_empty(clean_env):
    assert Settings().owner_groups_by_ae == {}


def test_owner_groups_pair_without_equals_is_refused(clean_env):
    clean_env.setenv("L3NET_OWNER_GROUPS_BY_AE", "CT1=radiology,MR2")
    with pytest.raises(ValidationError):
        Settings()


def test_role_groups_and_cors_origins(clean_env):
    clean_env.setenv("L3NET_ROLE_GROUPS", "viewer=readers,admin=ops")
    clean_env.setenv("L3NET_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings()
    assert settings.role_groups == {"viewer": "readers", "admin": "ops"}
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def test_scalar_fields_from_env(clean_env, tmp_path):
    clean_env.setenv("L3NET_DATA_DIR", str(tmp_path / "d"))
    clean_env.setenv("L3NET_DICOM_PORT", "4242")
    clean_env.setenv("L3NET_JOB_VISIBILITY_TIMEOUT_S", "12.5")
    clean_env.setenv("L3NET_DUPLICATE_POLICY", "overwrite")
    clean_env.setenv("L3NET_S3_MULTIPART_THRESHOLD_MB", "5")
    clean_env.setenv("L3NET_UNRELATED_THING", "ignored")
    settings = Settings()
    assert settings.data_dir == tmp_path / "d"
    assert settings.dicom_port == 4242
    assert settings.job_visibility_timeout_s == 12.5
    assert settings.duplicate_policy == "overwrite"
    assert settings.s3_multipart_threshold_mb == 5


def test_bad_values_are_refused(clean_env):
    clean_env.setenv("L3NET_DUPLICATE_POLICY", "keep-last")
    with pytest.raises(ValidationError):
        Settings()
    clean_env.setenv("L3NET_DUPLICATE_POLICY", "keep-first")
    clean_env.setenv("L3NET_DICOM_PORT", "eleven")
    with pytest.raises(ValidationError):
        Settings()


def test_defaults_without_any_variable(clean_env, tmp_path):
    clean_env.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == Path("l3net-data")
    root = tmp_path.resolve() / "l3net-data"
    assert settings.resolved_database_url == f"sqlite:///{root / 'index.sqlite3'}"
    assert settings.resolved_object_store == str(root / "objects")
    assert settings.resolved_spool_dir == root / "spool"
    assert (settings.database_url, settings.object_store, settings.spool_dir) == (None, None, None)
    assert (settings.queue, settings.duplicate_policy, settings.job_max_attempts) == ("db", "keep-first", 3)
    assert (settings.ae_title, settings.dicom_host, settings.dicom_port) == ("L3NET", "127.0.0.1", 11112)
    assert (settings.s3_multipart_threshold_mb, settings.job_visibility_timeout_s) == (16, 300.0)


def test_derived_defaults_live_under_data_dir(clean_env, tmp_path):
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    root = data.resolve()
    assert settings.resolved_database_url == f"sqlite:///{root / 'index.sqlite3'}"
    assert settings.resolved_object_store == str(root / "objects")
    assert settings.resolved_spool_dir == root / "spool"


def test_relative_data_dir_resolves_to_absolute(clean_env, tmp_path):
    clean_env.chdir(tmp_path)
    settings = Settings(data_dir=Path("rel"))
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'rel' / 'index.sqlite3'}"
    assert Path(settings.resolved_object_store).is_absolute()
    assert settings.resolved_spool_dir == tmp_path.resolve() / "rel" / "spool"


def test_explicit_locations_win(clean_env, tmp_path):
    clean_env.setenv("L3NET_DATABASE_URL", "postgresql://u@127.0.0.1/db")
    clean_env.setenv("L3NET_OBJECT_STORE", "s3://bucket/prefix")
    clean_env.setenv("L3NET_SPOOL_DIR", str(tmp_path / "sp"))
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.resolved_database_url == "postgresql://u@127.0.0.1/db"
    assert settings.resolved_object_store == "s3://bucket/prefix"
    assert settings.resolved_spool_dir == (tmp_path / "sp").resolve()


def test_cognito_issuer(clean_env):
    assert Settings().cognito_issuer is None
    settings = Settings(cognito_user_pool_id="eu-west-1_AbC", aws_region="eu-west-1")
    assert settings.cognito_issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"
    assert Settings(cognito_user_pool_id="p", cognito_region="us-east-2").cognito_issuer.startswith(
        "https://cognito-idp.us-east-2."
    )


def test_every_setting_is_documented():
    """Each L3NET_* variable the settings read appears in docs/configuration.md (the
    UNet's in docs/unet.md), so the documentation cannot fall behind the code."""
    from tests.conftest import REPO

    docs = (REPO / "docs" / "configuration.md").read_text() + (REPO / "docs" / "unet.md").read_text()
    missing = [f"L3NET_{name.upper()}" for name in Settings.model_fields if f"`L3NET_{name.upper()}`" not in docs]
    assert missing == []
