"""A stand-in for the analysis output, for the browser tests: a BINARY SEG with two
segments ("Ground-glass opacity" yellow, "Consolidation" red) over a CT series, and a
TID 1500 SR referencing it with measurement values. The real worker's output replaces
it once the pipeline is wired to the viewer tests."""

from __future__ import annotations

from io import BytesIO

import highdicom as hd
import numpy as np
import pydicom
from highdicom.color import CIELabColor
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

GGO = ("Ground-glass opacity", codes.DCM.GroundGlassOpacity, (250, 220, 40))
CONSOLIDATION = ("Consolidation", hd.sr.CodedConcept("95436008", "SCT", "Lung consolidation"), (230, 40, 40))
SEGMENTS = [GGO, CONSOLIDATION]
# Values the SR reports; the browser test looks for them.
MEASURED = {"Ground-glass opacity": 123.4, "Consolidation": 56.7}
ML = hd.sr.CodedConcept("mL", "UCUM", "milliliter")


def _disk(rows: int, cols: int, cy: float, cx: float, radius: float) -> np.ndarray:
    y, x = np.ogrid[:rows, :cols]
    return (y - cy) ** 2 + (x - cx) ** 2 <= radius**2


def build(ct: list[Dataset], volumetric: bool = False) -> tuple[Dataset, Dataset]:
    """(seg, sr) for the CT series ``ct`` (sorted by position here).

    With ``volumetric`` the SR also holds TID 1411 groups referencing the SEG's segments
    (as the worker writes); OHIF 3.13.2 fails to hydrate such an SR ("Cannot read
    properties of undefined (reading 'ReferencedSOPSequence')"), so the browser test's SR
    carries only the planar groups (TID 1410) OHIF draws and lists."""
    ct = sorted(ct, key=lambda ds: float(ds.ImagePositionPatient[2]))
    rows, cols = int(ct[0].Rows), int(ct[0].Columns)
    mask = np.zeros((len(ct), rows, cols, 2), dtype=bool)
    # Right lung is on the image's left, left lung on its right; every slice gets both.
    for index in range(len(ct)):
        mask[index, :, :, 0] = _disk(rows, cols, rows * 0.45, cols * 0.30, rows * 0.10)
        mask[index, :, :, 1] = _disk(rows, cols, rows * 0.50, cols * 0.70, rows * 0.08)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test-fixture", family=codes.cid7162.HistogramAnalysis, version="0"
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            display_color=CIELabColor.from_rgb(*rgb),
        )
        for number, (label, kind, rgb) in enumerate(SEGMENTS, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=ct, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=9001,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="L3-net Node",
        manufacturer_model_name="test fixture", software_versions="0", device_serial_number="0",
        content_label="LUNGOPACITY", series_description="Lung opacity SEG (test fixture)",
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    observer = hd.sr.ObservationContext(
        observer_person_context=None,
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), name="L3-net test"),
        ),
    )
    source = hd.sr.SourceSeriesForSegmentation(ct[0].SeriesInstanceUID)
    groups = []
    for number, (label, kind, _rgb) in enumerate(SEGMENTS if volumetric else [], start=1):
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(identifier=label, uid=hd.UID()),
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=number,
                    source_series=source,
                ),
                finding_type=kind,
                measurements=[hd.sr.Measurement(name=codes.SCT.Volume, value=MEASURED[label], unit=ML)],
            )
        )
    # Planar ROIs on the middle slice (TID 1410 with an SCOORD polyline): the kind of
    # group OHIF draws and lists with its value.
    middle = ct[len(ct) // 2]
    for label, kind, _rgb in SEGMENTS:
        cy, cx, radius = (rows * 0.45, cols * 0.30, rows * 0.10) if label == GGO[0] else (rows * 0.50, cols * 0.70, rows * 0.08)
        angles = np.linspace(0, 2 * np.pi, 33)
        points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1).astype(np.float32)
        points[-1] = points[0]
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(identifier=f"{label} (slice)", uid=hd.UID()),
                referenced_region=hd.sr.ImageRegion(
                    graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=points,
                    source_image=hd.sr.SourceImageForRegion.from_source_image(middle),
                ),
                finding_type=kind,
                measurements=[hd.sr.Measurement(name=codes.SCT.Volume, value=MEASURED[label], unit=ML)],
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=observer,
        procedure_reported=hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region"),
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *ct], content=report, series_instance_uid=hd.UID(), series_number=9002,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="L3-net Node", is_complete=True,
        series_description="Lung opacity SR (test fixture)",
    )
    return seg, sr


def part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def stow_body(datasets: list[Dataset], boundary: str = "l3net-viewer-fixture") -> tuple[bytes, str]:
    """A multipart/related STOW-RS request body of ``datasets``."""
    parts = []
    for ds in datasets:
        parts.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10(ds) + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def read_series(paths) -> list[Dataset]:
    return [pydicom.dcmread(path) for path in paths]
