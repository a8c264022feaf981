"""The viewer at / of ``l3net web``: the fetched OHIF build, the generated app-config.js,
the client-side route fallback, MIME types and cache headers. A real uvicorn server on
127.0.0.1 (``tests.dicomweb.helpers.running_server``); the OHIF build must have been
fetched (``make test`` runs ``viewer/fetch_ohif.py``)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from archive.settings import Settings
from dicomweb.viewer import REPO_VIEWER_DIST, app_config
from tests.dicomweb.helpers import running_server
from viewer import fetch_ohif

DIST = REPO_VIEWER_DIST


@pytest.fixture(scope="module")
def dist() -> Path:
    if not fetch_ohif.is_current(DIST):
        pytest.fail(f"OHIF {fetch_ohif.VERSION} is not in {DIST}: run `python viewer/fetch_ohif.py` (make test does)")
    return DIST


@pytest.fixture(scope="module")
def server(tmp_path_factory, dist):
    with running_server(Settings(data_dir=tmp_path_factory.mktemp("viewer"), stable_after_s=3600)) as running:
        yield running


def config_of(text: str) -> dict:
    match = re.search(r"window\.config = (\{.*\});\s*$", text, re.S)
    assert match, text[:200]
    return json.loads(match.group(1))


def test_index_at_root(server):
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert '<script src="/app-config.js"></script>' in response.text or "/app-config.js" in response.text
    assert "window.PUBLIC_URL=\"/\"" in response.text


def test_app_config_points_at_this_server(server):
    response = httpx.get(server.url + "/app-config.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-store"
    config = config_of(response.text)
    source = config["dataSources"][0]
    assert source["namespace"] == "@ohif/extension-default.dataSourcesModule.dicomweb"
    assert config["defaultDataSourceName"] == source["sourceName"]
    options = source["configuration"]
    for root in ("qidoRoot", "wadoRoot", "wadoUriRoot"):
        assert options[root] == server.url + "/dicomweb"
    assert options["imageRendering"] == "wadors"
    assert options["enableStudyLazyLoad"] is True
    assert options["omitQuotationForMultipartRequest"] is True
    assert options["bulkDataURI"]["enabled"] is True
    assert "oidc" not in config  # L3NET_AUTH=none
    # The generated config is valid JavaScript that defines window.config.
    node = subprocess.run(
        ["node", "-e", "const window={}; eval(require('fs').readFileSync(0,'utf8')); "
                       "process.stdout.write(JSON.stringify(window.config.dataSources[0].configuration.qidoRoot))"],
        input=response.text, capture_output=True, text=True, check=True,
    )
    assert json.loads(node.stdout) == server.url + "/dicomweb"


def test_client_routes_fall_back_to_index(server, dist):
    index = (dist / "index.html").read_text()
    for route in ("/viewer", "/viewer?StudyInstanceUIDs=1.2.3&hangingprotocolId=@ohif/seg", "/callback?code=abc&state=x",
                  "/segmentation", "/local"):
        response = httpx.get(server.url + route)
        assert response.status_code == 200, route
        assert response.text == index, route
        assert response.headers["content-type"].startswith("text/html")


def test_study_links_get_the_seg_hanging_protocol(server, dist, tmp_path):
    """A link that opens a study without a hanging protocol is sent on with the SEG one
    (the overlay then shows with no click); every other parameter is kept, a link that
    names a protocol is left alone, and an empty setting turns it off."""
    response = httpx.get(server.url + "/viewer?StudyInstanceUIDs=1.2.3,1.2.4&SeriesInstanceUIDs=5.6")
    assert response.status_code == 302 and response.headers["cache-control"] == "no-store"
    assert response.headers["location"] == (
        "/viewer?StudyInstanceUIDs=1.2.3%2C1.2.4&SeriesInstanceUIDs=5.6&hangingprotocolId=%40ohif%2Fseg"
    )
    followed = httpx.get(server.url + "/viewer?StudyInstanceUIDs=1.2.3", follow_redirects=True)
    assert followed.status_code == 200 and followed.text == (dist / "index.html").read_text()
    assert "hangingprotocolId=%40ohif%2Fseg" in str(followed.url)
    kept = httpx.get(server.url + "/viewer?StudyInstanceUIDs=1.2.3&hangingprotocolId=default")
    assert kept.status_code == 200
    with running_server(Settings(data_dir=tmp_path, stable_after_s=3600, viewer_hanging_protocol="")) as plain:
        assert httpx.get(plain.url + "/viewer?StudyInstanceUIDs=1.2.3").status_code == 200


def test_missing_asset_is_404_and_api_is_not_shadowed(server):
    assert httpx.get(server.url + "/no-such-bundle.0123456789abcdef.js").status_code == 404
    assert httpx.get(server.url + "/dicomweb/no-such-resource").status_code == 404
    assert httpx.get(server.url + "/api/no-such").status_code == 404
    studies = httpx.get(server.url + "/dicomweb/studies", headers={"Accept": "application/dicom+json"})
    assert studies.status_code in (200, 204)
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert httpx.get(server.url + "/openapi.json").json()["info"]["title"] == "L3-net Node"


def test_path_traversal_is_refused(server):
    response = httpx.get(server.url + "/..%2F..%2Fpyproject.toml")
    assert response.status_code == 404
    assert "build-system" not in response.text


def test_mime_types_and_cache_headers(server, dist):
    wasm = sorted(dist.glob("*.wasm"))[0].name
    response = httpx.get(f"{server.url}/{wasm}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/wasm"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.content[:4] == b"\0asm"

    bundle = sorted(dist.glob("app.bundle.*.js"))[0].name
    response = httpx.head(f"{server.url}/{bundle}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"].endswith("immutable")
    assert int(response.headers["content-length"]) == (dist / bundle).stat().st_size

    expected = {"/app.bundle.css": "text/css", "/ohif-logo.svg": "image/svg+xml", "/manifest.json": "application/json",
                "/assets/favicon.ico": "image/x-icon"}
    for path, mime in expected.items():
        response = httpx.get(server.url + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(mime), path
        assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(server.url + "/app.bundle.css").headers["cache-control"] == "public, max-age=3600"
    assert httpx.get(server.url + "/sw.js").headers["cache-control"] == "no-cache"
    woff2 = sorted(dist.glob("*.woff2"))[0].name
    assert httpx.get(f"{server.url}/{woff2}").headers["content-type"] == "font/woff2"


def test_cognito_mode_config_has_oidc_block():
    settings = Settings(auth="cognito", cognito_region="eu-west-1", cognito_user_pool_id="eu-west-1_Pool",
                        cognito_client_id="client123", cognito_domain="https://l3net.auth.eu-west-1.amazoncognito.com")
    config = app_config(settings, "https://viewer.example.org")
    (oidc,) = config["oidc"]
    assert oidc["authority"] == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool"
    assert oidc["client_id"] == "client123"
    assert oidc["redirect_uri"] == "/callback"
    assert oidc["response_type"] == "code"
    assert "openid" in oidc["scope"].split()
    assert oidc["revokeTokenTypes"] == ["refresh_token"]
    seed = oidc["metadataSeed"]
    assert seed["end_session_endpoint"] == (
        "https://l3net.auth.eu-west-1.amazoncognito.com/logout?client_id=client123"
        "&logout_uri=https%3A%2F%2Fviewer.example.org%2F"
    )
    assert seed["authorization_endpoint"] == "https://l3net.auth.eu-west-1.amazoncognito.com/oauth2/authorize"
    assert config["dataSources"][0]["configuration"]["qidoRoot"] == "https://viewer.example.org/dicomweb"


def test_cognito_mode_without_pool_is_an_error():
    with pytest.raises(ValueError, match="COGNITO"):
        app_config(Settings(auth="cognito"), "http://127.0.0.1:1")


def test_missing_build_says_how_to_fetch(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", stable_after_s=3600, viewer_dir=tmp_path / "empty")
    with running_server(settings) as running:
        response = httpx.get(running.url + "/viewer")
        assert response.status_code == 503
        assert "fetch_ohif.py" in response.text
        assert httpx.get(running.url + "/app-config.js").status_code == 200


# -- the fetch script --------------------------------------------------------------------

def test_fetched_build_carries_the_pinned_integrity(dist):
    marker = (dist / fetch_ohif.MARKER).read_text()
    assert marker == f"@ohif/app@3.13.2 {fetch_ohif.INTEGRITY}\n"
    assert fetch_ohif.INTEGRITY.startswith("sha512-WZdxmpmG7rqFgW9ZJLcbgr3X")
    assert (dist / "index.html").is_file() and (dist / "app-config.js").is_file()


def test_fetch_is_skipped_when_current(dist, monkeypatch, capsys):
    monkeypatch.setattr(fetch_ohif, "download", lambda workdir: pytest.fail("downloaded again"))
    assert fetch_ohif.fetch(dist) == dist
    assert "already" in capsys.readouterr().out


def _tarball(path: Path, files: dict[str, bytes]) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_integrity_mismatch_leaves_nothing(tmp_path, monkeypatch):
    forged = {"package/dist/index.html": b"<html>forged</html>", "package/package.json": b"{}"}
    monkeypatch.setattr(fetch_ohif, "download", lambda workdir: _tarball(workdir / "app.tgz", forged))
    dest = tmp_path / "dist"
    with pytest.raises(SystemExit, match="integrity mismatch"):
        fetch_ohif.fetch(dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_unpack_keeps_only_dist_and_writes_marker(tmp_path, monkeypatch):
    files = {"package/dist/index.html": b"<html></html>", "package/dist/a/b.js": b"1", "package/README.md": b"x"}
    tarball = _tarball(tmp_path / "app.tgz", files)
    monkeypatch.setattr(fetch_ohif, "INTEGRITY", fetch_ohif.integrity_of(tarball))
    monkeypatch.setattr(fetch_ohif, "download", lambda workdir: tarball)
    dest = tmp_path / "out" / "dist"
    fetch_ohif.fetch(dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        ".l3net-ohif", "a/b.js", "index.html"]
    assert fetch_ohif.is_current(dest)


def test_cognito_mode_serves_viewer_but_dicomweb_needs_a_token(tmp_path):
    """In Cognito mode the viewer and its config load without a token (the login happens
    in the browser), the config carries the OIDC block, and DICOMweb answers 401 until
    the request carries a valid access token."""
    from tests.dicomweb.helpers import CLIENT_ID, POOL, REGION, Keys, jwks_server

    keys = Keys()
    with jwks_server(keys) as jwks:
        settings = Settings(
            data_dir=tmp_path / "data", stable_after_s=3600, auth="cognito", cognito_region=REGION,
            cognito_user_pool_id=POOL, cognito_client_id=CLIENT_ID, cognito_jwks_url=jwks,
            cognito_domain="http://127.0.0.1:9/hosted-ui",
        )
        with running_server(settings) as running:
            assert httpx.get(running.url + "/").status_code == 200
            assert httpx.get(running.url + "/viewer?StudyInstanceUIDs=1.2.3", follow_redirects=True).status_code == 200
            config = config_of(httpx.get(running.url + "/app-config.js").text)
            (oidc,) = config["oidc"]
            assert oidc["authority"] == f"https://cognito-idp.{REGION}.amazonaws.com/{POOL}"
            assert oidc["client_id"] == CLIENT_ID
            assert oidc["metadataSeed"]["end_session_endpoint"].startswith("http://127.0.0.1:9/hosted-ui/logout?")
            accept = {"Accept": "application/dicom+json"}
            refused = httpx.get(running.url + "/dicomweb/studies", headers=accept)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            token = keys.token(["l3net-viewer-group", "viewer"])
            allowed = httpx.get(running.url + "/dicomweb/studies", headers={**accept, "Authorization": f"Bearer {token}"})
            assert allowed.status_code in (200, 204)
