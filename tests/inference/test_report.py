"""The PDF report: a valid Encapsulated PDF instance (dciodvfy) in the source study,
holding the same numbers as the SR and summary.json, with a key image in the
radiological convention whatever the pixel order; and written only when asked for."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pydicom
import pytest
from pypdf import PdfReader

from archive.settings import Settings
from inference.pipeline import analyze, write_outputs
from inference.report import ENCAPSULATED_PDF_STORAGE, key_image, key_slice
from tests.conftest import require_tool
from tests.inference.phantom import build, to_datasets


@pytest.fixture(scope="module")
def phantom():
    return build()


@pytest.fixture(scope="module")
def result(phantom):
    return analyze(to_datasets(phantom.hu))


def _pdf_text(ds) -> str:
    document = bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]
    assert document.startswith(b"%PDF-") and document.rstrip(b"\n").endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(document))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_report_is_a_valid_encapsulated_pdf_in_the_source_study(result, tmp_path):
    pdf, source = result.pdf, result.volume.datasets[0]
    assert pdf.SOPClassUID == ENCAPSULATED_PDF_STORAGE and pdf.Modality == "DOC"
    assert pdf.StudyInstanceUID == source.StudyInstanceUID and pdf.PatientID == source.PatientID
    assert pdf.MIMETypeOfEncapsulatedDocument == "application/pdf"
    referenced = {item.ReferencedSOPInstanceUID for item in pdf.SourceInstanceSequence}
    assert result.seg.SOPInstanceUID in referenced
    assert result.summary["outputs"]["pdf"]["sop_instance_uid"] == pdf.SOPInstanceUID
    path = tmp_path / "report.dcm"
    pdf.save_as(path, enforce_file_format=True)
    out = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=120)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
    assert errors == []
    assert pydicom.dcmread(path).EncapsulatedDocumentLength == pdf.EncapsulatedDocumentLength


def test_report_holds_the_numbers_and_the_labelled_prognosis(result):
    text = " ".join(_pdf_text(result.pdf).split())
    measurements, prognosis = result.measurements, result.prognosis
    assert "NOT FOR DIAGNOSTIC USE" in text
    assert f"Suggested risk: {prognosis['category'].upper()}" in text
    assert f"Decided by rule {prognosis['decisive_rule']['id']}" in text
    assert f"Zonal score {measurements['total_score']} / 24" in text
    lungs = measurements["lungs"]
    assert f"Both lungs {lungs['volume_ml']:.0f} {lungs['ggo_percent']:.1f} {lungs['consolidation_percent']:.1f}" in text
    for lung in ("right", "left"):
        assert f"{lung.capitalize()} lung {measurements['per_lung'][lung]['volume_ml']:.0f}" in text
    for zone in ("upper", "middle", "lower"):
        right, left = measurements["zones"][f"right_{zone}"], measurements["zones"][f"left_{zone}"]
        assert (f"{zone} {right['involvement_percent']:.1f} % ({right['score']}) "
                f"{left['involvement_percent']:.1f} % ({left['score']})") in text
    assert "Colombi D" in text and "Francone M" in text


@pytest.mark.parametrize("mirror", [False, True], ids=["as stored", "columns mirrored"])
def test_key_image_puts_patient_right_on_the_left(phantom, mirror):
    """The phantom's ground-glass is in the right lung and its consolidation in the left:
    yellow must land on the image's left half and red on its right half either way."""
    result = analyze(to_datasets(phantom.hu, mirror_columns=mirror), settings=Settings(pdf_report=False))
    assert result.pdf is None
    image = np.asarray(key_image(result.volume, result.segmentation, key_slice(result.segmentation))).astype(int)
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    yellow = (red - blue > 60) & (green - blue > 60)
    reddish = (red - green > 60) & (red - blue > 60)
    half = image.shape[1] // 2
    assert yellow[:, :half].sum() > 20 * max(1, yellow[:, half:].sum())
    assert reddish[:, half:].sum() > 20 * max(1, reddish[:, :half].sum())


def test_write_outputs_writes_the_report_twice_over(result, tmp_path):
    paths = write_outputs(result, tmp_path)
    assert paths["pdf"].read_bytes().startswith(b"%PDF-")
    assert pydicom.dcmread(paths["report"]).SOPInstanceUID == result.pdf.SOPInstanceUID
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.dcm", "report.pdf", "seg.dcm", "sr.dcm", "summary.json"]
