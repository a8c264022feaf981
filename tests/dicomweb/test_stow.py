"""STOW-RS: stored through the spool and committer as C-STORE is, the response dataset
with its failure reasons, 200/202/409, 400 for malformed bodies, 413 and 415."""

from __future__ import annotations

import io
from datetime import timedelta

import httpx
import pydicom
import pytest

from archive.index.models import Instance, Study, utcnow
from archive.ingest import CANNOT_UNDERSTAND, DATASET_DOES_NOT_MATCH_SOP_CLASS
from dicomweb.multipart import new_boundary, stream

FAILED, REFERENCED, FAILURE_REASON = "00081198", "00081199", "00081197"


def _body(parts: list[tuple[str, bytes]], boundary: str) -> bytes:
    return b"".join(stream([({"Content-Type": kind}, [data]) for kind, data in parts], boundary))


def _post(server, parts: list[tuple[str, bytes]], path: str = "/studies", **headers) -> httpx.Response:
    boundary = new_boundary()
    content_type = headers.pop("content_type", f'multipart/related; type="application/dicom"; boundary={boundary}')
    return httpx.post(server.dicomweb + path, content=_body(parts, boundary),
                      headers={"Content-Type": content_type, **headers}, timeout=60)


def _dicom(paths) -> list[tuple[str, bytes]]:
    return [("application/dicom", p.read_bytes()) for p in paths]


def _reasons(response: httpx.Response) -> list[int]:
    return [item[FAILURE_REASON]["Value"][0] for item in response.json().get(FAILED, {}).get("Value", [])]


def test_store_then_find_retrieve_and_analyse_like_c_store(fresh_server, library):
    from dicom_node.stability import settle_idle_studies

    server = fresh_server()
    response = _post(server, _dicom(library.files["lidc2"]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    body = response.json()
    study, series, sops = library.uids("lidc2")
    assert body["00081190"]["Value"] == [f"{server.dicomweb}/studies/{study}"]
    referenced = body[REFERENCED]["Value"]
    assert sorted(item["00081155"]["Value"][0] for item in referenced) == sorted(sops)
    assert referenced[0]["00081190"]["Value"][0].startswith(f"{server.dicomweb}/studies/{study}/series/{series}/instances/")
    assert FAILED not in body
    # Committed before the answer: a search right after finds everything.
    found = httpx.get(f"{server.dicomweb}/studies/{study}/instances").json()
    assert len(found) == len(sops)
    # In the archive as C-STORE leaves it, with the web's source AE recorded...
    with server.archive.sessions() as db:
        row = db.query(Instance).filter_by(sop_instance_uid=sops[0]).one()
        stored = pydicom.dcmread(io.BytesIO(server.archive.store.get_bytes(row.object_key)))
        assert stored.file_meta.SourceApplicationEntityTitle == "DICOMWEB"
        assert row.source_ae == "DICOMWEB"
    assert not list(server.committer.spool.ready.iterdir())
    # ...and analysed the same way: once stable, the study gets its job (12 slices are
    # too few for analysis here, so the settings ask for fewer).
    server.archive.settings.min_series_slices = 10
    jobs = settle_idle_studies(server.archive, now=utcnow() + timedelta(hours=2))
    assert len(jobs) == 1
    with server.archive.sessions() as db:
        assert db.query(Study).filter_by(study_instance_uid=study).one().state == "queued"


def test_store_into_a_named_study_refuses_other_studies(fresh_server, library):
    server = fresh_server()
    study = library.uids("smith")[0]
    response = _post(server, _dicom(library.files["smith"] + library.files["jones"]), f"/studies/{study}")
    assert response.status_code == 202, response.text
    assert _reasons(response) == [DATASET_DOES_NOT_MATCH_SOP_CLASS] * 2
    failed = response.json()[FAILED]["Value"]
    assert {item["00081155"]["Value"][0] for item in failed} == set(library.uids("jones")[2])
    assert all("differs" in item["00000902"]["Value"][0] for item in failed)
    assert len(response.json()[REFERENCED]["Value"]) == 2


def test_nothing_stored_is_409_with_the_reasons(fresh_server, library, shared_data):
    server = fresh_server()
    no_uids = sorted((shared_data / "ct" / "abdomen-j2k").iterdir())[0].read_bytes()  # anonymised of its UIDs
    garbage = b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\x10\x00\x00\x00" + b"\xff" * 40
    parts = [("application/dicom", no_uids), ("application/dicom", b"not dicom at all"),
             ("text/plain", b"hello"), ("application/dicom", garbage)]
    response = _post(server, parts)
    assert response.status_code == 409, response.text
    assert _reasons(response) == [DATASET_DOES_NOT_MATCH_SOP_CLASS, CANNOT_UNDERSTAND, CANNOT_UNDERSTAND,
                                  CANNOT_UNDERSTAND]
    comments = [item["00000902"]["Value"][0] for item in response.json()[FAILED]["Value"]]
    assert "StudyInstanceUID" in comments[0] and "Part 10" in comments[1] and "text/plain" in comments[2]
    assert REFERENCED not in response.json()
    assert httpx.get(f"{server.dicomweb}/studies").json() == []


# The server's own header read warns about the invalid UID too, before refusing it.
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_uids_that_would_escape_the_key_layout_are_refused(fresh_server, library, tmp_path):
    server = fresh_server()
    ds = pydicom.dcmread(library.files["smith"][0])
    path = tmp_path / "evil.dcm"
    with pytest.warns(UserWarning):  # pydicom says so too, and writes it anyway
        ds.SeriesInstanceUID = "1.2.3/../../../../etc"
        ds.save_as(path, enforce_file_format=True)
    response = _post(server, _dicom([path]))
    assert response.status_code == 409
    assert _reasons(response) == [DATASET_DOES_NOT_MATCH_SOP_CLASS]
    assert _post(server, _dicom(library.files["smith"][:1]), "/studies/1.2.3%2F..").status_code in (400, 404, 405)
    assert _post(server, _dicom(library.files["smith"][:1]), "/studies/1.2.x").status_code == 400


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"no delimiter anywhere", "no boundary delimiter"),
        (b"--BOUNDARY\r\nContent-Type: application/dicom\r\n\r\nDICM...", "not closed"),
        (b"--BOUNDARY\r\nContent-Type application/dicom\r\n\r\nx\r\n--BOUNDARY--", "malformed header"),
        (b"--BOUNDARY--\r\n", "no parts"),
        (b"", "empty"),
    ],
)
def test_malformed_multipart_is_400_with_the_reason(fresh_server, body, reason):
    server = fresh_server()
    response = httpx.post(f"{server.dicomweb}/studies", content=body,
                          headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=BOUNDARY'})
    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_content_types_other_than_dicom_multipart_are_415_or_400(fresh_server, library):
    server = fresh_server()
    parts = _dicom(library.files["smith"][:1])
    assert _post(server, parts, content_type="application/dicom").status_code == 415
    assert _post(server, parts, content_type='multipart/related; type="application/dicom+json"; boundary=x').status_code == 415
    assert _post(server, parts, content_type='multipart/related; type="application/dicom"').status_code == 400


def test_requests_over_the_size_limit_are_413(fresh_server, library):
    server = fresh_server(stow_max_bytes=200_000)
    big = _dicom(library.files["lidc1"][:1])  # about 0.5 MB
    assert _post(server, big).status_code == 413

    def chunked():  # no Content-Length: the limit is counted as the body arrives
        yield _body(big, "B")

    response = httpx.post(f"{server.dicomweb}/studies", content=chunked(),
                          headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=B'})
    assert response.status_code == 413
    assert _post(server, _dicom(library.files["smith"][:1])).status_code == 200  # small ones still pass
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'l3net_stow_instances_total{outcome="stored"} 1.0' in metrics
