"""Loading a CT series into a Hounsfield-unit volume with checked geometry.

Slices are sorted along the slice normal (the cross product of the row and column
directions in ImageOrientationPatient), then the series is refused, with a reason a
radiologist understands, when it is not a single uniformly spaced axial CT stack.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

# Spacing may wobble by this much (mm, or 2 %) before we call it non-uniform.
_SPACING_TOLERANCE_MM = 0.05
_MIN_SLICES = 10
# A slice normal leaning off the patient z axis by more than ~15° is not axial.
_AXIAL_MIN_NZ = 0.966


class SeriesNotAnalysable(ValueError):
    """The series cannot be analysed; the message says why, for a radiologist."""


@dataclass
class CTVolume:
    """A CT series as a volume.

    ``hu``: int16 Hounsfield units, shape (slices, rows, columns), ordered by position
    along the slice normal (increasing: towards the head for a feet-first-agnostic LPS).
    ``spacing``: (slice, row, column) spacing in mm. ``row_direction`` and
    ``column_direction``: unit vectors in patient LPS coordinates; ``origin``: the
    ImagePositionPatient of the first slice. ``datasets``: the sorted source headers
    (pixel data dropped), which the SEG and SR writers reference.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: np.ndarray
    row_direction: np.ndarray
    column_direction: np.ndarray
    normal: np.ndarray
    datasets: list[Dataset]

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def column_x_sign(self) -> float:
        """+1 when increasing column index moves towards patient left (+x in LPS)."""
        return float(np.sign(self.row_direction[0]) or 1.0)


def _hu(ds: Dataset) -> np.ndarray:
    pixels = ds.pixel_array
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    hu = pixels.astype(np.float32) * slope + intercept if slope != 1 else pixels.astype(np.int32) + int(intercept)
    return np.clip(hu, -1024, 3071).astype(np.int16)


def _fmt(mm: float) -> str:
    return f"{mm:.2f}".rstrip("0").rstrip(".")


def _check_series(datasets: list[Dataset]) -> None:
    if len(datasets) < _MIN_SLICES:
        raise SeriesNotAnalysable(f"too few slices: {len(datasets)} (at least {_MIN_SLICES} needed)")
    modalities = {str(ds.get("Modality", "")) for ds in datasets}
    if modalities != {"CT"}:
        raise SeriesNotAnalysable(f"not a CT series (modality {', '.join(sorted(modalities)) or 'missing'})")
    if any("NumberOfFrames" in ds and int(ds.NumberOfFrames) > 1 for ds in datasets):
        raise SeriesNotAnalysable("multi-frame CT images are not supported; send single-frame slices")
    if any("ImageOrientationPatient" not in ds or "ImagePositionPatient" not in ds for ds in datasets):
        raise SeriesNotAnalysable("slices lack ImageOrientationPatient or ImagePositionPatient")
    sizes = {(int(ds.Rows), int(ds.Columns)) for ds in datasets}
    if len(sizes) > 1:
        listed = ", ".join(f"{r}x{c}" for r, c in sorted(sizes))
        raise SeriesNotAnalysable(f"mixed matrix sizes in one series: {listed}")
    orientations = {tuple(round(float(v), 3) for v in ds.ImageOrientationPatient) for ds in datasets}
    if len(orientations) > 1:
        raise SeriesNotAnalysable("slices have different orientations")


def load_datasets(datasets: list[Dataset]) -> CTVolume:
    """Check and stack ``datasets`` (one series) into a :class:`CTVolume`."""
    _check_series(datasets)
    iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    row, column = iop[:3], iop[3:]
    normal = np.cross(row, column)
    if abs(normal[2]) < _AXIAL_MIN_NZ:
        raise SeriesNotAnalysable("not an axial series (the slices are not transverse)")
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    along = positions @ normal
    order = np.argsort(along)
    datasets = [datasets[i] for i in order]
    positions, along = positions[order], along[order]
    steps = np.diff(along)
    if np.any(steps < 1e-3):
        raise SeriesNotAnalysable("two slices share one position (duplicate or overlapping slices)")
    spacing = float(np.median(steps))
    # Gantry tilt: successive origins move sideways, not only along the normal.
    sideways = np.linalg.norm((positions[1:] - positions[:-1]) - np.outer(steps, normal), axis=1)
    if np.max(sideways) > max(0.1, 0.05 * spacing):
        angle = float(np.degrees(np.arctan2(np.max(sideways), spacing)))
        raise SeriesNotAnalysable(f"gantry tilt of about {angle:.1f}° is not supported; send a tilt-corrected series")
    tolerance = max(_SPACING_TOLERANCE_MM, 0.02 * spacing)
    if np.max(steps) - np.min(steps) > tolerance:
        ratio = steps / spacing
        if np.allclose(ratio, np.round(ratio), atol=0.05) and np.max(ratio) >= 2:
            missing = int(np.sum(np.round(ratio) - 1))
            raise SeriesNotAnalysable(f"{missing} slice(s) missing from the series (gaps of {_fmt(float(np.max(steps)))} mm)")
        raise SeriesNotAnalysable(
            f"slice spacing varies from {_fmt(float(np.min(steps)))} to {_fmt(float(np.max(steps)))} mm"
        )
    with ThreadPoolExecutor(4) as pool:
        hu = np.stack(list(pool.map(_hu, datasets)))
    for ds in datasets:  # headers are enough for the writers; keep memory low
        if "PixelData" in ds:
            del ds.PixelData
    pixel = [float(v) for v in datasets[0].PixelSpacing]
    return CTVolume(hu, (spacing, pixel[0], pixel[1]), positions[0], row, column, normal, datasets)


def read_directory(directory: Path) -> list[Dataset]:
    """Every DICOM file below ``directory`` (non-DICOM files are ignored)."""
    datasets = []
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        try:
            datasets.append(pydicom.dcmread(path))
        except pydicom.errors.InvalidDicomError:
            continue
    if not datasets:
        raise SeriesNotAnalysable(f"no DICOM files in {directory}")
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(series) > 1:
        raise SeriesNotAnalysable(f"{directory} holds {len(series)} series; give one series per folder")
    return datasets
