"""Media types and status codes across the resources (PS3.18), health, metrics and CORS."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def paths(library):
    study, series, sops = library.uids("lidc1")
    instance = f"/studies/{study}/series/{series}/instances/{sops[0]}"
    return {"study": f"/studies/{study}", "series": f"/studies/{study}/series/{series}", "instance": instance}


@pytest.mark.parametrize(
    "resource, suffix, accept, media, part",
    [
        ("study", "", None, "multipart/related", "application/dicom"),
        ("series", "", None, "multipart/related", "application/dicom"),
        ("instance", "", 'multipart/related; type="application/dicom"', "multipart/related", "application/dicom"),
        ("study", "/metadata", None, "application/dicom+json", None),
        ("series", "/metadata", "application/dicom+json", "application/dicom+json", None),
        ("instance", "/metadata", "application/json", "application/json", None),
        ("instance", "/frames/1", None, "multipart/related", "application/octet-stream"),
        ("instance", "/rendered", None, "image/jpeg", None),
        ("instance", "/rendered", "image/png", "image/png", None),
        ("instance", "/thumbnail", None, "image/jpeg", None),
        ("series", "/instances", None, "application/dicom+json", None),
    ],
)
def test_media_types(open_server, paths, resource, suffix, accept, media, part):
    response = httpx.get(open_server.dicomweb + paths[resource] + suffix, headers={"Accept": accept} if accept else {})
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.split(";")[0] == media
    if part:
        assert f'type="{part}"' in content_type and "boundary=" in content_type


def test_health_and_readiness(open_server):
    assert httpx.get(f"{open_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{open_server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"index": "ok", "object_store": "ok"}


def test_metrics(open_server, paths):
    httpx.get(open_server.dicomweb + "/studies")
    httpx.get(open_server.dicomweb + paths["series"] + "/metadata")
    httpx.get(open_server.dicomweb + "/studies/1.2.3.4/metadata")
    response = httpx.get(f"{open_server.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'l3net_http_requests_total{method="GET",route="/dicomweb/studies",status="200"}' in text
    assert 'route="/dicomweb/studies/{study}/series/{series}/metadata",status="200"' in text
    assert 'route="/dicomweb/studies/{study}/metadata",status="404"' in text
    assert "l3net_http_request_duration_seconds_bucket" in text
    assert "1.2.3.4" not in text  # route templates, never raw paths
    for name in ('l3net_jobs{state="queued"}', "l3net_analysis_duration_seconds_count", "l3net_stow_instances_total",
                 'l3net_studies{state="receiving"} 7.0'):
        assert name in text, name


def test_cors_for_the_viewer_origin(fresh_server):
    server = fresh_server(cors_origins=["http://127.0.0.1:3000"])
    preflight = httpx.options(f"{server.dicomweb}/studies", headers={
        "Origin": "http://127.0.0.1:3000", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    simple = httpx.get(f"{server.dicomweb}/studies", headers={"Origin": "http://127.0.0.1:3000"})
    assert simple.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    assert "warning" in simple.headers["access-control-expose-headers"].lower()
    other = httpx.get(f"{server.dicomweb}/studies", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
