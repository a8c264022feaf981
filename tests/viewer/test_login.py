"""OHIF with Cognito login, against cognito-local (tests/viewer/cognito.py) and ``l3net
serve`` with ``L3NET_AUTH=cognito``, all on free loopback ports.

* A reader logs in through the hosted-UI form (authorization code + PKCE), comes back
  through ``/callback``, and the study list shows the study pushed over DIMSE to its
  group, and not another group's; every DICOMweb request carried the access token and
  was answered. The logout revokes the refresh token and goes to the Cognito logout
  endpoint with ``client_id`` and ``logout_uri`` (both emulated in the browser: cognito-
  local lacks them), and back in the viewer the login form comes again.
* Through OHIF's upload dialog (STOW-RS), a user without the uploader role is refused
  (403 for each file, "request failed" in the dialog, nothing stored); an uploader's
  files are stored under its group, and the study gets its analysis: the job finishes
  and the SEG and SR join the study.

Screenshots go to test-artifacts/viewer/ (``cognito-*``, ``upload-*``)."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pydicom
import pytest

from tests.conftest import free_port
from tests.viewer.cognito import READER, REGION, SITE_GROUP, UPLOADER, User, running_cognito
from tests.viewer.stack import ARTIFACTS, HOST, require_browser, run_node, running_stack

pytestmark = pytest.mark.slow

ADMIN = User("admin@example.org", "Admin-pass-1", ("admin",))
OTHER_GROUP = "radiology-b"
OWNERS = f"TESTPACS={SITE_GROUP},OTHERPACS={OTHER_GROUP}"


def study_uid(files) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/dicom+json"}


def qido_studies(url: str, token: str) -> list[str]:
    response = httpx.get(f"{url}/dicomweb/studies", headers=bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    return [study["0020000D"]["Value"][0] for study in response.json()]


def test_login_list_and_logout(tmp_path, small_series):
    require_browser()
    ours, theirs = small_series["LIDC-IDRI-0001"], small_series["LIDC-IDRI-0002"]
    port = free_port()
    viewer = f"http://{HOST}:{port}"
    with running_cognito(tmp_path / "cognito", viewer, users=(READER, ADMIN)) as cognito, running_stack(
        tmp_path / "stack", http_port=port, L3NET_OWNER_GROUPS_BY_AE=OWNERS, **cognito.server_env()
    ) as server:
        server.push(ours, calling_ae="TESTPACS")
        server.push(theirs, calling_ae="OTHERPACS")
        admin = cognito.access_token(ADMIN)
        server.wait_for_series(study_uid(ours), 1, token=admin)
        server.wait_for_series(study_uid(theirs), 1, token=admin)
        assert httpx.get(f"{server.url}/dicomweb/studies", timeout=10).status_code == 401

        findings = run_node("ohif_login.mjs", {
            "url": server.url,
            "cognito": cognito.url,
            "username": READER.username,
            "password": READER.password,
            "waitForStudies": [study_uid(ours)],
            "logout": {"clientId": cognito.client_id, "logoutUrls": [f"{viewer}/"]},
            "prefix": "cognito-",
        })
        assert "error" not in findings, f"{findings.get('error')}\n{findings.get('failureText', '')}\n{findings.get('log')}"
        assert findings["steps"] == ["login", "list", "logout"]

        # The viewer sent the browser to the hosted UI: code flow with S256 PKCE.
        login = urlsplit(findings["loginPage"])
        assert f"{login.scheme}://{login.netloc}{login.path}" == f"{cognito.url}/oauth2/authorize"
        query = {key: values[0] for key, values in parse_qs(login.query).items()}
        assert query["client_id"] == cognito.client_id
        assert query["redirect_uri"] == f"{viewer}/callback"
        assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
        assert len(query["code_challenge"]) == 43 and query["scope"] == "openid email profile"
        assert any(url.startswith(f"{viewer}/callback?code=") for url in findings["navigations"])

        # Every DICOMweb request carried the access token and was answered.
        assert findings["dicomweb"] and all(r["auth"] == "Bearer" for r in findings["dicomweb"]), findings["dicomweb"]
        assert all(r["status"] == 200 for r in findings["dicomweb"]), findings["dicomweb"]
        # The token is the pool's access token for this client and user, signed by the pool.
        token = findings["qido"][0]["token"].split(" ", 1)[1]
        keys = jwt.PyJWKClient(f"{cognito.url}/{cognito.pool_id}/.well-known/jwks.json")
        claims = jwt.decode(token, keys.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                            issuer=f"https://cognito-idp.{REGION}.amazonaws.com/{cognito.pool_id}",
                            options={"verify_aud": False})
        assert claims["token_use"] == "access" and claims["client_id"] == cognito.client_id
        assert set(claims["cognito:groups"]) == set(READER.groups)

        # The list holds our group's study (pushed over DIMSE), never the other group's.
        assert all(answer["studies"] == [study_uid(ours)] for answer in findings["qido"]), findings["qido"]
        header = pydicom.dcmread(ours[0], stop_before_pixels=True)
        assert str(header.AccessionNumber) in findings["listText"] and "CT" in findings["listText"]
        assert f"{len(ours)}" in findings["listText"]

        # Logout: the refresh token revoked (Cognito cannot revoke access tokens), then
        # Cognito's /logout with the client and the registered sign-out URL; back in the
        # viewer there is no user, so the login form comes again.
        assert [r["token_type_hint"] for r in findings["revocations"]] == ["refresh_token"]
        assert findings["revocations"][0]["client_id"] == cognito.client_id
        assert findings["revocations"][0]["token"].count(".") == 2
        (logout,) = findings["logoutRequests"]
        assert logout["path"] == "/logout"
        assert logout["query"]["client_id"] == cognito.client_id
        assert logout["query"]["logout_uri"] == f"{viewer}/"
        assert findings["afterLogout"].startswith(f"{cognito.url}/oauth2/authorize?")
        for name in ("1-login-form", "2-study-list", "5-after-logout"):
            assert (ARTIFACTS / f"cognito-{name}.png").stat().st_size > 5_000


def test_upload_needs_the_uploader_role_and_is_analysed(tmp_path, small_series):
    require_browser()
    files = small_series["LIDC-IDRI-0003"]
    uid = study_uid(files)
    port = free_port()
    viewer = f"http://{HOST}:{port}"
    with running_cognito(tmp_path / "cognito", viewer, users=(READER, UPLOADER, ADMIN)) as cognito, running_stack(
        tmp_path / "stack",
        http_port=port,
        L3NET_STABLE_AFTER_S="8",  # well above the gaps between the dialog's STOW requests
        L3NET_MIN_SERIES_SLICES="8",
        **cognito.server_env(),
    ) as server:
        admin = cognito.access_token(ADMIN)

        # A reader (no uploader role): OHIF offers the dialog, the server refuses each file.
        refused = run_node("ohif_login.mjs", {
            "url": server.url, "cognito": cognito.url,
            "username": READER.username, "password": READER.password,
            "upload": [str(p) for p in files], "prefix": "upload-reader-",
        })
        assert "error" not in refused, f"{refused.get('error')}\n{refused.get('failureText', '')}\n{refused.get('log')}"
        assert refused["steps"] == ["login", "list", "upload"]
        assert [s["status"] for s in refused["stow"]] == [403] * len(files)
        assert all("the uploader role is required" in s["body"] for s in refused["stow"])
        assert f"Completed with {len(files)} errors!" in refused["uploadText"]
        assert refused["uploadText"].count("request failed") == len(files)
        assert qido_studies(server.url, admin) == []

        # An uploader: every file stored; the list shows the new study.
        uploaded = run_node("ohif_login.mjs", {
            "url": server.url, "cognito": cognito.url,
            "username": UPLOADER.username, "password": UPLOADER.password,
            "upload": [str(p) for p in files], "listAfterUpload": [uid], "prefix": "upload-uploader-",
        })
        assert "error" not in uploaded, f"{uploaded.get('error')}\n{uploaded.get('failureText', '')}\n{uploaded.get('log')}"
        assert uploaded["steps"] == ["login", "list", "upload", "listAfterUpload"]
        assert [s["status"] for s in uploaded["stow"]] == [200] * len(files)
        assert "Completed!" in uploaded["uploadText"] and "request failed" not in uploaded["uploadText"]
        assert all(r["auth"] == "Bearer" for r in uploaded["dicomweb"])

        # Stored under the uploader's group: its reader sees the study with every instance.
        reader = cognito.access_token(READER)
        assert qido_studies(server.url, reader) == [uid]
        (series,) = server.wait_for_series(uid, 1, token=reader)
        assert series["00201209"]["Value"][0] == len(files)

        # The study becomes stable, gets one job, and the in-process worker writes SEG + SR.
        deadline = time.monotonic() + 300
        analysis: dict = {}
        while time.monotonic() < deadline:
            response = httpx.get(f"{server.url}/api/studies/{uid}/analysis", headers=bearer(reader), timeout=10)
            assert response.status_code == 200, response.text
            analysis = response.json()
            if analysis["job"] and analysis["job"]["state"] in ("done", "failed", "dead"):
                break
            time.sleep(1)
        assert analysis.get("job") and analysis["job"]["state"] == "done", (analysis, server.log.read_text()[-3000:])
        assert analysis["study_state"] == "queued" and len(analysis["history"]) == 1
        assert analysis["links"]["seg"] and analysis["links"]["sr"] and analysis["measurements"]
        modalities = {s["00080060"]["Value"][0] for s in server.wait_for_series(uid, 3, token=reader)}
        assert {"CT", "SEG", "SR"} <= modalities, modalities
        # The reader, logging in again, finds the results in the study list.
        results = run_node("ohif_login.mjs", {
            "url": server.url, "cognito": cognito.url,
            "username": READER.username, "password": READER.password,
            "waitForStudies": [uid], "prefix": "upload-results-",
        })
        assert "error" not in results, f"{results.get('error')}\n{results.get('failureText', '')}\n{results.get('log')}"
        assert all(answer["studies"] == [uid] for answer in results["qido"]), results["qido"]
        listed = re.search(r"\bCT(\\[A-Z]+)+", results["listText"])  # the Modalities column, e.g. CT\DOC\SEG\SR
        assert listed and {"CT", "SEG", "SR"} <= set(listed.group(0).split("\\")), results["listText"]
        for name in ("2-study-list", "3-upload"):
            assert (ARTIFACTS / f"upload-reader-{name}.png").stat().st_size > 5_000
        for name in ("3-upload", "4-list-after-upload"):
            assert (ARTIFACTS / f"upload-uploader-{name}.png").stat().st_size > 5_000
