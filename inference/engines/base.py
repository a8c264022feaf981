"""The engine interface: a CT volume goes in, a label volume and its class table come out.

An engine is any object with a ``name``, a ``version`` and a ``__call__(volume)``
returning a :class:`Segmentation`. Both strings travel into every output (SEG
algorithm identification, SR observer, summary.json), so a result always says what
produced it. Engines register a factory under their name; :func:`get_engine` builds
one. The ``l3net`` engine (a torch 2D UNet) is registered here lazily, so that
importing this package never imports torch.

Label table (:data:`LABELS`), shared by every engine:

=====  ======================  =====================================================
value  class                   meaning
=====  ======================  =====================================================
0      background              not lung
1      right lung              right lung parenchyma that is not labelled as opacity
2      left lung               left lung parenchyma that is not labelled as opacity
3      ground-glass opacity    −700..−300 HU (densitometry), or the model's GGO class
4      consolidation           −300..+100 HU (densitometry), or the model's class
=====  ======================  =====================================================

An opacity label replaces the lung label of its voxel, so which lung an opacity
voxel belongs to is kept in a second map, ``side`` (0 outside, 1 right, 2 left, for
every lung voxel, opacity included). Right and left are the patient's: patient left
is +x in DICOM LPS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from inference.volume import CTVolume

BACKGROUND, RIGHT_LUNG, LEFT_LUNG, GGO, CONSOLIDATION = 0, 1, 2, 3, 4
LABELS: dict[int, str] = {
    RIGHT_LUNG: "Right lung",
    LEFT_LUNG: "Left lung",
    GGO: "Ground-glass opacity",
    CONSOLIDATION: "Consolidation",
}
#: Which lung each ``side`` value names.
SIDES: dict[int, str] = {RIGHT_LUNG: "right", LEFT_LUNG: "left"}
#: Opacity classes, in the order outputs list them.
OPACITIES: dict[int, str] = {GGO: "ggo", CONSOLIDATION: "consolidation"}

log = logging.getLogger("l3net.engine")


class EngineUnavailable(RuntimeError):
    """The engine cannot run here: no weights, no torch, a checkpoint that does not
    load. A setting must change, not the series, so a job that meets it is retried
    (and an admin can re-run it) rather than called not analysable."""


@dataclass
class Segmentation:
    """What an engine returns.

    ``labels``: uint8 (slices, rows, columns), values of :data:`LABELS`.
    ``side``: uint8, same shape: RIGHT_LUNG or LEFT_LUNG for every lung voxel
    (opacity included), 0 elsewhere.
    ``engine``, ``version``: the engine that produced it.
    ``classes``: the class table of ``labels`` (value → name).
    ``notes``: free-form facts the engine wants in the summary (for example which
    steps it ran), JSON-serialisable.
    """

    labels: np.ndarray
    side: np.ndarray
    engine: str
    version: str
    classes: dict[int, str] = field(default_factory=lambda: dict(LABELS))
    notes: dict[str, Any] = field(default_factory=dict)

    def lung(self, side: int | None = None) -> np.ndarray:
        """Boolean mask of both lungs, or of one (``RIGHT_LUNG`` / ``LEFT_LUNG``)."""
        return self.side > 0 if side is None else self.side == side


class Engine(Protocol):
    """A segmentation engine: ``engine(volume) -> Segmentation``."""

    name: str
    version: str

    def __call__(self, volume: CTVolume) -> Segmentation: ...


#: name → factory(settings) returning an Engine. ``settings`` may be None.
_REGISTRY: dict[str, Callable[[Any], Engine]] = {}


def register(name: str, factory: Callable[[Any], Engine]) -> None:
    """Make ``get_engine(name)`` build engines with ``factory(settings)``."""
    _REGISTRY[name] = factory


def available_engines() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_engine(name: str, settings: Any = None) -> Engine:
    """The engine called ``name`` (``densitometry`` or ``l3net``).

    ``settings``: any object with the ``unet_*`` attributes of the node's settings
    (``unet_weights``, ``unet_phase``, ``unet_device``, ``unet_threshold``,
    ``unet_fallback``), or None to read the node's settings (the ``L3NET_*``
    environment). Only the ``l3net`` engine reads them.
    """
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown analysis engine {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](settings)


def _load_builtin() -> None:
    import inference.engines.densitometry  # noqa: F401  registers itself

    _REGISTRY.setdefault("l3net", _l3net)


def _l3net(settings: Any) -> Engine:
    if settings is None:
        from archive.settings import Settings

        settings = Settings()  # the L3NET_UNET_* environment
    try:
        from inference.engines.l3net import L3NetEngine

        return L3NetEngine(settings.unet_weights, settings.unet_phase, settings.unet_device, settings.unet_threshold)
    except Exception as error:  # no torch, no weights, a bad checkpoint
        if not getattr(settings, "unet_fallback", False):
            if isinstance(error, EngineUnavailable):
                raise
            raise EngineUnavailable(f"the L3-net engine cannot run: {error}") from error
        log.warning("event=engine.fallback engine=l3net reason=%r", str(error)[:300])
        return _REGISTRY["densitometry"](settings)
