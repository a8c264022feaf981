"""The SEG's encoding: JPEG 2000 Lossless by default, bit-packed Explicit VR Little
Endian with ``seg_compression="none"``; both valid per dciodvfy and holding the same
frames."""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from archive.settings import Settings
from inference.pipeline import OutputUIDs, analyze
from tests.conftest import require_tool
from tests.inference.phantom import build, to_datasets


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """(compressed, native) SEG files of the same phantom analysis."""
    folder = tmp_path_factory.mktemp("seg")
    datasets = to_datasets(build().hu)
    paths = []
    for name, setting in (("j2k.dcm", "jpeg2000"), ("native.dcm", "none")):
        result = analyze(datasets, uids=OutputUIDs.from_job("seg-encoding"), settings=Settings(seg_compression=setting))
        result.seg.save_as(folder / name, enforce_file_format=True)
        paths.append(folder / name)
    return paths


def test_default_is_jpeg2000_lossless_and_none_is_native(both):
    compressed, native = (pydicom.dcmread(path) for path in both)
    assert compressed.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert native.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert Settings().seg_compression == "jpeg2000"
    assert both[0].stat().st_size < both[1].stat().st_size / 3


def test_both_encodings_hold_the_same_frames(both):
    compressed, native = (pydicom.dcmread(path) for path in both)
    assert compressed.NumberOfFrames == native.NumberOfFrames
    assert np.array_equal(compressed.pixel_array, native.pixel_array)
    assert compressed.pixel_array.any()


def test_both_encodings_pass_dciodvfy(both):
    tool = require_tool("dciodvfy")
    for path in both:
        out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
        errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], path.name
