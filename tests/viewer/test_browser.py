"""OHIF in Debian chromium (playwright-core, no browser download) against ``l3net serve``:
a study pushed over DIMSE appears in the study list, the CT renders, the SEG overlay
loads with its two named segments in distinct colours, the SR's measurement values are
shown, and DICOMweb without a token is refused in Cognito mode. Screenshots go to
test-artifacts/viewer/."""

from __future__ import annotations

import httpx
import pydicom
import pytest

from tests.viewer import results
from tests.viewer.stack import ARTIFACTS, require_browser, run_node, running_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lidc_small(small_series):
    return small_series["LIDC-IDRI-0001"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, lidc_small):
    """``l3net serve`` (no auth, loopback) holding the CT (sent by C-STORE) and the
    stand-in SEG and SR (stored by STOW-RS)."""
    require_browser()
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        running.push(lidc_small)
        ct = results.read_series(lidc_small)
        seg, sr = results.build(ct)
        response = running.stow([seg, sr])
        assert response.status_code == 200, response.text
        running.wait_for_series(str(ct[0].StudyInstanceUID), 3)
        yield running, ct[0], seg, sr


def test_ohif_shows_study_ct_seg_and_sr(stack):
    server, ct, seg, sr = stack
    findings = run_node("ohif_check.mjs", {
        "url": server.url,
        "study": str(ct.StudyInstanceUID),
        "studyDate": "01-Jan-2000",
        "segDescription": str(seg.SeriesDescription),
        "srDescription": str(sr.SeriesDescription),
        "segmentLabels": [label for label, _kind, _rgb in results.SEGMENTS],
        "measuredValues": [f"{value:.1f}" for value in results.MEASURED.values()],
        "prefix": "noauth-",
    })
    assert "error" not in findings, findings.get("error", "") + "\n" + findings.get("failureText", "")
    assert findings["steps"] == ["list", "ct", "seg", "sr"]
    # The study pushed over DIMSE is listed (its accession number and modalities).
    assert str(ct.AccessionNumber) in findings["listText"]
    assert "CT" in findings["listText"]
    # The CT rendered: mostly non-black, many grey levels, no overlay colours yet.
    assert findings["ct"]["nonBlack"] > 0.3 and findings["ct"]["colours"] > 50
    assert findings["ct"]["reddish"] < 0.001 and findings["ct"]["yellowish"] < 0.001
    # The SEG: both segments named in the panel, drawn yellow (GGO) and red (consolidation).
    assert findings["seg"]["labels"] == ["Ground-glass opacity", "Consolidation"]
    assert findings["seg"]["stats"]["yellowish"] > 0.005
    assert findings["seg"]["stats"]["reddish"] > 0.005
    # The SR: its measurement values are on screen.
    assert sorted(findings["sr"]["values"]) == sorted(f"{v:.1f}" for v in results.MEASURED.values())
    assert "Volume: 123.40 mL" in findings["sr"]["text"]
    assert findings["dicomwebRequests"] > 5 and not findings["dicomwebErrors"]
    for name in ("1-study-list", "2-ct", "3-seg", "4-sr"):
        assert (ARTIFACTS / f"noauth-{name}.png").stat().st_size > 10_000
