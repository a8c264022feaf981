"""The PDF report and its DICOM Encapsulated PDF instance, for PACS that display
neither SEG nor SR.

One A4 page: who and what was analysed, a key image (the axial slice with the most
opacity, ground-glass in yellow and consolidation in red over a lung window, in the
radiological convention: patient right on the image's left), the measurements of both
lungs, each lung and each zone, the zonal score, and the suggested prognosis with the
rule that decided it and its references. Every number comes from the same
:class:`~inference.measurements.Measurements` as the SR and ``summary.json``.

The DICOM instance is Encapsulated PDF Storage (PS3.3 A.45.1) in the source study,
with modality DOC, its own series (number 9003) and the CT and SEG it draws from in the
Source Instance Sequence. The PDF is written with fpdf2 in its core Helvetica font,
which is Latin-1 only: :func:`_latin1` spells out the few other characters we use.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

import numpy as np
from fpdf import FPDF
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

from inference.engines.base import CONSOLIDATION, GGO, Segmentation
from inference.measurements import SCORE_MAX, ZONES, Measurements, RegionMeasurements
from inference.seg import MANUFACTURER, SEGMENTS
from inference.sr import series_description
from inference.volume import CTVolume

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
SERIES_NUMBER = 9003
DOCUMENT_TITLE = "Quantitative lung CT report (suggested, not for diagnostic use)"
#: Lung window for the key image: W 1500, L -600.
WINDOW = (-1350.0, 150.0)
OVERLAY_ALPHA = 0.45
#: Overlay colour of each opacity label: the SEG's own segment colours.
_RGB = {spec.value: spec.rgb for spec in SEGMENTS if spec.source == "labels"}


def _latin1(text: str) -> str:
    """``text`` in the core fonts' Latin-1, with the few other characters spelled out."""
    for char, plain in (("—", "-"), ("–", "-"), ("≤", "<="), ("≥", ">="), ("−", "-"), ("’", "'")):
        text = text.replace(char, plain)
    return text.encode("latin-1", "replace").decode("latin-1")


def key_slice(segmentation: Segmentation) -> int:
    """Index of the slice with the most opacity voxels (the most lung when none)."""
    opacity = (segmentation.labels == GGO) | (segmentation.labels == CONSOLIDATION)
    counts = opacity.sum(axis=(1, 2))
    if counts.max() == 0:
        counts = (segmentation.side > 0).sum(axis=(1, 2))
    return int(np.argmax(counts))


def key_image(volume: CTVolume, segmentation: Segmentation, index: int) -> Image.Image:
    """Slice ``index`` in a lung window with the opacity overlaid, turned to the
    radiological convention (patient right on the left, anterior at the top)."""
    low, high = WINDOW
    grey = np.clip((volume.hu[index].astype(np.float32) - low) / (high - low), 0, 1) * 255
    rgb = np.repeat(grey[..., None], 3, axis=2)
    labels = segmentation.labels[index]
    for label, colour in _RGB.items():
        mask = labels == label
        rgb[mask] = (1 - OVERLAY_ALPHA) * rgb[mask] + OVERLAY_ALPHA * np.asarray(colour, np.float32)
    # Columns run along row_direction, rows along column_direction (LPS). Standard
    # display has +x (patient left) to the right and +y (posterior) downwards.
    if volume.row_direction[0] < 0:
        rgb = rgb[:, ::-1]
    if volume.column_direction[1] < 0:
        rgb = rgb[::-1]
    return Image.fromarray(np.ascontiguousarray(rgb.astype(np.uint8)), "RGB")


def _name(value: Any) -> str:
    return str(value or "").replace("^", " ").strip() or "-"


def _date(value: Any) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else (text or "-")


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _region_row(label: str, values: RegionMeasurements) -> tuple[str, ...]:
    return (
        label,
        _number(values["volume_ml"], 0),
        _number(values["ggo_percent"]),
        _number(values["consolidation_percent"]),
        _number(values["involvement_percent"]),
        _number(values["well_aerated_percent"]),
        _number(values["hyperinflated_percent"]),
        _number(values["mean_hu"], 0),
    )


def render_pdf(
    volume: CTVolume,
    segmentation: Segmentation,
    measurements: Measurements,
    prognosis: dict[str, Any],
    index: int,
) -> bytes:
    """The one-page report as PDF bytes; ``index``: the key slice (:func:`key_slice`)."""
    first = volume.datasets[0]
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.set_title(_latin1(DOCUMENT_TITLE))
    pdf.set_author(MANUFACTURER)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(width, 7, "Quantitative lung CT: opacity analysis", new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_font("Helvetica", "B", 10)
    pdf.set_text_color(190, 20, 20)
    pdf.cell(width, 5, _latin1("SUGGESTED — NOT FOR DIAGNOSTIC USE. Research software; a radiologist must review."),
             new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("Helvetica", "", 9)
    facts = [
        ("Patient", f"{_name(first.get('PatientName'))}   ID {first.get('PatientID', '-') or '-'}   "
                    f"born {_date(first.get('PatientBirthDate'))}   sex {first.get('PatientSex', '-') or '-'}"),
        ("Study", f"{_date(first.get('StudyDate'))}   accession {first.get('AccessionNumber', '-') or '-'}   "
                  f"{first.get('StudyDescription', '') or ''}"),
        ("Series", f"{first.get('SeriesNumber', '-')} {first.get('SeriesDescription', '') or ''}   {volume.shape[0]} slices,"
                   f" {volume.spacing[0]:.2f} mm apart, pixels {volume.spacing[1]:.2f} x {volume.spacing[2]:.2f} mm"),
        ("Engine", f"{segmentation.engine} {segmentation.version}"),
    ]
    for label, text in facts:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(18, 4.5, label)
        pdf.set_font("Helvetica", "", 9)
        pdf.cell(width - 18, 4.5, _latin1(text), new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(2)

    # Key image on the left, prognosis and score on the right.
    top = pdf.get_y()
    side = 82.0
    pdf.image(key_image(volume, segmentation, index), x=pdf.l_margin, y=top, w=side, h=side)
    pdf.set_font("Helvetica", "", 7)
    pdf.set_xy(pdf.l_margin, top + side + 0.5)
    z = float(volume.to_patient(np.array([[index, 0, 0]], float))[0, 2])
    pdf.cell(side, 3.5, _latin1(f"Slice {index + 1} of {volume.shape[0]} (z {z:.1f} mm). R on the left. "
                                "Yellow: ground-glass, red: consolidation."))
    # The right column: a temporary left margin keeps tables and line breaks in it.
    margin = pdf.l_margin
    pdf.set_left_margin(margin + side + 5)
    pdf.set_xy(pdf.l_margin, top)
    right = width - side - 5
    pdf.set_font("Helvetica", "B", 11)
    pdf.multi_cell(right, 5.5, _latin1(f"Suggested risk: {prognosis['category'].upper()}"), new_x="LEFT", new_y="NEXT", align="L")
    pdf.set_font("Helvetica", "", 8.5)
    pdf.multi_cell(right, 4, _latin1(f"Decided by rule {prognosis['decisive_rule']['id']}: {prognosis['rule']}."),
                   new_x="LEFT", new_y="NEXT", align="L")
    pdf.ln(1)
    lungs = measurements["lungs"]
    pdf.set_font("Helvetica", "B", 9)
    pdf.multi_cell(right, 4.5, _latin1(
        f"Zonal score {measurements['total_score']} / {SCORE_MAX}   Involvement {lungs['involvement_percent']:.1f} %   "
        f"Well-aerated {lungs['well_aerated_percent']:.1f} %"), new_x="LEFT", new_y="NEXT", align="L")
    pdf.ln(1)
    pdf.set_font("Helvetica", "", 7.5)
    with pdf.table(width=right, col_widths=(14, 20, 20), text_align=("LEFT", "RIGHT", "RIGHT"),
                   line_height=3.8, align="LEFT") as table:
        table.row(["Zone", "Right lung: % (score)", "Left lung: % (score)"])
        for zone in ZONES:
            row = table.row([zone])
            for lung in ("right", "left"):
                values = measurements["zones"][f"{lung}_{zone}"]
                row.cell(f"{values['involvement_percent']:.1f} % ({values['score']})")
    pdf.set_font("Helvetica", "", 7)
    pdf.multi_cell(right, 3.3, _latin1(
        f"Zone: upper/middle/lower third of each lung; % involved (score 0-4: 0 below "
        f"{measurements['score_floor_percent']:g} %, 1 < 25 %, 2 < 50 %, 3 < 75 %, 4 >= 75 %). A zonal adaptation "
        "of the lobar score of Francone et al."), new_x="LEFT", new_y="NEXT", align="L")
    pdf.set_left_margin(margin)
    pdf.set_xy(margin, max(pdf.get_y(), top + side + 5))
    pdf.ln(2)

    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(width, 5, "Measurements", new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_font("Helvetica", "", 8)
    headings = ("Region", "Volume mL", "GGO %", "Consolidation %", "Involvement %", "Well-aerated %",
                "Hyperinflated %", "Mean HU")
    rows = [_region_row("Both lungs", lungs)] + [
        _region_row(f"{lung.capitalize()} lung", measurements["per_lung"][lung]) for lung in ("right", "left")
    ]
    with pdf.table(width=width, col_widths=(22, 16, 12, 20, 18, 18, 19, 14),
                   text_align=("LEFT",) + ("RIGHT",) * 7, line_height=4.2) as table:
        table.row(list(headings))
        for values in rows:
            table.row(list(values))
    pdf.set_font("Helvetica", "", 7)
    pdf.multi_cell(width, 3.3, _latin1(
        "GGO -700..-300 HU and consolidation -300..+100 HU after vessel suppression; well-aerated -950..-700 HU and "
        "hyperinflated < -950 HU over the whole lung mask, vessels included."), new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(2)

    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(width, 5, "How the suggested risk was derived", new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.set_font("Helvetica", "", 7.5)
    for rule in prognosis["rules"]:
        mark = "FIRED" if rule["fired"] else "no"
        pdf.multi_cell(width, 3.6, _latin1(f"{rule['id']} ({rule['category']}): {rule['condition']} - {mark}"),
                       new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.multi_cell(width, 3.6, _latin1(f"Method: {prognosis['method']}."), new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.ln(1)
    pdf.set_font("Helvetica", "", 6.5)
    for reference in sorted({ref for rule in prognosis["rules"] for ref in rule["references"]}):
        pdf.multi_cell(width, 3, _latin1(reference), new_x="LMARGIN", new_y="NEXT", align="L")
    return bytes(pdf.output())


def write_pdf_report(
    volume: CTVolume,
    segmentation: Segmentation,
    measurements: Measurements,
    prognosis: dict[str, Any],
    seg: Dataset,
    series_uid: str,
    sop_uid: str,
    series_number: int = SERIES_NUMBER,
    source_images: Sequence[Dataset] | None = None,
) -> Dataset:
    """The Encapsulated PDF instance of the report, in the source study.

    ``seg``: the SEG written for the same analysis (referenced as a source instance).
    ``series_uid`` / ``sop_uid``: the new series and instance UIDs.
    """
    index = key_slice(segmentation)
    document = render_pdf(volume, segmentation, measurements, prognosis, index)
    source = list(source_images or volume.datasets)
    first = source[0]
    now = dt.datetime.now()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    # SOP Common
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    # Patient and General Study: copied from the source.
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "IssuerOfPatientID",
                    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                    "AccessionNumber", "StudyDescription"):
        ds.__setattr__(keyword, first.get(keyword, ""))
    # Encapsulated Document Series
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description("opacity report", prognosis)
    # General Equipment and SC Equipment
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = f"{segmentation.engine} engine"
    ds.SoftwareVersions = segmentation.version
    ds.ConversionType = "WSD"  # workstation: produced by software, not scanned
    # Encapsulated Document
    ds.InstanceNumber = 1
    ds.ContentDate = ds.InstanceCreationDate
    ds.ContentTime = ds.InstanceCreationTime
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the page names the patient
    ds.DocumentTitle = DOCUMENT_TITLE
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "18747-6", "LN", "CT Report"
    ds.ConceptNameCodeSequence = [concept]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    references = []
    for reference in [seg, source[index]]:
        item = Dataset()
        item.ReferencedSOPClassUID = reference.SOPClassUID
        item.ReferencedSOPInstanceUID = reference.SOPInstanceUID
        references.append(item)
    ds.SourceInstanceSequence = references
    # An odd length is padded with one NUL (PS3.5 8.1.1); the length attribute keeps the true size.
    ds.EncapsulatedDocument = document + (b"\0" if len(document) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(document)
    return ds
