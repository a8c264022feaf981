"""``summary.json``: the numbers of the SR as plain JSON, for API users.

Schema ``l3net.summary/1`` (additions keep the name; a removal or a change of meaning
bumps it). Top-level keys:

``schema``, ``engine`` {name, version}, ``study_instance_uid``,
``series_instance_uid``, ``slices``, ``spacing_mm`` [slice, row, column],
``labels`` (label value → class), ``measurements`` (see
:class:`inference.measurements.Measurements`), ``scores`` (zone scores, total, max,
method), ``prognosis`` (see :func:`inference.prognosis.suggest`), ``outputs`` (UIDs of
the SEG, the SR and, when made, the PDF report), ``engine_notes``, ``timings_s``, ``disclaimer``.
"""

from __future__ import annotations

from typing import Any, Sequence

from pydicom.dataset import Dataset

from inference.engines.base import Segmentation
from inference.measurements import SCORE_MAX, Measurements

SCHEMA = "l3net.summary/1"
DISCLAIMER = "Research use. Quantities and the suggested prognosis are not for diagnostic use."


def build_summary(
    source: Sequence[Dataset],
    spacing: Sequence[float],
    segmentation: Segmentation,
    measurements: Measurements,
    prognosis: dict[str, Any],
    seg: Dataset,
    sr: Dataset,
    timings: dict[str, float] | None = None,
    pdf: Dataset | None = None,
) -> dict[str, Any]:
    """The summary dict (JSON-serialisable) of one analysis."""
    first = source[0]
    return {
        "schema": SCHEMA,
        "engine": {"name": segmentation.engine, "version": segmentation.version},
        "study_instance_uid": str(first.StudyInstanceUID),
        "series_instance_uid": str(first.SeriesInstanceUID),
        "slices": len(source),
        "spacing_mm": [round(float(v), 4) for v in spacing],
        "labels": {str(value): name for value, name in segmentation.classes.items()},
        "measurements": measurements,
        "scores": {
            "zones": {zone: values["score"] for zone, values in measurements["zones"].items()},
            "total": measurements["total_score"],
            "max": SCORE_MAX,
            "method": (
                "6 zones (upper/middle/lower third of each lung), 0-4 each by % involved "
                f"(0: < {measurements['score_floor_percent']:g} %, 1: < 25 %, 2: 25-49 %, 3: 50-74 %, 4: >= 75 %); "
                "zonal adaptation of Francone et al., Eur Radiol 2020"
            ),
        },
        "prognosis": prognosis,
        "outputs": {
            "seg": {"series_instance_uid": str(seg.SeriesInstanceUID), "sop_instance_uid": str(seg.SOPInstanceUID)},
            "sr": {"series_instance_uid": str(sr.SeriesInstanceUID), "sop_instance_uid": str(sr.SOPInstanceUID)},
            **({"pdf": {"series_instance_uid": str(pdf.SeriesInstanceUID), "sop_instance_uid": str(pdf.SOPInstanceUID)}}
               if pdf is not None else {}),
        },
        "engine_notes": segmentation.notes,
        "timings_s": {step: round(seconds, 3) for step, seconds in (timings or {}).items()},
        "disclaimer": DISCLAIMER,
    }
