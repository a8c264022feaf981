"""Synthetic chest CT phantoms with known lung and lesion volumes, as real CT datasets.

Array axes are (slice, row, column); slice index grows towards the head (+z in LPS),
row index towards the patient's back (+y), column index towards the patient's left
(+x), as for ImageOrientationPatient 1\\0\\0\\0\\1\\0.

* :func:`build` — the small phantom (2 mm pixels): two −850 HU lungs, a trachea,
  a table, a ground-glass sphere and a consolidation sphere against the pleura.
* :func:`chest` — a harder one (0.78 mm pixels, so the engine's half-resolution path
  runs, CT noise): lungs touching at the anterior junction, heart, liver dome under
  the right lung, trachea and main bronchi, vessels, ground-glass, and broad-based
  consolidation against the posterior chest wall; the patient off the image centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PIXEL_MM = 2.0
SLICE_MM = 3.0


@dataclass
class Phantom:
    hu: np.ndarray  # (z, y, x) int16
    right_lung: np.ndarray  # patient right = −x = low column index
    left_lung: np.ndarray
    ggo: np.ndarray
    consolidation: np.ndarray
    pixel_mm: float = PIXEL_MM
    slice_mm: float = SLICE_MM
    # Structures that must stay outside the lungs, or out of the opacity classes.
    outside: dict[str, np.ndarray] = field(default_factory=dict)
    vessels: np.ndarray | None = None

    @property
    def voxel_ml(self) -> float:
        return self.pixel_mm * self.pixel_mm * self.slice_mm / 1000

    def datasets(self, **kwargs) -> list[Dataset]:
        return to_datasets(self.hu, self.pixel_mm, self.slice_mm, **kwargs)


class Grid:
    """Voxel-centre coordinates in mm (z, y, x) of an array, for drawing shapes."""

    def __init__(self, shape: tuple[int, int, int], pixel_mm: float, slice_mm: float) -> None:
        self.shape, self.pixel_mm, self.slice_mm = shape, pixel_mm, slice_mm
        self.z = (np.arange(shape[0]) * slice_mm)[:, None, None]
        self.y = (np.arange(shape[1]) * pixel_mm)[None, :, None]
        self.x = (np.arange(shape[2]) * pixel_mm)[None, None, :]

    def ellipsoid(self, centre, radii) -> np.ndarray:
        (zc, yc, xc), (rz, ry, rx) = centre, radii
        return ((self.z - zc) / rz) ** 2 + ((self.y - yc) / ry) ** 2 + ((self.x - xc) / rx) ** 2 <= 1

    def tube(self, start, end, radius: float) -> np.ndarray:
        """Voxels within ``radius`` mm of the segment start→end (mm, z/y/x)."""
        start, end = np.asarray(start, float), np.asarray(end, float)
        out = np.zeros(self.shape, bool)
        # Only the segment's bounding box (plus the radius) can be inside.
        box = []
        for axis, step in enumerate((self.slice_mm, self.pixel_mm, self.pixel_mm)):
            low = max(0, int(np.floor((min(start[axis], end[axis]) - radius) / step)))
            high = min(self.shape[axis], int(np.ceil((max(start[axis], end[axis]) + radius) / step)) + 1)
            box.append(slice(low, high))
        z, y, x = self.z[box[0]], self.y[:, box[1]], self.x[:, :, box[2]]
        axis = end - start
        t = ((z - start[0]) * axis[0] + (y - start[1]) * axis[1] + (x - start[2]) * axis[2]) / float(axis @ axis)
        t = np.clip(t, 0, 1)
        d2 = (z - start[0] - t * axis[0]) ** 2 + (y - start[1] - t * axis[1]) ** 2 + (x - start[2] - t * axis[2]) ** 2
        out[tuple(box)] = d2 <= radius * radius
        return out


def _ellipsoid(shape, centre_mm, radii_mm) -> np.ndarray:
    return Grid(shape, PIXEL_MM, SLICE_MM).ellipsoid(centre_mm, radii_mm)


def build(depth: int = 60, size: int = 160) -> Phantom:
    """Body 40 HU in air, a table, a trachea, two −850 HU lungs, a −500 HU ground-glass
    sphere in the right lung and a 0 HU consolidation sphere touching the left lung's
    lateral pleura (which a plain threshold would leave outside the lung)."""
    shape = (depth, size, size)
    mid_x, mid_y, mid_z = size * PIXEL_MM / 2, size * PIXEL_MM / 2, depth * SLICE_MM / 2
    hu = np.full(shape, -1000, np.int16)
    body = _ellipsoid(shape, (mid_z, mid_y, mid_x), (depth * SLICE_MM, 110, 145))
    hu[body] = 40
    hu[:, int((mid_y + 125) / PIXEL_MM) : int((mid_y + 135) / PIXEL_MM), 20:-20] = 150  # table, apart from the body
    right = _ellipsoid(shape, (mid_z - 5, mid_y - 5, mid_x - 60), (70, 60, 45))
    left = _ellipsoid(shape, (mid_z - 5, mid_y - 5, mid_x + 60), (70, 60, 45))
    hu[right | left] = -850
    trachea = np.zeros(shape, bool)
    yy, xx = np.ogrid[:size, :size]
    disc = (yy - (mid_y - 40) / PIXEL_MM) ** 2 + (xx - mid_x / PIXEL_MM) ** 2 <= (9 / PIXEL_MM) ** 2
    trachea[int((mid_z + 40) / SLICE_MM) :] = disc
    hu[trachea] = -1000
    ggo = _ellipsoid(shape, (mid_z, mid_y - 5, mid_x - 60), (15, 15, 15)) & right
    hu[ggo] = -500
    # Touching the lateral pleura of the left lung: centre 12 mm inside its edge at x+45.
    consolidation = _ellipsoid(shape, (mid_z - 5, mid_y - 5, mid_x + 60 + 45 - 12), (12, 12, 12)) & left
    hu[consolidation] = 0
    return Phantom(hu, right, left, ggo, consolidation)


def chest(depth: int = 64, size: int = 384, pixel_mm: float = 0.78, slice_mm: float = 2.5, noise_hu: float = 15.0, seed: int = 1) -> Phantom:
    """The harder phantom (see the module docstring). Lungs span z 15–145 mm.

    Volumes are exact voxel counts of the masks returned; the consolidation against the
    posterior pleura and the liver dome under the right lung are what a threshold
    alone gets wrong (one left out, the other taken in by a naive hole fill)."""
    shape = (depth, size, size)
    g = Grid(shape, pixel_mm, slice_mm)
    # The patient sits 20 mm right of the image centre (towards low columns) and low.
    cx, cy = size * pixel_mm / 2 - 20, size * pixel_mm / 2 + 10
    hu = np.full(shape, -1000, np.float32)
    body = g.ellipsoid((80, cy, cx), (400, 100, 140))
    hu[body] = 40
    table_row = int((cy + 108) / pixel_mm)
    hu[:, table_row : table_row + 8, 30:-30] = 200
    right = g.ellipsoid((80, cy, cx - 55), (65, 72, 48))
    left = g.ellipsoid((80, cy, cx + 55), (65, 72, 48))
    # The anterior junction: a strip of lung joining the two in front of the heart.
    junction = g.ellipsoid((95, cy - 60, cx), (25, 8, 35))
    lungs = right | left | junction
    right = lungs & (g.x < cx)
    left = lungs & (g.x >= cx)
    heart = g.ellipsoid((55, cy - 5, cx + 15), (38, 45, 50))
    liver = g.ellipsoid((0, cy + 5, cx - 50), (42, 80, 75))  # dome top at z 42, under the right lung
    trachea = g.tube((170, cy - 30, cx), (112, cy - 30, cx), 8)
    bronchi = g.tube((112, cy - 30, cx), (98, cy - 20, cx - 30), 5) | g.tube((112, cy - 30, cx), (98, cy - 20, cx + 30), 5)
    airway = trachea | bronchi
    solid = heart | liver
    right &= ~solid & ~airway
    left &= ~solid & ~airway
    hu[right | left] = -850
    hu[solid] = 50
    hu[airway] = -1000
    vessels = np.zeros(shape, bool)
    for side in (-1, 1):
        hilum = (95, cy - 5, cx + side * 22)
        for target in ((130, cy - 20, cx + side * 70), (50, cy + 30, cx + side * 75), (90, cy - 55, cx + side * 60), (70, cy + 50, cx + side * 45)):
            vessels |= g.tube(hilum, target, 1.2)
    vessels &= right | left
    hu[vessels] = 40
    ggo = g.ellipsoid((105, cy - 10, cx - 60), (14, 14, 14)) & right & ~vessels
    hu[ggo] = -550
    # Subpleural consolidation, broad-based on the posterior chest wall of the left lung:
    # a 16 mm sphere whose centre lies 9 mm inside the pleura (contact ~26 mm wide).
    consolidation = g.ellipsoid((85, cy + 72 * np.sqrt(1 - (5 / 65) ** 2) - 9, cx + 55), (16, 16, 16)) & left
    hu[consolidation] = 20
    if noise_hu:
        hu += np.random.default_rng(seed).normal(0, noise_hu, shape).astype(np.float32)
    outside = {"heart": heart & body, "liver": liver & body, "trachea and main bronchi": airway, "table": np.zeros(shape, bool)}
    outside["table"][:, table_row : table_row + 8, 30:-30] = True
    return Phantom(
        np.clip(np.rint(hu), -1024, 3071).astype(np.int16), right, left, ggo, consolidation, pixel_mm, slice_mm, outside, vessels
    )


def to_datasets(
    hu: np.ndarray,
    pixel_mm: float = PIXEL_MM,
    slice_mm: float = SLICE_MM,
    positions: list[float] | None = None,
    mirror_columns: bool = False,
) -> list[Dataset]:
    """One single-frame CT image per slice, ImagePositionPatient z = index × slice_mm.

    ``mirror_columns``: store every slice left-right mirrored with ImageOrientationPatient
    −1\\0\\0\\0\\1\\0 — the same patient, the same anatomy in LPS, other pixel order.
    """
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
    width = hu.shape[2]
    for index, plane in enumerate(hu):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SOPClassUID = CTImageStorage
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality = "CT"
        ds.PatientID, ds.PatientName, ds.PatientSex, ds.PatientBirthDate = "PHANTOM", "Phantom^Chest", "O", ""
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", ""
        ds.ReferringPhysicianName, ds.SeriesNumber, ds.InstanceNumber = "", 1, index + 1
        ds.Manufacturer, ds.PositionReferenceIndicator = "L3NET-TEST", ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        z = positions[index] if positions else index * slice_mm
        if mirror_columns:
            # Column c now holds what was at column width-1-c; x still = column × pixel.
            ds.ImageOrientationPatient = [-1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [float((width - 1) * pixel_mm), 0.0, float(z)]
            plane = plane[:, ::-1]
        else:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [0.0, 0.0, float(z)]
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.SliceThickness = slice_mm
        ds.KVP = 120
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.AcquisitionNumber = 1
        ds.PixelData = (plane.astype(np.int32) + 1024).astype(np.uint16).tobytes()
        out.append(ds)
    return out
