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
    assert _post(server, parts, content_type='multipart/related; type="application/dicom+xml"; boundary=x').status_code == 415
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


def _json_parts(paths, pixel_media=None) -> list[tuple[dict[str, str], bytes]]:
    """Metadata-and-bulk STOW parts of ``paths``: one JSON part with every dataset, then
    one part per bulk element (the Pixel Data as stored: native octets, or the one
    compressed frame as ``pixel_media``), named by Content-Location."""
    import json

    documents, bulk = [], []
    for path in paths:
        ds = pydicom.dcmread(path)
        syntax = str(ds.file_meta.TransferSyntaxUID)

        def handler(element, ds=ds, syntax=syntax):
            uri = f"http://client.example/bulk/{ds.SOPInstanceUID}/{element.tag:08X}"
            if element.tag == 0x7FE00010 and pixel_media:
                frame = pydicom.encaps.get_frame(element.value, 0, number_of_frames=1)
                bulk.append(({"Content-Type": f"{pixel_media}; transfer-syntax={syntax}", "Content-Location": uri}, frame))
            else:
                headers = {"Content-Type": "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
                           "Content-Location": uri}
                bulk.append((headers, bytes(element.value)))
            return uri

        documents.append(ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=handler))
    return [({"Content-Type": "application/dicom+json"}, json.dumps(documents).encode()), *bulk]


def _post_json(server, parts) -> httpx.Response:
    boundary = new_boundary()
    body = b"".join(stream([(headers, [data]) for headers, data in parts], boundary))
    return httpx.post(server.dicomweb + "/studies", content=body, timeout=60,
                      headers={"Content-Type": f'multipart/related; type="application/dicom+json"; boundary={boundary}'})


@pytest.mark.parametrize("pixel_media", [None, "image/jp2"], ids=["native pixels", "JPEG 2000 frame"])
def test_metadata_with_bulk_data_is_stored_as_the_instances(fresh_server, library, tmp_path, pixel_media):
    """type="application/dicom+json": each dataset with its bulk parts becomes the same
    instance (UIDs, attributes, pixel values) as if sent as application/dicom."""
    server = fresh_server()
    paths = library.files["lidc2"][:3]
    if pixel_media:  # the same slices, JPEG 2000 lossless, so each frame is one bulk part
        from pydicom.uid import JPEG2000Lossless

        compressed = []
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.compress(JPEG2000Lossless, generate_instance_uid=False)
            ds.save_as(tmp_path / path.name, enforce_file_format=True)
            compressed.append(tmp_path / path.name)
        paths = compressed
    response = _post_json(server, _json_parts(paths, pixel_media))
    assert response.status_code == 200, response.text
    assert len(response.json()[REFERENCED]["Value"]) == 3
    for path in paths:
        original = pydicom.dcmread(path)
        with server.archive.sessions() as db:
            row = db.query(Instance).filter_by(sop_instance_uid=str(original.SOPInstanceUID)).one()
        stored = pydicom.dcmread(io.BytesIO(server.archive.store.get_bytes(row.object_key)))
        assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert (stored.PatientID, stored.SeriesInstanceUID, stored.ImagePositionPatient) == (
            original.PatientID, original.SeriesInstanceUID, original.ImagePositionPatient)
        assert (stored.pixel_array == original.pixel_array).all()


def test_metadata_whose_bulk_part_is_missing_is_refused_with_its_uid(fresh_server, library):
    server = fresh_server()
    path = library.files["lidc2"][0]
    parts = _json_parts([path])[:1]  # the JSON without its Pixel Data part
    response = _post_json(server, parts)
    assert response.status_code == 409
    [failed] = response.json()[FAILED]["Value"]
    assert failed[FAILURE_REASON]["Value"] == [CANNOT_UNDERSTAND]
    assert failed["00081155"]["Value"] == [str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)]
    assert "names no part of the request" in failed["00000902"]["Value"][0]
    bad = _post_json(server, [({"Content-Type": "application/dicom+json"}, b"{not json")])
    assert bad.status_code == 409 and "not JSON" in bad.json()[FAILED]["Value"][0]["00000902"]["Value"][0]


def test_metadata_nested_too_deep_is_refused_not_a_server_error(fresh_server):
    server = fresh_server()
    deep = b"[" * 100_000 + b"]" * 100_000
    nested = b'[{"00400275": {"vr": "SQ", "Value": [' * 2000 + b"{}" + b"]}}]" * 2000
    for body in (deep, nested):
        response = _post_json(server, [({"Content-Type": "application/dicom+json"}, body)])
        assert response.status_code == 409, response.text[:300]
        assert response.json()[FAILED]["Value"][0][FAILURE_REASON]["Value"] == [CANNOT_UNDERSTAND]
