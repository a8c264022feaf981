"""UNet benchmark: slices/s and study latency of the L3-net UNet, for the 133-slice
LIDC-IDRI-0001 and a 500-slice study built from its real slices.

Random weights in the published layout: speed does not depend on the weight values,
and the published weights cannot be had here. The peer is plain eager PyTorch
(float32, contiguous, batch 1, no autocast) on the same data and device, in the same
run. ``--slices`` limits how many slices are timed (the CPU is slow); the per-slice
rate is then extrapolated to the study and printed as such.

    .venv/bin/python bench/unet/run.py [--device cuda] [--slices N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pydicom
import torch

from inference.unet.infer import pick_device, predict_volume
from inference.unet.model import UNet2D
from inference.unet.phases import get_phase

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ct" / "LIDC-IDRI-0001"


def load_hu(folder: Path) -> np.ndarray:
    slices = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    slices.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)).astype(np.int16) for ds in slices])


def study_of(hu: np.ndarray, depth: int) -> np.ndarray:
    """``depth`` real slices: the series played forwards and backwards as often as needed."""
    loop = np.concatenate([hu, hu[::-1]])
    return np.concatenate([loop] * (depth // len(loop) + 1))[:depth]


@torch.inference_mode()
def eager_baseline(model: UNet2D, hu: np.ndarray, device: torch.device) -> float:
    phase = get_phase("3")
    model = model.to(device=device, memory_format=torch.contiguous_format).float()
    start = time.perf_counter()
    for index in range(len(hu)):
        x = torch.from_numpy(phase.normalise(hu[index : index + 1])[:, None]).to(device)
        torch.softmax(model(x), 1).argmax(1).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed(model: UNet2D, hu: np.ndarray, device: torch.device) -> float:
    start = time.perf_counter()
    predict_volume(model, hu, get_phase("3"), device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--slices", type=int, default=0, help="time only this many slices (0: all)")
    args = parser.parse_args()
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    torch.manual_seed(0)
    model = UNet2D().eval()
    hu = load_hu(DATA)
    print(f"device: {name}; torch {torch.__version__}")
    timed(model, hu[:4], device)  # warm-up: cuDNN autotune, allocator
    for depth in (len(hu), 500):
        study = study_of(hu, depth)
        sample = study[: args.slices] if args.slices else study
        ours = timed(model, sample, device)
        peer = eager_baseline(UNet2D().eval(), sample, device)
        scale = depth / len(sample)
        note = f" (timed {len(sample)} slices, extrapolated)" if scale != 1 else ""
        print(
            f"{depth:4d} slices: ours {len(sample) / ours:7.1f} slices/s, inference {ours * scale:7.2f} s{note}; "
            f"eager fp32 batch 1 {len(sample) / peer:7.1f} slices/s; ratio {peer / ours:.2f}x"
        )


if __name__ == "__main__":
    main()
