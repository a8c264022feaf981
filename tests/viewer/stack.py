"""``l3net serve`` as a subprocess on free loopback ports, a study pushed to it over
DIMSE (dcmtk storescu), the stand-in results stored over STOW-RS, and the node
scripts under viewer/browser run against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.conftest import REPO, free_port, require_tool
from tests.viewer import results

HOST = "127.0.0.1"
ARTIFACTS = REPO / "test-artifacts" / "viewer"
BROWSER = REPO / "viewer" / "browser"
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Stack:
    url: str
    dicom_port: int
    process: subprocess.Popen
    log: Path

    def push(self, paths: list[Path], calling_ae: str = "TESTPACS") -> None:
        """C-STORE ``paths`` with dcmtk's storescu."""
        storescu = require_tool("storescu")
        result = subprocess.run(
            [storescu, "-aec", "L3NET", "-aet", calling_ae, HOST, str(self.dicom_port), *map(str, paths)],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr

    def stow(self, datasets, token: str | None = None) -> httpx.Response:
        body, content_type = results.stow_body(datasets)
        headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.url + "/dicomweb/studies", content=body, headers=headers, timeout=60)

    def wait_for_series(self, study_uid: str, count: int, token: str | None = None, timeout: float = 60) -> list[dict]:
        """QIDO-RS until the study lists ``count`` series (the committers are asynchronous)."""
        headers = {"Accept": "application/dicom+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        deadline = time.monotonic() + timeout
        series: list[dict] = []
        while time.monotonic() < deadline:
            response = httpx.get(f"{self.url}/dicomweb/studies/{study_uid}/series", headers=headers, timeout=10)
            if response.status_code == 200:
                series = response.json()
                if len(series) >= count:
                    return series
            time.sleep(0.25)
        raise AssertionError(f"study {study_uid} has {len(series)} series after {timeout} s, expected {count}")


def wait_until_healthy(process: subprocess.Popen, url: str, log: Path, what: str, timeout: float) -> None:
    """Poll ``url`` until it answers 200. Fails with the tail of ``log`` when ``process``
    exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not answer {url}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@contextmanager
def running_stack(data_dir: Path, http_port: int | None = None, **env: str) -> Iterator[Stack]:
    """``l3net serve`` with L3NET_* settings ``env``; no study becomes stable during a test
    (L3NET_STABLE_AFTER_S=3600, unless ``env`` says otherwise), so the worker stays idle.
    ``http_port`` fixes the HTTP port (an identity provider must know the viewer's
    callback URL before the server starts); by default it is a free one."""
    http_port, dicom_port = http_port or free_port(), free_port()
    environment = {
        **os.environ,
        "L3NET_DATA_DIR": str(data_dir),
        "L3NET_HTTP_HOST": HOST,
        "L3NET_HTTP_PORT": str(http_port),
        "L3NET_DICOM_HOST": HOST,
        "L3NET_DICOM_PORT": str(dicom_port),
        "L3NET_STABLE_AFTER_S": "3600",
        **env,
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "l3net.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "l3net.cli", "serve"], cwd=REPO, env=environment, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://{HOST}:{http_port}"
    try:
        wait_until_healthy(process, url + "/healthz", log, "l3net serve", timeout=60)
        yield Stack(url, dicom_port, process, log)
    finally:
        stop(process, timeout=60)


def stop(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``timeout`` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def require_browser() -> None:
    require_tool("node")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` as root (apt-get install chromium)")
    if not (REPO / "viewer" / "node_modules" / "playwright-core").is_dir():
        pytest.fail("viewer/node_modules is missing: run `make test` (npm ci in viewer/)")


def run_node(script: str, args: dict, timeout: float = 240) -> dict:
    """Run ``viewer/browser/<script>`` with ``args`` as JSON; it prints one JSON object
    (its findings) as its last line of stdout."""
    require_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    args = {"chromium": CHROMIUM, "artifacts": str(ARTIFACTS), **args}
    result = subprocess.run(
        ["node", str(BROWSER / script), json.dumps(args)], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return json.loads(lines[-1])
