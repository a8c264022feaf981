"""Real CT: LIDC-IDRI-0001 lungs and radiologists' nodule contours, lesions of known
size and HU inserted into real lung, and the abdomen series that is not a chest.
(Refusals built from modified copies are in test_volume.py.)"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw
from pydicom.uid import generate_uid

from inference.engines import get_engine
from scipy import ndimage as ndi

from inference.engines.base import CONSOLIDATION, GGO, LEFT_LUNG, RIGHT_LUNG
from inference.pipeline import SeriesNotAnalysable, analyze
from inference.volume import load_datasets, load_series, read_directory

NS = {"l": "http://www.nih.gov"}


@pytest.fixture(scope="module")
def lidc(shared_data):
    volume = load_datasets(read_directory(shared_data / "ct" / "LIDC-IDRI-0001"))
    return volume, get_engine("densitometry")(volume)


def nodule_voxels(xml_path, volume) -> np.ndarray:
    """Every voxel inside the radiologists' nodule outlines (inclusion="TRUE" ROIs)."""
    index_of = {str(ds.SOPInstanceUID): i for i, ds in enumerate(volume.datasets)}
    mask = np.zeros(volume.hu.shape, bool)
    for roi in ET.parse(xml_path).getroot().iterfind(".//l:unblindedReadNodule/l:roi", NS):
        if roi.findtext("l:inclusion", namespaces=NS) != "TRUE":
            continue
        index = index_of.get(roi.findtext("l:imageSOP_UID", namespaces=NS))
        points = [(int(e.findtext("l:xCoord", namespaces=NS)), int(e.findtext("l:yCoord", namespaces=NS))) for e in roi.iterfind("l:edgeMap", NS)]
        if index is None or len(points) < 3:
            continue
        image = Image.new("1", (volume.hu.shape[2], volume.hu.shape[1]), 0)
        ImageDraw.Draw(image).polygon(points, fill=1, outline=1)
        mask[index] |= np.asarray(image, dtype=bool)
    return mask


@pytest.mark.slow
def test_lidc_both_lungs_physiologic(lidc):
    volume, seg = lidc
    right, left = (np.count_nonzero(seg.side == s) * volume.voxel_ml for s in (1, 2))
    assert 800 < right < 4500 and 800 < left < 4500
    assert 2000 < right + left < 8000


@pytest.fixture(scope="module")
def nodule_fraction(lidc, shared_data) -> float:
    volume, seg = lidc
    nodules = nodule_voxels(shared_data / "ct" / "LIDC-IDRI-0001" / "069.xml", volume)
    assert np.count_nonzero(nodules) > 100
    return float(np.mean(seg.side[nodules] > 0))


@pytest.mark.slow
def test_lidc_nodules_inside_lung_mask_95_percent(nodule_fraction):
    assert nodule_fraction >= 0.95


def _sphere_at_deepest(lung: np.ndarray, volume, radius_mm: float) -> np.ndarray:
    """A sphere of ``radius_mm`` centred on the middle slice where ``lung`` is deepest
    in-plane (it must fit in-plane; the crop's few slices may cut it above and below)."""
    middle = lung.shape[0] // 2
    depth = ndi.distance_transform_edt(lung[middle], sampling=volume.spacing[1:])
    y0, x0 = np.unravel_index(np.argmax(depth), depth.shape)
    assert depth[y0, x0] > radius_mm + 3, "the lung is too small here for this lesion"
    z, y, x = np.ogrid[: lung.shape[0], : lung.shape[1], : lung.shape[2]]
    sz, sy, sx = volume.spacing
    return ((z - middle) * sz) ** 2 + ((y - y0) * sy) ** 2 + ((x - x0) * sx) ** 2 <= radius_mm**2


@pytest.mark.parametrize("crop", ["LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003"])
def test_inserted_lesions_in_real_lung_within_3_percent(small_series, crop):
    """A −500 HU sphere in the right lung and a +20 HU one in the left, written into the
    real slices' pixel data: each comes back as its class, volume within 3 %."""
    datasets = [pydicom.dcmread(p) for p in small_series[crop]]
    volume = load_series(datasets)
    before = get_engine("densitometry")(volume)
    radius = 10.0
    lesions = {GGO: (_sphere_at_deepest(before.side == RIGHT_LUNG, volume, radius), -500),
               CONSOLIDATION: (_sphere_at_deepest(before.side == LEFT_LUNG, volume, radius), 20)}
    hu = volume.hu.copy()
    for sphere, value in lesions.values():
        hu[sphere] = value
    for ds, header in zip(sorted(datasets, key=lambda d: float(d.ImagePositionPatient[2])), volume.datasets):
        assert ds.SOPInstanceUID == header.SOPInstanceUID
    by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
    for index, header in enumerate(volume.datasets):
        ds = by_uid[str(header.SOPInstanceUID)]
        stored = (hu[index].astype(np.int32) - int(ds.RescaleIntercept)) // int(ds.RescaleSlope)
        ds.PixelData = stored.astype(ds.pixel_array.dtype).tobytes()
    after = get_engine("densitometry")(load_series(datasets))
    for label, (sphere, _value) in lesions.items():
        inserted = np.count_nonzero(sphere)
        # The lesion's volume as measured (its voxels in the right class): within 3 %.
        assert np.count_nonzero((after.labels == label) & sphere) == pytest.approx(inserted, rel=0.03)
        # The class as reported grows by a little more: the partial-volume voxels of
        # vessels that touch the lesion join it and escape vessel suppression (up to
        # 3.2 % of a 10 mm lesion in these crops).
        grown = np.count_nonzero(after.labels == label) - np.count_nonzero(before.labels == label)
        assert grown == pytest.approx(inserted, rel=0.05)
        # More than 5 mm away from both lesions, nothing changed class.
        elsewhere = ndi.distance_transform_edt(~(lesions[GGO][0] | lesions[CONSOLIDATION][0]), sampling=volume.spacing) > 5
        assert np.array_equal((after.labels == label) & elsewhere, (before.labels == label) & elsewhere)


def _with_uids(datasets):
    study, series = generate_uid(), generate_uid()
    for ds in datasets:
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
    return datasets


def test_abdomen_j2k_decodes_and_is_not_a_chest(shared_data):
    datasets = _with_uids([pydicom.dcmread(p) for p in sorted((shared_data / "ct" / "abdomen-j2k").iterdir())])
    assert datasets[0].file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    volume = load_datasets(copy.deepcopy(datasets))
    assert volume.hu.shape[0] == 20 and -1100 < volume.hu.min() and volume.hu.max() > 100
    with pytest.raises(SeriesNotAnalysable, match="not a chest CT: no lungs found"):
        analyze(datasets)
