"""Analysis engines: a CT volume in, a label volume and its class table out."""

from inference.engines.base import LABELS, Engine, EngineUnavailable, Segmentation, available_engines, get_engine, register

__all__ = ["LABELS", "Engine", "EngineUnavailable", "Segmentation", "available_engines", "get_engine", "register"]
