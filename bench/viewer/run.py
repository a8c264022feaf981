"""Viewer benchmark: LIDC-IDRI-0001 (133 CT slices) in OHIF, served by ``l3net serve``.

The CT is pushed over DIMSE (storescu), the stand-in SEG (2 segments) and SR of
tests/viewer/results.py are stored over STOW-RS, then Debian chromium (playwright-core,
headless, SwiftShader) opens /viewer?StudyInstanceUIDs=... in a fresh profile each run
and measures, from the navigation:

  first image    until the viewport shows the CT (non-black, many grey levels);
  SEG displayed  from the double-click on the SEG series until both overlay colours
                 are on screen (includes OHIF's "open this segmentation?" prompt).

    .venv/bin/python bench/viewer/run.py [--runs 3]
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

from tests.conftest import SHARED_DATA  # noqa: E402
from tests.viewer import results  # noqa: E402
from tests.viewer.stack import run_node, running_stack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    paths = sorted((SHARED_DATA / "ct" / "LIDC-IDRI-0001").glob("*.dcm"))
    ct = results.read_series(paths)
    seg, sr = results.build(ct)
    study = str(ct[0].StudyInstanceUID)
    first, seg_ms = [], []
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp, running_stack(Path(tmp) / "data") as stack:
        stack.push(paths)
        assert stack.stow([seg, sr]).status_code == 200
        stack.wait_for_series(study, 3)
        for run in range(args.runs):
            findings = run_node("ohif_check.mjs", {
                "url": stack.url, "study": study, "studyDate": "01-Jan-2000",
                "segDescription": str(seg.SeriesDescription), "srDescription": str(sr.SeriesDescription),
                "segmentLabels": [label for label, _k, _c in results.SEGMENTS],
                "measuredValues": [f"{v:.1f}" for v in results.MEASURED.values()],
                "prefix": f"bench-{run}-",
            })
            if "error" in findings:
                raise SystemExit(f"run {run} failed: {findings['error']}")
            first.append(findings["timings"]["firstImageMs"])
            seg_ms.append(findings["timings"]["segDisplayedMs"])
            print(f"run {run}: first image {first[-1]} ms, SEG displayed {seg_ms[-1]} ms", flush=True)
    report = {
        "study": "LIDC-IDRI-0001", "slices": len(paths), "runs": args.runs,
        "first_image_ms": {"median": statistics.median(first), "min": min(first), "max": max(first)},
        "seg_displayed_ms": {"median": statistics.median(seg_ms), "min": min(seg_ms), "max": max(seg_ms)},
        "machine": platform.platform(),
    }
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "viewer.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
