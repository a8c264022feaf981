"""Per-phase preprocessing and class tables of the published L3-net models.

Phase 1/2 classes: 0 background, 1 lung, 2 pure GGO, 3 GGO with interlobular septal
thickening / crazy paving, 4 organising pneumonia / atoll sign / consolidation.
Phase 3 classes: 0 background, 1 vessels, 2 normal lung, 3 GGO / crazy paving,
4 consolidation. Both normalise HU with mean −653.2204 and std 628.5188 after clipping,
to [−1000, 50] (phases 1/2) or [−1000, 350] (phase 3 inference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HU_MEAN = -653.2204
HU_STD = 628.5188

# Our output classes, shared with the densitometry engine's opacity labels.
LUNG, GGO, CONSOLIDATION = "lung", "ggo", "consolidation"


@dataclass(frozen=True)
class Phase:
    """One published model phase: its HU clip window and what each model class means."""

    name: str
    clip: tuple[float, float]
    # Model class index → our class (None: background, or excluded like phase 3 vessels).
    classes: dict[int, str | None]

    def normalise(self, hu: np.ndarray) -> np.ndarray:
        """HU slices → the float32 network input."""
        low, high = self.clip
        out = np.clip(hu, low, high, dtype=np.float32) if hu.dtype == np.float32 else np.clip(hu.astype(np.float32), low, high)
        out -= HU_MEAN
        out /= HU_STD
        return out


PHASES: dict[str, Phase] = {
    "1": Phase("1", (-1000.0, 50.0), {0: None, 1: LUNG, 2: GGO, 3: GGO, 4: CONSOLIDATION}),
    "2": Phase("2", (-1000.0, 50.0), {0: None, 1: LUNG, 2: GGO, 3: GGO, 4: CONSOLIDATION}),
    # Vessels are lung tissue for the lung mask but never opacity.
    "3": Phase("3", (-1000.0, 350.0), {0: None, 1: LUNG, 2: LUNG, 3: GGO, 4: CONSOLIDATION}),
}


def get_phase(name: str) -> Phase:
    try:
        return PHASES[str(name)]
    except KeyError:
        raise ValueError(f"unknown L3-net phase {name!r}; choose one of {', '.join(PHASES)}") from None
