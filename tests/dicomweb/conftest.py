"""Fixtures of the DICOMweb tests: servers on 127.0.0.1 over archives loaded once per
session (helpers in ``helpers.py``, data in ``data.py``).

``library`` holds, by owning group:
  radiology-a: small LIDC-IDRI-0001 (16 CT slices) and the JPEG 2000 abdomen series (20);
  radiology-b: small LIDC-IDRI-0002 (12);
  research:    synthetic studies with chosen names, dates and times, for matching.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest

from archive.settings import Settings
from tests.dicomweb.data import j2k_copies, synthetic
from tests.dicomweb.helpers import CLIENT_ID, POOL, REGION, Keys, jwks_server, ingest, running_server


@dataclass
class Library:
    """The loaded files by name, and their UIDs."""

    files: dict[str, list[Path]] = field(default_factory=dict)

    def uids(self, name: str) -> tuple[str, str, list[str]]:
        """(study, series, [sop, ...]) of a loaded set, in instance order."""
        headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in self.files[name]]
        headers.sort(key=lambda ds: int(ds.get("InstanceNumber") or 0))
        return str(headers[0].StudyInstanceUID), str(headers[0].SeriesInstanceUID), [str(ds.SOPInstanceUID) for ds in headers]


@pytest.fixture(scope="session")
def library(tmp_path_factory, shared_data: Path) -> Library:
    root = tmp_path_factory.mktemp("library")
    lib = Library()
    lib.files["lidc1"] = sorted((shared_data / "ct" / "small" / "LIDC-IDRI-0001").iterdir())
    lib.files["lidc2"] = sorted((shared_data / "ct" / "small" / "LIDC-IDRI-0002").iterdir())
    lib.files["j2k"] = j2k_copies(shared_data / "ct" / "abdomen-j2k", root / "j2k")
    lib.files["smith"] = synthetic(root / "smith", "Smith^John", "SYN-1", "20200315", "083000", description="Chest",
                                   accession="ACC-1", extra_bulk=True)
    lib.files["smithers"] = synthetic(root / "smithers", "Smithers^Waylon", "SYN-2", "20201231", "235959",
                                      description="Chest low dose", accession="ACC-2")
    lib.files["jones"] = synthetic(root / "jones", "Jones^Smitha", "SYN-3", "20210101", "120000", modality="MR",
                                   description="Head", accession="ACC_3")
    lib.files["odd"] = synthetic(root / "odd", "O'Brien^Mary", "SYN%4", "20190704", "000001", description="100% chest")
    return lib


OWNERS = {"lidc1": "radiology-a", "j2k": "radiology-a", "lidc2": "radiology-b",
          "smith": "research", "smithers": "research", "jones": "research", "odd": "research"}


def _load(server, library: Library) -> None:
    for name, group in OWNERS.items():
        ingest(server, library.files[name], group)


@pytest.fixture(scope="session")
def open_server(tmp_path_factory, library):
    """``L3NET_AUTH=none`` (everyone is admin), the library loaded. Read-only tests only."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("open"), stable_after_s=3600)
    with running_server(settings) as server:
        _load(server, library)
        yield server


@pytest.fixture
def fresh_server(tmp_path):
    """``start(**settings)`` runs a server on an empty archive for one test."""
    with ExitStack() as stack:
        count = 0

        def start(**overrides):
            nonlocal count
            count += 1
            values = {"data_dir": tmp_path / f"data{count}", "stable_after_s": 3600, **overrides}
            return stack.enter_context(running_server(Settings(**values)))

        yield start


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def jwks_url(keys):
    with jwks_server(keys) as url:
        yield url


def cognito_settings(data_dir: Path, jwks: str, **overrides) -> Settings:
    return Settings(
        data_dir=data_dir, stable_after_s=3600, auth="cognito", cognito_region=REGION, cognito_user_pool_id=POOL,
        cognito_client_id=CLIENT_ID, cognito_jwks_url=jwks,
        role_groups={"viewer": "l3net-viewer", "uploader": "l3net-uploader", "admin": "l3net-admin"},
        **overrides,
    )


@pytest.fixture(scope="session")
def cognito_server(tmp_path_factory, library, jwks_url):
    """``L3NET_AUTH=cognito`` against the test JWKS, the library loaded."""
    with running_server(cognito_settings(tmp_path_factory.mktemp("cognito"), jwks_url)) as server:
        _load(server, library)
        yield server


@pytest.fixture
def without_objects(fresh_server, library):
    """``without_objects(name)`` → (server, (study, series, sops)): a server whose archive
    held the named set and then lost every object, so whatever still answers in full
    read only the index."""

    def make(name: str):
        server = fresh_server()
        ingest(server, library.files[name], None)
        for key in list(server.archive.store.list("studies/")):
            server.archive.store.delete(key)
        return server, library.uids(name)

    return make
