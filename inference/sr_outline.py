"""Planar outlines of SEG segments, for the SR's planar companion groups.

The SR's volumetric groups (TID 1411) reference whole SEG segments. Viewers that can
only draw SR content with spatial coordinates (OHIF 3.13.2 among them) need, for each
tracked finding, a planar region on one image. This module reads the SEG's own frames
and returns, per segment, the outline of its largest connected region on the image
where the segment covers the most pixels, so the outline is exactly the stored
segment's cross-section there (traced through the centres of its border pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset
from scipy import ndimage
from scipy.spatial import ConvexHull

# Moore neighbourhood, clockwise on screen (rows grow downwards): N, NE, E, SE, S, SW, W, NW.
_STEPS = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
_STEP_INDEX = {step: index for index, step in enumerate(_STEPS)}
# An outline of a lung has a few thousand border pixels; more points add bytes, not detail.
MAX_POINTS = 400


@dataclass(frozen=True)
class Outline:
    """One segment's cross-section on one source image.

    ``sop_instance_uid``: the source (CT) image; ``points``: (column, row) image
    coordinates (pixel centres at +0.5), closed (last point = first);
    ``pixels``: the segment's pixel count on that image (all its regions there).
    """

    sop_instance_uid: str
    points: np.ndarray
    pixels: int


def segment_frames(seg: Dataset) -> dict[int, dict[str, np.ndarray]]:
    """{segment number: {source SOP Instance UID: boolean mask}} from the SEG's frames
    (empty frames are absent from a SEG, so a segment may have no entry)."""
    pixels = seg.pixel_array
    if pixels.ndim == 2:  # a single frame
        pixels = pixels[np.newaxis]
    frames: dict[int, dict[str, np.ndarray]] = {}
    for index, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source = str(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        frames.setdefault(number, {})[source] = pixels[index].astype(bool)
    return frames


def volume_frames(masks: dict[int, np.ndarray], sop_uids: Sequence[str]) -> dict[int, dict[str, np.ndarray]]:
    """The mapping :func:`segment_frames` reads from a SEG, taken instead from the
    in-memory masks the SEG was written from: ``masks`` is {segment number: (slices,
    rows, columns) booleans}, slice ``i`` being the image ``sop_uids[i]``; empty slices
    are left out, as a SEG leaves out empty frames. Decoding a JPEG 2000 SEG again
    would cost seconds (2.5 s at 500 slices) for the same bits (a test compares them)."""
    return {
        number: {str(uid): mask[index] for index, uid in enumerate(sop_uids) if mask[index].any()}
        for number, mask in masks.items()
    }


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of ``mask`` (a boolean image)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def trace(region: np.ndarray) -> np.ndarray:
    """Closed outer boundary of one 8-connected region (Moore-neighbour tracing) as
    (column, row) points at pixel centres. A region too thin to enclose an area (one
    pixel, a line) gets the outline of its pixels' bounding square instead, so the
    result is always a closed polyline of at least 4 points."""
    padded = np.pad(region, 1)
    rows, cols = np.nonzero(padded)
    start = (int(rows[0]), int(cols[0]))  # first in raster order: its west neighbour is background
    path = [start]
    current, back = start, _STEP_INDEX[(0, -1)]
    for _ in range(4 * int(region.sum()) + 8):  # each border pixel is entered at most 4 times
        for turn in range(1, 9):
            direction = (back + turn) % 8
            candidate = (current[0] + _STEPS[direction][0], current[1] + _STEPS[direction][1])
            if padded[candidate]:
                previous = _STEPS[(back + turn - 1) % 8]
                behind = (current[0] + previous[0] - candidate[0], current[1] + previous[1] - candidate[1])
                break
        else:
            break  # an isolated pixel
        # Jacob's stopping criterion: back at the start and about to repeat the first move
        # (stopping at the first return to the start would cut off regions joined there).
        if current == start and len(path) > 1 and candidate == path[1]:
            break
        current, back = candidate, _STEP_INDEX[behind]
        path.append(current)
    if len(path) > 1 and path[-1] == start:
        path.pop()
    points = np.array(path, dtype=np.float64) - 1  # undo the padding
    if len(points) < 3 or np.ptp(points[:, 0]) == 0 or np.ptp(points[:, 1]) == 0:
        (r0, c0), (r1, c1) = points.min(axis=0), points.max(axis=0)
        points = np.array([(r0 - 0.5, c0 - 0.5), (r0 - 0.5, c1 + 0.5), (r1 + 0.5, c1 + 0.5), (r1 + 0.5, c0 - 0.5)]) + 0.5
    else:
        points = points + 0.5
        if len(points) > MAX_POINTS:
            points = points[np.linspace(0, len(points), MAX_POINTS, endpoint=False).astype(int)]
    closed = np.vstack([points, points[:1]])
    return closed[:, ::-1].astype(np.float32)  # (row, column) -> (column, row)


def outline(frames: dict[str, np.ndarray], avoid: set[str] = frozenset()) -> Outline | None:
    """The outline on the image where the segment covers the most pixels, preferring
    images not in ``avoid``; None for an empty segment."""
    counts = {uid: int(mask.sum()) for uid, mask in frames.items() if mask.any()}
    if not counts:
        return None
    preferred = {uid: n for uid, n in counts.items() if uid not in avoid} or counts
    uid = max(preferred, key=lambda key: (preferred[key], key))
    return Outline(uid, trace(largest_region(frames[uid])), counts[uid])


def hull_outline(*segments: dict[str, np.ndarray], avoid: set[str] = frozenset()) -> Outline | None:
    """The convex hull of several segments together (both lungs, say) on the image
    where they cover the most pixels together, preferring images not in ``avoid``;
    None when all are empty. A finding about both lungs outlined this way cannot be
    mistaken for a finding about one of them."""
    images = set().union(*segments)
    unions = {uid: np.logical_or.reduce([s[uid] for s in segments if uid in s]) for uid in images}
    counts = {uid: int(mask.sum()) for uid, mask in unions.items() if mask.any()}
    if not counts:
        return None
    preferred = {uid: n for uid, n in counts.items() if uid not in avoid} or counts
    uid = max(preferred, key=lambda key: (preferred[key], key))
    rows, columns = np.nonzero(unions[uid])
    centres = np.column_stack([columns, rows]).astype(np.float64) + 0.5
    if len(centres) < 3 or np.ptp(centres[:, 0]) == 0 or np.ptp(centres[:, 1]) == 0:
        return Outline(uid, trace(unions[uid]), counts[uid])  # too thin for a hull: its square
    hull = centres[ConvexHull(centres).vertices]  # counter-clockwise in (column, row)
    return Outline(uid, np.vstack([hull, hull[:1]]).astype(np.float32), counts[uid])
