"""DICOM Comprehensive 3D SR: a TID 1500 measurement report referencing the SEG.

There is one Volumetric ROI group (TID 1411) per SEG segment. Each group references
its segment, and holds the volume (mL) and percentages (%) of that region.

The right and left lung groups also carry, as qualitative evaluations:

- the three zone scores of that lung;
- the total score;
- the suggested prognosis: the category, the rule that fired, and
  "not for diagnostic use".

Concepts with no standard code use the private scheme ``99L3NET``.
"""

from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from inference.seg import MANUFACTURER, SEGMENTS

PRIVATE = "99L3NET"
ML = hd.sr.CodedConcept("mL", "UCUM", "milliliter")
PERCENT = hd.sr.CodedConcept("%", "UCUM", "percent")
HU = hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")


def _private(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value, PRIVATE, meaning[:64])


QUANTITIES = [
    ("ggo_percent", _private("GGO-PCT", "Ground-glass opacity percent of region"), PERCENT),
    ("consolidation_percent", _private("CONS-PCT", "Consolidation percent of region"), PERCENT),
    ("involvement_percent", _private("INV-PCT", "Opacity involvement percent of region"), PERCENT),
    ("well_aerated_percent", _private("WAL-PCT", "Well-aerated lung percent (-950 to -700 HU)"), PERCENT),
    ("hyperinflated_percent", _private("HYP-PCT", "Hyperinflated lung percent (below -950 HU)"), PERCENT),
    ("mean_hu", _private("MEAN-HU", "Mean attenuation of region"), HU),
]


def _measurement(name, value: float, unit) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=unit)


def _region_measurements(values: dict) -> list[hd.sr.Measurement]:
    items = [_measurement(codes.SCT.Volume, values["volume_ml"], ML)]
    items += [_measurement(name, values[key], unit) for key, name, unit in QUANTITIES if values.get(key) is not None]
    return items


def _score(name: str, score: int) -> hd.sr.QualitativeEvaluation:
    return hd.sr.QualitativeEvaluation(
        name=_private(f"SCORE-{name.upper()}", f"Zone severity score, {name.replace('_', ' ')} zone (0-4)"),
        value=_private(f"SCORE{score}", f"Score {score}"),
    )


def write_sr(
    seg: Dataset, source: list[Dataset], measurements: dict, prognosis: dict, series_uid: str, sop_uid: str, engine: str, version: str
) -> Dataset:
    observer = hd.sr.ObservationContext(
        observer_person_context=None,
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=seg.SOPInstanceUID, name=f"L3-net {engine} {version}"
            ),
        ),
    )
    series = hd.sr.SourceSeriesForSegmentation(source[0].SeriesInstanceUID)
    groups = []
    regions = {1: measurements["per_lung"]["right"], 2: measurements["per_lung"]["left"]}
    for number, label, _category, kind, _rgb in SEGMENTS:
        if number in regions:
            values = regions[number]
            side = "right" if number == 1 else "left"
            evaluations = [_score(f"{side}_{zone}", measurements["zones"][f"{side}_{zone}"]["score"]) for zone in ("upper", "middle", "lower")]
        else:
            key = "ggo" if number == 3 else "consolidation"
            lungs = measurements["lungs"]
            values = {"volume_ml": lungs[f"{key}_ml"], f"{key}_percent": lungs[f"{key}_percent"]}
            evaluations = []
        if number == 1:
            evaluations += [
                hd.sr.QualitativeEvaluation(
                    name=_private("SCORE-TOTAL", "Total zonal severity score (0-24)"),
                    value=_private(f"TOTAL{measurements['total_score']}", f"Total score {measurements['total_score']} of 24"),
                ),
                hd.sr.QualitativeEvaluation(
                    name=_private("PROGNOSIS", "Suggested prognosis, not for diagnostic use"),
                    value=_private(f"RISK-{prognosis['category'].upper()}", f"{prognosis['category']} risk (suggested)"),
                ),
            ]
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(identifier=label, uid=hd.UID()),
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=number, source_series=series
                ),
                finding_type=kind,
                measurements=_region_measurements(values),
                qualitative_evaluations=evaluations or None,
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=observer,
        procedure_reported=hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region"),
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[seg, *source],
        content=report,
        series_instance_uid=series_uid,
        series_number=9002,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=f"Lung opacity SR ({engine}), not for diagnostic use",
    )
