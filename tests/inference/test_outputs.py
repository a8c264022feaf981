"""SEG and SR: valid per dciodvfy, overlays on the right pixels, numbers consistent."""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest

from inference.engines import densitometry
from inference.pipeline import OutputUIDs, analyze, analyze_directory
from inference.seg import masks
from tests.conftest import require_tool
from tests.inference.phantom import build, to_datasets


@pytest.fixture(scope="module")
def result():
    return analyze(to_datasets(build().hu))


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
    uids = OutputUIDs("1.2.3.1", "1.2.3.2", "1.2.3.3", "1.2.3.4", "1.2.3.5", "1.2.3.6")
    first = analyze(datasets, uids=uids)
    assert (first.seg.SOPInstanceUID, first.sr.SOPInstanceUID) == ("1.2.3.2", "1.2.3.4")
    assert first.seg.SeriesInstanceUID == "1.2.3.1"
    assert (first.pdf.SeriesInstanceUID, first.pdf.SOPInstanceUID) == ("1.2.3.5", "1.2.3.6")


def test_analyze_directory_writes_its_outputs(tmp_path):
    source = tmp_path / "series"
    source.mkdir()
    for index, ds in enumerate(to_datasets(build(depth=40).hu)):
        ds.save_as(source / f"{index:03d}.dcm", enforce_file_format=True)
    (source / "notes.txt").write_text("not DICOM")
    analyze_directory(source, tmp_path / "out")
    assert pydicom.dcmread(tmp_path / "out" / "seg.dcm").Modality == "SEG"
    assert pydicom.dcmread(tmp_path / "out" / "sr.dcm").Modality == "SR"
    assert '"schema": "l3net.summary/1"' in (tmp_path / "out" / "summary.json").read_text()


def _groups(sr) -> list:
    report = sr.ContentSequence
    imaging = next(item for item in report if item.ConceptNameCodeSequence[0].CodeValue == "126010")
    return list(imaging.ContentSequence)


def _tracking_uid(group) -> str:
    return next(str(item.UID) for item in group.ContentSequence if item.ValueType == "UIDREF")


def test_every_finding_has_a_planar_outline_of_its_segment(result, tmp_path):
    """What OHIF 3.13.2 needs to open the SR: every Tracking Unique Identifier in
    Imaging Measurements has a SCOORD (a TID 1410 companion). The companions measure
    nothing, and each outline runs through pixels of its segment on the referenced CT
    image (so it is the segment's cross-section, not a made-up shape)."""
    groups = _groups(result.sr)
    volumetric = [g for g in groups if any(i.ValueType == "IMAGE" for i in g.ContentSequence)]
    planar = [g for g in groups if any(i.ValueType == "SCOORD" for i in g.ContentSequence)]
    assert len(volumetric) == 4 and len(planar) == 5  # 4 segments; both lungs: 1 hull
    assert {_tracking_uid(g) for g in groups} == {_tracking_uid(g) for g in planar}
    assert all(not any(i.ValueType == "NUM" for i in g.ContentSequence) for g in planar)
    seg = pydicom.dcmread(_roundtrip(result.seg, tmp_path, "seg.dcm"))
    frames = {}
    for frame, group in zip(seg.pixel_array, seg.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        frames[(number, uid)] = frame.astype(bool)
    segment_of = {_tracking_uid(g): int(next(i for i in g.ContentSequence if i.ValueType == "IMAGE").ReferencedSOPSequence[0].ReferencedSegmentNumber) for g in volumetric}
    images = []
    for group in planar:
        scoord = next(i for i in group.ContentSequence if i.ValueType == "SCOORD")
        assert scoord.GraphicType == "POLYLINE"
        points = np.array(scoord.GraphicData, dtype=float).reshape(-1, 2)
        assert len(points) >= 4 and np.array_equal(points[0], points[-1])  # closed
        image = scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        images.append(image)
        numbers = [segment_of[_tracking_uid(group)]] if _tracking_uid(group) in segment_of else [1, 2]
        mask = np.logical_or.reduce([frames.get((n, image), np.zeros((seg.Rows, seg.Columns), bool)) for n in numbers])
        columns, rows = (points[:, 0] - 0.5).round().astype(int), (points[:, 1] - 0.5).round().astype(int)
        assert mask[rows, columns].all()
        if numbers == [1, 2]:
            # The both-lungs outline encircles both lungs (so OHIF draws the totals
            # beside both, not beside one lung): it spans each lung's centre.
            for number in numbers:
                centre = np.argwhere(frames[(number, image)]).mean(axis=0)  # (row, column)
                assert points[:, 0].min() < centre[1] < points[:, 0].max()
                assert points[:, 1].min() < centre[0] < points[:, 1].max()
    # One finding per image where the phantom allows it: the four segments' outlines differ.
    assert len(set(images[:4])) == 4


def test_sr_of_real_ct_passes_dciodvfy_and_has_outlines(small_series, tmp_path):
    """The SR of the small LIDC-IDRI-0001 (what the browser test shows in OHIF)."""
    from inference.pipeline import analyze

    real = analyze(small_series["LIDC-IDRI-0001"])
    assert _dciodvfy_errors(_roundtrip(real.sr, tmp_path, "sr.dcm")) == []
    groups = _groups(real.sr)
    assert {_tracking_uid(g) for g in groups} == {
        _tracking_uid(g) for g in groups if any(i.ValueType == "SCOORD" for i in g.ContentSequence)
    }
