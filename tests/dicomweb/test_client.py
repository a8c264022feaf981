"""The Python dicomweb-client library against the running server: search, retrieve,
metadata, frames, rendered and store."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient


@pytest.fixture
def client(open_server) -> DICOMwebClient:
    return DICOMwebClient(url=open_server.dicomweb)


def test_search(client, library):
    study, series, sops = library.uids("lidc1")
    studies = client.search_for_studies(search_filters={"PatientID": "LIDC-IDRI-0001"})
    assert [pydicom.Dataset.from_json(s).StudyInstanceUID for s in studies] == [study]
    fuzzy = client.search_for_studies(search_filters={"PatientName": "smi"}, fuzzymatching=True,
                                      fields=["StudyDescription"], limit=10)
    assert {pydicom.Dataset.from_json(s).PatientID for s in fuzzy} == {"SYN-1", "SYN-2", "SYN-3"}
    found_series = client.search_for_series(study_instance_uid=study)
    assert [pydicom.Dataset.from_json(s).SeriesInstanceUID for s in found_series] == [series]
    instances = client.search_for_instances(study_instance_uid=study, series_instance_uid=series)
    assert [pydicom.Dataset.from_json(i).SOPInstanceUID for i in instances] == sops
    assert len(client.search_for_studies(limit=2, offset=1)) == 2


def test_retrieve_study_series_and_instance(client, library):
    study, series, sops = library.uids("lidc2")
    originals = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in library.files["lidc2"]}
    retrieved = client.retrieve_study(study)
    assert sorted(ds.SOPInstanceUID for ds in retrieved) == sorted(sops)
    for ds in retrieved:
        assert np.array_equal(ds.pixel_array, originals[ds.SOPInstanceUID].pixel_array)
    assert len(client.retrieve_series(study, series)) == len(sops)
    one = client.retrieve_instance(study, series, sops[0], media_types=(("application/dicom", "*"),))
    assert one.SOPInstanceUID == sops[0] and one.PixelData == originals[sops[0]].PixelData


def test_retrieve_compressed_instance_both_ways(client, library):
    study, series, sops = library.uids("j2k")
    stored = client.retrieve_instance(study, series, sops[0], media_types=(("application/dicom", "*"),))
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    assert client.retrieve_instance(study, series, sops[0]).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    default = client.retrieve_instance(study, series, sops[0], media_types=(("application/dicom", "1.2.840.10008.1.2.1"),))
    assert default.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(default.pixel_array, stored.pixel_array)


def test_metadata(client, library):
    study, series, sops = library.uids("lidc1")
    metadata = client.retrieve_series_metadata(study, series)
    datasets = [_header(m) for m in metadata]
    assert sorted(ds.SOPInstanceUID for ds in datasets) == sorted(sops)
    assert all(ds.Rows == 512 for ds in datasets)
    assert len(client.retrieve_study_metadata(study)) == len(sops)
    assert _header(client.retrieve_instance_metadata(study, series, sops[2])).SOPInstanceUID == sops[2]


def _header(metadata: dict) -> pydicom.Dataset:
    """A metadata object as a dataset; pixel data stays behind its BulkDataURI."""
    return pydicom.Dataset.from_json(metadata, bulk_data_uri_handler=lambda tag, vr, uri: None)


def test_frames(client, library):
    study, series, sops = library.uids("lidc1")
    original = next(pydicom.dcmread(p) for p in library.files["lidc1"]
                    if pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID == sops[0])
    (raw,) = client.retrieve_instance_frames(study, series, sops[0], frame_numbers=[1])
    assert raw == original.PixelData
    (as_stored,) = client.retrieve_instance_frames(study, series, sops[0], frame_numbers=[1],
                                                    media_types=(("application/octet-stream", "*"),))
    assert as_stored == original.PixelData
    j2k_study, j2k_series, j2k_sops = library.uids("j2k")
    (jp2,) = client.retrieve_instance_frames(j2k_study, j2k_series, j2k_sops[0], frame_numbers=[1],
                                              media_types=(("image/jp2", "1.2.840.10008.1.2.4.90"),))
    assert jp2[:4] == b"\xff\x4f\xff\x51"  # a JPEG 2000 codestream, as stored


def test_rendered(client, library):
    study, series, sops = library.uids("lidc1")
    png = client.retrieve_instance_rendered(study, series, sops[0], media_types=("image/png",))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_store(fresh_server, library):
    server = fresh_server()
    client = DICOMwebClient(url=server.dicomweb)
    datasets = [pydicom.dcmread(p) for p in library.files["lidc1"]]
    response = client.store_instances(datasets)
    study, _, sops = library.uids("lidc1")
    assert sorted(item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence) == sorted(sops)
    assert len(client.search_for_instances(study_instance_uid=study)) == len(sops)
    again = client.store_instances(datasets[:2], study_instance_uid=study)
    assert len(again.ReferencedSOPSequence) == 2
