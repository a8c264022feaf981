"""The SEG's segment descriptions: the codes radiology systems search on, and colours
that keep the four classes apart."""

from __future__ import annotations

import pydicom
import pytest

from inference.pipeline import analyze
from tests.inference.phantom import build, to_datasets

# (label, category, type, type modifier, anatomic region) as (scheme, value) pairs.
EXPECTED = [
    ("Right lung", ("SCT", "91723000"), ("SCT", "39607008"), ("SCT", "24028007"), None),
    ("Left lung", ("SCT", "91723000"), ("SCT", "39607008"), ("SCT", "7771000"), None),
    ("Ground-glass opacity", ("SCT", "49755003"), ("DCM", "112120"), None, ("SCT", "39607008")),
    ("Consolidation", ("SCT", "49755003"), ("SCT", "9656002"), None, ("SCT", "39607008")),
]


def _code(item) -> tuple[str, str]:
    return str(item.CodingSchemeDesignator), str(item.CodeValue)


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "seg.dcm"
    analyze(to_datasets(build().hu)).seg.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path).SegmentSequence


def test_segments_carry_the_standard_codes(segments):
    assert len(segments) == len(EXPECTED)
    for segment, (label, category, kind, modifier, region) in zip(segments, EXPECTED):
        assert segment.SegmentLabel == label
        assert _code(segment.SegmentedPropertyCategoryCodeSequence[0]) == category
        type_item = segment.SegmentedPropertyTypeCodeSequence[0]
        assert _code(type_item) == kind
        modifiers = type_item.get("SegmentedPropertyTypeModifierCodeSequence", [])
        assert [_code(m) for m in modifiers] == ([modifier] if modifier else [])
        regions = segment.get("AnatomicRegionSequence", [])
        assert [_code(r) for r in regions] == ([region] if region else [])


def test_segment_colours_are_distinct(segments):
    colours = [tuple(segment.RecommendedDisplayCIELabValue) for segment in segments]
    assert len(set(colours)) == 4
    # Ground-glass and consolidation far apart in CIELab (a* red–green, b* yellow–blue).
    ggo, consolidation = colours[2], colours[3]
    assert sum((a - b) ** 2 for a, b in zip(ggo, consolidation)) ** 0.5 > 10000
