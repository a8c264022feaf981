"""Measurements of both lungs, each lung, and six zones, with the zonal severity score.

Zones: each lung is cut into thirds of its own cranio-caudal extent (upper, middle,
lower), slice by slice. Lobes would need a trained model; zones need only the mask.

Every region gets the same set (:class:`RegionMeasurements`). Two kinds of number:

* opacity (``ggo_*``, ``consolidation_*``, ``involvement_*``): voxels the engine
  labelled as ground-glass or consolidation, after vessel suppression;
* densitometry bands (``well_aerated``, ``hyperinflated``, ``poorly_aerated``,
  ``non_aerated``): plain HU bands over the whole lung mask, vessels included, as
  the quantitative CT literature reports them (Colombi et al., Radiology 2020; Lanza
  et al., Eur Radiol 2020): hyperinflated < −950, well-aerated −950..−700,
  poorly aerated −700..−300, non-aerated −300..+100 HU.

Zone score by % involvement: 0 = none, 1 = < 25 %, 2 = 25–49 %, 3 = 50–74 %,
4 = ≥ 75 %; six zones give 0–24, a zonal adaptation of the lobar score of Francone et
al. (Eur Radiol 2020). "None" means below :data:`SCORE_FLOOR_PERCENT`: a normal
lung keeps a few tenths of a percent of opacity-band voxels after vessel suppression
(vessel trunks at the hilum, partial volume), which must not score as disease.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from inference.engines.base import CONSOLIDATION, GGO, LEFT_LUNG, RIGHT_LUNG, SIDES, Segmentation
from inference.volume import CTVolume

ZONES = ("upper", "middle", "lower")
HYPERINFLATED_BELOW = -950
WELL_AERATED = (-950, -700)
POORLY_AERATED = (-700, -300)
NON_AERATED = (-300, 100)
#: Involvement below this percentage scores 0 (see the module docstring).
SCORE_FLOOR_PERCENT = 1.0
SCORE_MAX = 4 * 2 * len(ZONES)


class RegionMeasurements(TypedDict):
    """Numbers of one region of lung. Volumes in mL, percentages of ``volume_ml``."""

    volume_ml: float  #: lung volume of the region (opacity included)
    ggo_ml: float  #: labelled ground-glass opacity
    ggo_percent: float
    consolidation_ml: float  #: labelled consolidation
    consolidation_percent: float
    involvement_ml: float  #: ground-glass + consolidation
    involvement_percent: float
    well_aerated_ml: float  #: −950..−700 HU
    well_aerated_percent: float  #: %WAL
    hyperinflated_percent: float  #: below −950 HU
    poorly_aerated_percent: float  #: −700..−300 HU band, vessels included
    non_aerated_percent: float  #: −300..+100 HU band, vessels included
    mean_hu: float | None  #: mean attenuation; None for an empty region


class ZoneMeasurements(RegionMeasurements):
    score: int  #: 0–4, see :func:`zone_score`


class Measurements(TypedDict):
    lungs: RegionMeasurements  #: both lungs together
    per_lung: dict[str, RegionMeasurements]  #: "right", "left"
    zones: dict[str, ZoneMeasurements]  #: "right_upper" … "left_lower"
    total_score: int  #: sum of the six zone scores, 0–24
    score_floor_percent: float  #: involvement below this scored 0


def zone_score(percent_involved: float, floor: float = SCORE_FLOOR_PERCENT) -> int:
    """0–4 from the % of a zone involved: 0 below ``floor``, 1 < 25, 2 < 50, 3 < 75, else 4."""
    if percent_involved <= 0 or percent_involved < floor:
        return 0
    if percent_involved < 25:
        return 1
    if percent_involved < 50:
        return 2
    if percent_involved < 75:
        return 3
    return 4


# Counted quantities, one column each in the tally below.
_N, _GGO, _CONS, _WELL, _HYPER, _POOR, _NON = range(7)


def _slice_zones(lung: np.ndarray, cranial_last: bool) -> np.ndarray:
    """Zone index (0 upper, 1 middle, 2 lower, −1 no lung) of every slice of ``lung``."""
    zones = np.full(lung.shape[0], -1, np.int64)
    slices = np.flatnonzero(lung.any(axis=(1, 2)))
    if slices.size == 0:
        return zones
    first, last = slices[0], slices[-1] + 1
    # Thirds of the extent, by slice centre; index order runs caudal→cranial or back.
    position = (np.arange(first, last) + 0.5 - first) / (last - first)
    third = np.minimum((position * 3).astype(np.int64), 2)
    zones[first:last] = 2 - third if cranial_last else third
    return zones


def _region(tally: np.ndarray, hu_sum: float, voxel_ml: float) -> RegionMeasurements:
    n = int(tally[_N])

    def ml(count: float) -> float:
        return round(float(count) * voxel_ml, 1)

    def pct(count: float) -> float:
        return round(100.0 * float(count) / n, 2) if n else 0.0

    involved = tally[_GGO] + tally[_CONS]
    return {
        "volume_ml": ml(n),
        "ggo_ml": ml(tally[_GGO]),
        "ggo_percent": pct(tally[_GGO]),
        "consolidation_ml": ml(tally[_CONS]),
        "consolidation_percent": pct(tally[_CONS]),
        "involvement_ml": ml(involved),
        "involvement_percent": pct(involved),
        "well_aerated_ml": ml(tally[_WELL]),
        "well_aerated_percent": pct(tally[_WELL]),
        "hyperinflated_percent": pct(tally[_HYPER]),
        "poorly_aerated_percent": pct(tally[_POOR]),
        "non_aerated_percent": pct(tally[_NON]),
        "mean_hu": round(hu_sum / n, 1) if n else None,
    }


def measure(volume: CTVolume, segmentation: Segmentation, floor: float = SCORE_FLOOR_PERCENT) -> Measurements:
    """Measurements of both lungs, each lung and each zone, with the zone scores.

    One pass over the lung voxels: each gets a region code (lung side × zone) and is
    tallied into every quantity with ``np.bincount``.
    """
    side = segmentation.side
    cranial_last = volume.normal[2] >= 0  # slice index grows towards the head
    zone_of_slice = {value: _slice_zones(side == value, cranial_last) for value in SIDES}
    index = np.flatnonzero(side)
    hu = volume.hu.ravel()[index].astype(np.int32)
    labels = segmentation.labels.ravel()[index]
    sides = side.ravel()[index]
    slices = index // (side.shape[1] * side.shape[2])
    zone = np.where(sides == RIGHT_LUNG, zone_of_slice[RIGHT_LUNG][slices], zone_of_slice[LEFT_LUNG][slices])
    region = (sides.astype(np.int64) - 1) * len(ZONES) + zone  # 0..5: right upper … left lower
    regions = 2 * len(ZONES)
    columns = {
        _N: np.ones(index.size, bool),
        _GGO: labels == GGO,
        _CONS: labels == CONSOLIDATION,
        _WELL: (hu >= WELL_AERATED[0]) & (hu < WELL_AERATED[1]),
        _HYPER: hu < HYPERINFLATED_BELOW,
        _POOR: (hu >= POORLY_AERATED[0]) & (hu < POORLY_AERATED[1]),
        _NON: (hu >= NON_AERATED[0]) & (hu < NON_AERATED[1]),
    }
    tally = np.stack([np.bincount(region[mask], minlength=regions) for _, mask in sorted(columns.items())], axis=1)
    hu_sums = np.bincount(region, weights=hu, minlength=regions)

    voxel_ml = volume.voxel_ml
    zones: dict[str, ZoneMeasurements] = {}
    per_lung: dict[str, RegionMeasurements] = {}
    for value, name in SIDES.items():
        rows = slice((value - 1) * len(ZONES), value * len(ZONES))
        per_lung[name] = _region(tally[rows].sum(axis=0), float(hu_sums[rows].sum()), voxel_ml)
        for offset, zone_name in enumerate(ZONES):
            row = rows.start + offset
            values = _region(tally[row], float(hu_sums[row]), voxel_ml)
            zones[f"{name}_{zone_name}"] = {**values, "score": zone_score(values["involvement_percent"], floor)}  # type: ignore[typeddict-item]
    return {
        "lungs": _region(tally.sum(axis=0), float(hu_sums.sum()), voxel_ml),
        "per_lung": per_lung,
        "zones": zones,
        "total_score": sum(z["score"] for z in zones.values()),
        "score_floor_percent": floor,
    }
