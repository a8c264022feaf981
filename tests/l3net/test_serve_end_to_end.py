"""The product's main path through ``l3net serve``: a PACS pushes a chest CT with dcmtk
storescu; once the study is stable the in-process worker analyses it; DICOMweb then
serves the SEG, the SR and the PDF report in the study, and the analysis API links them."""

from __future__ import annotations

import io
import time

import httpx
import pydicom
import pytest

from dicomweb.multipart import parse, parse_params
from tests.viewer.stack import running_stack

pytestmark = pytest.mark.slow


def _instances(url: str, accept: str) -> list[pydicom.Dataset]:
    response = httpx.get(url, headers={"Accept": accept}, timeout=60)
    assert response.status_code == 200, response.text
    _, params = parse_params(response.headers["content-type"])
    return [pydicom.dcmread(io.BytesIO(bytes(part.content))) for part in parse(response.content, params["boundary"])]


def test_pushed_study_is_analysed_and_served(small_series, tmp_path):
    files = small_series["LIDC-IDRI-0001"]
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    with running_stack(tmp_path / "data", L3NET_STABLE_AFTER_S="2", L3NET_MIN_SERIES_SLICES="10") as stack:
        stack.push(files)
        deadline, analysis = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            analysis = httpx.get(f"{stack.url}/api/studies/{study}/analysis", timeout=10).json()
            if (analysis.get("job") or {}).get("state") in ("done", "failed", "dead"):
                break
            time.sleep(0.5)
        assert (analysis.get("job") or {}).get("state") == "done", analysis
        assert analysis["prognosis"]["label"] == "suggested — not for diagnostic use"
        assert analysis["measurements"]["slices"] == len(files)

        series = stack.wait_for_series(study, 4)
        modalities = sorted(item["00080060"]["Value"][0] for item in series)
        assert modalities == ["CT", "DOC", "SEG", "SR"]

        # The SEG (stored JPEG 2000) as OHIF asks for it: Explicit VR Little Endian, 1-bit.
        [seg] = _instances(analysis["links"]["seg"], 'multipart/related; type="application/dicom"')
        assert seg.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and seg.BitsAllocated == 1
        assert [s.SegmentLabel for s in seg.SegmentSequence][:2] == ["Right lung", "Left lung"]
        assert seg.pixel_array.any()
        [sr] = _instances(analysis["links"]["sr"], 'multipart/related; type="application/dicom"')
        assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
        assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
        [report] = _instances(analysis["links"]["report"], 'multipart/related; type="application/dicom"')
        assert report.Modality == "DOC" and bytes(report.EncapsulatedDocument).startswith(b"%PDF-")
        for ds in (seg, sr, report):
            assert ds.StudyInstanceUID == study
        assert seg.FrameOfReferenceUID == pydicom.dcmread(files[0], stop_before_pixels=True).FrameOfReferenceUID
