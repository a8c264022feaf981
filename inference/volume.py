"""Loading one CT series into a Hounsfield-unit volume with checked geometry.

:func:`load_series` takes the instances of one series as file paths, raw bytes (what
the worker reads from object storage) or pydicom Datasets, decodes every transfer
syntax pydicom can (native, deflated, JPEG, JPEG-LS, JPEG 2000, RLE: through
pylibjpeg, pyjpegls or GDCM), converts to HU and sorts the slices along the slice
normal: the cross product of the row and column directions of
ImageOrientationPatient, never by InstanceNumber or by z alone.

A series that is not a single, gap-free, uniformly spaced axial CT stack is refused
with :class:`SeriesNotAnalysable`, whose message is written for the radiologist who
sent it ("slice spacing varies from 1.25 to 5 mm").
"""

from __future__ import annotations

import io
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array

#: One instance of the series: a file path, the bytes of a DICOM file, or a Dataset.
Source = Union[str, os.PathLike, bytes, Dataset]

#: Fewer slices than this cannot give meaningful thirds of a lung.
MIN_SLICES = 10
#: Slice steps may differ by this much (mm), or by 2 % of the step, before the
#: spacing counts as non-uniform: scanners round positions to 0.01 mm or so.
SPACING_TOLERANCE_MM = 0.05
#: The slice normal must lie within ~15° of the patient's long axis (cos 15° = 0.966).
AXIAL_MIN_COS = 0.966
#: HU stored as int16: values are clipped to this range. Below −1024 is only padding
#: outside the reconstruction circle (−2000, −3024), which is air for us.
HU_RANGE = (-1024, 3071)
#: Decoding threads. Native pixels are a memory copy; the JPEG codecs release the GIL
#: in part, so a few threads help on multi-core machines and cost nothing otherwise.
DECODE_THREADS = min(8, (os.cpu_count() or 2) * 2)


class SeriesNotAnalysable(ValueError):
    """The series cannot be analysed. ``str(error)`` says why, for a radiologist."""


@dataclass
class CTVolume:
    """One axial CT series as a volume.

    ``hu``
        int16 Hounsfield units, shape (slices, rows, columns). Slice index 0 is the
        most negative position along ``normal``; for the usual ImageOrientationPatient
        (1,0,0 / 0,1,0) the normal is +z (LPS), so the index grows towards the head.
    ``spacing``
        (slice step, row spacing, column spacing) in mm. The slice step is measured
        between positions, not read from SliceThickness.
    ``origin``
        ImagePositionPatient of the first slice (mm, LPS): the centre of voxel (0, 0, 0).
    ``row_direction``, ``column_direction``
        Unit vectors (LPS) along which the column index and the row index grow
        (ImageOrientationPatient's first and second triplets).
    ``normal``
        Their cross product: the direction in which the slice index grows.
    ``datasets``
        The source headers in slice order, pixel data removed. The SEG and SR writers
        reference them; they are separate objects, the caller's Datasets are untouched.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: np.ndarray
    row_direction: np.ndarray
    column_direction: np.ndarray
    normal: np.ndarray
    datasets: list[Dataset]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in mL (cm³)."""
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix taking (slice, row, column, 1) voxel indices to LPS mm."""
        matrix = np.eye(4)
        matrix[:3, 0] = self.normal * self.spacing[0]
        matrix[:3, 1] = self.column_direction * self.spacing[1]
        matrix[:3, 2] = self.row_direction * self.spacing[2]
        matrix[:3, 3] = self.origin
        return matrix

    def to_patient(self, indices: np.ndarray) -> np.ndarray:
        """LPS coordinates (mm) of voxel indices, an (n, 3) array of (slice, row, column)."""
        indices = np.asarray(indices, dtype=float)
        return indices @ self.affine[:3, :3].T + self.affine[:3, 3]

    def column_x_sign(self) -> float:
        """+1 when increasing column index moves towards patient left (+x in LPS)."""
        return float(np.sign(self.row_direction[0]) or 1.0)


def load_series(sources: Sequence[Source]) -> CTVolume:
    """Read, check, decode and stack one CT series.

    ``sources``: every instance of the series, as paths, bytes or Datasets (a mix is
    fine). Identical SOP Instance UIDs given twice count once. Raises
    :class:`SeriesNotAnalysable` with a readable reason when the series cannot be
    analysed; nothing is decoded before the headers pass the checks.
    """
    if not sources:
        raise SeriesNotAnalysable("the series holds no images")
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        datasets = list(pool.map(_read, sources))
    datasets = _unique_instances(datasets)
    _check_headers(datasets)
    datasets, spacing, normal = _sort_and_check_positions(datasets)
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        hu = np.stack(list(pool.map(_hu, datasets)))
    iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    pixel = [float(v) for v in datasets[0].PixelSpacing]
    origin = np.array([float(v) for v in datasets[0].ImagePositionPatient])
    headers = [_header(ds) for ds in datasets]
    return CTVolume(hu, (spacing, pixel[0], pixel[1]), origin, iop[:3], iop[3:], normal, headers)


def load_datasets(datasets: Sequence[Source]) -> CTVolume:
    """Alias of :func:`load_series`, kept for callers written against the first API."""
    return load_series(datasets)


def read_directory(directory: Path | str) -> list[Dataset]:
    """Every DICOM file below ``directory``, read in full (non-DICOM files are skipped).

    Refuses a folder with no DICOM files or with more than one series in it.
    """
    paths = sorted(p for p in Path(directory).rglob("*") if p.is_file())
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        found = [ds for ds in pool.map(_try_read, paths) if ds is not None]
    if not found:
        raise SeriesNotAnalysable(f"no DICOM files in {directory}")
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in found}
    if len(series) > 1:
        raise SeriesNotAnalysable(f"{directory} holds {len(series)} series; give one series per folder")
    return found


def _try_read(path: Path) -> Dataset | None:
    try:
        return pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError):
        return None


def _read(source: Source) -> Dataset:
    if isinstance(source, Dataset):
        return source
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return pydicom.dcmread(io.BytesIO(bytes(source)))
        return pydicom.dcmread(source)
    except pydicom.errors.InvalidDicomError as error:
        raise SeriesNotAnalysable(f"an instance is not a DICOM file ({error})") from error


def _unique_instances(datasets: list[Dataset]) -> list[Dataset]:
    """Drop repeated copies of one SOP instance (a re-sent image is not a new slice)."""
    seen: set[str] = set()
    unique = []
    for ds in datasets:
        uid = str(ds.get("SOPInstanceUID", ""))
        if uid and uid in seen:
            continue
        seen.add(uid)
        unique.append(ds)
    return unique


def _values(datasets: list[Dataset], keyword: str) -> Counter:
    return Counter(str(ds.get(keyword, "")) for ds in datasets)


def _fmt(mm: float) -> str:
    """2.50 → '2.5', 5.00 → '5': spacing as a radiologist writes it."""
    return f"{mm:.2f}".rstrip("0").rstrip(".")


def _check_headers(datasets: list[Dataset]) -> None:
    """Refusals that need only the headers, cheapest and most basic first."""
    series = _values(datasets, "SeriesInstanceUID")
    if len(series) > 1:
        raise SeriesNotAnalysable(f"the images belong to {len(series)} different series; send one series")
    modalities = _values(datasets, "Modality")
    if set(modalities) != {"CT"}:
        named = ", ".join(sorted(m or "missing" for m in modalities))
        raise SeriesNotAnalysable(f"not a CT series (modality {named})")
    if any("LOCALIZER" in [str(v).upper() for v in ds.get("ImageType", [])] for ds in datasets):
        raise SeriesNotAnalysable("a localizer (scout) series, not axial CT slices")
    if any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in datasets):
        raise SeriesNotAnalysable("multi-frame (enhanced) CT images are not supported; send the series as single-frame slices")
    if len(datasets) < MIN_SLICES:
        raise SeriesNotAnalysable(f"too few slices: {len(datasets)} (at least {MIN_SLICES} are needed)")
    for keyword in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "PixelData"):
        missing = sum(keyword not in ds for ds in datasets)
        if missing:
            raise SeriesNotAnalysable(f"{missing} slice(s) lack {keyword}; the slices cannot be placed in space")
    if int(datasets[0].get("SamplesPerPixel", 1)) != 1:
        raise SeriesNotAnalysable("colour images are not CT slices that can be measured")
    sizes = Counter((int(ds.Rows), int(ds.Columns)) for ds in datasets)
    if len(sizes) > 1:
        listed = ", ".join(f"{r}x{c}" for r, c in sorted(sizes))
        raise SeriesNotAnalysable(f"mixed matrix sizes in one series: {listed}")
    spacings = Counter(tuple(round(float(v), 3) for v in ds.PixelSpacing) for ds in datasets)
    if len(spacings) > 1:
        listed = ", ".join(f"{_fmt(r)}x{_fmt(c)} mm" for r, c in sorted(spacings))
        raise SeriesNotAnalysable(f"mixed pixel spacing in one series: {listed}")
    orientations = Counter(tuple(round(float(v), 3) for v in ds.ImageOrientationPatient) for ds in datasets)
    if len(orientations) > 1:
        raise SeriesNotAnalysable(f"the slices have {len(orientations)} different orientations; send one stack")
    frames = _values(datasets, "FrameOfReferenceUID")
    if len(frames) > 1:
        raise SeriesNotAnalysable("the slices belong to different frames of reference (more than one acquisition)")


def _sort_and_check_positions(datasets: list[Dataset]) -> tuple[list[Dataset], float, np.ndarray]:
    """Sort along the slice normal; refuse non-axial, tilted, gapped or uneven stacks.

    Returns the sorted datasets, the slice step (mm) and the unit normal.
    """
    iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    row, column = iop[:3], iop[3:]
    normal = np.cross(row, column)
    normal /= np.linalg.norm(normal)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    if abs(normal[2]) < AXIAL_MIN_COS:
        raise SeriesNotAnalysable("not an axial series: the slices are not transverse (coronal, sagittal or oblique)")
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    datasets = [datasets[i] for i in order]
    positions, along = positions[order], along[order]
    steps = np.diff(along)
    if np.any(steps < 1e-3):
        raise SeriesNotAnalysable("two slices share one position (duplicate or overlapping slices)")
    spacing = float(np.median(steps))
    # Gantry tilt: successive origins move sideways (within the slice plane), not only
    # along the normal; the stack is then a sheared volume that we do not resample.
    sideways = np.linalg.norm((positions[1:] - positions[:-1]) - np.outer(steps, normal), axis=1)
    if np.max(sideways) > max(0.1, 0.05 * spacing):
        angle = float(np.degrees(np.arctan2(np.median(sideways), spacing)))
        raise SeriesNotAnalysable(f"gantry tilt of about {angle:.1f}° is not supported; send a tilt-corrected series")
    tolerance = max(SPACING_TOLERANCE_MM, 0.02 * spacing)
    if np.max(steps) - np.min(steps) > tolerance:
        ratio = steps / spacing
        if np.allclose(ratio, np.round(ratio), atol=0.05) and np.max(ratio) >= 2:
            missing = int(np.sum(np.round(ratio) - 1))
            raise SeriesNotAnalysable(
                f"{missing} slice(s) missing from the series (a gap of {_fmt(float(np.max(steps)))} mm "
                f"where the spacing is {_fmt(spacing)} mm)"
            )
        raise SeriesNotAnalysable(f"slice spacing varies from {_fmt(float(np.min(steps)))} to {_fmt(float(np.max(steps)))} mm")
    return datasets, spacing, normal


def _hu(ds: Dataset) -> np.ndarray:
    """One slice in HU as int16 (slope/intercept applied, clipped to :data:`HU_RANGE`)."""
    try:
        # The function form decodes without caching the array on the Dataset, so the
        # caller's Datasets do not grow by a decoded copy each.
        stored = pixel_array(ds)
    except Exception as error:  # a codec missing or a corrupt stream
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax) or "unknown transfer syntax"
        raise SeriesNotAnalysable(f"a slice could not be decoded ({name}): {error}") from error
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope == 1 and intercept == int(intercept):
        hu = stored.astype(np.int32) + int(intercept)  # exact, and cheaper than float
    else:
        hu = np.rint(stored.astype(np.float32) * np.float32(slope) + np.float32(intercept))
    return np.clip(hu, *HU_RANGE).astype(np.int16)


def _header(ds: Dataset) -> Dataset:
    """A copy of ``ds`` without its pixel data (the elements themselves are shared)."""
    header = Dataset()
    for tag in ds.keys():
        if tag.group != 0x7FE0:  # Pixel Data and friends
            header.add(ds.get_item(tag))
    if hasattr(ds, "file_meta"):
        header.file_meta = ds.file_meta
    return header
