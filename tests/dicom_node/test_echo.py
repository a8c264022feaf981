"""C-ECHO (Verification, PS3.4 Annex A): dcmtk's echoscu and a pynetdicom SCU."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import require_tool
from tests.dicom_node.helpers import HOST, NODE_AE, SCU_AE, association


@pytest.fixture
def node(start_node):
    return start_node(allowed_calling_aes=["*"])


def test_echoscu_succeeds(node):
    echoscu = require_tool("echoscu")
    done = subprocess.run(
        [echoscu, "-v", "-aet", "ECHOSCU", "-aec", NODE_AE, HOST, str(node.port)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "Association Accepted" in output
    assert "Received Echo Response (Success)" in output


def test_pynetdicom_echo_succeeds(node, caplog):
    caplog.set_level("INFO", logger="l3net.node")
    with association(node.port, SCU_AE) as assoc:
        assert assoc.is_established
        status = assoc.send_c_echo()
        assert status.Status == 0x0000
        # Several echoes on one association all succeed.
        assert [assoc.send_c_echo().Status for _ in range(3)] == [0, 0, 0]
    assert f"event=echo calling_ae={SCU_AE}" in caplog.text
