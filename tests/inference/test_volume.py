"""Loading: every transfer syntax decodes to the same HU, every source kind gives the
same volume, slices sort along the normal, and bad series are refused readably."""

from __future__ import annotations

import copy
import io
import subprocess
import time

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from inference.volume import SeriesNotAnalysable, load_series
from tests.conftest import require_tool
from tests.inference.phantom import build, to_datasets


@pytest.fixture(scope="module")
def crop(small_series) -> list[pydicom.Dataset]:
    """LIDC-IDRI-0003's 11-slice crop, native."""
    return [pydicom.dcmread(p) for p in small_series["LIDC-IDRI-0003"]]


@pytest.fixture(scope="module")
def reference(crop) -> np.ndarray:
    return load_series(crop).hu


def _roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=lambda uid: uid.name)
def test_compressed_syntaxes_decode_to_the_same_hu(crop, reference, syntax):
    encoded = []
    for ds in copy.deepcopy(crop):
        ds.compress(syntax)
        encoded.append(_roundtrip(ds))
    assert encoded[0].file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(load_series(encoded).hu, reference)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian], ids=lambda uid: uid.name)
def test_native_syntaxes_decode_to_the_same_hu(crop, reference, syntax):
    encoded = []
    for ds in copy.deepcopy(crop):
        ds.file_meta.TransferSyntaxUID = syntax
        encoded.append(_roundtrip(ds))
    assert encoded[0].file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(load_series(encoded).hu, reference)


def _dcmtk(tool: str, args: list[str], datasets, tmp_path) -> list[pydicom.Dataset]:
    binary = require_tool(tool)
    out = []
    for index, ds in enumerate(datasets):
        source, target = tmp_path / f"{index}.dcm", tmp_path / f"{index}.out.dcm"
        ds.save_as(source, enforce_file_format=True)
        subprocess.run([binary, *args, str(source), str(target)], check=True, capture_output=True)
        out.append(pydicom.dcmread(target))
    return out


def test_jpeg_lossless_from_dcmtk_decodes_exactly(crop, reference, tmp_path):
    encoded = _dcmtk("dcmcjpeg", ["--encode-lossless-sv1"], crop, tmp_path)
    assert encoded[0].file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    assert np.array_equal(load_series(encoded).hu, reference)


def test_jpeg_baseline_decodes(tmp_path):
    """JPEG Baseline holds 8 bits: an 8-bit CT (slope 8) through dcmtk's lossy coder."""
    hu = build(depth=12, size=96).hu
    datasets = to_datasets(hu)
    for ds, plane in zip(datasets, hu):
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.RescaleSlope, ds.RescaleIntercept = 8, -1024
        ds.PixelData = np.clip((plane.astype(np.int32) + 1024) // 8, 0, 255).astype(np.uint8).tobytes()
    encoded = _dcmtk("dcmcjpeg", ["--encode-baseline", "--quality", "95"], datasets, tmp_path)
    assert encoded[0].file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    decoded = load_series(encoded).hu.astype(np.int32)
    assert np.mean(np.abs(decoded - hu)) < 20  # lossy, but the same image


def test_paths_bytes_and_datasets_give_one_volume_and_inputs_stay_intact(small_series, reference):
    paths = small_series["LIDC-IDRI-0003"]
    datasets = [pydicom.dcmread(p) for p in paths]
    from_paths = load_series(paths)
    from_bytes = load_series([p.read_bytes() for p in paths])
    from_datasets = load_series(datasets + datasets[:2])  # a re-sent instance counts once
    for volume in (from_paths, from_bytes, from_datasets):
        assert np.array_equal(volume.hu, reference)
        assert all("PixelData" not in ds for ds in volume.datasets)
    assert all("PixelData" in ds for ds in datasets)  # the caller's objects are untouched
    assert from_paths.hu.dtype == np.int16 and from_paths.spacing == pytest.approx((2.5, 0.820312, 0.820312))


def test_slices_sort_along_the_normal_and_geometry_matches_the_headers(crop):
    shuffled = copy.deepcopy(crop)
    np.random.default_rng(0).shuffle(shuffled)
    volume = load_series(shuffled)
    z = [float(ds.ImagePositionPatient[2]) for ds in volume.datasets]
    assert z == sorted(z)
    last = volume.datasets[-1]
    corner = volume.to_patient(np.array([[len(z) - 1, 0, 0], [0, 2, 3]]))
    assert corner[0] == pytest.approx([float(v) for v in last.ImagePositionPatient], abs=1e-3)
    first = [float(v) for v in volume.datasets[0].ImagePositionPatient]
    step = [float(v) for v in volume.datasets[0].PixelSpacing]
    assert corner[1] == pytest.approx([first[0] + 3 * step[1], first[1] + 2 * step[0], first[2]], abs=1e-3)


@pytest.mark.slow
def test_full_chest_decodes_fast(lidc_0001):
    start = time.perf_counter()
    volume = load_series(lidc_0001)
    seconds = time.perf_counter() - start
    assert volume.hu.shape == (133, 512, 512)
    assert seconds < 3.0, f"decoding 133 slices took {seconds:.1f} s"


# -- refusals ---------------------------------------------------------------------------


def _series(depth: int = 12, **kwargs) -> list[pydicom.Dataset]:
    return to_datasets(build(depth=depth, size=64).hu, **kwargs)


def test_refuses_non_uniform_spacing(small_series):
    datasets = [pydicom.dcmread(p) for p in small_series["LIDC-IDRI-0001"]]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    for ds in datasets[8:]:
        ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 1.25  # one gap of 3.75 mm
    with pytest.raises(SeriesNotAnalysable, match=r"^slice spacing varies from 2\.5 to 3\.75 mm$"):
        load_series(datasets)


def test_refuses_missing_slice(small_series):
    datasets = [pydicom.dcmread(p) for p in small_series["LIDC-IDRI-0001"]]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    del datasets[7]
    with pytest.raises(SeriesNotAnalysable, match=r"1 slice\(s\) missing from the series \(a gap of 5 mm where the spacing is 2\.5 mm\)"):
        load_series(datasets)


def test_refuses_mixed_matrix_sizes(small_series):
    datasets = [pydicom.dcmread(p) for p in small_series["LIDC-IDRI-0001"]]
    datasets[3].Rows = 256
    with pytest.raises(SeriesNotAnalysable, match="^mixed matrix sizes in one series: 256x512, 512x512$"):
        load_series(datasets)


def test_refuses_non_axial_and_non_ct(small_series):
    datasets = [pydicom.dcmread(p) for p in small_series["LIDC-IDRI-0001"]]
    coronal = copy.deepcopy(datasets)
    for ds in coronal:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    with pytest.raises(SeriesNotAnalysable, match="not an axial series"):
        load_series(coronal)
    for ds in datasets:
        ds.Modality = "MR"
    with pytest.raises(SeriesNotAnalysable, match=r"not a CT series \(modality MR\)"):
        load_series(datasets)


def test_refuses_gantry_tilt():
    datasets = _series()
    for index, ds in enumerate(datasets):
        ds.ImagePositionPatient = [0.0, index * 3.0 * np.tan(np.radians(12)), index * 3.0]
    with pytest.raises(SeriesNotAnalysable, match=r"gantry tilt of about 12\.0°"):
        load_series(datasets)


def test_refuses_few_slices_and_other_series_mixes():
    with pytest.raises(SeriesNotAnalysable, match=r"too few slices: 5 \(at least 10"):
        load_series(_series(depth=5))
    mixed = _series()
    mixed[0].SeriesInstanceUID = generate_uid()
    with pytest.raises(SeriesNotAnalysable, match="belong to 2 different series"):
        load_series(mixed)
    spacing = _series()
    spacing[2].PixelSpacing = [1.0, 1.0]
    with pytest.raises(SeriesNotAnalysable, match="mixed pixel spacing in one series: 1x1 mm, 2x2 mm"):
        load_series(spacing)
    duplicate = _series()
    duplicate[4].ImagePositionPatient = list(duplicate[3].ImagePositionPatient)
    with pytest.raises(SeriesNotAnalysable, match="two slices share one position"):
        load_series(duplicate)
    scout = _series()
    for ds in scout:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    with pytest.raises(SeriesNotAnalysable, match="localizer"):
        load_series(scout)
    enhanced = _series()
    enhanced[0].NumberOfFrames = 3
    with pytest.raises(SeriesNotAnalysable, match="multi-frame"):
        load_series(enhanced)
    with pytest.raises(SeriesNotAnalysable, match="not a DICOM file"):
        load_series([b"not dicom at all"] * 12)
