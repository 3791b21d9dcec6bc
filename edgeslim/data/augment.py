"""Training-time augmentation from the recipe (torchvision.transforms.v2 on uint8 tensors).

Per-image transforms run in the dataset (``build_augment``); mixup/cutmix mix whole batches
and turn labels into class probabilities (``build_batch_transform``, applied by the engine).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from edgeslim.config import Config


class AugmentSpec(Config):
    """``data.augment``: every option is off by default."""

    hflip: bool = Field(False, description="random horizontal flip (p=0.5)")
    vflip: bool = Field(False, description="random vertical flip (p=0.5)")
    crop_padding: int = Field(0, ge=0, description="pad then random-crop back to size (pixels)")
    resized_crop_scale: float | None = Field(
        None, gt=0, le=1, description="random resized crop, min area"
    )
    rotation: float = Field(0.0, ge=0, le=180, description="random rotation, degrees")
    translate: float = Field(0.0, ge=0, le=0.5, description="affine shift, fraction of size")
    shear: float = Field(0.0, ge=0, le=45, description="affine shear, degrees")
    scale: float = Field(0.0, ge=0, lt=1, description="affine zoom range 1 +- scale")
    brightness: float = Field(0.0, ge=0, le=1, description="color jitter")
    contrast: float = Field(0.0, ge=0, le=1, description="color jitter")
    saturation: float = Field(0.0, ge=0, le=1, description="color jitter (3-channel images)")
    hue: float = Field(0.0, ge=0, le=0.5, description="color jitter (3-channel images)")
    randaugment: bool = Field(False, description="RandAugment (num_ops 2)")
    randaugment_magnitude: int = Field(9, ge=0, le=30)
    trivialaugment: bool = Field(False, description="TrivialAugmentWide")
    mixup_alpha: float = Field(0.0, ge=0, description="mixup Beta(alpha, alpha); 0 = off")
    cutmix_alpha: float = Field(0.0, ge=0, description="cutmix Beta(alpha, alpha); 0 = off")

    def enabled(self) -> bool:
        """Any per-image transform on (mixup/cutmix are batch-level, see build_batch_transform)."""
        return any(
            v
            for k, v in self.model_dump().items()
            if k not in ("mixup_alpha", "cutmix_alpha", "randaugment_magnitude")
        )


def build_augment(
    spec: AugmentSpec, image_size: int
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The per-image pipeline, or None when no per-image option is on."""
    if not spec.enabled():
        return None
    from torchvision.transforms import v2

    ops: list = []
    if spec.resized_crop_scale:
        ops.append(
            v2.RandomResizedCrop(image_size, scale=(spec.resized_crop_scale, 1.0), antialias=True)
        )
    if spec.crop_padding:
        ops.append(v2.RandomCrop(image_size, padding=spec.crop_padding))
    if spec.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if spec.vflip:
        ops.append(v2.RandomVerticalFlip())
    if spec.rotation:
        ops.append(v2.RandomRotation(spec.rotation))
    if spec.translate or spec.shear or spec.scale:
        ops.append(
            v2.RandomAffine(
                degrees=0,
                translate=(spec.translate, spec.translate) if spec.translate else None,
                shear=spec.shear or None,
                scale=(1 - spec.scale, 1 + spec.scale) if spec.scale else None,
            )
        )
    if spec.brightness or spec.contrast or spec.saturation or spec.hue:
        ops.append(v2.ColorJitter(spec.brightness, spec.contrast, spec.saturation, spec.hue))
    if spec.randaugment:
        ops.append(v2.RandAugment(magnitude=spec.randaugment_magnitude))
    if spec.trivialaugment:
        ops.append(v2.TrivialAugmentWide())
    return v2.Compose(ops)


def build_batch_transform(spec: AugmentSpec, num_classes: int) -> Callable | None:
    """mixup and/or cutmix (one of them per batch when both are on), or None.

    The callable maps ``(images, labels)`` to ``(mixed images, label probabilities [N, C])``.
    """
    if not (spec.mixup_alpha or spec.cutmix_alpha):
        return None
    from torchvision.transforms import v2

    ops = []
    if spec.mixup_alpha:
        ops.append(v2.MixUp(alpha=spec.mixup_alpha, num_classes=num_classes))
    if spec.cutmix_alpha:
        ops.append(v2.CutMix(alpha=spec.cutmix_alpha, num_classes=num_classes))
    return ops[0] if len(ops) == 1 else v2.RandomChoice(ops)
