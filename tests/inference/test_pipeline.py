"""The pipeline on real slices: analyze() → SEG/SR/summary, SEG frames placed in patient
space, dciodvfy-clean outputs, job-derived UIDs, progress, the files written."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pydicom
import pytest

from inference.pipeline import STEPS, OutputUIDs, analyze, write_outputs
from inference.seg import masks
from tests.conftest import require_tool


@pytest.fixture(scope="module")
def crop_result(small_series):
    steps = []
    result = analyze(small_series["LIDC-IDRI-0001"], progress=lambda step, fraction: steps.append((step, fraction)))
    return result, steps


@pytest.fixture(scope="module")
def written(crop_result, tmp_path_factory):
    return write_outputs(crop_result[0], tmp_path_factory.mktemp("out"))


def _dciodvfy_errors(path) -> list[str]:
    out = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def test_outputs_written_and_valid(written):
    assert sorted(p.name for p in written.values()) == ["report.dcm", "report.pdf", "seg.dcm", "sr.dcm", "summary.json"]
    assert _dciodvfy_errors(written["seg"]) == []
    assert _dciodvfy_errors(written["sr"]) == []
    assert _dciodvfy_errors(written["report"]) == []
    summary = json.loads(written["summary"].read_text())
    assert summary["schema"] == "l3net.summary/1" and summary["slices"] == 16
    assert not list(written["seg"].parent.glob("*.part"))


def test_progress_reports_every_step(crop_result):
    _result, steps = crop_result
    assert [step for step, _ in steps] == list(STEPS)
    assert steps[-1][1] == 1.0


def test_seg_frames_land_on_the_right_voxels_in_patient_space(crop_result, written):
    """Each SEG frame is placed from its own geometry (PlanePosition, PlaneOrientation,
    PixelMeasures), mapped into the CT's voxel grid through patient coordinates, and
    compared with the mask there: no flip, no shift, nothing lost."""
    result, _ = crop_result
    seg = pydicom.dcmread(written["seg"])
    volume = result.volume
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    inverse = np.linalg.inv(volume.affine)
    expected = masks(result.segmentation)
    seen = np.zeros_like(expected)
    frames = seg.pixel_array
    rows, columns = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        origin = np.array([float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient])
        # DICOM: position = origin + column·Δc·row_direction + row·Δr·column_direction.
        patient = origin + columns[..., None] * spacing[1] * orientation[:3] + rows[..., None] * spacing[0] * orientation[3:]
        voxel = np.rint(patient.reshape(-1, 3) @ inverse[:3, :3].T + inverse[:3, 3]).astype(int)
        assert np.all(voxel[:, 0] == voxel[0, 0])  # one frame, one slice
        segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        seen[voxel[:, 0], voxel[:, 1], voxel[:, 2], segment - 1] = frame.reshape(-1).astype(bool)
    assert np.array_equal(seen, expected)
    assert seg.FrameOfReferenceUID == volume.datasets[0].FrameOfReferenceUID
    referenced = {item.ReferencedSOPInstanceUID for series in seg.ReferencedSeriesSequence for item in series.ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in volume.datasets}


def test_job_uids_are_stable_and_used(small_series):
    uids = OutputUIDs.from_job("job-42")
    assert uids == OutputUIDs.from_job("job-42") and uids != OutputUIDs.from_job("job-43")
    assert len({uids.seg_series, uids.seg_instance, uids.sr_series, uids.sr_instance, uids.pdf_series, uids.pdf_instance}) == 6
    result = analyze(small_series["LIDC-IDRI-0003"], uids=uids)
    assert (result.seg.SeriesInstanceUID, result.seg.SOPInstanceUID) == (uids.seg_series, uids.seg_instance)
    assert (result.sr.SeriesInstanceUID, result.sr.SOPInstanceUID) == (uids.sr_series, uids.sr_instance)
    assert (result.pdf.SeriesInstanceUID, result.pdf.SOPInstanceUID) == (uids.pdf_series, uids.pdf_instance)
    assert result.summary["outputs"]["sr"]["sop_instance_uid"] == uids.sr_instance


def test_unknown_engine_is_refused_before_loading():
    with pytest.raises(ValueError, match="unknown analysis engine 'nope'; available: densitometry, l3net"):
        analyze([b"never read"], engine_name="nope")


def test_score_floor_setting_reaches_the_scores(small_series):
    """L3NET_SCORE_FLOOR_PERCENT=0 scores any involvement (1 under 25 %); the default
    1 % floor scores the few tenths of a percent a normal lung keeps as 0."""
    from archive.settings import Settings

    files = small_series["LIDC-IDRI-0001"]
    floored = analyze(files, settings=Settings(pdf_report=False))
    literal = analyze(files, settings=Settings(pdf_report=False, score_floor_percent=0))
    assert literal.measurements["score_floor_percent"] == 0 and floored.measurements["score_floor_percent"] == 1
    trace = 0
    for zone, values in literal.measurements["zones"].items():
        involved = values["involvement_percent"]
        assert involved < 25  # a crop of a normal chest: the 0/1 boundary is what varies
        assert values["score"] == (1 if involved > 0 else 0)
        assert floored.measurements["zones"][zone]["score"] == (1 if involved >= 1 else 0)
        trace += 0 < involved < 1
    assert trace > 0  # some zone lies between the two rules, so the setting is exercised
    assert literal.measurements["total_score"] > floored.measurements["total_score"]
