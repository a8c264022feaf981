"""The ``l3net`` engine on the CPU with random weights in the published layout."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from archive.settings import Settings
from inference.engines import get_engine
from inference.engines.base import LABELS
from inference.pipeline import SeriesNotAnalysable, analyze
from inference.unet.model import UNet2D
from tests.conftest import require_tool
from tests.inference.phantom import build, to_datasets


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    torch.manual_seed(3)
    model = UNet2D()
    # Bias the output layer towards "normal lung" so the random model yields a lung mask.
    with torch.no_grad():
        model.outc.conv.bias.copy_(torch.tensor([0.0, 0.0, 4.0, 1.0, 0.5]))
    path = tmp_path_factory.mktemp("w") / "phase3_trained.ckpt"
    torch.save({"epoch": 1, "model": model.state_dict(), "optimizer": {}, "loss": 0.0}, path)
    return str(path)


def test_engine_runs_and_outputs_stay_valid(weights, tmp_path):
    settings = Settings(unet_weights=weights, unet_phase="3", unet_device="cpu", unet_threshold=0.3)
    datasets = to_datasets(build(depth=12, size=96).hu)
    result = analyze(datasets, "l3net", settings=settings)
    labels = result.segmentation.labels
    assert labels.shape == (12, 96, 96)
    assert set(np.unique(labels)) <= {0, *LABELS}
    assert result.summary["engine"] == {"name": "l3net", "version": "1.0.0+phase3"}
    algorithm = result.seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "l3net"
    tool = require_tool("dciodvfy")
    for name, ds in (("seg.dcm", result.seg), ("sr.dcm", result.sr)):
        ds.save_as(tmp_path / name, enforce_file_format=True)
        out = subprocess.run([tool, str(tmp_path / name)], capture_output=True, text=True, timeout=120)
        assert not [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def test_without_weights_the_engine_refuses_clearly():
    """A missing or broken checkpoint is the server's configuration, not the series:
    EngineUnavailable (retried by the worker), never SeriesNotAnalysable."""
    from inference.engines import EngineUnavailable

    with pytest.raises(EngineUnavailable, match="no weights: set L3NET_UNET_WEIGHTS") as refused:
        get_engine("l3net", Settings(unet_weights=None))
    assert not isinstance(refused.value, SeriesNotAnalysable)
    with pytest.raises(EngineUnavailable, match="cannot run"):
        get_engine("l3net", Settings(unet_weights="/nonexistent/phase3_trained.ckpt"))


def test_fallback_to_densitometry_only_when_configured():
    engine = get_engine("l3net", Settings(unet_weights=None, unet_fallback=True))
    assert engine.name == "densitometry"
