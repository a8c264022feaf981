"""DICOM Comprehensive 3D SR: a TID 1500 Measurement Report referencing the SEG.

Content (``Imaging Measurements``):

* one Volumetric ROI group (TID 1411) per SEG segment, referencing that segment:

  - right lung, left lung: volume (mL); ground-glass, consolidation and involvement
    (mL and %); well-aerated and hyperinflated lung (%); mean attenuation (HU); and
    per zone (finding site: SCT upper / middle / lower zone of lung, with laterality)
    the involvement (%) and the zone score (0–4, unit ``{score}``); and each zone's
    score again as a qualitative evaluation (a coded grade such as "Score 2: 25-49 %
    of the zone involved"), for readers that list evaluations rather than numbers;
  - ground-glass opacity, consolidation: volume (mL) and % of both lungs;

* one group without ROI (TID 1501) for the whole study: total lung volume, %WAL,
  total zonal score (0–24) and, as qualitative evaluations, the total score ("17 of
  24"), the suggested prognosis category and the rule that fired, coded and labelled
  "not for diagnostic use";

* planar companions (TID 1410): for each of those findings, one group with the same
  Tracking Identifier and Tracking Unique Identifier (the same finding) whose Image
  Region is an outline of it on one CT image (:mod:`inference.sr_outline`), with no
  measurement of its own. Every volume, percentage and score stays in the TID 1411 /
  1501 group it was measured for. They exist because viewers that draw SR content
  only through spatial coordinates need one per finding: OHIF 3.13.2 merges groups by
  Tracking Unique Identifier, shows the finding's values at its outline, and fails on
  the whole SR ("Cannot read properties of undefined (reading 'ReferencedSOPSequence')")
  when any finding has no SCOORD/SCOORD3D. Each outline lies on the image where its
  segment is largest among images not used by an earlier outline (if any), so OHIF
  never draws two findings' values over one another. The both-lungs finding gets the
  convex hull of both lungs on one image, so its totals are never drawn beside one
  lung's outline. A segment empty in the SEG has no outline and therefore no group:
  its zero volumes are in the lung groups.

Standard codes where the standard has them (pydicom's code dictionary): Volume SCT
118565006, Attenuation Coefficient DCM 112031 with derivation Mean SCT 373098007,
Lung and the zone concepts, laterality, UCUM units. Percentages, scores and the
prognosis have no standard concept; they use the private scheme ``99L3NET``, which
the SR declares in its Coding Scheme Identification Sequence.
"""

from __future__ import annotations

from typing import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from inference.measurements import ZONES, Measurements, RegionMeasurements
from inference.engines.base import OPACITIES, SIDES
from inference.seg import MANUFACTURER, SEGMENTS
from inference.sr_outline import Outline, hull_outline, outline, segment_frames

PRIVATE = "99L3NET"
SERIES_NUMBER = 9002
ML = hd.sr.CodedConcept("mL", "UCUM", "milliliter")
PERCENT = hd.sr.CodedConcept("%", "UCUM", "percent")
HU = hd.sr.CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")
SCORE = hd.sr.CodedConcept("{score}", "UCUM", "score")
CT_PROCEDURE = hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region")  # CID 100
ZONE_CODES = {"upper": codes.SCT.UpperZoneOfLung, "middle": codes.SCT.MiddleZoneOfLung, "lower": codes.SCT.LowerZoneOfLung}
LATERALITY = {"right": codes.SCT.Right, "left": codes.SCT.Left}


def private(value: str, meaning: str) -> hd.sr.CodedConcept:
    """A concept of the private scheme. CodeValue is SH (at most 16 characters; longer
    ones would become LongCodeValue, which readers look for less), CodeMeaning at most
    64."""
    if len(value) > 16:
        raise ValueError(f"private code value {value!r} is longer than 16 characters")
    return hd.sr.CodedConcept(value, PRIVATE, meaning[:64])


# (key in RegionMeasurements, concept, unit) for the lung groups.
QUANTITIES = [
    ("ggo_ml", private("GGO-ML", "Ground-glass opacity volume"), ML),
    ("ggo_percent", private("GGO-PCT", "Ground-glass opacity, percent of lung volume"), PERCENT),
    ("consolidation_ml", private("CONS-ML", "Consolidation volume"), ML),
    ("consolidation_percent", private("CONS-PCT", "Consolidation, percent of lung volume"), PERCENT),
    ("involvement_ml", private("INV-ML", "Involved lung volume (ground-glass + consolidation)"), ML),
    ("involvement_percent", private("INV-PCT", "Involvement, percent of lung volume"), PERCENT),
    ("well_aerated_percent", private("WAL-PCT", "Well-aerated lung (-950 to -700 HU), percent"), PERCENT),
    ("hyperinflated_percent", private("HYP-PCT", "Hyperinflated lung (below -950 HU), percent"), PERCENT),
]
CONCEPT = {key: concept for key, concept, _unit in QUANTITIES}


def zone_involvement(side: str, zone: str) -> hd.sr.CodedConcept:
    """The involvement concept of one zone. The zone is in the name as well as in the
    finding site, because viewers (OHIF) print names but not finding sites: six lines
    "Zone involvement" could not be told apart."""
    return private(f"ZONE-INV-{side[0].upper()}{zone[0].upper()}", f"{side.capitalize()} {zone} zone involvement, percent")


def zone_score_concept(side: str, zone: str) -> hd.sr.CodedConcept:
    """The numeric score concept of one zone (see :func:`zone_involvement`)."""
    return private(f"ZONE-SCORE-{side[0].upper()}{zone[0].upper()}", f"{side.capitalize()} {zone} zone score (0-4)")


TOTAL_SCORE = private("TOTAL-SCORE", "Total zonal severity score (0-24)")
PROGNOSIS = private("PROGNOSIS", "Suggested prognosis, not for diagnostic use")
TOTAL_SCORE_GRADE = private("TOTAL-GRADE", "Total zonal severity score, of 24")
#: The suggested risk categories as codes (CodeValue is at most 16 characters).
RISK_CODES = {"low": "RISK-LOW", "intermediate": "RISK-INTERMED", "high": "RISK-HIGH"}
#: The zone grades (domain: 0 none, 1 < 25 %, 2 25–49 %, 3 50–74 %, 4 ≥ 75 % involved).
ZONE_GRADES = {
    0: "Score 0: no involvement",
    1: "Score 1: under 25 % of the zone involved",
    2: "Score 2: 25-49 % of the zone involved",
    3: "Score 3: 50-74 % of the zone involved",
    4: "Score 4: 75 % or more of the zone involved",
}
PROGNOSIS_RULE = private("PROGNOSIS-RULE", "Rule that decided the suggested prognosis")


def _measurement(name, value: float, unit, **kwargs) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=unit, **kwargs)


def _mean_attenuation(values: RegionMeasurements) -> list[hd.sr.Measurement]:
    if values["mean_hu"] is None:
        return []
    return [_measurement(codes.DCM.AttenuationCoefficient, values["mean_hu"], HU, derivation=codes.SCT.Mean)]


def _lung_measurements(side: str, values: RegionMeasurements, measurements: Measurements) -> list[hd.sr.Measurement]:
    items = [_measurement(codes.SCT.Volume, values["volume_ml"], ML)]
    items += [_measurement(name, values[key], unit) for key, name, unit in QUANTITIES]  # type: ignore[literal-required]
    items += _mean_attenuation(values)
    for zone in ZONES:
        site = [hd.sr.FindingSite(anatomic_location=ZONE_CODES[zone], laterality=LATERALITY[side])]
        zone_values = measurements["zones"][f"{side}_{zone}"]
        items.append(_measurement(zone_involvement(side, zone), zone_values["involvement_percent"], PERCENT, finding_sites=site))
        items.append(_measurement(zone_score_concept(side, zone), zone_values["score"], SCORE, finding_sites=site))
    return items


def _zone_grades(side: str, measurements: Measurements) -> list[hd.sr.QualitativeEvaluation]:
    """Each zone's score of one lung as a coded grade (the zone is in the concept name:
    TID 1419 qualitative evaluations carry no finding site)."""
    evaluations = []
    for zone in ZONES:
        score = measurements["zones"][f"{side}_{zone}"]["score"]
        name = private(f"ZONE-GRADE-{side[0].upper()}{zone[0].upper()}", f"{side.capitalize()} {zone} zone severity score")
        evaluations.append(hd.sr.QualitativeEvaluation(name=name, value=private(f"GRADE-{score}", ZONE_GRADES[score])))
    return evaluations


def _opacity_measurements(key: str, measurements: Measurements) -> list[hd.sr.Measurement]:
    lungs = measurements["lungs"]
    return [
        _measurement(codes.SCT.Volume, lungs[f"{key}_ml"], ML),  # type: ignore[literal-required]
        _measurement(CONCEPT[f"{key}_percent"], lungs[f"{key}_percent"], PERCENT),  # type: ignore[literal-required]
    ]


BOTH_LUNGS = "Both lungs: scores and suggested prognosis"


def _both_lungs_sites() -> list[hd.sr.FindingSite]:
    return [hd.sr.FindingSite(anatomic_location=codes.SCT.Lung, laterality=codes.SCT.Bilateral)]


def _summary_group(
    measurements: Measurements, prognosis: dict, tracking: hd.sr.TrackingIdentifier
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    lungs = measurements["lungs"]
    rule = prognosis["decisive_rule"]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=codes.SCT.Lung,
        finding_sites=_both_lungs_sites(),
        measurements=[
            _measurement(codes.SCT.Volume, lungs["volume_ml"], ML),
            _measurement(CONCEPT["well_aerated_percent"], lungs["well_aerated_percent"], PERCENT),
            _measurement(CONCEPT["involvement_percent"], lungs["involvement_percent"], PERCENT),
            *_mean_attenuation(lungs),
            _measurement(TOTAL_SCORE, measurements["total_score"], SCORE),
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=TOTAL_SCORE_GRADE,
                value=private(f"TOTAL-{measurements['total_score']}", f"{measurements['total_score']} of 24"),
            ),
            hd.sr.QualitativeEvaluation(
                name=PROGNOSIS,
                value=private(
                    RISK_CODES[prognosis["category"]], f"{prognosis['category'].capitalize()} risk (suggested, not for diagnostic use)"
                ),
            ),
            hd.sr.QualitativeEvaluation(name=PROGNOSIS_RULE, value=private(rule["id"], rule["short"])),
        ],
    )


def _planar_companion(
    tracking: hd.sr.TrackingIdentifier, found: Outline, source: dict[str, Dataset], finding_type, sites: list
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """A TID 1410 group for the finding ``tracking`` names: its outline on one image and
    nothing measured (its values are in the finding's TID 1411 / 1501 group)."""
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=found.points,
        source_image=hd.sr.SourceImageForRegion.from_source_image(source[found.sop_instance_uid]),
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, referenced_region=region, finding_type=finding_type, finding_sites=sites
    )


def series_description(what: str, prognosis: dict) -> str:
    """The Series Description of an output that carries the suggested prognosis, with the
    risk first: viewers and PACS study browsers show the start of it (OHIF about 25
    characters), so the suggested risk is visible without opening anything. At most 64
    characters (LO)."""
    return f"Risk {prognosis['category'].upper()} (suggested, not diagnostic): {what}"[:64]


def write_sr(
    seg: Dataset,
    source: Sequence[Dataset],
    measurements: Measurements,
    prognosis: dict,
    series_uid: str,
    sop_uid: str,
    engine: str,
    version: str,
    series_number: int = SERIES_NUMBER,
    frames: dict[int, dict[str, np.ndarray]] | None = None,
) -> Dataset:
    """The SR instance: TID 1500 over ``seg`` (and through it ``source``).

    ``prognosis``: the dict of :func:`inference.prognosis.suggest`. ``frames``: the
    SEG's frames as {segment number: {source SOP Instance UID: mask}}
    (:func:`inference.sr_outline.volume_frames`), to outline findings without decoding
    ``seg`` again; by default they are read from ``seg``.
    """
    device_uid = generate_uid(entropy_srcs=["L3-net Node", engine, version])
    observer = hd.sr.ObservationContext(
        observer_person_context=None,
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=device_uid, name=f"L3-net {engine}", manufacturer_name=MANUFACTURER, model_name=f"{engine} {version}"
            ),
        ),
    )
    series = hd.sr.SourceSeriesForSegmentation(str(source[0].SeriesInstanceUID))
    by_uid = {str(ds.SOPInstanceUID): ds for ds in source}
    frames = frames if frames is not None else segment_frames(seg)
    groups: list = []
    companions: list = []
    outlined_lungs: list[int] = []  # segment numbers of the lungs that have an outline
    taken: set[str] = set()  # images with an outline: one finding per image where possible
    for spec in SEGMENTS:
        found = outline(frames.get(spec.number, {}), avoid=taken)
        if found is None:
            continue  # an empty segment: no outline to show it by (see the module docstring)
        if spec.source == "side":
            side = SIDES[spec.value]
            items = _lung_measurements(side, measurements["per_lung"][side], measurements)
            evaluations = _zone_grades(side, measurements)
            sites = [hd.sr.FindingSite(anatomic_location=codes.SCT.Lung, laterality=LATERALITY[side])]
            outlined_lungs.append(spec.number)
        else:
            items = _opacity_measurements(OPACITIES[spec.value], measurements)
            evaluations = []
            sites = _both_lungs_sites()
        tracking = hd.sr.TrackingIdentifier(identifier=spec.label, uid=generate_uid())
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                referenced_segment=hd.sr.ReferencedSegment(
                    sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=spec.number, source_series=series
                ),
                finding_type=spec.kind,
                finding_sites=sites,
                measurements=items,
                qualitative_evaluations=evaluations or None,
            )
        )
        companions.append(_planar_companion(tracking, found, by_uid, spec.kind, sites))
        taken.add(found.sop_instance_uid)
    both = hd.sr.TrackingIdentifier(identifier=BOTH_LUNGS, uid=generate_uid())
    groups.append(_summary_group(measurements, prognosis, both))
    # The both-lungs finding's outline: the convex hull of both lungs on one image (one
    # without another outline where possible). OHIF draws a finding's values beside its
    # first outline; an outline of one lung would put the totals beside, say, the right
    # lung, where a reader could take them for that lung's.
    found = hull_outline(*(frames[number] for number in outlined_lungs), avoid=taken)
    if found is not None:
        companions.append(_planar_companion(both, found, by_uid, codes.SCT.Lung, _both_lungs_sites()))
    groups += companions
    report = hd.sr.MeasurementReport(observation_context=observer, procedure_reported=CT_PROCEDURE, imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *source],
        content=report,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=series_description("opacity SR", prognosis),
    )
    scheme = Dataset()
    scheme.CodingSchemeDesignator = PRIVATE
    scheme.CodingSchemeName = "L3-net Node private concepts"
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr
