"""Which series of a study to analyse: axial CT with enough slices, preferring thin
slices and lung (sharp) reconstruction kernels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Protocol

# Sharp kernels used for lung reading: GE LUNG/BONE/EDGE, Siemens B60-B80/Bl/Br/I70,
# Canon FC5x/FC8x, Philips L/YA/YB/YC, and any description saying "lung" or "sharp".
_LUNG_KERNEL = re.compile(r"LUNG|BONE|EDGE|SHARP|^B[LR]?[5-9]\d|^I[5-9]\d|^FC[58]\d|^L$|^Y[ABC]$", re.I)
# How far the slice normal may lean off the patient z axis and still count as axial (~15°).
_AXIAL_MIN_NZ = 0.966


class SeriesLike(Protocol):
    series_instance_uid: str
    modality: str
    image_orientation_patient: str
    image_type: str
    slice_thickness: float | None
    convolution_kernel: str
    number_of_instances: int
    series_number: int | None


@dataclass(frozen=True)
class Selection:
    """The chosen series UID, or None with the reason no series is eligible."""

    series_uid: str | None
    reason: str


def is_axial(orientation: str) -> bool:
    try:
        rx, ry, rz, cx, cy, cz = (float(v) for v in orientation.split("\\"))
    except ValueError:
        return False
    nz = rx * cy - ry * cx
    return abs(nz) >= _AXIAL_MIN_NZ


def is_lung_kernel(kernel: str) -> bool:
    return any(_LUNG_KERNEL.search(part.strip()) for part in kernel.split("\\") if part.strip())


def choose_series(series: Iterable[SeriesLike], min_slices: int) -> Selection:
    """Pick the best series, or say why none qualifies (in words a radiologist reads)."""
    series = list(series)
    ct = [s for s in series if s.modality == "CT" and "LOCALIZER" not in s.image_type.upper()]
    if not ct:
        found = ", ".join(sorted({s.modality or "?" for s in series})) or "none"
        return Selection(None, f"no CT images in the study (modalities: {found})")
    axial = [s for s in ct if is_axial(s.image_orientation_patient)]
    if not axial:
        return Selection(None, "no axial CT series in the study")
    eligible = [s for s in axial if s.number_of_instances >= min_slices]
    if not eligible:
        most = max(axial, key=lambda s: s.number_of_instances)
        return Selection(
            None,
            f"no axial CT series with at least {min_slices} slices "
            f"(largest has {most.number_of_instances})",
        )
    best = min(
        eligible,
        key=lambda s: (
            not is_lung_kernel(s.convolution_kernel),
            s.slice_thickness if s.slice_thickness else 10.0,
            -s.number_of_instances,
            s.series_number if s.series_number is not None else 1 << 30,
        ),
    )
    kernel = f", kernel {best.convolution_kernel}" if best.convolution_kernel else ""
    return Selection(
        best.series_instance_uid,
        f"axial CT, {best.number_of_instances} slices, {best.slice_thickness or '?'} mm{kernel}",
    )
