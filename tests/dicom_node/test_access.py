"""Who may associate: calling-AE allow-list (optionally bound to a host), the called AE
title, and the association limit, answered with the A-ASSOCIATE-RJ of PS3.8 §9.3.4."""

from __future__ import annotations

import subprocess

import pytest

from dicom_node.access import REJECT_CALLED_AE, REJECT_CALLING_AE, AllowEntry, check_association
from tests.conftest import require_tool
from tests.dicom_node.helpers import HOST, NODE_AE, SCU_AE, association, store, wait_until

REJECTED_PERMANENT, REJECTED_TRANSIENT = 0x01, 0x02
SERVICE_USER, SERVICE_PROVIDER_PRESENTATION = 0x01, 0x03
CALLING_AE_NOT_RECOGNIZED, CALLED_AE_NOT_RECOGNIZED, LOCAL_LIMIT_EXCEEDED = 0x03, 0x07, 0x02


def _rejection(assoc) -> tuple[int, int, int]:
    assert assoc.is_rejected and not assoc.is_established
    rj = assoc.acceptor.primitive
    return rj.result, rj.result_source, rj.diagnostic


def test_allowed_calling_ae_is_accepted(start_node):
    node = start_node(allowed_calling_aes=["PACS1", SCU_AE])
    with association(node.port, SCU_AE) as assoc:
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000


def test_unknown_calling_ae_is_rejected(start_node, caplog):
    caplog.set_level("WARNING", logger="l3net.node")
    node = start_node(allowed_calling_aes=["PACS1", SCU_AE])
    with association(node.port, "INTRUDER") as assoc:
        assert _rejection(assoc) == (REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED)
    assert "event=association.rejected calling_ae=INTRUDER" in caplog.text
    # The node keeps serving the allowed peers.
    with association(node.port, SCU_AE) as assoc:
        assert assoc.is_established


def test_wrong_called_ae_is_rejected(start_node):
    node = start_node(allowed_calling_aes=["*"])
    with association(node.port, SCU_AE, called_ae="NOTUS") as assoc:
        assert _rejection(assoc) == (REJECTED_PERMANENT, SERVICE_USER, CALLED_AE_NOT_RECOGNIZED)


def test_wildcard_accepts_any_calling_ae(start_node):
    node = start_node(allowed_calling_aes=["*"])
    for calling in ("ANYONE", "PACS9"):
        with association(node.port, calling) as assoc:
            assert assoc.is_established


def test_host_bound_entry_admits_its_host(start_node):
    node = start_node(allowed_calling_aes=[f"{SCU_AE}@{HOST}"])
    with association(node.port, SCU_AE) as assoc:
        assert assoc.is_established
    with association(node.port, "OTHER") as assoc:
        assert _rejection(assoc) == (REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED)


def test_host_bound_entry_rejects_other_hosts(start_node):
    # Only a configuration string: no traffic goes to 10.9.9.9; we call from 127.0.0.1.
    node = start_node(allowed_calling_aes=[f"{SCU_AE}@10.9.9.9"])
    with association(node.port, SCU_AE) as assoc:
        assert _rejection(assoc) == (REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED)


def test_allow_list_from_environment_string(start_node, monkeypatch):
    """L3NET_ALLOWED_CALLING_AES is a comma-separated list with optional hosts."""
    from archive.settings import Settings

    monkeypatch.setenv("L3NET_ALLOWED_CALLING_AES", f" PACS1@10.1.1.1 , {SCU_AE}@{HOST} ")
    allowed = Settings().allowed_calling_aes
    assert allowed == ["PACS1@10.1.1.1", f"{SCU_AE}@{HOST}"]
    node = start_node(allowed_calling_aes=allowed)
    with association(node.port, SCU_AE) as assoc:
        assert assoc.is_established
    with association(node.port, "PACS1") as assoc:
        assert assoc.is_rejected


def test_association_limit_rejects_transiently(start_node, small_series):
    node = start_node(allowed_calling_aes=["*"], max_associations=1)
    with association(node.port, "FIRST") as first:
        assert first.is_established
        with association(node.port, "SECOND") as second:
            assert _rejection(second) == (REJECTED_TRANSIENT, SERVICE_PROVIDER_PRESENTATION, LOCAL_LIMIT_EXCEEDED)
        # The first association still works while the second was turned away.
        assert store(first, small_series["LIDC-IDRI-0003"][0]).Status == 0x0000

    def third_accepted() -> bool:
        with association(node.port, "THIRD") as third:
            return third.is_established

    # Once it is released a new one fits (the server sees the release asynchronously).
    wait_until(third_accepted, what="an association after the first was released")


def test_echoscu_with_unknown_ae_fails(start_node):
    echoscu = require_tool("echoscu")
    node = start_node(allowed_calling_aes=[SCU_AE])
    done = subprocess.run(
        [echoscu, "-aet", "STRANGER", "-aec", NODE_AE, HOST, str(node.port)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Association Rejected" in output
    assert "Calling AE Title Not Recognized" in output


# -- the rules themselves ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("PACS1", AllowEntry("PACS1", None)),
        (" PACS1@10.0.0.5 ", AllowEntry("PACS1", "10.0.0.5")),
        ("*", AllowEntry("*", None)),
        ("*@127.0.0.1", AllowEntry("*", "127.0.0.1")),
        ("PACS1@", AllowEntry("PACS1", None)),
    ],
)
def test_allow_entry_parse(text, entry):
    assert AllowEntry.parse(text) == entry


def test_check_association_rules():
    allow = [AllowEntry.parse("PACS1"), AllowEntry.parse("CT2@10.0.0.7"), AllowEntry.parse("*@192.168.1.9")]
    ok = lambda calling, host, called="L3NET": check_association(allow, "L3NET", calling, called, host)  # noqa: E731
    assert ok("PACS1", "10.0.0.1") is None
    assert ok("PACS1 ", "10.0.0.1") is None  # AE titles are space padded on the wire
    assert ok("CT2", "10.0.0.7") is None
    assert ok("ANY", "192.168.1.9") is None
    assert ok("CT2", "10.0.0.8")[0] == REJECT_CALLING_AE
    assert ok("pacs1", "10.0.0.1")[0] == REJECT_CALLING_AE  # AE titles are case sensitive
    verdict, why = ok("PACS1", "10.0.0.1", called="OTHER")
    assert verdict == REJECT_CALLED_AE and "OTHER" in why
    assert check_association([], "L3NET", "PACS1", "L3NET", "10.0.0.1")[0] == REJECT_CALLING_AE
