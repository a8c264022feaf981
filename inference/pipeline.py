"""The analysis pipeline: series → volume → engine → measurements → prognosis → SEG, SR, summary.

Entry points for the composition root (worker, ``l3net analyze``):

* :func:`analyze` — one series (paths, bytes or Datasets) to an :class:`AnalysisResult`;
* :func:`write_outputs` — ``seg.dcm``, ``sr.dcm``, ``summary.json`` and the PDF
  report (``report.dcm``, ``report.pdf``) into a folder;
* :class:`OutputUIDs` — the new UIDs; :meth:`OutputUIDs.from_job` derives them
  from a job id, so a redelivered job writes the same instances again.

Refusals raise :class:`SeriesNotAnalysable` (re-exported here) with a reason for the
radiologist; anything else is a bug or an environment problem.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from archive.settings import Settings
from inference.engines import Engine, Segmentation, get_engine
from inference.measurements import Measurements, measure
from inference.prognosis import suggest
from inference.report import write_pdf_report
from inference.seg import SEGMENTS, masks, write_seg
from inference.sr import write_sr
from inference.sr_outline import volume_frames
from inference.summary import build_summary
from inference.volume import CTVolume, SeriesNotAnalysable, Source, load_series, read_directory

__all__ = [
    "AnalysisResult",
    "OutputUIDs",
    "ProgressCallback",
    "STEPS",
    "SeriesNotAnalysable",
    "analyze",
    "analyze_directory",
    "write_outputs",
]

#: Steps reported to ``progress``, in order.
STEPS = ("load", "segment", "measure", "seg", "sr", "pdf")
#: ``progress(step, fraction)``: called after each step; ``fraction`` is 0..1 done.
ProgressCallback = Callable[[str, float], None]


_OUTPUT_UID_NAMES = ("seg_series", "seg_instance", "sr_series", "sr_instance", "pdf_series", "pdf_instance")


@dataclass(frozen=True)
class OutputUIDs:
    """Series and SOP Instance UIDs of the SEG, the SR and the PDF report."""

    seg_series: str
    seg_instance: str
    sr_series: str
    sr_instance: str
    pdf_series: str
    pdf_instance: str

    @classmethod
    def new(cls) -> "OutputUIDs":
        """Fresh random UIDs."""
        return cls(*(generate_uid() for _ in _OUTPUT_UID_NAMES))

    @classmethod
    def from_job(cls, job_id: str) -> "OutputUIDs":
        """UIDs derived from ``job_id``: the same job always gets the same UIDs."""
        return cls(*(generate_uid(entropy_srcs=[job_id, name]) for name in _OUTPUT_UID_NAMES))



@dataclass
class AnalysisResult:
    """Everything one analysis produced.

    ``volume``: the loaded series (HU, geometry, source headers). ``segmentation``:
    the engine's label and side maps. ``measurements``, ``prognosis``: the numbers
    and the suggested prognosis (as in summary.json). ``seg``, ``sr``: the DICOM
    instances, ready to store. ``summary``: the summary.json dict. ``timings``:
    seconds per step. ``pdf``: the Encapsulated PDF report, or None when it was not
    asked for.
    """

    volume: CTVolume
    segmentation: Segmentation
    measurements: Measurements
    prognosis: dict[str, Any]
    seg: Dataset
    sr: Dataset
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    pdf: Dataset | None = None


def _reporter(progress: ProgressCallback | bool | None, steps: int) -> tuple[ProgressCallback, Callable[[], None]]:
    """A progress callback and a closer: True gives a tqdm bar (for a terminal)."""
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="analysis", unit="step")

        def tick(step: str, _fraction: float) -> None:
            bar.set_postfix_str(step)
            bar.update(1)

        return tick, bar.close
    if callable(progress):
        return progress, lambda: None
    return (lambda _step, _fraction: None), lambda: None


def analyze(
    sources: Sequence[Source],
    engine_name: str = "densitometry",
    progress: ProgressCallback | bool | None = None,
    *,
    uids: OutputUIDs | None = None,
    settings: Settings | None = None,
    engine: Engine | None = None,
) -> AnalysisResult:
    """Analyse one CT series.

    ``sources``: the instances of one series (file paths, bytes or pydicom Datasets;
    Datasets are not modified). ``engine_name``: ``densitometry`` (default) or
    ``l3net``; ``engine`` overrides it with a ready engine object. ``progress``: a
    ``(step, fraction)`` callback, True for a tqdm bar, or None. ``uids``: the output
    UIDs (default: new random ones). ``settings`` (default: read from the ``L3NET_*``
    environment): the engine's (:func:`get_engine`), ``seg_compression``,
    ``pdf_report`` and ``score_floor_percent``.

    Raises :class:`SeriesNotAnalysable` when the series cannot be analysed.
    """
    output_uids = uids or OutputUIDs.new()
    settings = settings if settings is not None else Settings()
    steps = STEPS if settings.pdf_report else STEPS[:-1]
    report, close = _reporter(progress, len(steps))
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def done(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = now - clock
        clock = now
        report(step, (steps.index(step) + 1) / len(steps))

    try:
        engine = engine or get_engine(engine_name, settings)  # before loading: fail fast
        volume = load_series(sources)
        done("load")
        segmentation = engine(volume)
        done("segment")
        measurements = measure(volume, segmentation, settings.score_floor_percent)
        prognosis = suggest(measurements)
        done("measure")
        # One mask stack for the SEG's frames and the SR's outlines (0.5 GB at 500 slices).
        stack = masks(segmentation)
        seg = write_seg(volume, segmentation, output_uids.seg_series, output_uids.seg_instance,
                        compress=settings.seg_compression != "none", stack=stack)
        done("seg")
        frames = volume_frames(
            {spec.number: stack[..., index] for index, spec in enumerate(SEGMENTS)},
            [ds.SOPInstanceUID for ds in volume.datasets],
        )
        sr = write_sr(
            seg, volume.datasets, measurements, prognosis, output_uids.sr_series, output_uids.sr_instance,
            segmentation.engine, segmentation.version, frames=frames,
        )
        del stack, frames
        done("sr")
        pdf = None
        if "pdf" in steps:
            pdf = write_pdf_report(
                volume, segmentation, measurements, prognosis, seg, output_uids.pdf_series, output_uids.pdf_instance
            )
            done("pdf")
    finally:
        close()
    summary = build_summary(volume.datasets, volume.spacing, segmentation, measurements, prognosis, seg, sr, timings, pdf)
    return AnalysisResult(volume, segmentation, measurements, prognosis, seg, sr, summary, timings, pdf)


def write_outputs(result: AnalysisResult, out_dir: Path | str) -> dict[str, Path]:
    """Write ``seg.dcm``, ``sr.dcm``, ``summary.json`` and, when the report was made,
    ``report.dcm`` (the Encapsulated PDF instance) and ``report.pdf`` (the bare PDF)
    into ``out_dir`` (created if needed); returns their paths by name. Each file is
    written under a temporary name and renamed, so a reader never sees half a file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"seg": out / "seg.dcm", "sr": out / "sr.dcm", "summary": out / "summary.json"}
    instances = [("seg", result.seg), ("sr", result.sr)]
    contents = [("summary", json.dumps(result.summary, indent=2, ensure_ascii=False).encode())]
    if result.pdf is not None:
        paths.update(report=out / "report.dcm", pdf=out / "report.pdf")
        instances.append(("report", result.pdf))
        contents.append(("pdf", bytes(result.pdf.EncapsulatedDocument)[: int(result.pdf.EncapsulatedDocumentLength)]))
    for name, ds in instances:
        partial = paths[name].with_name(paths[name].name + ".part")
        ds.save_as(partial, enforce_file_format=True)
        partial.replace(paths[name])
    for name, data in contents:
        partial = paths[name].with_name(paths[name].name + ".part")
        partial.write_bytes(data)
        partial.replace(paths[name])
    return paths


def analyze_directory(
    directory: Path | str,
    out_dir: Path | str,
    engine_name: str = "densitometry",
    progress: ProgressCallback | bool | None = False,
    settings: Settings | None = None,
) -> AnalysisResult:
    """The one series in ``directory`` analysed, its outputs written into ``out_dir``
    (:func:`write_outputs`)."""
    result = analyze(read_directory(directory), engine_name, progress or None, settings=settings)
    write_outputs(result, out_dir)
    return result

