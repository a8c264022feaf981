"""Ingest benchmark: dcmtk storescu pushes LIDC-IDRI-0001 (133 instances) to
``l3net node`` and to dcmtk ``storescp`` on the same machine, in the same run.

Prints instances/s and MB/s for each, and the ratio l3net / storescp. For l3net it
also prints when the last instance was committed to the object store and index
(the acknowledgement itself already means fsynced in the spool).

    .venv/bin/python bench/ingest/run.py [--rounds 3] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script: make the bench package importable
from bench.loopback import free_port, wait_port  # noqa: E402
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ct" / "LIDC-IDRI-0001"






def push(port: int, files: list[Path], called_ae: str) -> float:
    """Wall seconds for one storescu association carrying every file."""
    start = time.perf_counter()
    subprocess.run(
        ["storescu", "-aet", "BENCH", "-aec", called_ae, "127.0.0.1", str(port), *map(str, files)],
        check=True, capture_output=True,
    )
    return time.perf_counter() - start


def committed(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("select count(*) from instances").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def bench_l3net(files: list[Path], workdir: Path) -> tuple[float, float]:
    port = free_port()
    data = workdir / "l3net"
    env = {**os.environ, "L3NET_DATA_DIR": str(data), "L3NET_DICOM_PORT": str(port), "L3NET_STABLE_AFTER_S": "3600"}
    node = subprocess.Popen([sys.executable, "-m", "l3net.cli", "node", "--log-level", "WARNING"], env=env, cwd=REPO)
    try:
        wait_port(port)
        push_s = push(port, files, "L3NET")
        start = time.perf_counter()
        while committed(data / "index.sqlite3") < len(files) and time.perf_counter() - start < 120:
            time.sleep(0.02)
        return push_s, push_s + time.perf_counter() - start
    finally:
        node.terminate()
        node.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def bench_storescp(files: list[Path], workdir: Path) -> float:
    port = free_port()
    out = workdir / "storescp"
    out.mkdir()
    scp = subprocess.Popen(["storescp", "-od", str(out), "-aet", "STORESCP", str(port)])
    try:
        wait_port(port)
        return push(port, files, "STORESCP")
    finally:
        scp.terminate()
        scp.wait(30)
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install dcmtk")
    files = sorted(p for p in args.data.iterdir() if p.suffix == ".dcm")
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    rows = {"l3net node (ack, fsynced)": [], "l3net node (committed)": [], "dcmtk storescp": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            ack, done = bench_l3net(files, Path(tmp))
            rows["l3net node (ack, fsynced)"].append(ack)
            rows["l3net node (committed)"].append(done)
            rows["dcmtk storescp"].append(bench_storescp(files, Path(tmp)))
    print(f"{len(files)} instances, {megabytes:.1f} MB, median of {args.rounds} rounds, storescu as client")
    print(f"{'receiver':28s} {'seconds':>8s} {'inst/s':>8s} {'MB/s':>8s}")
    medians = {}
    for name, times in rows.items():
        medians[name] = statistics.median(times)
        print(f"{name:28s} {medians[name]:8.2f} {len(files) / medians[name]:8.1f} {megabytes / medians[name]:8.1f}")
    peer = medians["dcmtk storescp"]
    print(f"ratio l3net/storescp throughput (ack): {peer / medians['l3net node (ack, fsynced)']:.2f}x")
    print(f"ratio l3net/storescp throughput (committed): {peer / medians['l3net node (committed)']:.2f}x")


if __name__ == "__main__":
    main()
