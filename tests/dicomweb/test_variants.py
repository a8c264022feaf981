"""The DICOMweb round trip on every archive variant: embedded (SQLite, filesystem),
PostgreSQL, and cloud (S3 and SQS on moto): store, search with each kind of matching,
metadata, frames as stored and decoded, and retrieve."""

from __future__ import annotations


import httpx
import numpy as np
import pydicom
from dicomweb_client.api import DICOMwebClient

from tests.conftest import variant_settings
from tests.dicomweb.helpers import running_server


def test_round_trip(archive_variant, tmp_path, request, library):
    settings = variant_settings(archive_variant, tmp_path, request, stable_after_s=3600)
    with running_server(settings) as server:
        client = DICOMwebClient(url=server.dicomweb)
        for name in ("lidc2", "j2k", "smith", "smithers", "jones", "odd"):
            client.store_instances([pydicom.dcmread(p) for p in library.files[name]])

        def patients(**params) -> set[str]:
            found = httpx.get(f"{server.dicomweb}/studies", params=params, timeout=30).json()
            return {item["00100020"]["Value"][0] for item in found}

        assert patients(PatientName="SMI", fuzzymatching="true") == {"SYN-1", "SYN-2", "SYN-3"}
        assert patients(PatientID="SYN%4") == {"SYN%4"}
        assert patients(PatientID="SYN-?") == {"SYN-1", "SYN-2", "SYN-3"}
        assert patients(StudyDate="20200101-20201231", StudyTime="2300-") == {"SYN-2"}
        assert patients(ModalitiesInStudy="MR") == {"SYN-3"}
        smith, jones = library.uids("smith")[0], library.uids("jones")[0]
        assert patients(StudyInstanceUID=f"{smith}\\{jones}") == {"SYN-1", "SYN-3"}
        page = httpx.get(f"{server.dicomweb}/studies", params={"limit": 2, "offset": 1})
        assert len(page.json()) == 2 and "Warning" in page.headers

        study, series, sops = library.uids("lidc2")
        metadata = client.retrieve_series_metadata(study, series)
        assert sorted(m["00080018"]["Value"][0] for m in metadata) == sorted(sops)
        originals = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in library.files["lidc2"]}
        (frame,) = client.retrieve_instance_frames(study, series, sops[0], [1],
                                                    media_types=(("application/octet-stream", "*"),))
        assert frame == originals[sops[0]].PixelData
        retrieved = client.retrieve_series(study, series)
        assert {ds.SOPInstanceUID for ds in retrieved} == set(sops)

        j2k_study, j2k_series, j2k_sops = library.uids("j2k")
        original = next(pydicom.dcmread(p) for p in library.files["j2k"]
                        if pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID == j2k_sops[1])
        (raw,) = client.retrieve_instance_frames(j2k_study, j2k_series, j2k_sops[1], [1],
                                                  media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),))
        assert np.array_equal(np.frombuffer(raw, "<u2").reshape(original.pixel_array.shape),
                              original.pixel_array.astype("<u2"))
        png = httpx.get(f"{server.dicomweb}/studies/{j2k_study}/series/{j2k_series}/instances/{j2k_sops[1]}/rendered",
                        headers={"Accept": "image/png"})
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        analysis = httpx.get(f"{server.url}/api/studies/{study}/analysis").json()
        assert analysis["study_state"] == "receiving" and analysis["job"] is None
        assert "l3net_jobs" in httpx.get(f"{server.url}/metrics").text
