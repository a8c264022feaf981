"""Analysis benchmark: time and peak memory of the whole pipeline (decode, segment,
measure, SEG, SR) for LIDC-IDRI-0001 (133 slices) and a 500-slice study built from its
real slices, against a naive full-resolution threshold prototype on the same data.

Each run is a fresh child process, so peak RSS is that run's alone.

    .venv/bin/python bench/analysis/run.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "ct" / "LIDC-IDRI-0001"

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, pydicom
mode, folder = sys.argv[1], Path(sys.argv[2])
start = time.perf_counter()
if mode == "ours":
    from inference.pipeline import analyze_directory
    analyze_directory(folder, folder / "out")
else:
    # The naive prototype: decode, threshold and 3D morphology at full resolution, float64.
    from scipy import ndimage as ndi
    ds = sorted((pydicom.dcmread(p) for p in folder.glob("*.dcm")), key=lambda d: float(d.ImagePositionPatient[2]))
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
    body = ndi.binary_fill_holes(hu > -500)
    lungs = ndi.binary_closing((hu < -400) & body, iterations=3)
    labels, n = ndi.label(lungs)
    ggo = lungs & (hu > -700) & (hu < -300)
    cons = lungs & (hu >= -300) & (hu < 100)
    float(ggo.sum()), float(cons.sum())
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def study(folder: Path, depth: int) -> None:
    """Write the real series resampled along z to ``depth`` slices (133: as acquired;
    500: 0.66 mm thin slices, linearly interpolated from the real 2.5 mm ones)."""
    import numpy as np
    import pydicom
    from pydicom.uid import generate_uid

    datasets = sorted((pydicom.dcmread(p) for p in DATA.glob("*.dcm")), key=lambda d: float(d.ImagePositionPatient[2]))
    stored = np.stack([d.pixel_array.astype(np.float32) for d in datasets])
    z0, z1 = float(datasets[0].ImagePositionPatient[2]), float(datasets[-1].ImagePositionPatient[2])
    where = np.linspace(0, len(datasets) - 1, depth)
    series = generate_uid()
    for index, position in enumerate(where):
        low = int(np.floor(position))
        high = min(low + 1, len(datasets) - 1)
        weight = position - low
        plane = stored[low] * (1 - weight) + stored[high] * weight
        ds = datasets[low]
        ds.PixelData = np.round(plane).astype(ds.pixel_array.dtype).tobytes()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = series
        ds.ImagePositionPatient[2] = z0 + (z1 - z0) * index / (depth - 1)
        ds.SliceThickness = (z1 - z0) / (depth - 1)
        ds.InstanceNumber = index + 1
        ds.save_as(folder / f"{index:04d}.dcm")


def run(mode: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(folder)], capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for depth in (133, 500):
            folder = Path(tmp) / str(depth)
            folder.mkdir()
            study(folder, depth)
            ours, naive = run("ours", folder), run("naive", folder)
            rows.append((depth, ours, naive))
    print(f"{'slices':>6} {'ours s':>8} {'ours MB':>8} {'naive s':>8} {'naive MB':>9} {'speed':>6} {'memory':>7}")
    for depth, ours, naive in rows:
        print(
            f"{depth:6d} {ours['seconds']:8.2f} {ours['peak_mb']:8.0f} {naive['seconds']:8.2f} {naive['peak_mb']:9.0f} "
            f"{naive['seconds'] / ours['seconds']:5.2f}x {naive['peak_mb'] / ours['peak_mb']:6.2f}x"
        )


if __name__ == "__main__":
    main()
