"""DICOMweb benchmark: ``l3net web`` and Orthanc with its DICOMweb plugin, side by side,
on 127.0.0.1, loaded with the same data in the same run.

Both servers get LIDC-IDRI-0001 (133 CT slices) and N small synthetic studies (one
16x16 instance each, default 10,000), l3net by STOW-RS, Orthanc by its REST API. Then:

* QIDO-RS ``/studies`` p50/p95: the viewer's study-list page (limit=101 with
  includefield) and a PatientID search;
* series metadata p50/p95 for LIDC-IDRI-0001;
* frames/s fetching all 133 frames one by one as OHIF does
  (``multipart/related; type=application/octet-stream; transfer-syntax=*``),
  one request at a time and 6 at a time (a browser's connections per host).

Ratios are Orthanc time / l3net time: above 1 means l3net is faster.

    .venv/bin/python bench/dicomweb/run.py [--studies 10000] [--data DIR]

Needs the Debian packages orthanc and orthanc-dicomweb.
"""

from __future__ import annotations

import abc
import argparse
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script: make the bench package importable
from bench.loopback import free_port, wait_http  # noqa: E402
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ct" / "LIDC-IDRI-0001"
ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"
STUDY_PAGE = {"limit": "101", "offset": "0", "fuzzymatching": "false",
              "includefield": "00081030,00080060"}






def synthetic_studies(count: int) -> list[bytes]:
    """``count`` one-instance studies (16x16 CT), as Part 10 bytes."""
    files = []
    for n in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["bench-sop", str(n)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID = generate_uid(entropy_srcs=["bench-study", str(n)])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bench-series", str(n)])
        ds.PatientName, ds.PatientID = f"Synthetic^Patient{n:05d}", f"SYN-{n:05d}"
        ds.StudyDate, ds.StudyTime = f"2020{n % 12 + 1:02d}{n % 28 + 1:02d}", "101500"
        ds.AccessionNumber, ds.StudyDescription = f"A{n:07d}", "Chest CT"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, 1
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = bytes(512)
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def timed(client: httpx.Client, path: str, rounds: int, **kwargs) -> list[float]:
    client.get(path, **kwargs).raise_for_status()  # warm-up
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(path, **kwargs)
        samples.append(time.perf_counter() - start)
        response.raise_for_status()
    return samples


def frames_per_second(base: str, paths: list[str], workers: int) -> float:
    with httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=workers)) as client:
        def fetch(path: str) -> int:
            response = client.get(path, headers={"Accept": OHIF_FRAMES})
            response.raise_for_status()
            return len(response.content)

        fetch(paths[0])
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fetch, paths))
        return len(paths) / (time.perf_counter() - start)


class Target(abc.ABC):
    """One server under test: its DICOMweb root and how to load it."""

    name: str
    root: str
    process: subprocess.Popen

    @abc.abstractmethod
    def load(self, files: list[bytes]) -> float:
        """Store ``files`` (Part 10 bytes); returns the seconds it took."""

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


class L3net(Target):
    name = "l3net web"

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        env = {**os.environ, "L3NET_DATA_DIR": str(workdir / "l3net"), "L3NET_HTTP_PORT": str(port),
               "L3NET_STABLE_AFTER_S": "86400"}
        self.process = subprocess.Popen([sys.executable, "-m", "l3net.cli", "web", "--log-level", "WARNING"],
                                        env=env, cwd=REPO)
        self.root = f"http://127.0.0.1:{port}/dicomweb"
        wait_http(f"http://127.0.0.1:{port}/healthz")

    def load(self, files: list[bytes]) -> float:
        """STOW-RS, 100 instances a request, 2 requests at a time."""
        start = time.perf_counter()
        batches = [files[i:i + 100] for i in range(0, len(files), 100)]
        with httpx.Client(timeout=300) as client:
            def post(batch: list[bytes]) -> None:
                body = b"".join(b"--B\r\nContent-Type: application/dicom\r\n\r\n" + f + b"\r\n" for f in batch) + b"--B--\r\n"
                response = client.post(self.root + "/studies", content=body,
                                       headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=B'})
                if response.status_code != 200:
                    raise RuntimeError(f"STOW answered {response.status_code}: {response.text[:300]}")

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(post, batches))
        return time.perf_counter() - start


class Orthanc(Target):
    name = "Orthanc + DICOMweb"

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        folder = workdir / "orthanc"
        folder.mkdir()
        config = {
            "Name": "bench", "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
            "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "Plugins": [DICOMWEB_PLUGIN], "SaveJobs": False,
            # Orthanc's fastest find: answer from its index, not from the files.
            "StorageAccessOnFind": "Never",
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": f"127.0.0.1:{port}"},
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = open(folder / "orthanc.log", "w")
        self.process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=self.log, stderr=self.log)
        self.base = f"http://127.0.0.1:{port}"
        self.root = self.base + "/dicom-web"
        wait_http(self.base + "/system")

    def load(self, files: list[bytes]) -> float:
        """REST POST /instances, 4 at a time."""
        start = time.perf_counter()
        with httpx.Client(timeout=300, limits=httpx.Limits(max_connections=4)) as client:
            def post(data: bytes) -> None:
                client.post(self.base + "/instances", content=data).raise_for_status()

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(post, files))
        return time.perf_counter() - start

    def stop(self) -> None:
        super().stop()
        self.log.close()


def measure(target: Target, study: str, series: str, sops: list[str], rounds: int, patient: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with httpx.Client(base_url=target.root, timeout=120, headers={"Accept": "application/dicom+json"}) as client:
        found = client.get("/studies", params={"PatientID": patient}).json()
        assert len(found) == 1, f"{target.name}: PatientID search found {len(found)}"
        page = client.get("/studies", params=STUDY_PAGE).json()
        assert len(page) == 101, f"{target.name}: study page has {len(page)}"
        out["qido_page_p50"], out["qido_page_p95"] = percentiles(timed(client, "/studies", rounds, params=STUDY_PAGE))
        out["qido_pid_p50"], out["qido_pid_p95"] = percentiles(
            timed(client, "/studies", rounds, params={"PatientID": patient}))
        metadata = client.get(f"/studies/{study}/series/{series}/metadata").json()
        assert len(metadata) == len(sops), f"{target.name}: metadata has {len(metadata)} instances"
        out["metadata_p50"], out["metadata_p95"] = percentiles(
            timed(client, f"/studies/{study}/series/{series}/metadata", max(10, rounds // 10)))
    frames = [f"/studies/{study}/series/{series}/instances/{sop}/frames/1" for sop in sops]
    out["frames_1"] = statistics.median(frames_per_second(target.root, frames, 1) for _ in range(3))
    out["frames_6"] = statistics.median(frames_per_second(target.root, frames, 6) for _ in range(3))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=10_000, help="synthetic studies besides LIDC-IDRI-0001")
    parser.add_argument("--rounds", type=int, default=200, help="requests per QIDO measurement")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    for tool in (ORTHANC, DICOMWEB_PLUGIN):
        if not Path(tool).exists():
            sys.exit(f"{tool} is missing: apt-get install orthanc orthanc-dicomweb")

    lidc = sorted(args.data.glob("*.dcm"))
    headers = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in lidc), key=lambda ds: int(ds.InstanceNumber))
    study, series = str(headers[0].StudyInstanceUID), str(headers[0].SeriesInstanceUID)
    sops = [str(ds.SOPInstanceUID) for ds in headers]
    files = [p.read_bytes() for p in lidc] + synthetic_studies(args.studies)
    print(f"data: LIDC-IDRI-0001 ({len(lidc)} instances) + {args.studies} synthetic studies; "
          f"{args.rounds} requests per QIDO figure", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="bench-dicomweb-"))
    results: dict[str, dict[str, float]] = {}
    try:
        for kind in (L3net, Orthanc):
            target = kind(workdir)
            try:
                load_s = target.load(files)
                print(f"{target.name}: loaded {len(files)} instances in {load_s:.1f} s "
                      f"({len(files) / load_s:.0f} inst/s)", flush=True)
                results[target.name] = measure(target, study, series, sops, args.rounds, f"SYN-{args.studies // 2:05d}")
            finally:
                target.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ours, theirs = results[L3net.name], results[Orthanc.name]
    rows = [
        ("QIDO study page p50 (ms)", "qido_page_p50", 1000, False),
        ("QIDO study page p95 (ms)", "qido_page_p95", 1000, False),
        ("QIDO PatientID p50 (ms)", "qido_pid_p50", 1000, False),
        ("QIDO PatientID p95 (ms)", "qido_pid_p95", 1000, False),
        ("series metadata p50 (ms)", "metadata_p50", 1000, False),
        ("series metadata p95 (ms)", "metadata_p95", 1000, False),
        ("frames/s, 1 at a time", "frames_1", 1, True),
        ("frames/s, 6 at a time", "frames_6", 1, True),
    ]
    print(f"\n{'measure':<28}{'l3net':>10}{'Orthanc':>10}{'ratio':>9}")
    for label, key, scale, higher_better in rows:
        ratio = ours[key] / theirs[key] if higher_better else theirs[key] / ours[key]
        print(f"{label:<28}{ours[key] * scale:>10.1f}{theirs[key] * scale:>10.1f}{ratio:>8.2f}x")
    print("ratio > 1: l3net faster (Orthanc time / l3net time; for frames/s, l3net / Orthanc)")


if __name__ == "__main__":
    main()
