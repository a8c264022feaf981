"""Helpers of the browser tests and the viewer benchmark: Part 10 bytes and a
multipart/related body to store analysis outputs over STOW-RS, and the SR values as
OHIF writes them on screen."""

from __future__ import annotations

from io import BytesIO

from pydicom.dataset import Dataset

from dicomweb import multipart
from dicomweb.media import DICOM
from inference.pipeline import AnalysisResult


def part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def stow_body(datasets: list[Dataset], boundary: str = "l3net-viewer-fixture") -> tuple[bytes, str]:
    """A multipart/related STOW-RS request body of ``datasets`` and its Content-Type."""
    body = b"".join(multipart.stream([({"Content-Type": DICOM}, [part10(ds)]) for ds in datasets], boundary))
    return body, multipart.content_type(DICOM, boundary)


def ohif_label(meaning: str, value: float, unit: str) -> str:
    """A measurement as OHIF 3.13.2 writes it beside an SR outline: the concept's
    meaning, the value with two decimals (nothing for 0) and the UCUM code."""
    return f"{meaning}: {f'{value:.2f}' if value else ''} {unit}"


def expected_labels(result: AnalysisResult) -> list[str]:
    """Values the SR holds that OHIF must show: both lung volumes, the ground-glass and
    consolidation volumes, the involvement of both lungs and the total score."""
    m = result.measurements
    labels = [
        ohif_label("Volume", m["per_lung"]["right"]["volume_ml"], "mL"),
        ohif_label("Volume", m["per_lung"]["left"]["volume_ml"], "mL"),
        ohif_label("Volume", m["lungs"]["ggo_ml"], "mL"),
        ohif_label("Volume", m["lungs"]["consolidation_ml"], "mL"),
        ohif_label("Involvement, percent of lung volume", m["lungs"]["involvement_percent"], "%"),
        ohif_label("Total zonal severity score (0-24)", m["total_score"], "{score}"),
    ]
    return list(dict.fromkeys(labels))  # equal values (ground-glass and consolidation) once
