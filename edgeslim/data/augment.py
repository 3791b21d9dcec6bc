"""Training-time augmentation from the recipe (torchvision.transforms.v2 on uint8 tensors)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from edgeslim.config import Config


class AugmentSpec(Config):
    """``data.augment``: every option is off by default."""

    hflip: bool = Field(False, description="random horizontal flip (p=0.5)")
    crop_padding: int = Field(0, ge=0, description="pad then random-crop back to size (pixels)")
    rotation: float = Field(0.0, ge=0, le=180, description="random rotation, degrees")

    def enabled(self) -> bool:
        return any(v for v in self.model_dump().values())


def build_augment(spec: AugmentSpec, image_size: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if not spec.enabled():
        return None
    from torchvision.transforms import v2

    ops: list = []
    if spec.crop_padding:
        ops.append(v2.RandomCrop(image_size, padding=spec.crop_padding))
    if spec.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if spec.rotation:
        ops.append(v2.RandomRotation(spec.rotation))
    return v2.Compose(ops)
