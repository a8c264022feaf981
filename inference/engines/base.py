"""The engine interface every segmentation engine implements.

An engine takes a :class:`~inference.volume.CTVolume` and returns a
:class:`Segmentation`: a uint8 label volume of the same shape with the labels of
:data:`LABELS`. The engine's name and version travel into every output (SEG algorithm
identification, SR, summary.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from inference.volume import CTVolume

# Label values of every engine's output. Opacity labels replace the lung label of
# their voxel, so ``side`` (which lung each voxel belongs to) is kept separately.
BACKGROUND, RIGHT_LUNG, LEFT_LUNG, GGO, CONSOLIDATION = 0, 1, 2, 3, 4
LABELS: dict[int, str] = {
    RIGHT_LUNG: "Right lung",
    LEFT_LUNG: "Left lung",
    GGO: "Ground-glass opacity",
    CONSOLIDATION: "Consolidation",
}


@dataclass
class Segmentation:
    """``labels``: uint8 (z, y, x) with :data:`LABELS` values; ``side``: uint8 with
    RIGHT_LUNG / LEFT_LUNG for every lung voxel, opacity included."""

    labels: np.ndarray
    side: np.ndarray
    engine: str
    version: str

    def lung(self, side: int | None = None) -> np.ndarray:
        return self.side > 0 if side is None else self.side == side


class Engine(Protocol):
    name: str
    version: str

    def __call__(self, volume: CTVolume) -> Segmentation: ...


_REGISTRY: dict[str, Callable[..., Engine]] = {}


def register(name: str, factory: Callable[..., Engine]) -> None:
    _REGISTRY[name] = factory


def get_engine(name: str, settings=None) -> Engine:
    """The engine called ``name``. ``settings`` (archive Settings, or None to read the
    ``L3NET_*`` environment) configures the UNet: weights, phase, device, fallback."""
    import inference.engines.densitometry  # noqa: F401  registers itself

    if name == "l3net":
        return _l3net(settings)
    if name not in _REGISTRY:
        raise ValueError(f"unknown analysis engine {name!r}; available: densitometry, l3net")
    return _REGISTRY[name]()


def _l3net(settings) -> Engine:
    import logging

    from archive.settings import Settings

    settings = settings or Settings()
    try:
        from inference.engines.l3net import L3NetEngine

        return L3NetEngine(settings.unet_weights, settings.unet_phase, settings.unet_device, settings.unet_threshold)
    except Exception as error:  # no torch, no weights, a bad checkpoint
        if not settings.unet_fallback:
            raise
        logging.getLogger("l3net.engine").warning("event=engine.fallback engine=l3net reason=%r", str(error)[:300])
        return _REGISTRY["densitometry"]()
