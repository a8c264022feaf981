"""Analysis engines: a CT volume in, a label volume and its class table out."""

from inference.engines.base import LABELS, Engine, Segmentation, get_engine

__all__ = ["LABELS", "Engine", "Segmentation", "get_engine"]
