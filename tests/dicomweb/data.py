"""Test data for the DICOMweb tests: the shared series, the JPEG 2000 series given the
UIDs it lacks, and small synthetic instances with chosen attributes for matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def j2k_copies(source: Path, target: Path) -> list[Path]:
    """The abdomen JPEG 2000 series (as acquired, but anonymised down to no Study,
    Series or SOP Instance UID, which C-STORE and STOW-RS both refuse) with stable
    UIDs added; pixel data stays encapsulated, byte for byte."""
    target.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(entropy_srcs=["j2k-study"]), generate_uid(entropy_srcs=["j2k-series"])
    out = []
    for number, path in enumerate(sorted(source.iterdir()), 1):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["j2k", path.name])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID = "ABDOMEN-J2K"
        ds.InstanceNumber = number
        file = target / f"{number:03d}.dcm"
        ds.save_as(file, enforce_file_format=True)
        out.append(file)
    return out


def synthetic(
    folder: Path,
    patient_name: str,
    patient_id: str,
    study_date: str,
    study_time: str = "101500",
    modality: str = "CT",
    instances: int = 2,
    description: str = "",
    accession: str = "",
    extra_bulk: bool = False,
) -> list[Path]:
    """A small study (one series, 16x16 pixels, known values) written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    files = []
    for number in range(1, instances + 1):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID = patient_name, patient_id
        ds.StudyDate, ds.StudyTime = study_date, study_time
        ds.AccessionNumber, ds.StudyDescription = accession, description
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 1, number
        ds.SliceThickness = "2.5"
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.PixelData = (np.arange(256, dtype="<u2").reshape(16, 16) * number).tobytes()
        if extra_bulk:
            ds.add_new(0x00420011, "OB", bytes(range(256)) * 12)  # Encapsulated Document: 3 KiB, bulk data
        path = folder / f"{number:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files
