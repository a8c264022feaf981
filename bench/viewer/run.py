"""Viewer benchmark: LIDC-IDRI-0001 (133 CT slices) in OHIF, served by ``l3net serve``.

The CT is pushed over DIMSE (storescu); the pipeline's own SEG (JPEG 2000 Lossless, 4
segments) and SR for it (``inference.pipeline.analyze``, as the worker writes them) are
stored over STOW-RS. Then Debian chromium (playwright-core, headless, SwiftShader)
opens the study in a fresh profile each run and measures:

  first image         navigation to /viewer?StudyInstanceUIDs=... until the viewport
                      shows the CT (non-black, many grey levels);
  SEG displayed       from the double-click on the SEG series until the overlay is
                      drawn on the CT (OHIF's default mode);
  SEG without clicks  navigation to /viewer?...&hangingprotocolId=@ohif/seg until the
                      overlay is drawn (nothing clicked).

    .venv/bin/python bench/viewer/run.py [--runs 3] [--seg-compression none]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from archive.settings import Settings  # noqa: E402
from inference.pipeline import analyze  # noqa: E402
from inference.seg import SEGMENTS  # noqa: E402
from tests.conftest import SHARED_DATA  # noqa: E402
from tests.viewer.stack import run_node, running_stack  # noqa: E402
from tests.viewer.results import expected_labels  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seg-compression", choices=["jpeg2000", "none"], default="jpeg2000",
                        help="the SEG's encoding (L3NET_SEG_COMPRESSION); WADO-RS decodes jpeg2000 for OHIF")
    args = parser.parse_args()
    paths = sorted((SHARED_DATA / "ct" / "LIDC-IDRI-0001").glob("*.dcm"))
    result = analyze(paths, settings=Settings(seg_compression=args.seg_compression, pdf_report=False))
    seg, sr = result.seg, result.sr
    study = str(seg.StudyInstanceUID)
    timings: dict[str, list[int]] = {"firstImageMs": [], "segDisplayedMs": [], "autoSegMs": []}
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp, running_stack(Path(tmp) / "data") as stack:
        stack.push(paths)
        assert stack.stow([seg, sr]).status_code == 200
        stack.wait_for_series(study, 3)
        for run in range(args.runs):
            findings = run_node("ohif_check.mjs", {
                "url": stack.url, "study": study, "studyDate": "01-Jan-2000",
                "segDescription": str(seg.SeriesDescription), "srDescription": str(sr.SeriesDescription),
                "segmentLabels": [spec.label for spec in SEGMENTS],
                "measuredValues": expected_labels(result),
                "prefix": f"bench-{run}-", "autoSeg": True, "segShownBy": "tint",
            })
            if "error" in findings:
                raise SystemExit(f"run {run} failed: {findings['error']}")
            for name, values in timings.items():
                values.append(findings["timings"][name])
            print(f"run {run}: " + ", ".join(f"{name} {values[-1]}" for name, values in timings.items()), flush=True)
    report = {
        "study": "LIDC-IDRI-0001", "slices": len(paths), "runs": args.runs, "seg_compression": args.seg_compression,
        **{name: {"median": statistics.median(values), "min": min(values), "max": max(values)}
           for name, values in timings.items()},
        "machine": platform.platform(),
    }
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "viewer.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
