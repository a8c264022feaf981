"""Synthetic chest CT phantoms with known lung and lesion volumes, as real CT datasets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PIXEL_MM = 2.0
SLICE_MM = 3.0


@dataclass
class Phantom:
    hu: np.ndarray  # (z, y, x); z index grows towards the head
    right_lung: np.ndarray  # patient right = −x = low column index
    left_lung: np.ndarray
    ggo: np.ndarray
    consolidation: np.ndarray

    @property
    def voxel_ml(self) -> float:
        return PIXEL_MM * PIXEL_MM * SLICE_MM / 1000


def _ellipsoid(shape, centre_mm, radii_mm) -> np.ndarray:
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    zc, yc, xc = (np.array(centre_mm) / (SLICE_MM, PIXEL_MM, PIXEL_MM))
    rz, ry, rx = np.array(radii_mm) / (SLICE_MM, PIXEL_MM, PIXEL_MM)
    return ((z - zc) / rz) ** 2 + ((y - yc) / ry) ** 2 + ((x - xc) / rx) ** 2 <= 1


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


def to_datasets(hu: np.ndarray, pixel_mm: float = PIXEL_MM, slice_mm: float = SLICE_MM, positions: list[float] | None = None) -> list[Dataset]:
    """One single-frame CT image per slice, ImagePositionPatient z = index × slice_mm."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
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
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        z = positions[index] if positions else index * slice_mm
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
