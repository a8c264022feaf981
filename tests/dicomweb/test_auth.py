"""Authorization: Cognito access tokens (each way a token can be wrong gets 401),
roles from cognito:groups, owning groups (another group's study is 404), and the
no-auth mode that starts on loopback only."""

from __future__ import annotations

import subprocess
import sys

import jwt
import httpx
import pytest
from typer.testing import CliRunner

from archive.settings import Settings
from dicomweb.app import create_app
from dicomweb.auth import InsecureExposure
from tests.dicomweb.conftest import cognito_settings
from tests.conftest import free_port
from tests.dicomweb.helpers import CLIENT_ID, ISSUER, Keys, ingest, jwks_server, running_server

VIEWER_A = ["radiology-a", "l3net-viewer"]


def _get(server, path: str, token: str | None = None, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(server.dicomweb + path, headers=headers, params=params, timeout=30)


def _patients(server, token: str) -> set[str]:
    response = _get(server, "/studies", token)
    assert response.status_code == 200, response.text
    return {r["00100020"]["Value"][0] for r in response.json()}


def _forge(keys: Keys, header: dict, claims: dict) -> str:
    """A token with the given header whose signature is not ours (alg none)."""
    segments = [jwt.utils.base64url_encode(jwt.api_jws.json.dumps(part).encode()) for part in (header, claims)]
    return b".".join(segments).decode() + "."


def test_valid_access_token_sees_its_groups_studies(cognito_server, keys):
    assert _patients(cognito_server, keys.token(VIEWER_A)) == {"LIDC-IDRI-0001", "ABDOMEN-J2K"}
    assert _patients(cognito_server, keys.token(["radiology-b", "l3net-viewer"])) == {"LIDC-IDRI-0002"}
    both = keys.token(["radiology-a", "radiology-b", "l3net-viewer"])
    assert _patients(cognito_server, both) == {"LIDC-IDRI-0001", "LIDC-IDRI-0002", "ABDOMEN-J2K"}
    assert len(_patients(cognito_server, keys.token(["l3net-admin"]))) == 7  # admins see every study


def _bad_tokens(keys: Keys) -> dict[str, str]:
    other = Keys()
    other.kid = keys.kid  # same key id, another key: the signature cannot verify
    valid_claims = jwt.decode(keys.token(VIEWER_A), options={"verify_signature": False})
    return {
        "expired": keys.token(VIEWER_A, exp=1_600_000_000, iat=1_599_999_000),
        "wrong issuer": keys.token(VIEWER_A, iss="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"),
        "wrong client": keys.token(VIEWER_A, client_id="someone-elses-app"),
        "id token": keys.token(VIEWER_A, token_use="id", client_id=None, aud=CLIENT_ID),
        "no token_use": keys.token(VIEWER_A, token_use=None),
        "alg none": _forge(keys, {"alg": "none", "kid": keys.kid, "typ": "JWT"}, valid_claims),
        "bad signature": other.token(VIEWER_A),
        "HS256 with the public key": jwt.encode(valid_claims, "not-the-key-but-a-secret-of-32-bytes!", algorithm="HS256",
                                                headers={"kid": keys.kid}),
        "unknown kid": Keys().token(VIEWER_A),
        "tampered": keys.token(VIEWER_A)[:-6] + "AAAAAA",
        "garbage": "not.a.jwt",
    }


BAD_CASES = ["expired", "wrong issuer", "wrong client", "id token", "no token_use", "alg none", "bad signature",
             "HS256 with the public key", "unknown kid", "tampered", "garbage"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_each_bad_token_gets_401(cognito_server, keys, case):
    token = _bad_tokens(keys)[case]
    response = _get(cognito_server, "/studies", token)
    assert response.status_code == 401, (case, response.text)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_or_non_bearer_credentials_get_401(cognito_server, keys):
    assert _get(cognito_server, "/studies").status_code == 401
    response = httpx.get(cognito_server.dicomweb + "/studies", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert httpx.get(cognito_server.url + "/api/jobs").status_code == 401


def test_another_groups_study_is_not_found(cognito_server, keys, library):
    token = keys.token(["radiology-b", "l3net-viewer"])
    study, series, sops = library.uids("lidc1")  # radiology-a's
    instance = f"/studies/{study}/series/{series}/instances/{sops[0]}"
    for path in (f"/studies/{study}", f"/studies/{study}/metadata", f"/studies/{study}/series/{series}/metadata",
                 instance, f"{instance}/frames/1", f"{instance}/rendered", f"/studies/{study}/thumbnail"):
        assert _get(cognito_server, path, token).status_code == 404, path
    assert _get(cognito_server, "/instances", token, SOPInstanceUID=sops[0]).json() == []
    assert _get(cognito_server, f"/studies/{study}/series", token).json() == []
    api = httpx.get(f"{cognito_server.url}/api/studies/{study}/analysis", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 404
    owner = keys.token(VIEWER_A)
    assert _get(cognito_server, f"{instance}/frames/1", owner).status_code == 200


def test_roles(cognito_server, keys, library):
    no_role = keys.token(["radiology-a"])
    assert _get(cognito_server, "/studies", no_role).status_code == 403
    viewer = keys.token(VIEWER_A)
    data = library.files["smith"][0].read_bytes()
    body = b"--B\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--B--\r\n"
    headers = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=B'}
    store = lambda token: httpx.post(f"{cognito_server.dicomweb}/studies", content=body,  # noqa: E731
                                     headers={**headers, "Authorization": f"Bearer {token}"})
    assert store(viewer).status_code == 403
    # research owns that study, so an uploader of radiology-a may not add to it...
    refused = store(keys.token(["radiology-a", "l3net-uploader"]))
    assert refused.status_code == 409
    assert refused.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0110]
    # ...but a research uploader may (the instance is already there: identical, stored).
    assert store(keys.token(["research", "l3net-uploader"])).status_code == 200
    rerun = httpx.post(f"{cognito_server.url}/api/jobs/no-such-job/rerun", headers={"Authorization": f"Bearer {viewer}"})
    assert rerun.status_code == 403
    admin = httpx.post(f"{cognito_server.url}/api/jobs/no-such-job/rerun",
                       headers={"Authorization": f"Bearer {keys.token(['l3net-admin'])}"})
    assert admin.status_code == 404


def test_uploads_belong_to_the_uploaders_group(fresh_server, keys, jwks_url, library, tmp_path):
    with running_server(cognito_settings(tmp_path / "own", jwks_url)) as server:
        uploader = keys.token(["l3net-uploader", "cardiology", "l3net-viewer", "oncology"])
        data = b"".join(b"--B\r\nContent-Type: application/dicom\r\n\r\n" + p.read_bytes() + b"\r\n"
                        for p in library.files["jones"]) + b"--B--\r\n"
        response = httpx.post(f"{server.dicomweb}/studies", content=data, headers={
            "Content-Type": 'multipart/related; type="application/dicom"; boundary=B', "Authorization": f"Bearer {uploader}"})
        assert response.status_code == 200, response.text
        assert _patients(server, keys.token(["cardiology", "l3net-viewer"])) == {"SYN-3"}
        assert _patients(server, keys.token(["oncology", "l3net-viewer"])) == set()


def test_dimse_studies_belong_to_the_group_of_the_sending_ae(tmp_path, jwks_url, keys, library):
    settings = cognito_settings(tmp_path, jwks_url, owner_groups_by_ae={"PACS1": "radiology-a", "PACS2": "radiology-b"})
    with running_server(settings) as server:
        ingest(server, library.files["lidc1"], source_ae="PACS1")
        ingest(server, library.files["lidc2"], source_ae="PACS2")
        ingest(server, library.files["smith"], source_ae="UNMAPPED")
        assert _patients(server, keys.token(VIEWER_A)) == {"LIDC-IDRI-0001"}
        assert _patients(server, keys.token(["radiology-b", "l3net-viewer"])) == {"LIDC-IDRI-0002"}
        assert len(_patients(server, keys.token(["l3net-admin"]))) == 3  # an unowned study: admins only


def test_signing_keys_are_fetched_once_and_cached(tmp_path, library):
    keys = Keys()
    with jwks_server(keys) as url, running_server(cognito_settings(tmp_path, url)) as server:
        for _ in range(5):
            assert _get(server, "/studies", keys.token(VIEWER_A)).status_code == 200
        assert len(jwks_server.fetches) == 1


def test_no_auth_refuses_a_non_loopback_address_unless_forced(tmp_path):
    from archive.context import open_archive

    exposed = Settings(data_dir=tmp_path, http_host="0.0.0.0")
    archive = open_archive(exposed)
    try:
        with pytest.raises(InsecureExposure, match="L3NET_AUTH=none"):
            create_app(archive)
        archive.settings = exposed.model_copy(update={"auth_allow_insecure": True})
        assert create_app(archive) is not None
        archive.settings = exposed.model_copy(update={"http_host": "127.0.0.1"})
        assert create_app(archive) is not None
        archive.settings = exposed.model_copy(update={"auth": "cognito", "cognito_user_pool_id": "eu-west-1_X",
                                                      "cognito_client_id": "c"})
        assert create_app(archive) is not None
    finally:
        archive.close()


def test_web_command_refuses_and_has_the_force_flag(tmp_path):
    from l3net.cli import app

    help_text = CliRunner().invoke(app, ["web", "--help"], env={"COLUMNS": "200"}).output
    assert "--allow-insecure-no-auth" in help_text
    result = subprocess.run(
        [sys.executable, "-m", "l3net.cli", "web", "--data-dir", str(tmp_path), "--http-host", "0.0.0.0",
         "--http-port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "L3NET_AUTH=none on 0.0.0.0" in result.stderr


def test_issuer_is_derived_from_region_and_pool():
    settings = Settings(cognito_region="eu-west-1", cognito_user_pool_id="eu-west-1_TestPool1")
    assert settings.cognito_issuer == ISSUER
