"""The SR carries the zone scores, the total score and the suggested prognosis as
qualitative evaluations (coded CONTAINS items of the measurement groups), beside the
numeric scores."""

from __future__ import annotations

import pytest

from inference.pipeline import analyze
from inference.sr import PRIVATE, RISK_CODES, ZONE_GRADES
from tests.inference.phantom import build, to_datasets


@pytest.fixture(scope="module")
def result():
    return analyze(to_datasets(build().hu))


def _evaluations(group) -> dict[str, tuple[str, str]]:
    """Concept value → (value code, value meaning) of a group's CODE items."""
    return {
        item.ConceptNameCodeSequence[0].CodeValue: (item.ConceptCodeSequence[0].CodeValue, item.ConceptCodeSequence[0].CodeMeaning)
        for item in group.ContentSequence
        if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodingSchemeDesignator == PRIVATE
    }


def _groups(sr):
    container = next(item for item in sr.ContentSequence if item.ValueType == "CONTAINER")
    return [item for item in container.ContentSequence if item.ValueType == "CONTAINER"]


def _tracking(group) -> str:
    return next(item.TextValue for item in group.ContentSequence if item.ValueType == "TEXT")


def test_zone_scores_are_coded_grades_in_each_lung_group(result):
    # The volumetric group of each lung holds the grades (its planar companion, with the
    # same tracking identifier, holds none).
    graded = {_tracking(g): _evaluations(g) for g in _groups(result.sr)
              if {"ZONE-GRADE-RU", "ZONE-GRADE-LU"} & set(_evaluations(g))}
    assert set(graded) == {"Right lung", "Left lung"}
    for lung, prefix in (("right", "R"), ("left", "L")):
        evaluations = graded[f"{lung.capitalize()} lung"]
        for zone in ("upper", "middle", "lower"):
            score = result.measurements["zones"][f"{lung}_{zone}"]["score"]
            assert evaluations[f"ZONE-GRADE-{prefix}{zone[0].upper()}"] == (f"GRADE-{score}", ZONE_GRADES[score])


def test_total_score_and_prognosis_are_coded_in_the_summary_group(result):
    [summary] = [_evaluations(g) for g in _groups(result.sr) if "PROGNOSIS" in _evaluations(g)]
    total = result.measurements["total_score"]
    assert summary["TOTAL-GRADE"] == (f"TOTAL-{total}", f"{total} of 24")
    category = result.prognosis["category"]
    assert summary["PROGNOSIS"] == (RISK_CODES[category], f"{category.capitalize()} risk (suggested, not for diagnostic use)")
    assert summary["PROGNOSIS-RULE"][0] == result.prognosis["decisive_rule"]["id"]


def test_every_private_code_value_fits_short_string():
    """Every category's and every score's code is a CodeValue (SH, 16 characters)."""
    from inference.sr import private

    for code in [*RISK_CODES.values(), "TOTAL-24", "GRADE-4", "ZONE-GRADE-LL", "PROGNOSIS-RULE", "R3-INTERMEDIATE"]:
        assert private(code, "x").value == code
    with pytest.raises(ValueError, match="longer than 16"):
        private("RISK-INTERMEDIATE", "x")


def test_zone_numbers_name_their_zone(result):
    """Each zone's involvement and score carry the zone in the concept name (viewers
    print names, not finding sites), and the zone as finding site too."""
    names = {}
    for group in _groups(result.sr):
        for item in group.ContentSequence:
            if item.ValueType == "NUM":
                names[item.ConceptNameCodeSequence[0].CodeMeaning] = float(item.MeasuredValueSequence[0].NumericValue)
    for lung in ("right", "left"):
        for zone in ("upper", "middle", "lower"):
            values = result.measurements["zones"][f"{lung}_{zone}"]
            assert names[f"{lung.capitalize()} {zone} zone involvement, percent"] == values["involvement_percent"]
            assert names[f"{lung.capitalize()} {zone} zone score (0-4)"] == values["score"]


def test_series_descriptions_lead_with_the_suggested_risk(result):
    """Study browsers (OHIF's thumbnails, PACS lists) show the start of a Series
    Description: the SR's and the report's begin with the suggested risk."""
    category = result.prognosis["category"].upper()
    for ds in (result.sr, result.pdf):
        assert ds.SeriesDescription.startswith(f"Risk {category} (suggested, not diagnostic)")
        assert len(ds.SeriesDescription) <= 64
    from inference.sr import series_description

    assert len(series_description("opacity report", {"category": "intermediate"})) <= 64
