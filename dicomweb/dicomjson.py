"""DICOM JSON (PS3.18 Annex F) of index rows, and the attribute catalogue QIDO-RS uses.

Each :class:`Attr` names one attribute the index keeps: its tag, VR, query level and
how to read it from the joined rows. QIDO-RS matching and responses, and includefield,
all go through :data:`ATTRS`, so a search never reads an object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from archive.index.models import Instance, Patient, Series, Study

RETRIEVE_URL = "00081190"
JSON = dict[str, Any]


def element(vr: str, values: list[Any]) -> JSON:
    """One attribute; an empty value is sent as the VR alone (PS3.18 F.2.5)."""
    values = [v for v in values if v not in (None, "")]
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def _value(vr: str, raw: Any) -> JSON:
    """A stored value as DICOM JSON: PN as Alphabetic, multi-values split on ``\\``,
    IS numbers as numbers."""
    if raw is None or raw == "":
        return {"vr": vr}
    if vr == "PN":
        return element(vr, [{"Alphabetic": part} for part in str(raw).split("\\")])
    if vr in ("IS", "US", "UL", "SS", "SL"):
        return element(vr, [int(raw)])
    if vr in ("DS", "FD", "FL"):
        return element(vr, [float(raw)])
    if isinstance(raw, str) and vr in ("CS", "LO", "SH", "DA", "TM", "UI") and "\\" in raw:
        return element(vr, raw.split("\\"))
    return element(vr, [raw])


@dataclass(frozen=True)
class Attr:
    """An attribute the index holds.

    ``column``: the SQL expression matched (None: returned, never matched);
    ``read``: the value from ``(patient, study, series, instance)`` rows."""

    keyword: str
    tag: str
    vr: str
    level: str  # study, series or instance
    column: Any
    read: Callable[..., Any]
    default: bool = True  # returned without includefield


def _p(name: str) -> Callable[..., Any]:
    return lambda p, st, se, i: getattr(p, name)


def _st(name: str) -> Callable[..., Any]:
    return lambda p, st, se, i: getattr(st, name)


def _se(name: str) -> Callable[..., Any]:
    return lambda p, st, se, i: getattr(se, name)


def _i(name: str) -> Callable[..., Any]:
    return lambda p, st, se, i: getattr(i, name)


ATTRS: list[Attr] = [
    # Study level (PS3.18 Table 10.6.1-5), patient attributes included.
    Attr("StudyDate", "00080020", "DA", "study", Study.study_date, _st("study_date")),
    Attr("StudyTime", "00080030", "TM", "study", Study.study_time, _st("study_time")),
    Attr("AccessionNumber", "00080050", "SH", "study", Study.accession_number, _st("accession_number")),
    Attr("ModalitiesInStudy", "00080061", "CS", "study", Study.modalities_in_study, _st("modalities_in_study")),
    Attr("ReferringPhysicianName", "00080090", "PN", "study", Study.referring_physician_name,
         _st("referring_physician_name")),
    Attr("StudyDescription", "00081030", "LO", "study", Study.study_description, _st("study_description")),
    Attr("PatientName", "00100010", "PN", "study", Patient.patient_name, _p("patient_name")),
    Attr("PatientID", "00100020", "LO", "study", Patient.patient_id, _p("patient_id")),
    Attr("IssuerOfPatientID", "00100021", "LO", "study", Patient.issuer_of_patient_id, _p("issuer_of_patient_id"),
         default=False),
    Attr("PatientBirthDate", "00100030", "DA", "study", Patient.patient_birth_date, _p("patient_birth_date")),
    Attr("PatientSex", "00100040", "CS", "study", Patient.patient_sex, _p("patient_sex")),
    Attr("StudyInstanceUID", "0020000D", "UI", "study", Study.study_instance_uid, _st("study_instance_uid")),
    Attr("StudyID", "00200010", "SH", "study", Study.study_id, _st("study_id")),
    Attr("NumberOfStudyRelatedSeries", "00201206", "IS", "study", None, _st("number_of_series")),
    Attr("NumberOfStudyRelatedInstances", "00201208", "IS", "study", None, _st("number_of_instances")),
    # Series level (Table 10.6.1-6).
    Attr("Modality", "00080060", "CS", "series", Series.modality, _se("modality")),
    Attr("SeriesDescription", "0008103E", "LO", "series", Series.series_description, _se("series_description")),
    Attr("BodyPartExamined", "00180015", "CS", "series", Series.body_part_examined, _se("body_part_examined")),
    Attr("SeriesInstanceUID", "0020000E", "UI", "series", Series.series_instance_uid, _se("series_instance_uid")),
    Attr("SeriesNumber", "00200011", "IS", "series", Series.series_number, _se("series_number")),
    Attr("FrameOfReferenceUID", "00200052", "UI", "series", Series.frame_of_reference_uid,
         _se("frame_of_reference_uid"), default=False),
    Attr("NumberOfSeriesRelatedInstances", "00201209", "IS", "series", None, _se("number_of_instances")),
    Attr("PerformedProcedureStepStartDate", "00400244", "DA", "series", Series.performed_procedure_step_start_date,
         _se("performed_procedure_step_start_date")),
    Attr("PerformedProcedureStepStartTime", "00400245", "TM", "series", Series.performed_procedure_step_start_time,
         _se("performed_procedure_step_start_time")),
    # Instance level (Table 10.6.1-7).
    Attr("SOPClassUID", "00080016", "UI", "instance", Instance.sop_class_uid, _i("sop_class_uid")),
    Attr("SOPInstanceUID", "00080018", "UI", "instance", Instance.sop_instance_uid, _i("sop_instance_uid")),
    Attr("InstanceNumber", "00200013", "IS", "instance", Instance.instance_number, _i("instance_number")),
    Attr("NumberOfFrames", "00280008", "IS", "instance", None, _i("number_of_frames")),
    Attr("Rows", "00280010", "US", "instance", None, _i("rows")),
    Attr("Columns", "00280011", "US", "instance", None, _i("columns")),
    Attr("AvailableTransferSyntaxUID", "00083002", "UI", "instance", None, _i("transfer_syntax_uid")),
]
BY_KEYWORD = {attr.keyword: attr for attr in ATTRS}
BY_TAG = {attr.tag: attr for attr in ATTRS}
LEVELS = {"study": 0, "series": 1, "instance": 2}


def lookup(key: str) -> Attr | None:
    """An attribute by keyword (``PatientName``) or tag (``00100010``, any case)."""
    return BY_KEYWORD.get(key) or BY_TAG.get(key.upper())


def dataset(
    level: str,
    rows: tuple,
    retrieve_url: str,
    included: set[str] | None,
    extra: JSON | None = None,
) -> JSON:
    """The QIDO-RS result for one match at ``level``: the default attributes of that
    level and the levels above, the ``included`` tags, and ``extra`` (instance header
    attributes for includefield). Keys are sorted by tag as PS3.18 F.2.2 recommends."""
    depth = LEVELS[level]
    out: JSON = dict(extra or {})
    for attr in ATTRS:
        if LEVELS[attr.level] > depth:
            continue
        if attr.default or (included is not None and attr.tag in included):
            out[attr.tag] = _value(attr.vr, attr.read(*rows))
    out["00080005"] = element("CS", ["ISO_IR 192"])  # the index holds Unicode; JSON is UTF-8
    out["00080056"] = element("CS", ["ONLINE"])  # InstanceAvailability
    out[RETRIEVE_URL] = element("UR", [retrieve_url])
    return dict(sorted(out.items()))
