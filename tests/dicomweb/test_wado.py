"""WADO-RS: instances (as stored and transcoded), metadata from the index, frames,
bulk data, rendered images and thumbnails, and the 400/404/406 answers."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from dicomweb.multipart import parse, parse_params

ANY_SYNTAX_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def _get(server, path: str, accept: str | None = None, **params) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return httpx.get(server.dicomweb + path, headers=headers, params=params, timeout=60)


def _parts(response: httpx.Response):
    main, params = parse_params(response.headers["content-type"])
    assert main == "multipart/related"
    return params, parse(response.content, params["boundary"])


def _instance_path(library, name: str, index: int = 0) -> tuple[str, pydicom.Dataset]:
    study, series, sops = library.uids(name)
    path = next(p for p in library.files[name] if pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID == sops[index])
    return f"/studies/{study}/series/{series}/instances/{sops[index]}", pydicom.dcmread(path)


def test_study_retrieve_as_stored_is_byte_identical_in_instance_order(open_server, library):
    study, _, sops = library.uids("lidc1")
    response = _get(open_server, f"/studies/{study}", ANY_SYNTAX_DICOM)
    assert response.status_code == 200
    params, parts = _parts(response)
    assert params["type"] == "application/dicom"
    originals = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in library.files["lidc1"]}
    assert [pydicom.dcmread(io.BytesIO(bytes(p.content))).SOPInstanceUID for p in parts] == sops
    for part in parts:
        received = pydicom.dcmread(io.BytesIO(bytes(part.content)))
        original = originals[received.SOPInstanceUID]
        # The stored object is the file as sent with our file meta (source AE, owner).
        start = len(original.read_bytes()) - len(received.PixelData)
        assert bytes(part.content)[-len(received.PixelData):] == original.read_bytes()[start:]
        assert part.headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"


def test_compressed_instances_are_transcoded_by_default_and_kept_on_request(open_server, library):
    path, original = _instance_path(library, "j2k", 2)
    default = _get(open_server, path)
    assert default.status_code == 200
    _, (part,) = _parts(default)
    assert part.headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    decoded = pydicom.dcmread(io.BytesIO(bytes(part.content)))
    assert decoded.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(decoded.pixel_array, original.pixel_array)
    # The same instance: pydicom's decompress() would give it a new SOP Instance UID.
    assert decoded.SOPInstanceUID == original.SOPInstanceUID
    stored = _get(open_server, path, 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90')
    _, (part,) = _parts(stored)
    assert pydicom.dcmread(io.BytesIO(bytes(part.content))).PixelData == original.PixelData
    refused = _get(open_server, path, 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50')
    assert refused.status_code == 406


def test_series_metadata_has_every_instance_with_absolute_bulk_uris(open_server, library):
    study, series, sops = library.uids("smith")
    response = _get(open_server, f"/studies/{study}/series/{series}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom+json"
    metadata = response.json()
    assert sorted(m["00080018"]["Value"][0] for m in metadata) == sorted(sops)
    base = f"{open_server.dicomweb}/studies/{study}/series/{series}/instances/"
    for item in metadata:
        sop = item["00080018"]["Value"][0]
        assert item["7FE00010"] == {"vr": "OW", "BulkDataURI": f"{base}{sop}/bulk/7FE00010"}
        assert item["00420011"]["BulkDataURI"] == f"{base}{sop}/bulk/00420011"
        assert item["00280010"] == {"vr": "US", "Value": [16]}
        assert item["00083002"]["Value"] == ["1.2.840.10008.1.2.1"]
    everything = _get(open_server, f"/studies/{study}/metadata").json()
    assert len(everything) == len(sops)
    one = _get(open_server, f"/studies/{study}/series/{series}/instances/{sops[0]}/metadata").json()
    assert [m["00080018"]["Value"][0] for m in one] == [sops[0]]


def test_metadata_needs_no_object_read(without_objects):
    server, (study, series, sops) = without_objects("lidc2")
    metadata = _get(server, f"/studies/{study}/series/{series}/metadata").json()
    assert len(metadata) == len(sops)


def test_bulk_data_of_an_attribute_and_of_pixel_data(open_server, library):
    path, original = _instance_path(library, "smith")
    response = _get(open_server, f"{path}/bulk/00420011")
    assert response.status_code == 200
    _, (part,) = _parts(response)
    assert bytes(part.content) == original[0x00420011].value
    _, (pixels,) = _parts(_get(open_server, f"{path}/bulk/7FE00010"))
    assert bytes(pixels.content) == original.PixelData
    assert _get(open_server, f"{path}/bulk/00100010").status_code == 404
    assert _get(open_server, f"{path}/bulk/zz").status_code == 400


def test_native_frames_raw_and_as_stored(open_server, library):
    path, original = _instance_path(library, "lidc1", 5)
    for accept in (None, OHIF_FRAMES, 'multipart/related; type="application/octet-stream"'):
        response = _get(open_server, f"{path}/frames/1", accept)
        assert response.status_code == 200, accept
        params, (part,) = _parts(response)
        assert params["type"] == "application/octet-stream"
        assert part.headers["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
        assert bytes(part.content) == original.PixelData
    assert _get(open_server, f"{path}/frames/1,1").status_code == 200
    assert _get(open_server, f"{path}/frames/2").status_code == 404
    assert _get(open_server, f"{path}/frames/0").status_code == 400
    assert _get(open_server, f"{path}/frames/a").status_code == 400
    assert _get(open_server, f"{path}/frames/1", 'multipart/related; type="image/jp2"').status_code == 406


def test_compressed_frames_as_stored_and_decoded(open_server, library):
    path, original = _instance_path(library, "j2k", 4)
    stored = _get(open_server, f"{path}/frames/1", OHIF_FRAMES)
    _, (part,) = _parts(stored)
    assert part.headers["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.90"
    assert bytes(part.content) == pydicom.encaps.get_frame(original.PixelData, 0, number_of_frames=1)
    jp2 = _get(open_server, f"{path}/frames/1", 'multipart/related; type="image/jp2"')
    _, (part,) = _parts(jp2)
    assert part.headers["content-type"].startswith("image/jp2")
    raw = _get(open_server, f"{path}/frames/1")
    _, (part,) = _parts(raw)
    assert part.headers["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    expected = original.pixel_array.astype(original.pixel_array.dtype.newbyteorder("<")).tobytes()
    assert bytes(part.content) == expected


def test_rendered_uses_the_dataset_window_or_the_query(open_server, library):
    path, original = _instance_path(library, "smith", 1)
    jpeg = _get(open_server, f"{path}/rendered")
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    png = _get(open_server, f"{path}/rendered", "image/png")
    assert png.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(png.content)))
    assert image.shape == (16, 16)
    # Stored 0..510 step 2 → HU -1024..-514; the dataset window 40/400 shows all of it black.
    assert image.max() == 0
    wide = np.asarray(Image.open(io.BytesIO(_get(open_server, f"{path}/rendered", "image/png", window="-769,512").content)))
    assert wide.min() == 0 and wide.max() == 255 and np.all(np.diff(wide.astype(int).ravel()) >= 0)
    frame = _get(open_server, f"{path}/frames/1/rendered", "image/png", window="-769,512,linear-exact")
    assert frame.status_code == 200
    scaled = Image.open(io.BytesIO(_get(open_server, f"{path}/rendered", "image/png", viewport="8,8").content))
    assert scaled.size == (8, 8)
    for params in ({"window": "40"}, {"window": "a,b"}, {"window": "40,0"}, {"window": "40,400,cubic"},
                   {"viewport": "0,10"}, {"quality": "101"}):
        assert _get(open_server, f"{path}/rendered", **params).status_code == 400, params
    assert _get(open_server, f"{path}/rendered", "image/gif").status_code == 406


def test_thumbnails(open_server, library):
    study, series, _ = library.uids("lidc1")
    for path in (f"/studies/{study}/thumbnail", f"/studies/{study}/series/{series}/thumbnail"):
        response = _get(open_server, path, "image/png")
        assert response.status_code == 200
        assert max(Image.open(io.BytesIO(response.content)).size) == 128


@pytest.mark.parametrize(
    "path, status",
    [
        ("/studies/1.2.3.4.5", 404),
        ("/studies/1.2.3.4.5/metadata", 404),
        ("/studies/abc", 400),
        ("/studies/1.2.3..4", 400),
        ("/studies/1.02.3", 400),
        ("/studies/1.2.3/series/x;y", 400),
        ("/studies/1.2.3/series/1.2/instances/1.2.3%00", 400),
        # Decoded, the slashes make it match no route at all.
        ("/studies/..%2F..%2Fetc%2Fpasswd/metadata", 404),
        ("/studies/1.2.3%2F..%2F..%2Fsecret", 404),
        ("/studies/" + "1" * 65, 400),
    ],
)
def test_bad_and_unknown_paths(open_server, path, status):
    assert _get(open_server, path).status_code == status


def test_unknown_series_and_instance_in_a_known_study_are_404(open_server, library):
    study, series, _ = library.uids("lidc1")
    assert _get(open_server, f"/studies/{study}/series/1.2.3.4/metadata").status_code == 404
    assert _get(open_server, f"/studies/{study}/series/{series}/instances/1.2.3.4/frames/1").status_code == 404
    other_study = library.uids("lidc2")[0]
    assert _get(open_server, f"/studies/{other_study}/series/{series}/metadata").status_code == 404


def test_unacceptable_media_types_get_406(open_server, library):
    study, series, _ = library.uids("lidc1")
    assert _get(open_server, f"/studies/{study}", "application/zip").status_code == 406
    assert _get(open_server, f"/studies/{study}", 'multipart/related; type="application/dicom+xml"').status_code == 406
    assert _get(open_server, f"/studies/{study}/series/{series}/metadata", "application/dicom+xml").status_code == 406
    assert _get(open_server, "/studies", "text/html").status_code == 406
    ok = _get(open_server, f"/studies/{study}/series/{series}/metadata", "application/dicom+json, */*;q=0.1")
    assert ok.status_code == 200 and json.loads(ok.content)


def test_compressed_binary_seg_is_sent_bit_packed(fresh_server, library, tmp_path):
    """The worker stores its BINARY SEG as JPEG 2000 Lossless. A client asking for
    Explicit VR Little Endian (OHIF does, for a SEG) gets native 1-bit pixel data:
    bits packed 8 to a byte, frames back to back, equal to the SEG written uncompressed."""
    from inference.pipeline import analyze
    from inference.seg import write_seg
    from tests.dicomweb.helpers import ingest

    result = analyze(library.files["lidc1"])
    native = write_seg(result.volume, result.segmentation, result.seg.SeriesInstanceUID, result.seg.SOPInstanceUID,
                       compress=False)
    assert result.seg.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    path = tmp_path / "seg.dcm"
    result.seg.save_as(path, enforce_file_format=True)
    server = fresh_server()
    ingest(server, [path])
    url = f"/studies/{result.seg.StudyInstanceUID}/series/{result.seg.SeriesInstanceUID}/instances/{result.seg.SOPInstanceUID}"

    _, (part,) = _parts(_get(server, url, 'multipart/related; type="application/dicom"'))
    assert part.headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    sent = pydicom.dcmread(io.BytesIO(bytes(part.content)))
    assert sent.BitsAllocated == 1 and sent.NumberOfFrames == native.NumberOfFrames
    assert sent.PixelData == native.PixelData

    frame_bytes = int(native.Rows) * int(native.Columns) // 8
    for number in (1, int(native.NumberOfFrames)):
        _, (part,) = _parts(_get(server, f"{url}/frames/{number}"))
        assert part.headers["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
        assert bytes(part.content) == native.PixelData[(number - 1) * frame_bytes:number * frame_bytes]


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5",
                                    "1.2.840.10008.1.2.1.99"])
def test_native_instances_are_transcoded_losslessly_on_request(open_server, library, syntax):
    """JPEG 2000, JPEG-LS and RLE lossless and Deflated, as dcm4chee and Orthanc offer:
    the instance arrives in the syntax asked for, with the very same pixel values."""
    path, original = _instance_path(library, "lidc1", 3)
    response = _get(open_server, path, f'multipart/related; type="application/dicom"; transfer-syntax={syntax}')
    assert response.status_code == 200
    params, (part,) = _parts(response)
    assert params["transfer-syntax"] == syntax
    assert part.headers["content-type"] == f"application/dicom; transfer-syntax={syntax}"
    sent = pydicom.dcmread(io.BytesIO(bytes(part.content)))
    assert sent.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(sent.pixel_array, original.pixel_array)
    assert sent.SOPInstanceUID == original.SOPInstanceUID


def test_compressed_instances_are_recompressed_and_lossy_is_refused(open_server, library):
    path, original = _instance_path(library, "j2k", 1)  # stored JPEG 2000 lossless
    response = _get(open_server, path, 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.5')
    _, (part,) = _parts(response)
    sent = pydicom.dcmread(io.BytesIO(bytes(part.content)))
    assert sent.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    assert np.array_equal(sent.pixel_array, original.pixel_array)
    assert sent.SOPInstanceUID == original.SOPInstanceUID
    for lossy in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.91"):
        assert _get(open_server, path, f'multipart/related; type="application/dicom"; transfer-syntax={lossy}').status_code == 406


def test_binary_seg_asked_for_in_rle_comes_bit_packed_and_says_so(fresh_server, library, tmp_path):
    """1-bit pixels have no RLE/JPEG-LS encoder here: the SEG comes in Explicit VR Little
    Endian and its part's Content-Type names that syntax; an SR (no pixels) comes in the
    syntax asked for."""
    from inference.pipeline import analyze
    from tests.dicomweb.helpers import ingest

    result = analyze(library.files["lidc1"])
    for name, ds in (("seg.dcm", result.seg), ("sr.dcm", result.sr)):
        ds.save_as(tmp_path / name, enforce_file_format=True)
    server = fresh_server()
    ingest(server, [tmp_path / "seg.dcm", tmp_path / "sr.dcm"])
    rle = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.5'
    seg_url = f"/studies/{result.seg.StudyInstanceUID}/series/{result.seg.SeriesInstanceUID}/instances/{result.seg.SOPInstanceUID}"
    _, (part,) = _parts(_get(server, seg_url, rle))
    assert part.headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    sent = pydicom.dcmread(io.BytesIO(bytes(part.content)))
    assert sent.BitsAllocated == 1 and np.array_equal(sent.pixel_array, result.seg.pixel_array)
    sr_url = f"/studies/{result.sr.StudyInstanceUID}/series/{result.sr.SeriesInstanceUID}/instances/{result.sr.SOPInstanceUID}"
    _, (part,) = _parts(_get(server, sr_url, rle))
    assert part.headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.5"
    assert pydicom.dcmread(io.BytesIO(bytes(part.content))).ContentSequence
    # A 1-bit SEG and an SR have no rendering: a study of only those has nothing to render.
    rendered = _get(server, f"/studies/{result.seg.StudyInstanceUID}/rendered")
    assert rendered.status_code == 404 and "nothing to render" in rendered.text


def test_study_and_series_rendered_are_one_image_per_instance(open_server, library):
    """PS3.18 rendered study and series: multipart/related, one rendered image (frame 1)
    per instance in instance order; PNG on request; parameters checked before streaming."""
    study, series, sops = library.uids("lidc1")
    response = _get(open_server, f"/studies/{study}/series/{series}/rendered")
    assert response.status_code == 200
    params, parts = _parts(response)
    assert params["type"] == "image/jpeg" and len(parts) == len(sops)
    first = Image.open(io.BytesIO(bytes(parts[0].content)))
    assert first.format == "JPEG" and first.size == (512, 512)
    single = _get(open_server, f"/studies/{study}/series/{series}/instances/{sops[0]}/rendered")
    assert bytes(parts[0].content) == single.content  # the same rendering, in instance order
    png = _get(open_server, f"/studies/{study}/rendered", 'multipart/related; type="image/png"', viewport="64,64")
    params, parts = _parts(png)
    assert params["type"] == "image/png" and len(parts) == len(sops)
    assert all(Image.open(io.BytesIO(bytes(p.content))).size[0] <= 64 for p in parts)
    assert _get(open_server, f"/studies/{study}/rendered", window="x").status_code == 400
    assert _get(open_server, f"/studies/{study}/rendered", "application/dicom").status_code == 406
    assert _get(open_server, "/studies/1.2.3.4/rendered").status_code == 404
