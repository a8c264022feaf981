"""OHIF in Debian chromium (playwright-core, no browser download) against ``l3net serve``
with the real analysis output: the small LIDC-IDRI-0001 pushed over DIMSE, analysed by
``inference.pipeline.analyze`` (densitometry) and its SEG and SR stored over STOW-RS.
The study is listed, the CT renders, the SEG overlay shows its four named segments
(ground-glass yellow, consolidation red), and the SR opens without error and shows the
measured values. Screenshots go to test-artifacts/viewer/."""

from __future__ import annotations

import pytest

from inference.pipeline import AnalysisResult, analyze
from inference.seg import SEGMENTS
from tests.viewer.results import expected_labels
from tests.viewer.stack import ARTIFACTS, require_browser, run_node, running_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lidc_small(small_series):
    return small_series["LIDC-IDRI-0001"]


@pytest.fixture(scope="module")
def analysed(lidc_small) -> AnalysisResult:
    """The worker's analysis of the series (about 2 s), run in the test process rather
    than by the server's worker, which would wait for the study to become stable."""
    return analyze(lidc_small)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, lidc_small, analysed):
    """``l3net serve`` (no auth, loopback) holding the CT (sent by C-STORE) and the
    analysis SEG and SR (stored by STOW-RS)."""
    require_browser()
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        running.push(lidc_small)
        response = running.stow([analysed.seg, analysed.sr])
        assert response.status_code == 200, response.text
        running.wait_for_series(str(analysed.seg.StudyInstanceUID), 3)
        yield running


def test_ohif_shows_study_ct_seg_and_sr(stack, analysed):
    ct = analysed.volume.datasets[0]
    seg, sr = analysed.seg, analysed.sr
    labels = expected_labels(analysed)
    findings = run_node("ohif_check.mjs", {
        "url": stack.url,
        "study": str(ct.StudyInstanceUID),
        "studyDate": "01-Jan-2000",
        "segDescription": str(seg.SeriesDescription),
        "srDescription": str(sr.SeriesDescription),
        "segmentLabels": [spec.label for spec in SEGMENTS],
        "measuredValues": labels,
        "prefix": "noauth-",
        "autoSeg": True,
    })
    assert "error" not in findings, findings.get("error", "") + "\n" + findings.get("failureText", "")
    assert findings["steps"] == ["list", "ct", "seg", "sr", "auto-seg"]
    # The study pushed over DIMSE is listed (its accession number and modalities).
    assert str(ct.AccessionNumber) in findings["listText"]
    assert "CT" in findings["listText"]
    # The CT rendered: mostly non-black, many grey levels, no overlay colours yet.
    assert findings["ct"]["nonBlack"] > 0.3 and findings["ct"]["colours"] > 50
    assert findings["ct"]["reddish"] < 0.001 and findings["ct"]["yellowish"] < 0.001
    # The SEG: all four segments named in the panel; on the slice with the most
    # ground-glass and consolidation, both colours are drawn.
    assert findings["seg"]["labels"] == ["Right lung", "Left lung", "Ground-glass opacity", "Consolidation"]
    assert findings["seg"]["stats"]["yellowish"] > 0.0002
    assert findings["seg"]["stats"]["reddish"] > 0.0002
    # The SR opened (no "Something went wrong") and its values are on screen.
    assert sorted(findings["sr"]["values"]) == sorted(labels)
    assert "Something went wrong" not in findings["sr"]["text"]
    assert findings["dicomwebRequests"] > 5 and not findings["dicomwebErrors"]
    assert not [line for line in findings["console"] if "ReferencedSOPSequence" in line]
    # Without clicks: a plain link to the study is sent on by the server with the
    # @ohif/seg hanging protocol, which shows the SEG on the CT at once, with its segment
    # panel and no "LOAD" button left to press.
    assert "hangingprotocolId=%40ohif%2Fseg" in findings["auto"]["url"]
    assert findings["auto"]["labels"] == findings["seg"]["labels"]
    assert findings["auto"]["loadButtons"] == 0
    # Tinted: pixels clearly not grey; the CT alone (step 2) has only OHIF's blue frame
    # and labels, the overlaid lungs add about a fifth of the viewport.
    assert findings["auto"]["tinted"] > findings["ct"]["tinted"] + 0.05, (findings["auto"]["tinted"], findings["ct"]["tinted"])
    assert findings["auto"]["stats"]["nonBlack"] > 0.3
    for name in ("1-study-list", "2-ct", "3-seg", "4-sr", "5-seg-without-clicks"):
        assert (ARTIFACTS / f"noauth-{name}.png").stat().st_size > 10_000
