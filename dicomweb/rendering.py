"""Rendered frames (PS3.18 §8.3.5.1, §10.4.1.1.3): modality LUT, VOI window, then
an 8-bit PNG or JPEG, optionally scaled to a viewport."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

FUNCTIONS = ("linear", "linear-exact", "sigmoid")


class BadRendering(ValueError):
    """A rendering parameter that cannot be honoured (400)."""


def parse_window(text: str | None) -> tuple[float, float, str] | None:
    """``window=center,width[,function]`` (PS3.18 Table 8.3.5-1)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise BadRendering("window must be center,width[,function]")
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError:
        raise BadRendering("window center and width must be numbers") from None
    function = parts[2].lower() if len(parts) == 3 else "linear"
    if function not in FUNCTIONS or not math.isfinite(center) or not math.isfinite(width) or width <= 0:
        raise BadRendering(f"window function must be one of {', '.join(FUNCTIONS)} and width positive")
    return center, width, function


def parse_viewport(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        width, height = (int(v) for v in text.split(",")[:2])
    except ValueError:
        raise BadRendering("viewport must be width,height") from None
    if not (0 < width <= 4096 and 0 < height <= 4096):
        raise BadRendering("viewport must be between 1 and 4096 pixels each way")
    return width, height


def parse_quality(text: str | None) -> int:
    if text is None:
        return 90
    try:
        quality = int(text)
    except ValueError:
        raise BadRendering("quality must be an integer") from None
    if not 1 <= quality <= 100:
        raise BadRendering("quality must be between 1 and 100")
    return quality


def _first(value: object) -> float | None:
    """The first of a possibly multi-valued DS (WindowCenter may hold several windows)."""
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def dataset_window(header: Dataset) -> tuple[float, float, str] | None:
    """The first window the dataset carries (WindowCenter/Width, VOILUTFunction)."""
    center, width = _first(header.get("WindowCenter")), _first(header.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        return None
    function = str(header.get("VOILUTFunction", "LINEAR")).lower().replace("_", "-")
    return center, width, function if function in FUNCTIONS else "linear"


def to_8bit(stored: np.ndarray, header: Dataset, window: tuple[float, float, str] | None) -> np.ndarray:
    """Stored values → 8-bit display values: rescale, then the window (the query's, else
    the dataset's, else the full range); MONOCHROME1 is inverted."""
    if stored.ndim == 3:  # colour: already display values
        return stored.astype(np.uint8) if stored.dtype == np.uint8 else (stored >> (stored.dtype.itemsize * 8 - 8)).astype(np.uint8)
    slope = float(header.get("RescaleSlope", 1) or 1)
    intercept = float(header.get("RescaleIntercept", 0) or 0)
    values = stored.astype(np.float32) * slope + intercept
    window = window or dataset_window(header)
    if window is None:
        low, high = float(values.min()), float(values.max())
        window = ((low + high) / 2, max(high - low, 1.0), "linear-exact")
    center, width, function = window
    if function == "linear":  # PS3.3 C.11.2.1.2.1
        scaled = ((values - (center - 0.5)) / max(width - 1, 1) + 0.5) * 255
    elif function == "linear-exact":
        scaled = ((values - center) / width + 0.5) * 255
    else:  # sigmoid
        scaled = 255 / (1 + np.exp(-4 * (values - center) / width))
    display = np.clip(scaled, 0, 255).astype(np.uint8)
    if str(header.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        display = 255 - display
    return display


def encode(display: np.ndarray, media_type: str, viewport: tuple[int, int] | None, quality: int) -> bytes:
    """PNG or JPEG of ``display``, scaled to fit ``viewport`` keeping the aspect ratio."""
    image = Image.fromarray(display)
    if viewport is not None:
        image.thumbnail(viewport, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if media_type == "image/png":
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
