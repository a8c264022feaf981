"""Accuracy on phantoms with known volumes: lungs, ground-glass, consolidation, sides."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from inference.engines import get_engine
from inference.engines.base import CONSOLIDATION, GGO, LEFT_LUNG, RIGHT_LUNG
from inference.measurements import measure
from inference.volume import load_datasets
from tests.inference.phantom import build, to_datasets


@pytest.fixture(scope="module")
def analysed():
    phantom = build()
    volume = load_datasets(to_datasets(phantom.hu))
    segmentation = get_engine("densitometry")(volume)
    return phantom, volume, segmentation


def within(measured: int, expected: int, tolerance: float = 0.03) -> bool:
    return abs(measured - expected) <= tolerance * expected


def test_lung_volumes_within_3_percent(analysed):
    phantom, _volume, seg = analysed
    assert within(np.count_nonzero(seg.side == RIGHT_LUNG), np.count_nonzero(phantom.right_lung))
    assert within(np.count_nonzero(seg.side == LEFT_LUNG), np.count_nonzero(phantom.left_lung))


def test_sides_follow_patient_lps(analysed):
    phantom, _volume, seg = analysed
    # Patient left is +x, the high column indices for ImageOrientationPatient row (1,0,0).
    assert np.mean(seg.side[phantom.left_lung] == LEFT_LUNG) > 0.97
    assert np.mean(seg.side[phantom.right_lung] == RIGHT_LUNG) > 0.97


def test_ground_glass_volume_and_class(analysed):
    phantom, _volume, seg = analysed
    assert within(np.count_nonzero(seg.labels == GGO), np.count_nonzero(phantom.ggo))
    assert np.mean(seg.labels[phantom.ggo] == GGO) > 0.97


def test_peripheral_consolidation_stays_in_the_lung(analysed):
    phantom, _volume, seg = analysed
    assert within(np.count_nonzero(seg.labels == CONSOLIDATION), np.count_nonzero(phantom.consolidation))
    assert np.mean(seg.labels[phantom.consolidation] == CONSOLIDATION) > 0.97
    assert np.mean(seg.side[phantom.consolidation] == LEFT_LUNG) > 0.97


def test_outside_air_table_and_trachea_excluded(analysed):
    phantom, _volume, seg = analysed
    lungs = phantom.left_lung | phantom.right_lung
    # Every lung voxel the engine adds is soft tissue in the one-voxel rim that the 2x
    # in-plane downsampling leaves (4 mm at this phantom's 2 mm pixels): none is air.
    extra = (seg.side > 0) & ~lungs
    assert np.count_nonzero(extra) <= 0.04 * np.count_nonzero(lungs)
    assert np.all(phantom.hu[extra] == 40)
    assert np.all(ndi.binary_dilation(lungs, iterations=2)[extra])


def test_measurements_and_scores(analysed):
    phantom, volume, seg = analysed
    values = measure(volume, seg)
    ml = volume.voxel_ml
    expected_total = np.count_nonzero(phantom.left_lung | phantom.right_lung) * ml
    assert values["lungs"]["volume_ml"] == pytest.approx(expected_total, rel=0.03)
    right = values["per_lung"]["right"]
    assert right["ggo_ml"] == pytest.approx(np.count_nonzero(phantom.ggo) * ml, rel=0.03)
    assert right["involvement_percent"] == pytest.approx(100 * right["ggo_ml"] / right["volume_ml"], abs=0.05)
    # The −850 HU parenchyma is well aerated; nothing is hyperinflated.
    assert values["lungs"]["hyperinflated_percent"] == 0
    assert values["lungs"]["well_aerated_percent"] > 90
    zones = values["zones"]
    assert set(zones) == {f"{s}_{z}" for s in ("right", "left") for z in ("upper", "middle", "lower")}
    assert values["total_score"] == sum(z["score"] for z in zones.values())
    assert zones["right_middle"]["score"] >= 1 and zones["right_upper"]["score"] == 0
