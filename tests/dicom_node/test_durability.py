"""Acknowledged means durable: ``l3net node`` killed with SIGKILL mid-push loses no
acknowledged instance (the spool is replayed at the next start), and SIGTERM stops it
cleanly, with everything acknowledged committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pytest

from archive.context import open_archive
from archive.settings import Settings
from tests.conftest import REPO, free_port
from tests.dicom_node.helpers import SCU_AE, assert_stored, association, instance_count, scu, wait_until

STARTUP_S = 60


class NodeProcess:
    """``python -m l3net.cli node`` on ``data_dir`` and a fresh port, logging to a file."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir, self.log, self.port = data_dir, log, free_port()
        env = {
            **os.environ,
            "L3NET_DATA_DIR": str(data_dir),
            "L3NET_DICOM_PORT": str(self.port),
            "L3NET_STABLE_AFTER_S": "3600",
            "L3NET_MIN_FREE_DISK_MB": "1",
        }
        with open(log, "a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "l3net.cli", "node"], cwd=REPO, env=env, stderr=out, stdout=out
            )

    def wait_ready(self) -> None:
        wait_until(self._answers_echo, timeout=STARTUP_S, interval=0.2, what="the node to answer C-ECHO")

    def _answers_echo(self) -> bool:
        assert self.process.poll() is None, f"node exited early: {self.log.read_text()}"
        ae = scu()
        ae.acse_timeout = ae.network_timeout = 2
        with association(self.port, ae=ae) as assoc:
            return assoc.is_established and assoc.send_c_echo().Status == 0

    def stop(self, sig: int, timeout: float = 60) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@contextmanager
def node_process(data_dir: Path, log: Path):
    node = NodeProcess(data_dir, log)
    try:
        node.wait_ready()
        yield node
    finally:
        node.close()


class Pusher(threading.Thread):
    """Sends ``files`` on one association and records each SOP Instance UID the node
    acknowledged with Success; stops at the first failure (the node went away)."""

    def __init__(self, port: int, files: list[Path]) -> None:
        super().__init__(daemon=True)
        self.port, self.files = port, files
        self.acked: list[str] = []
        self.failed: str | None = None

    def run(self) -> None:
        ae = scu()
        ae.dimse_timeout = ae.network_timeout = 10
        with association(self.port, ae=ae) as assoc:
            for path in self.files:
                if not assoc.is_established:
                    self.failed = "association ended"
                    return
                ds = pydicom.dcmread(path)
                status = assoc.send_c_store(ds)
                if status.get("Status") != 0x0000:
                    self.failed = f"{path.name}: {status}"
                    return
                self.acked.append(str(ds.SOPInstanceUID))

    def start_and_wait(self, acks: int, timeout: float = 120) -> "Pusher":
        """Start pushing; return once ``acks`` instances are acknowledged."""
        self.start()
        wait_until(lambda: len(self.acked) >= acks or not self.is_alive(), timeout=timeout, interval=0.01,
                   what=f"{acks} acknowledgements")
        assert len(self.acked) >= acks, self.failed
        return self


def _ready_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "spool" / "ready").glob("*.dcm"))


def _assert_all_acked_stored(data_dir: Path, files: list[Path], acked: list[str]) -> None:
    """Every acknowledged instance (and every one indexed) is stored byte-identical."""
    by_sop = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in files}
    archive = open_archive(Settings(data_dir=data_dir), run_migrations=False)
    try:
        for sop in acked:
            assert_stored(archive, by_sop[sop], SCU_AE)
        # An instance spooled whose response never reached us may be there too; no more.
        assert len(acked) <= instance_count(archive) <= len(acked) + 1
    finally:
        archive.close()
    for folder in ("rejected", "duplicates"):
        assert list((data_dir / "spool" / folder).iterdir()) == []


@pytest.mark.slow
def test_kill_9_mid_push_loses_no_acknowledged_instance(lidc_0001, tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "node.log"
    with node_process(data_dir, log) as node:
        pusher = Pusher(node.port, lidc_0001).start_and_wait(40)
        node.process.kill()  # SIGKILL: no handler, no flush, no goodbye
        assert node.process.wait(timeout=30) == -signal.SIGKILL
        pusher.join(timeout=60)
        assert not pusher.is_alive()
    acked = list(pusher.acked)
    assert 40 <= len(acked) < len(lidc_0001), "the kill must land mid-push"
    assert pusher.failed is not None

    with node_process(data_dir, log) as node:
        # The restarted node replays the spool; done when nothing is left to commit.
        wait_until(lambda: not _ready_files(data_dir), timeout=120, what="the spool replay to finish")
        _assert_all_acked_stored(data_dir, lidc_0001, acked)
        assert node.stop(signal.SIGTERM) == 0
    text = log.read_text()
    assert "event=node.stopped" in text and "event=stopped part=node" in text


def test_sigterm_stops_cleanly_with_everything_committed(small_series, tmp_path):
    files = [p for series in small_series.values() for p in series]
    data_dir, log = tmp_path / "data", tmp_path / "node.log"
    with node_process(data_dir, log) as node:
        pusher = Pusher(node.port, files).start_and_wait(10)
        assert node.stop(signal.SIGTERM, timeout=30) == 0
        pusher.join(timeout=60)
    lines = log.read_text().splitlines()
    assert any("event=shutdown signal=SIGTERM" in line for line in lines)
    assert any("event=stopped part=node" in line for line in lines)
    assert all(line.startswith("ts=") for line in lines if line.strip()), "one logfmt line per event"
    # Stopping commits what was acknowledged: nothing is left for a replay.
    assert _ready_files(data_dir) == []
    _assert_all_acked_stored(data_dir, files, pusher.acked)


def test_sigterm_does_not_wait_for_an_idle_association(tmp_path):
    """A peer that keeps an association open must not hold the node's shutdown."""
    data_dir, log = tmp_path / "data", tmp_path / "node.log"
    with node_process(data_dir, log) as node:
        ae = scu()
        with association(node.port, ae=ae) as assoc:
            assert assoc.is_established
            assert node.stop(signal.SIGTERM, timeout=20) == 0
            wait_until(lambda: not assoc.is_established, timeout=10, what="the node to end the association")
    assert "event=stopped part=node" in log.read_text()
