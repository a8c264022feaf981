"""The ``l3net`` command: help texts, and ``serve`` running all parts and stopping cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from l3net.cli import app
from tests.conftest import free_port, require_tool


def test_help_names_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "node", "web", "worker", "config"):
        assert command in result.output


@pytest.mark.parametrize("command", ["serve", "node", "web", "worker"])
def test_each_command_has_help(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--data-dir" in result.output
    assert "L3NET_DATA_DIR" in result.output


def test_config_prints_environment_settings(monkeypatch):
    monkeypatch.setenv("L3NET_AE_TITLE", "MYNODE")
    monkeypatch.setenv("L3NET_ALLOWED_CALLING_AES", "PACS1@10.1.1.1,PACS2")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0
    assert '"ae_title": "MYNODE"' in result.output
    assert '"PACS1@10.1.1.1"' in result.output


def _wait_http(url: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_node_web_worker_and_stops_cleanly(tmp_path, stop_signal):
    echoscu = require_tool("echoscu")
    dicom_port, http_port = free_port(), free_port()
    env = {**os.environ, "L3NET_STABLE_AFTER_S": "3600"}
    process = subprocess.Popen(
        [sys.executable, "-m", "l3net.cli", "serve", "--data-dir", str(tmp_path / "data"),
         "--dicom-port", str(dicom_port), "--http-port", str(http_port)],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert _wait_http(f"http://127.0.0.1:{http_port}/healthz") == 200
        assert _wait_http(f"http://127.0.0.1:{http_port}/readyz") == 200
        echo = subprocess.run([echoscu, "-aec", "L3NET", "127.0.0.1", str(dicom_port)], capture_output=True, timeout=30)
        assert echo.returncode == 0, echo.stderr
        process.send_signal(stop_signal)
        _, log = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, log
    lines = [line for line in log.splitlines() if line.strip()]
    # One structured line per event, every line in logfmt with a timestamp and level.
    assert all(line.startswith("ts=") and " level=" in line for line in lines), lines
    text = "\n".join(lines)
    for event in ("event=node.listening", "event=web.listening", "event=worker.started",
                  "event=association.accepted", "event=echo", f"event=shutdown signal={stop_signal.name}",
                  "event=stopped part=worker", "event=stopped part=web", "event=stopped part=node"):
        assert event in text, f"{event} missing from log:\n{text}"
    assert (tmp_path / "data" / "index.sqlite3").is_file()


def test_analyze_writes_every_output_and_names_the_prognosis(small_series, tmp_path, monkeypatch):
    monkeypatch.setenv("L3NET_SEG_COMPRESSION", "none")  # the CLI reads the settings
    source = small_series["LIDC-IDRI-0001"][0].parent
    result = CliRunner().invoke(app, ["analyze", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    names = ("seg.dcm", "sr.dcm", "summary.json", "report.dcm", "report.pdf")
    assert all(str(tmp_path / "out" / name) in result.output for name in names)
    assert "suggested prognosis: " in result.output and "not for diagnostic use" in result.output
    import pydicom

    assert pydicom.dcmread(tmp_path / "out" / "seg.dcm").file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


def test_analyze_refuses_a_series_that_is_not_a_chest_ct(shared_data, tmp_path):
    result = CliRunner().invoke(app, ["analyze", str(shared_data / "ct" / "abdomen-j2k"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "not analysable: not a chest CT" in result.output
    assert not (tmp_path / "out").exists()


def test_analyze_with_an_engine_that_cannot_run_says_so(small_series, tmp_path, monkeypatch):
    monkeypatch.delenv("L3NET_UNET_WEIGHTS", raising=False)
    source = str(small_series["LIDC-IDRI-0001"][0].parent)
    result = CliRunner().invoke(app, ["analyze", source, "--out", str(tmp_path / "out"), "--engine", "l3net"])
    assert result.exit_code == 1
    assert "cannot analyse: the L3-net engine has no weights: set L3NET_UNET_WEIGHTS" in result.output
    unknown = CliRunner().invoke(app, ["analyze", source, "--out", str(tmp_path / "out"), "--engine", "nope"])
    assert unknown.exit_code == 1 and "unknown analysis engine 'nope'" in unknown.output
