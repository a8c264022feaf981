"""Measurements per lung and per zone (upper, middle, lower third of each lung along z).

HU bands (Colombi et al., Radiology 2020; Lanza et al., 2020): hyperinflated < −950,
well-aerated −950..−700, ground-glass −700..−300, consolidation −300..+100 HU.
Zone score by % involved: 0 = 0 %, 1 = < 25 %, 2 = 25–49 %, 3 = 50–74 %, 4 = ≥ 75 %;
six zones give a total of 0–24 (a zonal adaptation of Francone et al., Eur Radiol 2020).
"""

from __future__ import annotations

import numpy as np

from inference.engines.base import CONSOLIDATION, GGO, LEFT_LUNG, RIGHT_LUNG, Segmentation
from inference.volume import CTVolume

SIDES = {RIGHT_LUNG: "right", LEFT_LUNG: "left"}
ZONES = ("upper", "middle", "lower")
WELL_AERATED = (-950, -700)
HYPERINFLATED_BELOW = -950


def zone_score(percent_involved: float) -> int:
    if percent_involved <= 0:
        return 0
    if percent_involved < 25:
        return 1
    if percent_involved < 50:
        return 2
    if percent_involved < 75:
        return 3
    return 4


def _region(hu: np.ndarray, labels: np.ndarray, mask: np.ndarray, voxel_ml: float) -> dict:
    """Volumes (mL) and percentages of one region of lung."""
    n = int(np.count_nonzero(mask))
    values = hu[mask]
    region_labels = labels[mask]
    ggo = int(np.count_nonzero(region_labels == GGO))
    consolidation = int(np.count_nonzero(region_labels == CONSOLIDATION))
    well = int(np.count_nonzero((values >= WELL_AERATED[0]) & (values < WELL_AERATED[1])))
    hyper = int(np.count_nonzero(values < HYPERINFLATED_BELOW))

    def pct(count: int) -> float:
        return round(100.0 * count / n, 2) if n else 0.0

    return {
        "volume_ml": round(n * voxel_ml, 1),
        "ggo_ml": round(ggo * voxel_ml, 1),
        "ggo_percent": pct(ggo),
        "consolidation_ml": round(consolidation * voxel_ml, 1),
        "consolidation_percent": pct(consolidation),
        "involvement_percent": pct(ggo + consolidation),
        "well_aerated_percent": pct(well),
        "hyperinflated_percent": pct(hyper),
        "mean_hu": round(float(values.mean()), 1) if n else None,
    }


def _zone_masks(lung: np.ndarray) -> dict[str, np.ndarray]:
    """Thirds of the lung's z extent; slice index grows towards the head."""
    slices = np.flatnonzero(lung.any(axis=(1, 2)))
    masks = {zone: np.zeros_like(lung) for zone in ZONES}
    if slices.size == 0:
        return masks
    bounds = np.linspace(slices[0], slices[-1] + 1, 4)
    for zone, (low, high) in zip(("lower", "middle", "upper"), zip(bounds[:-1], bounds[1:])):
        masks[zone][int(round(low)) : int(round(high))] = lung[int(round(low)) : int(round(high))]
    return masks


def measure(volume: CTVolume, segmentation: Segmentation) -> dict:
    """Measurements of both lungs, each lung, and each of the six zones, with scores."""
    hu, labels, voxel_ml = volume.hu, segmentation.labels, volume.voxel_ml
    result: dict = {"lungs": _region(hu, labels, segmentation.lung(), voxel_ml), "per_lung": {}, "zones": {}}
    total = 0
    for side, name in SIDES.items():
        lung = segmentation.lung(side)
        result["per_lung"][name] = _region(hu, labels, lung, voxel_ml)
        for zone, mask in _zone_masks(lung).items():
            values = _region(hu, labels, mask, voxel_ml)
            values["score"] = zone_score(values["involvement_percent"])
            total += values["score"]
            result["zones"][f"{name}_{zone}"] = values
    result["total_score"] = total
    return result
