"""CT densitometry: lungs by thresholding and morphology, opacity by HU bands.

Steps (docs/analysis.md explains the reasons):

1. Body: voxels above −500 HU, largest 3D component, holes filled slice by slice. Outside
   air and the table fall outside it.
2. Air inside the body (< −400 HU) is lung or airway.
3. Trachea and main bronchi: grown in 3D below −950 HU from the trachea, found as the
   central air region of the most cranial slices, then removed.
4. Left and right lungs: the two largest air components. If the lungs touch at the
   anterior junction, the mask is eroded until it splits, and each voxel goes to the
   nearer part. Patient left is +x in LPS.
5. Each lung is closed with a 10 mm disc and filled, slice by slice. On its lateral
   (chest-wall) side it also takes its 2D convex hull. Dense peripheral consolidation,
   which a threshold leaves out, makes a bay in the air mask against the ribs. The
   costal surface of a lung is convex, so the hull closes that bay however wide it is.
   The cardiac notch and the mediastinum lie medially and are left alone.
6. Opacity (−700..+100 HU inside the lung) is opened with a 3 mm disc before labelling.
   Vessels are thin tubes, so they vanish, while ground-glass and consolidation patches
   survive. The opened mask is then grown back by one voxel within the band.
7. Ground-glass: −700..−300 HU. Consolidation: −300..+100 HU.

Steps 1–5 run at half resolution in-plane, which is 4× less work; the result is then
brought back to full resolution. The HU bands are applied at full resolution, so
volumes keep full precision.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from inference.engines.base import CONSOLIDATION, GGO, LEFT_LUNG, RIGHT_LUNG, Segmentation, register
from inference.volume import CTVolume, SeriesNotAnalysable

NAME = "densitometry"
VERSION = "1.0.0"

BODY_HU = -500
AIR_HU = -400
AIRWAY_HU = -950
OPACITY_BANDS = {GGO: (-700, -300), CONSOLIDATION: (-300, 100)}
MIN_LUNG_ML = 100.0  # below this in total: "no lungs found" (a chest crop of 15 mm still has ~250 mL)
# Closing disc: small concavities; deep pleural bays are filled by the lateral hull.
CLOSING_MM = 10.0


def _per_slice(structure_2d: np.ndarray) -> np.ndarray:
    """A 2D structuring element as 3D, so one scipy call works on every slice at once."""
    return structure_2d[None]


def _disc(radius_px: int) -> np.ndarray:
    y, x = np.ogrid[-radius_px : radius_px + 1, -radius_px : radius_px + 1]
    return x * x + y * y <= radius_px * radius_px


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """The bounding box of ``mask``, grown in-plane by ``margin`` (work only where needed)."""
    found = ndi.find_objects(mask.astype(np.uint8))
    if not found or found[0] is None:
        return tuple(slice(0, n) for n in mask.shape)
    z, y, x = found[0]
    return (z, slice(max(0, y.start - margin), y.stop + margin), slice(max(0, x.start - margin), x.stop + margin))


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, count = ndi.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def _downsample(hu: np.ndarray) -> np.ndarray:
    """2×2 in-plane block mean (odd edges dropped)."""
    z, y, x = hu.shape
    h = hu[:, : y // 2 * 2, : x // 2 * 2].astype(np.float32)
    return ((h[:, 0::2, 0::2] + h[:, 1::2, 0::2] + h[:, 0::2, 1::2] + h[:, 1::2, 1::2]) / 4).astype(np.int16)


def _downsample_mask(mask: np.ndarray) -> np.ndarray:
    """2×2 in-plane: a voxel is set when most of its block is."""
    z, y, x = mask.shape
    m = mask[:, : y // 2 * 2, : x // 2 * 2].astype(np.uint8)
    return (m[:, 0::2, 0::2] + m[:, 1::2, 0::2] + m[:, 0::2, 1::2] + m[:, 1::2, 1::2]) >= 2


def _upsample(mask: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    up = mask.repeat(2, axis=1).repeat(2, axis=2)
    out = np.zeros(shape, bool)
    out[:, : up.shape[1], : up.shape[2]] = up
    return out


def _remove_airways(air: np.ndarray, hu: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Air minus the trachea and main bronchi, grown from the trachea below −950 HU."""
    top = air.shape[0] - 1
    centre_x = air.shape[2] / 2
    seed = None
    for z in range(top, max(top - 8, -1), -1):
        labels, count = ndi.label(air[z])
        if count == 0:
            continue
        for index, region in enumerate(ndi.find_objects(labels), start=1):
            area_cm2 = np.count_nonzero(labels[region] == index) * pixel_mm**2 / 100
            cx = (region[1].start + region[1].stop) / 2
            # The trachea: 1-8 cm² of air near the midline at the top of the scan.
            if 0.5 <= area_cm2 <= 8 and abs(cx - centre_x) < air.shape[2] * 0.15:
                seed = (z, labels == index)
                break
        if seed:
            break
    if seed is None:
        return air
    z, region = seed
    markers = np.zeros_like(air)
    markers[z] = region & (hu[z] < AIRWAY_HU)
    airway = ndi.binary_propagation(markers, mask=air & (hu < AIRWAY_HU))
    # Growing below −950 HU can leak into emphysematous lung; only remove a tree that
    # stays small (the trachea and bronchi hold well under 300 mL of air).
    if np.count_nonzero(airway) > 0.15 * np.count_nonzero(air):
        return air & ~ndi.binary_dilation(markers, iterations=1)
    return air & ~ndi.binary_dilation(airway, structure=_per_slice(_disc(1)))


def _split_lungs(air: np.ndarray, voxel_ml: float) -> list[np.ndarray]:
    """The two lungs as separate masks (one if only one lung is present)."""
    labels, count = ndi.label(air)
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    order = np.argsort(sizes)[::-1]
    first, second = order[0], order[1] if count > 1 else 0
    if second and sizes[second] > 0.2 * sizes[first]:
        return [labels == first, labels == second]
    # One component: the lungs touch. Erode until it splits into two big parts.
    whole = labels == first
    box = _bbox(whole, 1)
    lung = whole[box]
    eroded = lung
    for _ in range(8):
        eroded = ndi.binary_erosion(eroded, structure=_per_slice(_disc(1)))
        parts, n = ndi.label(eroded)
        if n >= 2:
            psizes = np.bincount(parts.ravel())
            psizes[0] = 0
            a, b = np.argsort(psizes)[::-1][:2]
            if psizes[b] > 0.2 * psizes[a]:
                seeds = np.where(parts == a, 1, np.where(parts == b, 2, 0)).astype(np.uint8)
                _, (iz, iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
                nearest = seeds[iz, iy, ix]
                halves = []
                for value in (1, 2):
                    half = np.zeros_like(whole)
                    half[box] = lung & (nearest == value)
                    halves.append(half)
                return halves
    return [whole]


def _fill(whole: np.ndarray, radius_px: int) -> np.ndarray:
    box = _bbox(whole, 0)
    out = np.zeros_like(whole)
    out[box] = _fill_box(whole[box], radius_px)
    return out


def _fill_box(lung: np.ndarray, radius_px: int) -> np.ndarray:
    disc = _per_slice(_disc(radius_px))
    # Pad so closing near the volume edge is not cut short by the border.
    padded = np.pad(lung, ((0, 0), (radius_px, radius_px), (radius_px, radius_px)))
    closed = ndi.binary_closing(padded, structure=disc)[:, radius_px:-radius_px, radius_px:-radius_px]
    return ndi.binary_fill_holes(closed | lung, structure=_per_slice(np.ones((3, 3), bool)))


def _hull_2d(mask: np.ndarray) -> np.ndarray:
    """The filled 2D convex hull of ``mask``."""
    points = np.argwhere(mask)
    if len(points) < 4:
        return mask
    try:
        hull = ConvexHull(points)
    except QhullError:
        return mask
    image = Image.new("1", (mask.shape[1], mask.shape[0]), 0)
    ImageDraw.Draw(image).polygon([(float(x), float(y)) for y, x in points[hull.vertices]], fill=1, outline=1)
    return np.asarray(image, dtype=bool)


def _lateral_hull(lung: np.ndarray, lateral_sign: float) -> np.ndarray:
    """Per slice, the part of the lung's convex hull lateral to the lung's centre column
    (``lateral_sign`` −1: towards low column indices)."""
    out = np.zeros_like(lung)
    columns = np.arange(lung.shape[2])
    for z in np.flatnonzero(lung.any(axis=(1, 2))):
        plane = lung[z]
        centre = np.flatnonzero(plane.any(axis=0)).mean()
        lateral = (columns - centre) * lateral_sign > 0
        out[z] = _hull_2d(plane) & lateral[None, :]
    return out


def segment(volume: CTVolume) -> Segmentation:
    hu = volume.hu
    small = _downsample(hu)
    pixel_mm = volume.spacing[1] * 2
    voxel_ml_small = volume.voxel_ml * 4

    body = small > BODY_HU
    body = _largest(ndi.binary_opening(body, structure=_per_slice(_disc(2))))
    body = ndi.binary_fill_holes(body, structure=_per_slice(np.ones((3, 3), bool)))
    air = (small < AIR_HU) & body
    air = ndi.binary_opening(air, structure=_per_slice(_disc(1)))
    air = _remove_airways(air, small, pixel_mm)
    lungs = [m for m in _split_lungs(air, voxel_ml_small) if m.sum() * voxel_ml_small > 20]
    total_ml = sum(m.sum() for m in lungs) * voxel_ml_small
    if total_ml < MIN_LUNG_ML:
        raise SeriesNotAnalysable(f"not a chest CT: no lungs found ({total_ml:.0f} mL of lung-like air)")

    radius = max(1, int(round(CLOSING_MM / pixel_mm)))
    side = np.zeros(hu.shape, np.uint8)
    x_sign = volume.column_x_sign()
    for lung in lungs:
        # Patient left is +x (LPS); the column index grows along +x when x_sign > 0.
        column = ndi.center_of_mass(lung)[2] * 2
        is_left = (column - hu.shape[2] / 2) * x_sign > 0
        lateral_sign = x_sign if is_left else -x_sign
        filled = (_fill(lung, radius) | _lateral_hull(lung, lateral_sign)) & body
        filled = _upsample(filled, hu.shape)
        side[filled & (side == 0)] = LEFT_LUNG if is_left else RIGHT_LUNG
    if len(lungs) == 2 and len(set(np.unique(side)) - {0}) < 2:
        raise SeriesNotAnalysable("could not tell the left lung from the right lung")

    labels = side.copy()
    lung_full = side > 0
    box = _bbox(lung_full, 2)
    band = lung_full[box] & (hu[box] >= OPACITY_BANDS[GGO][0]) & (hu[box] < OPACITY_BANDS[CONSOLIDATION][1])
    opening = _per_slice(_disc(max(1, int(round(1.5 / volume.spacing[1])))))
    opened = ndi.binary_opening(band, structure=opening)
    patches = np.zeros(hu.shape, bool)
    patches[box] = ndi.binary_dilation(opened, structure=_per_slice(_disc(1))) & band
    for label, (low, high) in OPACITY_BANDS.items():
        labels[patches & (hu >= low) & (hu < high)] = label
    return Segmentation(labels, side, NAME, VERSION)


class DensitometryEngine:
    name = NAME
    version = VERSION

    def __call__(self, volume: CTVolume) -> Segmentation:
        return segment(volume)


register(NAME, DensitometryEngine)
