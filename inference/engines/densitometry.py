"""CT densitometry: lungs by threshold and morphology, opacity by HU band. No weights.

Steps (docs/analysis.md gives the reasons and the limits):

1. Working grid. Series with pixels under 1 mm are averaged 2×2 in-plane for the lung
   mask (steps 2–6): 4× less work, and a 1.4 mm grid still resolves the pleura. The
   HU bands (step 7) are applied at full resolution, so volumes keep full precision.
2. Body: voxels above −500 HU, largest 3D component, filled slice by slice. Outside
   air and the table are outside it; air inside it is lung, airway or bowel gas.
3. Trachea and main bronchi: seeded as a 0.5–8 cm² air region near the body's midline
   in the most cranial 20 mm, grown in 3D through air below −950 HU, then removed. A
   growth that floods more than 15 % of the air (emphysema) is not trusted; only the
   seed is removed then.
4. Lungs: air components of at least 20 mL; the two largest are the lungs. When the
   lungs touch (anterior junction) they form one component: it is eroded in-plane
   until it splits into two large parts, and every voxel then goes to the nearer part.
   Right and left come from patient coordinates: the lung with the larger LPS x is the
   left one (a single lung is placed against the body's midline).
5. Each lung is filled, inside its bounding box:

   a. closed in-plane with a 5 mm octagon: vessels, bronchial walls and small
      juxtapleural nodules become lung;
   b. pleural bays: the regions between the lung and its convex hull, slice by slice,
      are kept when they open towards the body wall, i.e. when the tissue at their
      mouth lies at least 5 mm nearer the skin (mean depth) than the lung rim around
      them. Dense consolidation against the ribs opens outwards and is kept; the heart,
      the aorta, the hilum, and the liver or spleen under a basal crescent open
      inwards and are not. A kept bay then grows one working pixel outwards through
      tissue at least as deep as its lips, towards where the pleura was;
   c. in-plane holes are grouped in 3D and filled unless more than a quarter of what
      lies directly above and below them is not lung. A nodule is capped by lung at
      both ends; the top of the liver dome, a hole in a basal slice, sits on liver.

6. Total lung volume under 100 mL: "not a chest CT: no lungs found".
7. Opacity inside the lung at full resolution, −700..+100 HU. Vessel suppression: the
   band is opened in-plane with a 2 mm-radius octagon, so structures narrower than
   ~4 mm (vessels seen along or across, fissures, the partial-volume rims of vessels
   and airway walls) vanish while ground-glass and consolidation patches survive (an
   opening keeps whatever the octagon fits in, so a patch keeps its outline). Ground-
   glass is −700..−300 HU, consolidation −300..+100 HU. Vessel trunks wider than ~4 mm near the hila survive
   (a normal lung keeps a few tenths of a percent; see measurements.SCORE_FLOOR_PERCENT).

Public helpers reused by other engines: :func:`assign_sides` (left/right split of any
lung mask) and :func:`opacity_bands`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from inference.engines.base import CONSOLIDATION, GGO, LEFT_LUNG, RIGHT_LUNG, Segmentation, register
from inference.volume import CTVolume, SeriesNotAnalysable

NAME = "densitometry"
VERSION = "2.0.0"

BODY_HU = -500
AIR_HU = -400
AIRWAY_HU = -950
#: HU bands of the opacity classes, [low, high).
OPACITY_BANDS: dict[int, tuple[int, int]] = {GGO: (-700, -300), CONSOLIDATION: (-300, 100)}
#: Pixels smaller than this (mm) are averaged 2×2 for the lung mask.
WORK_PIXEL_MM = 1.0
#: Air components smaller than this are not lungs (bowel gas, air in clothes).
MIN_COMPONENT_ML = 20.0
#: Below this total: "no lungs found". A 15 mm crop of a chest still holds ~250 mL.
MIN_LUNG_ML = 100.0
SMOOTH_CLOSING_MM = 5.0
BAY_MARGIN_MM = 5.0
WALL_REACH_MM = 1.5
MAX_OPEN_FRACTION = 0.25
VESSEL_RADIUS_MM = 2.0
TRACHEA_SEARCH_MM = 20.0
TRACHEA_AREA_CM2 = (0.5, 8.0)
#: An airway growth larger than this fraction of the air leaked into the lung.
AIRWAY_MAX_FRACTION = 0.15

# In-plane structuring elements as 3D arrays, so one scipy call treats every slice.
_CROSS = np.zeros((3, 3, 3), bool)
_CROSS[1] = ndi.generate_binary_structure(2, 1)
_SQUARE = np.zeros((3, 3, 3), bool)
_SQUARE[1] = True


# -- grids and small tools ------------------------------------------------------------


def _block_mean(hu: np.ndarray, factor: int) -> np.ndarray:
    """``factor``×``factor`` in-plane mean (1 or 2), int16; odd last row/column dropped.

    Each term is halved before adding so int16 cannot overflow; the floor costs at
    most 1.5 HU, nothing against thresholds hundreds of HU apart.
    """
    if factor == 1:
        return hu
    rows = (hu[:, 0::2, :] >> 1) + (hu[:, 1::2, :] >> 1)
    if rows.shape[1] > hu.shape[1] // 2:
        rows = rows[:, :-1]
    out = (rows[:, :, 0::2] >> 1) + (rows[:, :, 1::2] >> 1)
    return out[:, :, : hu.shape[2] // 2]


def _to_full(mask: np.ndarray, factor: int, shape: tuple[int, ...]) -> np.ndarray:
    """A working-grid mask or label map back on the full grid (nearest neighbour)."""
    if factor == 1:
        return mask
    out = np.zeros(shape, mask.dtype)
    rows, columns = mask.shape[1] * factor, mask.shape[2] * factor
    out[:, :rows, :columns] = mask.repeat(factor, axis=1).repeat(factor, axis=2)
    return out


def _octagon(mask: np.ndarray, radius_px: int, operation: str, border: int = 0) -> np.ndarray:
    """In-plane dilation or erosion by an octagon of ``radius_px`` (about a disc).

    Square and cross steps alternate; scipy iterates each cheaply, while a disc
    footprint of radius r costs ~r² per voxel. ``border``: the value beyond the array.
    """
    function = ndi.binary_dilation if operation == "dilate" else ndi.binary_erosion
    squares, crosses = (radius_px + 1) // 2, radius_px // 2
    out = mask
    if squares:
        out = function(out, structure=_SQUARE, iterations=squares, border_value=border)
    if crosses:
        out = function(out, structure=_CROSS, iterations=crosses, border_value=border)
    return out


def _closing(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """In-plane octagon closing, padded so the array edge does not cut it short."""
    pad = radius_px + 1
    padded = np.pad(mask, ((0, 0), (pad, pad), (pad, pad)))
    closed = _octagon(_octagon(padded, radius_px, "dilate"), radius_px, "erode", border=1)
    return closed[:, pad:-pad, pad:-pad] | mask


def _box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice, slice]:
    """Bounding box of ``mask`` grown in-plane by ``margin`` (clipped to the array)."""
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    ys = np.flatnonzero(mask.any(axis=(0, 2)))
    xs = np.flatnonzero(mask.any(axis=(0, 1)))
    if zs.size == 0:
        return (slice(0, 0),) * 3
    return (
        slice(zs[0], zs[-1] + 1),
        slice(max(0, ys[0] - margin), min(mask.shape[1], ys[-1] + 1 + margin)),
        slice(max(0, xs[0] - margin), min(mask.shape[2], xs[-1] + 1 + margin)),
    )


def _sizes(labels: np.ndarray, count: int) -> np.ndarray:
    """Voxels per label (index 0, the background, set to 0).

    Counting only the labelled voxels: bincount widens its input to int64, and a
    widened copy of the whole array costs more than the count itself.
    """
    return np.bincount(labels[labels > 0], minlength=count + 1)


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, count = ndi.label(mask)
    if count <= 1:
        return mask
    return labels == _sizes(labels, count).argmax()


def _fill_holes(mask: np.ndarray, in_plane: bool) -> np.ndarray:
    """Fill the holes of ``mask``: background not connected to the array's border.

    ``in_plane``: slice by slice (the border is each slice's edge); otherwise in 3D,
    where the first and last slices are border too (what lies beyond is unknown).
    Labelling the background once is cheaper than scipy's iterative hole filling.
    """
    labels, count = ndi.label(~mask, structure=_CROSS if in_plane else None)
    outside = np.zeros(count + 1, bool)
    edges = [labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]]
    if not in_plane:
        edges += [labels[0], labels[-1]]
    for edge in edges:
        outside[np.unique(edge)] = True
    outside[0] = True
    return mask | ~outside[labels]


# -- steps ----------------------------------------------------------------------------


def _body(small: np.ndarray) -> np.ndarray:
    """The patient: above −500 HU, largest component, holes (lungs, bowel) filled in-plane.

    An in-plane erosion before taking the largest component cuts thin bridges to the
    table or a blanket; the dilation afterwards restores the outline.
    """
    dense = small > BODY_HU
    core = _largest(ndi.binary_erosion(dense, structure=_CROSS))
    body = ndi.binary_dilation(core, structure=_CROSS) & dense
    return _fill_holes(body, in_plane=True)


def _skin_depth(body: np.ndarray) -> np.ndarray:
    """Depth below the skin of every voxel, slice by slice, in working pixels (float32).

    A chessboard distance on a grid coarsened 2× in-plane, brought back: bays are
    judged by mean depths a few millimetres apart, which this resolves.
    """
    coarse = _downsample_mask(body, 2)
    depth = ndi.distance_transform_cdt(coarse, metric=_SQUARE).astype(np.float32) * 2
    return _to_full(depth, 2, body.shape)


def _cranial_slices(volume: CTVolume, depth: int) -> range:
    """Indices of the slices nearest the head (up to ``depth`` of them), head first."""
    count = volume.hu.shape[0]
    depth = min(depth, count)
    if volume.normal[2] >= 0:  # index grows towards the head (the usual case)
        return range(count - 1, count - 1 - depth, -1)
    return range(0, depth)


def _remove_airways(air: np.ndarray, small: np.ndarray, body: np.ndarray, volume: CTVolume, pixel_mm: float) -> np.ndarray:
    """``air`` minus the trachea and main bronchi (see step 3)."""
    depth = max(1, int(round(TRACHEA_SEARCH_MM / volume.spacing[0])))
    low, high = (a * 100 / pixel_mm**2 for a in TRACHEA_AREA_CM2)
    seed = None
    for z in _cranial_slices(volume, depth):
        labels, count = ndi.label(air[z])
        if count == 0:
            continue
        body_columns = np.flatnonzero(body[z].any(axis=0))
        midline = body_columns.mean() if body_columns.size else air.shape[2] / 2
        width = np.ptp(body_columns) if body_columns.size else air.shape[2]
        sizes = _sizes(labels, count)
        for index, region in enumerate(ndi.find_objects(labels), start=1):
            centre = (region[1].start + region[1].stop) / 2
            if low <= sizes[index] <= high and abs(centre - midline) < 0.15 * width:
                seed = (z, labels == index)
                break
        if seed is not None:
            break
    if seed is None:
        return air
    z, region = seed
    markers = np.zeros_like(air)
    markers[z] = region & (small[z] < AIRWAY_HU)
    airway = ndi.binary_propagation(markers, mask=air & (small < AIRWAY_HU))
    if np.count_nonzero(airway) > AIRWAY_MAX_FRACTION * np.count_nonzero(air):
        airway = markers  # flooded into emphysematous lung: trust only the seed
        airway[z] = region
    return air & ~ndi.binary_dilation(airway, structure=_CROSS)


def _split_touching(lung: np.ndarray) -> list[np.ndarray]:
    """Split one component holding both lungs (step 4).

    Done on a grid coarsened 2× more in-plane (it only decides on which side of a thin
    junction a voxel falls). The in-plane chessboard distance to the background is
    computed once; thresholding it at 1, 2, 3… is erosion by growing squares. At the
    first level that leaves two large parts, every voxel of the joint mask goes to
    the nearer part.
    """
    box = _box(lung, 2)
    part = lung[box]
    coarse = _downsample_mask(part, 2)
    distance = ndi.distance_transform_cdt(coarse, metric=_SQUARE)
    for level in range(1, 7):
        labels, count = ndi.label(distance > level)
        if count < 2:
            continue
        sizes = _sizes(labels, count)
        first, second = np.argsort(sizes)[::-1][:2]
        if sizes[second] < 0.2 * sizes[first]:
            continue
        seeds = np.where(labels == first, 1, np.where(labels == second, 2, 0)).astype(np.uint8)
        _, index = ndi.distance_transform_edt(seeds == 0, return_indices=True)
        nearest = _to_full(seeds[tuple(index)], 2, part.shape)
        halves = []
        for value in (1, 2):
            half = np.zeros_like(lung)
            half[box] = part & (nearest == value)
            halves.append(half)
        return halves
    return [lung]


def _lung_components(air: np.ndarray, voxel_ml: float) -> list[np.ndarray]:
    """The lungs among the air components: one or two masks (step 4)."""
    labels, count = ndi.label(air)
    if count == 0:
        return []
    sizes = _sizes(labels, count)
    order = [i for i in np.argsort(sizes)[::-1] if sizes[i] * voxel_ml >= MIN_COMPONENT_ML][:2]
    if not order:
        return []
    if len(order) == 2 and sizes[order[1]] >= 0.2 * sizes[order[0]]:
        return [labels == order[0], labels == order[1]]
    return _split_touching(labels == order[0])


def assign_sides(parts: list[np.ndarray], volume: CTVolume, factor: int = 1, body: np.ndarray | None = None) -> list[int]:
    """RIGHT_LUNG or LEFT_LUNG for each lung mask in ``parts``.

    Decided in patient coordinates (patient left = +x in LPS), never by image
    columns alone: with two lungs the one with the larger x is left; a single lung is
    compared with the body's midline (or the image centre without ``body``).
    ``factor``: the in-plane downsampling of the masks relative to ``volume``.
    """
    centres = [volume.to_patient(_centre(part, factor)[None])[0][0] for part in parts]
    if len(parts) == 2:
        return [LEFT_LUNG, RIGHT_LUNG] if centres[0] > centres[1] else [RIGHT_LUNG, LEFT_LUNG]
    if body is not None and body.any():
        middle = _centre(body, factor)
    else:
        middle = np.array(volume.hu.shape, float) / 2
    midline = volume.to_patient(middle[None])[0][0]
    return [LEFT_LUNG if c > midline else RIGHT_LUNG for c in centres]


def _centre(mask: np.ndarray, factor: int) -> np.ndarray:
    """Centroid (slice, row, column) of ``mask`` in full-grid indices, from its projections."""
    centre = []
    for axis, keep in enumerate(((1, 2), (0, 2), (0, 1))):
        counts = np.count_nonzero(mask, axis=keep)
        centre.append(np.average(np.arange(counts.size), weights=counts) * (factor if axis else 1))
    return np.array(centre)


def working_factor(volume: CTVolume) -> int:
    """In-plane downsampling of the lung-mask grid: 2 for pixels under 1 mm, else 1."""
    return 2 if min(volume.spacing[1:]) < WORK_PIXEL_MM else 1


def _downsample_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    """``factor``×``factor`` in-plane majority (a voxel is set when half its block is)."""
    if factor == 1:
        return mask
    z, y, x = mask.shape
    m = mask[:, : y // 2 * 2, : x // 2 * 2].view(np.uint8)
    return (m[:, 0::2, 0::2] + m[:, 1::2, 0::2] + m[:, 0::2, 1::2] + m[:, 1::2, 1::2]) >= 2


def lung_sides(lung: np.ndarray, volume: CTVolume) -> np.ndarray:
    """Split any full-resolution lung mask into right and left (the ``side`` map).

    For engines that find lungs their own way (the L3-net UNet): the mask is split as
    step 4 splits air, on the working grid, and sides are assigned in patient
    coordinates. Voxels the coarse split misses go to the lung whose centre column is
    nearer.
    """
    factor = working_factor(volume)
    parts = _lung_components(_downsample_mask(lung, factor), volume.voxel_ml * factor * factor)
    side = np.zeros(lung.shape, np.uint8)
    if not parts:
        return side
    for part, value in zip(parts, assign_sides(parts, volume, factor)):
        side[_to_full(part, factor, lung.shape) & lung] = value
    leftover = lung & (side == 0)
    if leftover.any():
        columns = np.arange(lung.shape[2])
        centres = {v: np.average(columns, weights=(side == v).sum(axis=(0, 1))) for v in (RIGHT_LUNG, LEFT_LUNG) if (side == v).any()}
        if len(centres) == 1:
            side[leftover] = next(iter(centres))
        else:
            nearer_left = np.abs(columns - centres[LEFT_LUNG]) < np.abs(columns - centres[RIGHT_LUNG])
            side[leftover] = np.where(nearer_left, LEFT_LUNG, RIGHT_LUNG)[np.nonzero(leftover)[2]]
    return side


def _hull(plane: np.ndarray) -> np.ndarray:
    """The filled 2D convex hull of ``plane`` (from each row's outermost pixels)."""
    rows = np.flatnonzero(plane.any(axis=1))
    if rows.size < 2:
        return plane
    sub = plane[rows]
    first = sub.argmax(axis=1)
    last = plane.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    points = np.concatenate([np.stack([first, rows], 1), np.stack([last, rows], 1)]).astype(float)
    try:
        hull = ConvexHull(points)
    except QhullError:  # all points on a line
        return plane
    image = Image.new("1", (plane.shape[1], plane.shape[0]), 0)
    ImageDraw.Draw(image).polygon([tuple(p) for p in points[hull.vertices]], fill=1, outline=1)
    return np.asarray(image, dtype=bool) | plane


def _count_and_sum(labels: np.ndarray, values: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per label 0..count: how many voxels, and the sum of ``values`` over them."""
    return np.bincount(labels, minlength=count + 1), np.bincount(labels, weights=values, minlength=count + 1)


def _outward(candidates: np.ndarray, labels: np.ndarray, count: int, lung: np.ndarray, body: np.ndarray, depth: np.ndarray, margin_px: float, footprint: np.ndarray) -> np.ndarray:
    """Which labelled candidate regions open towards the body wall (index 0..count).

    A region's ring (its neighbours under ``footprint`` that are not candidates) is
    split into rim (lung) and mouth (other tissue of the body). The region opens
    outwards when its mouth lies, on average, ``margin_px`` nearer the skin than its rim.
    """
    ring = ndi.grey_dilation(labels, footprint=footprint) * ~candidates
    rim_size, rim_depth = _count_and_sum(ring[lung], depth[lung], count)
    tissue = ~lung & body
    mouth_size, mouth_depth = _count_and_sum(ring[tissue], depth[tissue], count)
    keep = (mouth_size > 0) & (rim_size > 0)
    keep[keep] = mouth_depth[keep] / mouth_size[keep] + margin_px < rim_depth[keep] / rim_size[keep]
    keep[0] = False
    return keep


def _outward_bays(lung: np.ndarray, body: np.ndarray, depth: np.ndarray, margin_px: float, reach_px: int) -> np.ndarray:
    """Hull-deficiency regions of ``lung``, slice by slice, that open outwards (step 5b).

    An accepted bay ends at the hull's chord, but the pleura it replaces bulged
    beyond that chord (the lung is convex). So the bay then grows outwards, at most
    ``reach_px``, through tissue at least as deep below the skin as the shallowest
    lung at its rim (where the aerated lung meets the chest wall): the chest wall
    itself is shallower and stops it.
    """
    hull = np.zeros_like(lung)
    for z in np.flatnonzero(lung.any(axis=(1, 2))):
        hull[z] = _hull(lung[z])
    candidates = hull & ~lung & body
    labels, count = ndi.label(candidates, structure=_CROSS)  # slice by slice
    if count == 0:
        return candidates
    # No mouth: a hole enclosed in this slice; whether it is lung is decided in 3D.
    keep = _outward(candidates, labels, count, lung, body, depth, margin_px, _CROSS)
    bays = keep[labels]
    if not keep.any() or reach_px < 1:
        return bays
    ring = ndi.grey_dilation(labels, footprint=_CROSS) * lung
    lip = np.full(count + 1, np.inf, np.float32)
    np.minimum.at(lip, ring[ring > 0], depth[ring > 0])
    lip[~keep] = np.inf
    # Grow: each step takes the tissue next to the bays that is at least as deep as
    # the lip of the bay it touches (grey erosion carries the smallest lip outwards).
    reach = np.where(bays, lip[labels], np.float32(np.inf)).astype(np.float32)
    tissue = body & ~lung
    for _ in range(reach_px):
        grown = ndi.grey_erosion(reach, footprint=_CROSS)
        new = tissue & ~bays & (grown <= depth)
        if not new.any():
            break
        bays |= new
        reach = np.where(new, grown, reach)
    return bays


def _enclosed_holes(filled: np.ndarray) -> np.ndarray:
    """In-plane holes of ``filled`` that are closed above and below as well (step 5c).

    The holes are grouped in 3D; a group is kept unless more than a quarter of the
    voxels just above or below it (that are not hole themselves) are outside the lung.
    A nodule seen as a hole on a run of slices is capped by lung at both ends and kept
    even when its neck touches the pleura on one slice; the top of the liver dome,
    a hole in a basal slice, sits on liver and is not.
    """
    holes = _fill_holes(filled, in_plane=True) & ~filled
    labels, count = ndi.label(holes)
    if count == 0:
        return holes
    outside = np.zeros(count + 1, np.int64)
    capped = np.zeros(count + 1, np.int64)
    for here, there in ((labels[1:], filled[:-1] | holes[:-1]), (labels[:-1], filled[1:] | holes[1:])):
        outside += np.bincount(here[~there], minlength=count + 1)
    for here, there in ((labels[1:], filled[:-1]), (labels[:-1], filled[1:])):
        capped += np.bincount(here[there], minlength=count + 1)
    # The first and last slices: beyond them is unknown, counted as neither.
    keep = outside <= (outside + capped) * MAX_OPEN_FRACTION
    keep[0] = False
    return keep[labels]


def _fill_lung(lung: np.ndarray, body: np.ndarray, depth: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Step 5 for one lung, inside its bounding box."""
    radius = max(1, int(round(SMOOTH_CLOSING_MM / pixel_mm)))
    box = _box(lung, radius + 2)
    part, part_body, part_depth = lung[box], body[box], depth[box]
    margin = BAY_MARGIN_MM / pixel_mm
    smooth = _closing(part, radius) & part_body
    filled = smooth | _outward_bays(smooth, part_body, part_depth, margin, int(round(WALL_REACH_MM / pixel_mm)))
    filled |= _enclosed_holes(filled) & part_body
    out = np.zeros_like(lung)
    out[box] = filled
    return out


def opacity_bands(hu: np.ndarray, lung: np.ndarray, pixel_mm: float) -> np.ndarray:
    """GGO / CONSOLIDATION labels (uint8, 0 elsewhere) inside ``lung``, vessels suppressed.

    Step 7, at the resolution of ``hu``. The opening runs only where a patch can be:
    a coarse pass (2× in-plane, a block counting as band if any voxel is) opened with
    a 3×3 square keeps every region wide enough to hold the full-resolution octagon,
    and the exact opening then runs in the boxes around those regions. In a lung with
    little opacity that skips most of the volume; the result is the same.
    """
    out = np.zeros(hu.shape, np.uint8)
    radius = max(1, int(round(VESSEL_RADIUS_MM / pixel_mm)))
    box = _box(lung, radius)
    part = hu[box]
    band = lung[box] & (part >= OPACITY_BANDS[GGO][0]) & (part < OPACITY_BANDS[CONSOLIDATION][1])
    labels = out[box]
    for region in _patch_regions(band, radius):
        # Beyond a box counts as unset: near its edge the opening can only miss, and
        # what it misses there lies inside another region's box.
        patches = _octagon(_octagon(band[region], radius, "erode"), radius, "dilate")
        values = part[region]
        target = labels[region]
        target[patches & (values < OPACITY_BANDS[GGO][1])] = GGO
        target[patches & (values >= OPACITY_BANDS[CONSOLIDATION][0])] = CONSOLIDATION
    return out


def _patch_regions(band: np.ndarray, radius: int) -> list[tuple[slice, slice, slice]]:
    """Boxes of ``band`` (in-plane margin 2·radius) where its opening can keep anything."""
    if radius < 2 or min(band.shape[1:]) < 8:
        return [(slice(None),) * 3]
    y, x = band.shape[1] // 2 * 2, band.shape[2] // 2 * 2
    b = band[:, :y, :x]
    coarse = b[:, 0::2, 0::2] | b[:, 1::2, 0::2] | b[:, 0::2, 1::2] | b[:, 1::2, 1::2]
    survivors = _octagon(_octagon(coarse, 1, "erode"), 1, "dilate")
    labels, count = ndi.label(survivors, structure=_SQUARE)  # per slice, 8-connected
    margin = 2 * radius
    boxes = []
    for found in ndi.find_objects(labels):
        if found is None:
            continue
        zs, ys, xs = found
        boxes.append((
            zs,
            slice(max(0, 2 * ys.start - margin), min(band.shape[1], 2 * ys.stop + margin)),
            slice(max(0, 2 * xs.start - margin), min(band.shape[2], 2 * xs.stop + margin)),
        ))
    return boxes


def lung_masks(volume: CTVolume) -> tuple[np.ndarray, dict[str, Any]]:
    """Steps 1–6: the ``side`` map (uint8, RIGHT_LUNG / LEFT_LUNG) and notes."""
    hu = volume.hu
    factor = working_factor(volume)
    small = _block_mean(hu, factor)
    pixel_mm = float(min(volume.spacing[1:])) * factor
    voxel_ml = volume.voxel_ml * factor * factor

    body = _body(small)
    air = (small < AIR_HU) & body
    air = _remove_airways(air, small, body, volume, pixel_mm)
    parts = _lung_components(air, voxel_ml)
    found_ml = sum(np.count_nonzero(p) for p in parts) * voxel_ml
    if found_ml < MIN_LUNG_ML:
        raise SeriesNotAnalysable(
            f"not a chest CT: no lungs found ({found_ml:.0f} mL of lung-like air, at least {MIN_LUNG_ML:.0f} mL needed)"
        )
    depth = _skin_depth(body)
    sides = assign_sides(parts, volume, factor, body)
    side_small = np.zeros(small.shape, np.uint8)
    for part, side in zip(parts, sides):
        others = np.zeros_like(part)
        for other in parts:
            if other is not part:
                others |= other
        filled = _fill_lung(part, body & ~others, depth, pixel_mm)
        side_small[filled & (side_small == 0)] = side
    side = _to_full(side_small, factor, hu.shape)
    notes = {"working_pixel_mm": round(pixel_mm, 3), "lungs_found": len(parts)}
    return side, notes


def segment(volume: CTVolume) -> Segmentation:
    """Run the densitometry engine on ``volume``."""
    side, notes = lung_masks(volume)
    labels = side.copy()
    opacity = opacity_bands(volume.hu, side > 0, float(min(volume.spacing[1:])))
    np.copyto(labels, opacity, where=opacity > 0)
    return Segmentation(labels, side, NAME, VERSION, notes=notes)


class DensitometryEngine:
    """The default engine: :func:`segment` with a name and a version."""

    name = NAME
    version = VERSION

    def __call__(self, volume: CTVolume) -> Segmentation:
        return segment(volume)


register(NAME, lambda settings=None: DensitometryEngine())
