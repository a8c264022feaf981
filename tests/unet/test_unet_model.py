"""The L3-net UNet: published checkpoint layout, loading, refusal messages, inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.unet.checkpoint import CheckpointError, load_unet
from inference.unet.infer import predict_volume
from inference.unet.model import UNet2D
from inference.unet.phases import CONSOLIDATION, GGO, LUNG, get_phase
from tests.conftest import SHARED_DATA

KEYS_TSV = SHARED_DATA.parent / "docs" / "l3net_unet_checkpoint_keys.tsv"


def published_keys() -> dict[str, tuple[int, ...]]:
    rows = [line.rstrip("\n").split("\t") for line in KEYS_TSV.read_text().splitlines() if line and not line.startswith("#")]
    return {key: tuple(int(n) for n in shape.strip("()").split(",") if n.strip()) for key, shape, *_ in rows}


@pytest.fixture(scope="module")
def random_model() -> UNet2D:
    torch.manual_seed(1)
    return UNet2D().eval()


def test_state_dict_matches_published_keys_and_shapes(random_model):
    reference = published_keys()
    state = random_model.state_dict()
    assert len(reference) == 128
    assert set(state) == set(reference)
    assert {key: tuple(value.shape) for key, value in state.items()} == reference
    # 13,402,373 = weights plus BatchNorm running statistics, as the published count.
    counted = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert counted == 13_402_373


@pytest.mark.parametrize(
    "layout",
    [
        lambda state: {"model": state, "opt": {"state": {}, "param_groups": []}},  # L3-Net
        lambda state: {"epoch": 12, "model": state, "optimizer": {}, "loss": 0.1},  # Phase3
    ],
    ids=["l3net", "phase3"],
)
def test_loads_published_layouts_unchanged(tmp_path, random_model, layout):
    path = tmp_path / "unet2d_aio_pre_luna.ckpt"
    torch.save(layout(random_model.state_dict()), path)
    loaded = load_unet(str(path))
    for key, value in random_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not loaded.training


def test_missing_and_extra_keys_are_named(tmp_path, random_model):
    state = dict(random_model.state_dict())
    state.pop("up3.conv.double_conv.0.weight")
    state["decoder.head.weight"] = torch.zeros(3)
    path = tmp_path / "phase2_model.ckpt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as error:
        load_unet(str(path))
    message = str(error.value)
    assert "missing keys: up3.conv.double_conv.0.weight" in message
    assert "unexpected keys: decoder.head.weight" in message


def test_wrong_shape_is_named(tmp_path, random_model):
    state = dict(random_model.state_dict())
    state["outc.conv.weight"] = torch.zeros(4, 64, 1, 1)
    torch.save({"model": state}, tmp_path / "c.ckpt")
    with pytest.raises(CheckpointError, match=r"outc.conv.weight \(4, 64, 1, 1\) \(expected \(5, 64, 1, 1\)\)"):
        load_unet(str(tmp_path / "c.ckpt"))


def test_missing_weights_refused_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="weights not found .*L3NET_UNET_WEIGHTS"):
        load_unet(str(tmp_path / "nothing.ckpt"))


def test_not_a_checkpoint_refused(tmp_path):
    torch.save({"epoch": 3}, tmp_path / "c.ckpt")
    with pytest.raises(CheckpointError, match="expected a dict with a 'model' state dict"):
        load_unet(str(tmp_path / "c.ckpt"))


def test_loads_from_s3(tmp_path, random_model, cloud_resources, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", cloud_resources["endpoint"])
    path = tmp_path / "phase3_trained.ckpt"
    torch.save({"model": random_model.state_dict()}, path)
    cloud_resources["s3"].upload_file(str(path), cloud_resources["bucket"], "weights/phase3_trained.ckpt")
    loaded = load_unet(f"s3://{cloud_resources['bucket']}/weights/phase3_trained.ckpt")
    assert torch.equal(loaded.state_dict()["outc.conv.bias"], random_model.state_dict()["outc.conv.bias"])


def test_predict_shapes_and_determinism(random_model):
    hu = np.random.default_rng(0).integers(-1000, 200, (3, 48, 56)).astype(np.int16)  # odd pooled sizes pad
    labels, confidence = predict_volume(random_model, hu, get_phase("2"), torch.device("cpu"), deterministic=True, batch_size=2)
    assert labels.shape == hu.shape and labels.dtype == np.uint8
    assert confidence.shape == hu.shape and confidence.dtype == np.float16
    assert labels.max() <= 4
    assert np.all(confidence >= 0.2) and np.all(confidence <= 1.0)  # max of 5 softmax classes ≥ 1/5
    again, _ = predict_volume(random_model, hu, get_phase("2"), torch.device("cpu"), deterministic=True, batch_size=3)
    assert np.array_equal(labels, again)


def test_phase_preprocessing_and_class_mapping():
    hu = np.array([-2000, -1000, 0, 50, 300, 1000], np.int16)
    phase12, phase3 = get_phase("1"), get_phase("3")
    assert np.allclose(phase12.normalise(hu), (np.clip(hu, -1000, 50) + 653.2204) / 628.5188, atol=1e-5)
    assert np.allclose(phase3.normalise(hu), (np.clip(hu, -1000, 350) + 653.2204) / 628.5188, atol=1e-5)
    assert phase12.classes == {0: None, 1: LUNG, 2: GGO, 3: GGO, 4: CONSOLIDATION}
    # Phase 3 vessels (1) count as lung, never as opacity.
    assert phase3.classes[1] == LUNG and phase3.classes[2] == LUNG
    with pytest.raises(ValueError, match="unknown L3-net phase"):
        get_phase("4")
