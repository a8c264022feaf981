"""Which series of a study gets analysed: axial CT with enough slices, preferring a lung
(sharp) kernel, then thin slices; and readable reasons when none qualifies."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from dicom_node.series_selection import choose_series, is_axial, is_lung_kernel

AXIAL = "1\\0\\0\\0\\1\\0"
CORONAL = "1\\0\\0\\0\\0\\-1"
SAGITTAL = "0\\1\\0\\0\\0\\-1"


@dataclass(frozen=True)
class S:
    """A series row as choose_series sees it (the SeriesLike protocol)."""

    series_instance_uid: str
    modality: str = "CT"
    image_orientation_patient: str = AXIAL
    image_type: str = "ORIGINAL\\PRIMARY\\AXIAL"
    slice_thickness: float | None = 1.25
    convolution_kernel: str = "STANDARD"
    number_of_instances: int = 200
    series_number: int | None = 2


MIN = 40


def test_prefers_lung_kernel_over_thinner_soft_tissue():
    soft_thin = S("1.1", convolution_kernel="STANDARD", slice_thickness=0.625, number_of_instances=500)
    lung_thick = S("1.2", convolution_kernel="LUNG", slice_thickness=2.5, number_of_instances=120)
    choice = choose_series([soft_thin, lung_thick], MIN)
    assert choice.series_uid == "1.2"
    assert choice.reason == "axial CT, 120 slices, 2.5 mm, kernel LUNG"


def test_then_prefers_thin_slices():
    series = [
        S("1.1", convolution_kernel="B70f", slice_thickness=5.0),
        S("1.2", convolution_kernel="B70f", slice_thickness=1.0),
        S("1.3", convolution_kernel="B70f", slice_thickness=2.0),
    ]
    assert choose_series(series, MIN).series_uid == "1.2"


def test_then_more_slices_then_lower_series_number():
    base = S("1.1", convolution_kernel="LUNG", slice_thickness=1.0, number_of_instances=300, series_number=5)
    more = replace(base, series_instance_uid="1.2", number_of_instances=301, series_number=9)
    assert choose_series([base, more], MIN).series_uid == "1.2"
    earlier = replace(base, series_instance_uid="1.3", series_number=3)
    assert choose_series([base, earlier], MIN).series_uid == "1.3"


def test_unknown_thickness_ranks_behind_known_thin_slices():
    unknown = S("1.1", slice_thickness=None)
    thin = S("1.2", slice_thickness=3.0)
    choice = choose_series([unknown, thin], MIN)
    assert choice.series_uid == "1.2"
    only_unknown = choose_series([unknown], MIN)
    assert only_unknown.series_uid == "1.1" and "? mm" in only_unknown.reason


@pytest.mark.parametrize(
    "kernel", ["LUNG", "BONE", "EDGE", "B60f", "B70f", "Br64", "Bl57", "I70f", "FC52", "FC86", "L", "YB", "SHARP", "STANDARD\\LUNG"]
)
def test_lung_kernels(kernel):
    assert is_lung_kernel(kernel)


@pytest.mark.parametrize("kernel", ["STANDARD", "SOFT", "B30f", "Br38f", "Br38f\\3", "I30f", "FC08", "C", "", "B"])
def test_soft_kernels(kernel):
    assert not is_lung_kernel(kernel)


@pytest.mark.parametrize(
    ("orientation", "axial"),
    [
        (AXIAL, True),
        ("1.000000\\0.000000\\0.000000\\0.000000\\1.000000\\0.000000", True),
        ("0.9848\\0\\0.1736\\0\\1\\0", True),  # 10° gantry tilt: still axial
        ("0.866\\0\\0.5\\0\\1\\0", False),  # 30°: oblique
        (CORONAL, False),
        (SAGITTAL, False),
        ("", False),
        ("1\\0\\0", False),
        ("a\\b\\c\\d\\e\\f", False),
    ],
)
def test_is_axial(orientation, axial):
    assert is_axial(orientation) is axial


def test_refuses_localizer_only_study():
    scout = S("1.1", image_type="ORIGINAL\\PRIMARY\\LOCALIZER", number_of_instances=2)
    choice = choose_series([scout], MIN)
    assert choice.series_uid is None
    assert choice.reason == "no CT images in the study (modalities: CT)"


def test_localizer_is_never_chosen_over_a_real_series():
    scout = S("1.1", image_type="ORIGINAL\\PRIMARY\\LOCALIZER", convolution_kernel="LUNG", number_of_instances=500)
    axial = S("1.2", convolution_kernel="STANDARD")
    assert choose_series([scout, axial], MIN).series_uid == "1.2"


def test_refuses_non_ct():
    choice = choose_series([S("1.1", modality="MR"), S("1.2", modality="SR")], MIN)
    assert choice.series_uid is None
    assert choice.reason == "no CT images in the study (modalities: MR, SR)"
    assert choose_series([], MIN).reason == "no CT images in the study (modalities: none)"


def test_refuses_non_axial():
    choice = choose_series([S("1.1", image_orientation_patient=CORONAL), S("1.2", image_orientation_patient=SAGITTAL)], MIN)
    assert choice.series_uid is None
    assert choice.reason == "no axial CT series in the study"


def test_refuses_too_short():
    choice = choose_series([S("1.1", number_of_instances=12), S("1.2", number_of_instances=30)], MIN)
    assert choice.series_uid is None
    assert choice.reason == "no axial CT series with at least 40 slices (largest has 30)"


def test_too_short_series_does_not_win_over_an_eligible_one():
    short_lung = S("1.1", convolution_kernel="LUNG", slice_thickness=0.5, number_of_instances=20)
    long_soft = S("1.2", convolution_kernel="STANDARD", slice_thickness=5.0, number_of_instances=60)
    assert choose_series([short_lung, long_soft], MIN).series_uid == "1.2"
