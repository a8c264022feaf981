"""Fixtures of the dicom_node tests (helpers live in ``helpers.py``)."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from pynetdicom import _config

from tests.dicom_node.helpers import node_settings, running_node


@pytest.fixture
def start_node(tmp_path, request):
    """``start_node(variant="embedded", **settings_overrides)`` starts a node on a fresh
    archive below ``tmp_path``; every node started is stopped at teardown."""
    with ExitStack() as stack:
        count = 0

        def _start(variant: str = "embedded", **overrides):
            nonlocal count
            count += 1
            settings = node_settings(variant, tmp_path / f"node{count}", request, **overrides)
            return stack.enter_context(running_node(settings))

        yield _start


@pytest.fixture
def send_raw(monkeypatch):
    """Make ``assoc.send_c_store(path)`` send the file's dataset bytes as they are,
    without decoding and re-encoding them (pynetdicom's chunked sending)."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
