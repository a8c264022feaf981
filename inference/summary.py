"""``summary.json``: the same numbers as the SR, for API users (schema ``l3net.summary/1``)."""

from __future__ import annotations

from pydicom.dataset import Dataset

from inference.engines.base import LABELS

SCHEMA = "l3net.summary/1"


def build_summary(source: list[Dataset], measurements: dict, prognosis: dict, engine: str, version: str, seg: Dataset, sr: Dataset) -> dict:
    first = source[0]
    return {
        "schema": SCHEMA,
        "engine": {"name": engine, "version": version},
        "study_instance_uid": str(first.StudyInstanceUID),
        "series_instance_uid": str(first.SeriesInstanceUID),
        "slices": len(source),
        "labels": {str(k): v for k, v in LABELS.items()},
        "measurements": measurements,
        "scores": {
            "zones": {zone: values["score"] for zone, values in measurements["zones"].items()},
            "total": measurements["total_score"],
            "max": 24,
            "method": "6 zones (upper/middle/lower third of each lung), 0-4 each by % involved",
        },
        "prognosis": prognosis,
        "outputs": {
            "seg": {"series_instance_uid": str(seg.SeriesInstanceUID), "sop_instance_uid": str(seg.SOPInstanceUID)},
            "sr": {"series_instance_uid": str(sr.SeriesInstanceUID), "sop_instance_uid": str(sr.SOPInstanceUID)},
        },
    }
