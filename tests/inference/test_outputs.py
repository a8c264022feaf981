"""SEG and SR: valid per dciodvfy, overlays on the right pixels, numbers consistent."""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest

from inference.engines import densitometry
from inference.pipeline import analyze_datasets, analyze_directory
from inference.seg import masks
from tests.conftest import require_tool
from tests.inference.phantom import build, to_datasets


@pytest.fixture(scope="module")
def result():
    return analyze_datasets(to_datasets(build().hu))


def _roundtrip(ds, tmp_path, name):
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _dciodvfy_errors(path) -> list[str]:
    tool = require_tool("dciodvfy")
    out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def test_seg_and_sr_pass_dciodvfy(result, tmp_path):
    assert _dciodvfy_errors(_roundtrip(result.seg, tmp_path, "seg.dcm")) == []
    assert _dciodvfy_errors(_roundtrip(result.sr, tmp_path, "sr.dcm")) == []


def test_seg_frames_land_on_the_right_pixels(result, tmp_path):
    seg = pydicom.dcmread(_roundtrip(result.seg, tmp_path, "seg.dcm"))
    expected = masks(result.segmentation)
    z_of = {round(float(ds.ImagePositionPatient[2]), 3): index for index, ds in enumerate(result.volume.datasets)}
    frames = seg.pixel_array
    seen = np.zeros_like(expected)
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        position = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        index = z_of[round(position[2], 3)]
        assert position[:2] == [float(v) for v in result.volume.datasets[index].ImagePositionPatient[:2]]
        seen[index, :, :, segment - 1] = frame.astype(bool)
    assert np.array_equal(seen, expected)  # no flips, no shifts, nothing lost
    assert seg.FrameOfReferenceUID == result.volume.datasets[0].FrameOfReferenceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Right lung", "Left lung", "Ground-glass opacity", "Consolidation"]
    assert seg.SegmentSequence[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "112120"
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (densitometry.NAME, densitometry.VERSION)
    modifier = seg.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0]
    assert (modifier.CodeValue, modifier.CodeMeaning) == ("7771000", "Left")  # CID 244


def test_sr_references_seg_and_holds_the_numbers(result):
    sr = result.sr
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    text = str(sr)
    assert result.seg.SOPInstanceUID in text
    right = result.measurements["per_lung"]["right"]
    values = [float(item.MeasuredValueSequence[0].NumericValue) for item in _walk(sr) if "MeasuredValueSequence" in item]
    assert right["volume_ml"] in values and right["well_aerated_percent"] in values
    assert "Suggested prognosis, not for diagnostic use" in text
    assert result.prognosis["decisive_rule"]["short"] in text
    total = [item for item in _walk(sr) if item.get("ConceptNameCodeSequence") and item.ConceptNameCodeSequence[0].CodeValue == "TOTAL-SCORE"]
    assert [float(t.MeasuredValueSequence[0].NumericValue) for t in total] == [result.measurements["total_score"]]
    evidence = {item.SeriesInstanceUID for item in sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence}
    assert result.volume.datasets[0].SeriesInstanceUID in evidence and result.seg.SeriesInstanceUID in evidence


def _walk(ds):
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _walk(item)


def test_summary_matches_and_prognosis_is_labelled(result):
    summary = result.summary
    assert summary["schema"] == "l3net.summary/1"
    assert summary["engine"] == {"name": densitometry.NAME, "version": densitometry.VERSION}
    assert summary["measurements"] == result.measurements
    assert summary["scores"]["total"] == result.measurements["total_score"]
    prognosis = summary["prognosis"]
    assert prognosis["label"] == "suggested — not for diagnostic use"
    assert prognosis["category"] in {"low", "intermediate", "high"} and prognosis["rule"] and prognosis["references"]
    assert summary["outputs"]["seg"]["sop_instance_uid"] == result.seg.SOPInstanceUID


def test_given_uids_make_outputs_repeatable():
    datasets = to_datasets(build(depth=40).hu)
    uids = {"seg_series": "1.2.3.1", "seg_instance": "1.2.3.2", "sr_series": "1.2.3.3", "sr_instance": "1.2.3.4"}
    first = analyze_datasets(datasets, uids=uids)
    assert (first.seg.SOPInstanceUID, first.sr.SOPInstanceUID) == ("1.2.3.2", "1.2.3.4")
    assert first.seg.SeriesInstanceUID == "1.2.3.1"


def test_analyze_directory_writes_three_files(tmp_path):
    source = tmp_path / "series"
    source.mkdir()
    for index, ds in enumerate(to_datasets(build(depth=40).hu)):
        ds.save_as(source / f"{index:03d}.dcm", enforce_file_format=True)
    (source / "notes.txt").write_text("not DICOM")
    analyze_directory(source, tmp_path / "out")
    assert pydicom.dcmread(tmp_path / "out" / "seg.dcm").Modality == "SEG"
    assert pydicom.dcmread(tmp_path / "out" / "sr.dcm").Modality == "SR"
    assert '"schema": "l3net.summary/1"' in (tmp_path / "out" / "summary.json").read_text()
