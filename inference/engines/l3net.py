"""The L3-net UNet engine (``l3net``): the published 2D UNet with user-supplied weights.

* Model classes map to ours by phase (:mod:`inference.unet.phases`); Phase 3 vessels
  count as lung, never as opacity.
* Left and right come from the densitometry geometry
  (:func:`inference.engines.densitometry.lung_sides`): the UNet's lung mask is split
  into lungs as densitometry splits its air mask, and patient left is +x (LPS). Zones
  and measurements are then the same as for densitometry.
* Cleanup, as in the original app: an opacity component is kept only if its highest
  probability reaches ``L3NET_UNET_THRESHOLD`` (default 0.8).
* Weights are loaded once per worker process and kept.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from inference.engines.base import CONSOLIDATION, GGO, EngineUnavailable, Segmentation
from inference.engines.densitometry import MIN_LUNG_ML, lung_sides
from inference.volume import CTVolume, SeriesNotAnalysable

log = logging.getLogger("l3net.engine")
NAME = "l3net"
VERSION = "1.0.0"


@lru_cache(maxsize=2)
def _model(weights: str, device: str | None):
    from inference.unet.checkpoint import load_unet
    from inference.unet.infer import pick_device

    chosen = pick_device(device)
    log.info("event=unet.loaded weights=%s device=%s", weights, chosen)
    return load_unet(weights, chosen), chosen


class L3NetEngine:
    name = NAME

    def __init__(self, weights: str | None, phase: str = "3", device: str | None = None, threshold: float = 0.8, deterministic: bool = False) -> None:
        if not weights:
            raise EngineUnavailable(
                "the L3-net engine has no weights: set L3NET_UNET_WEIGHTS to a published checkpoint "
                "(unet2d_aio_pre_luna.ckpt, phase2_model.ckpt or phase3_trained.ckpt)"
            )
        from inference.unet.phases import get_phase

        self.phase = get_phase(phase)
        self.version = f"{VERSION}+phase{self.phase.name}"
        self.model, self.device = _model(weights, device)
        self.threshold = threshold
        self.deterministic = deterministic

    def __call__(self, volume: CTVolume) -> Segmentation:
        from inference.unet.infer import predict_volume
        from inference.unet.phases import CONSOLIDATION as M_CONS, GGO as M_GGO, LUNG as M_LUNG

        classes, confidence = predict_volume(self.model, volume.hu, self.phase, self.device, self.deterministic)
        ours = np.zeros(256, np.uint8)
        for index, meaning in self.phase.classes.items():
            ours[index] = {M_LUNG: 1, M_GGO: GGO, M_CONS: CONSOLIDATION}.get(meaning, 0)
        mapped = ours[classes]
        lung = mapped > 0
        if lung.sum() * volume.voxel_ml < MIN_LUNG_ML:
            raise SeriesNotAnalysable("not a chest CT: no lungs found by the L3-net model")
        side = lung_sides(lung, volume)
        labels = side.copy()
        opacity = (mapped == GGO) | (mapped == CONSOLIDATION)
        components, count = ndi.label(opacity)
        if count:
            peak = ndi.maximum(confidence.astype(np.float32), components, index=np.arange(1, count + 1))
            keep = np.concatenate([[False], np.asarray(peak) >= self.threshold])
            kept = keep[components]
            labels[kept & (mapped == GGO)] = GGO
            labels[kept & (mapped == CONSOLIDATION)] = CONSOLIDATION
        return Segmentation(labels, side, self.name, self.version)
