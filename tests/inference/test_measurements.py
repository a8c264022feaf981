"""Zones, scores and the suggested prognosis on volumes whose answers are known by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from inference.engines.base import CONSOLIDATION, GGO, LEFT_LUNG, RIGHT_LUNG, Segmentation
from inference.measurements import SCORE_FLOOR_PERCENT, measure, zone_score
from inference.prognosis import suggest
from inference.volume import CTVolume


@pytest.mark.parametrize(
    ("percent", "score"),
    [(0, 0), (SCORE_FLOOR_PERCENT / 2, 0), (SCORE_FLOOR_PERCENT, 1), (24.99, 1), (25, 2), (49.99, 2), (50, 3), (74.99, 3), (75, 4), (100, 4)],
)
def test_zone_score_bands(percent, score):
    assert zone_score(percent) == score


def test_zone_score_without_floor_is_the_plain_scale():
    assert zone_score(0.1, floor=0) == 1 and zone_score(0, floor=0) == 0


def _volume(normal_z: float, depth: int = 30) -> CTVolume:
    hu = np.full((depth, 8, 8), -800, np.int16)
    column = np.array([0.0, 1.0, 0.0])
    row = np.array([1.0, 0.0, 0.0]) * np.sign(normal_z)  # row × column = normal
    return CTVolume(hu, (2.0, 1.0, 1.0), np.zeros(3), row, column, np.cross(row, column), [])


@pytest.mark.parametrize("normal_z", [1.0, -1.0], ids=["index towards head", "index towards feet"])
def test_zones_are_cranio_caudal_thirds_and_numbers_add_up(normal_z):
    volume = _volume(normal_z)
    side = np.zeros(volume.hu.shape, np.uint8)
    side[:, :, :4] = RIGHT_LUNG
    side[:, :, 4:] = LEFT_LUNG
    labels = side.copy()
    cranial = slice(20, 30) if normal_z > 0 else slice(0, 10)
    labels[cranial, :, :4] = GGO  # the whole upper third of the right lung
    labels[cranial, :2, 4:] = CONSOLIDATION  # half of the left upper third
    volume.hu[cranial, :2, 4:] = 0
    volume.hu[:, :, 6:] = -980  # a hyperinflated strip in the left lung
    values = measure(volume, Segmentation(labels, side, "test", "0"))
    zones = values["zones"]
    assert zones["right_upper"]["ggo_percent"] == 100 and zones["right_upper"]["score"] == 4
    assert zones["left_upper"]["consolidation_percent"] == 25 and zones["left_upper"]["score"] == 2
    assert all(zones[f"{s}_{z}"]["score"] == 0 for s in ("right", "left") for z in ("middle", "lower"))
    assert values["total_score"] == 6
    right = values["per_lung"]["right"]
    assert right["volume_ml"] == pytest.approx(30 * 32 * 2 / 1000, abs=0.05)
    assert right["ggo_percent"] == pytest.approx(100 / 3, abs=0.01)
    assert right["well_aerated_percent"] == 100 - right["poorly_aerated_percent"] - right["non_aerated_percent"]
    left = values["per_lung"]["left"]
    assert left["hyperinflated_percent"] == 50
    assert values["lungs"]["mean_hu"] == pytest.approx(float(volume.hu[side > 0].mean()), abs=0.1)


def _measurements(wal: float, score: int) -> dict:
    return {"lungs": {"well_aerated_percent": wal}, "total_score": score}


@pytest.mark.parametrize(
    ("wal", "score", "category", "rule"),
    [
        (73.0, 0, "high", "R1-WAL73"),
        (90.0, 18, "high", "R2-SCORE18"),
        (90.0, 8, "intermediate", "R3-INTERMEDIATE"),
        (85.0, 0, "intermediate", "R3-INTERMEDIATE"),
        (85.1, 7, "low", "R4-LOW"),
    ],
)
def test_prognosis_rules_fire_at_their_thresholds(wal, score, category, rule):
    result = suggest(_measurements(wal, score))
    assert (result["category"], result["decisive_rule"]["id"]) == (category, rule)
    assert result["label"] == "suggested — not for diagnostic use"
    assert [r["id"] for r in result["rules"]] == ["R1-WAL73", "R2-SCORE18", "R3-INTERMEDIATE", "R4-LOW"]
    assert result["references"] and all(len(r["short"]) <= 64 for r in result["rules"])
    assert "not a trained prediction" in result["method"]


def test_inference_imports_no_other_component():
    """Dependencies point one way: l3net → dicom_node / dicomweb / inference → archive.
    inference/ may use the archive (settings, object store, queue) but never the node,
    the web app or the composition root."""
    root = Path(__file__).resolve().parents[2] / "inference"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(root.parent)}: {n}" for n in names if n.split(".")[0] in {"dicom_node", "dicomweb", "l3net"}]
    assert offenders == []
