"""Outlines of SEG segments for the SR's planar groups: closed, through the border
pixels' centres, the largest region, the largest image."""

from __future__ import annotations

import numpy as np

from inference.sr_outline import largest_region, outline, trace


def _area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])))


def test_rectangle_outline_runs_through_border_pixel_centres():
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:10, 3:12] = True  # rows 5..9, columns 3..11
    points = trace(mask)
    assert np.array_equal(points[0], points[-1])
    assert points[:, 0].min() == 3.5 and points[:, 0].max() == 11.5  # columns (x)
    assert points[:, 1].min() == 5.5 and points[:, 1].max() == 9.5  # rows (y)
    assert _area(points) == 8 * 4


def test_regions_joined_at_one_pixel_are_traced_whole():
    mask = np.zeros((12, 12), dtype=bool)
    mask[2:5, 2:5] = True
    mask[5:8, 5:8] = True  # touches the first square diagonally
    assert _area(trace(mask)) == 4 + 4


def test_a_single_pixel_gets_its_square():
    mask = np.zeros((5, 5), dtype=bool)
    mask[1, 3] = True
    points = trace(mask)
    assert points.tolist() == [[3, 1], [4, 1], [4, 2], [3, 2], [3, 1]]


def test_disk_outline_is_close_to_its_area_and_capped_in_points():
    y, x = np.ogrid[:300, :300]
    disk = (y - 150) ** 2 + (x - 140) ** 2 < 120**2
    points = trace(disk)
    assert len(points) <= 401
    assert abs(_area(points) - disk.sum()) / disk.sum() < 0.02


def test_largest_region_and_image_and_avoided_images():
    small = np.zeros((10, 10), dtype=bool)
    small[1:3, 1:3] = True
    big = small.copy()
    big[5:9, 5:9] = True
    assert largest_region(big).sum() == 16
    frames = {"a": small, "b": big}
    assert outline(frames).sop_instance_uid == "b"
    assert outline(frames, avoid={"b"}).sop_instance_uid == "a"
    assert outline(frames, avoid={"a", "b"}).sop_instance_uid == "b"  # nothing else: reuse
    assert outline({"a": np.zeros((4, 4), dtype=bool)}) is None


def test_frames_from_the_masks_equal_the_frames_decoded_from_the_seg():
    """The pipeline outlines findings from the in-memory masks (volume_frames) rather
    than decoding its JPEG 2000 SEG again: both give the same frames, image for image."""
    from inference.pipeline import analyze
    from inference.seg import SEGMENTS, masks
    from inference.sr_outline import segment_frames, volume_frames
    from tests.inference.phantom import build, to_datasets

    result = analyze(to_datasets(build().hu))
    decoded = segment_frames(result.seg)
    stack = masks(result.segmentation)
    from_masks = volume_frames(
        {spec.number: stack[..., index] for index, spec in enumerate(SEGMENTS)},
        [ds.SOPInstanceUID for ds in result.volume.datasets],
    )
    assert set(from_masks) == {spec.number for spec in SEGMENTS} and set(decoded) <= set(from_masks)
    for number, frames in from_masks.items():
        assert set(frames) == set(decoded.get(number, {}))
        for uid, mask in frames.items():
            assert np.array_equal(mask, decoded[number][uid])
