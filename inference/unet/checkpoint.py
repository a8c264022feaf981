"""Loading user-supplied L3-net checkpoints, unchanged, from a path or ``s3://`` URI.

L3-Net saves ``{"model": state_dict, "opt": ...}``; Phase3 saves ``{epoch, model,
optimizer, loss}``. Only ``"model"`` is used. A state dict whose keys or shapes differ
from :class:`UNet2D` is refused with a message naming the keys.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from inference.unet.model import UNet2D


class CheckpointError(ValueError):
    """The weights file is missing, unreadable, or not an L3-net UNet checkpoint."""


def _read(source: str) -> bytes:
    if source.startswith("s3://"):
        import boto3

        bucket, _, key = source[len("s3://") :].partition("/")
        return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"L3-net weights not found at {source}; set L3NET_UNET_WEIGHTS to a checkpoint file")
    return path.read_bytes()


def state_dict_of(checkpoint: object) -> dict[str, torch.Tensor]:
    """The model weights inside a checkpoint dict (or a bare state dict)."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        return checkpoint["model"]
    if isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise CheckpointError("not an L3-net checkpoint: expected a dict with a 'model' state dict")


def check_state_dict(model: UNet2D, state: dict[str, torch.Tensor]) -> None:
    """Raise :class:`CheckpointError` naming missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{key} {tuple(state[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in set(expected) & set(state)
        if tuple(state[key].shape) != tuple(expected[key].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected keys: {', '.join(extra)}")
    if shapes:
        problems.append(f"wrong shapes: {', '.join(shapes)}")
    if problems:
        raise CheckpointError("checkpoint does not match the L3-net UNet: " + "; ".join(problems))


def load_unet(source: str, device: str | torch.device = "cpu") -> UNet2D:
    """An eval-mode :class:`UNet2D` with the checkpoint's weights, on ``device``."""
    try:
        # weights_only: a checkpoint is data, never code to run.
        checkpoint = torch.load(io.BytesIO(_read(source)), map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as error:
        raise CheckpointError(f"cannot read L3-net checkpoint {source}: {error}") from error
    model = UNet2D()
    state = state_dict_of(checkpoint)
    check_state_dict(model, state)
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)
