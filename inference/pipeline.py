"""The analysis pipeline: volume → engine → measurements → prognosis → SEG, SR, summary.

The worker (:mod:`inference.job`) and ``l3net analyze`` both run :func:`analyze_datasets`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from tqdm import tqdm

from inference.engines import Segmentation, get_engine
from inference.measurements import measure
from inference.prognosis import suggest
from inference.seg import write_seg
from inference.sr import write_sr
from inference.summary import build_summary
from inference.volume import CTVolume, SeriesNotAnalysable, load_datasets, read_directory

__all__ = ["AnalysisResult", "SeriesNotAnalysable", "analyze_datasets", "analyze_directory"]

STEPS = ("load", "segment", "measure", "seg", "sr")


@dataclass
class AnalysisResult:
    volume: CTVolume
    segmentation: Segmentation
    measurements: dict
    prognosis: dict
    seg: Dataset
    sr: Dataset
    summary: dict


def analyze_datasets(
    datasets: list[Dataset], engine_name: str = "densitometry", uids: dict | None = None, progress: bool = False, settings=None
) -> AnalysisResult:
    """Analyse one series. ``uids`` (keys seg_series, seg_instance, sr_series,
    sr_instance) fixes the output UIDs, so a redelivered job writes the same instances."""
    uids = uids or {name: generate_uid() for name in ("seg_series", "seg_instance", "sr_series", "sr_instance")}
    bar = tqdm(total=len(STEPS), desc="analysis", disable=not progress, unit="step")

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    engine = get_engine(engine_name, settings)
    volume = load_datasets(datasets)
    step("load")
    segmentation = engine(volume)
    step("segment")
    measurements = measure(volume, segmentation)
    prognosis = suggest(measurements)
    step("measure")
    seg = write_seg(volume, segmentation, uids["seg_series"], uids["seg_instance"])
    step("seg")
    sr = write_sr(seg, volume.datasets, measurements, prognosis, uids["sr_series"], uids["sr_instance"], engine.name, engine.version)
    step("sr")
    bar.close()
    summary = build_summary(volume.datasets, measurements, prognosis, engine.name, engine.version, seg, sr)
    return AnalysisResult(volume, segmentation, measurements, prognosis, seg, sr, summary)


def analyze_directory(directory: Path, out_dir: Path, engine_name: str = "densitometry", progress: bool = False) -> AnalysisResult:
    """``l3net analyze``: analyse the series in ``directory``; write seg.dcm, sr.dcm, summary.json."""
    result = analyze_datasets(read_directory(Path(directory)), engine_name, progress=progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.seg.save_as(out_dir / "seg.dcm", enforce_file_format=True)
    result.sr.save_as(out_dir / "sr.dcm", enforce_file_format=True)
    (out_dir / "summary.json").write_text(json.dumps(result.summary, indent=2))
    return result
