"""Data sources: digits (bundled with scikit-learn), imagefolder, cifar10 (local copy), synthetic.

Each reader returns uint8 images [N,C,H,W] at the requested size and int64 labels, plus class
names; splitting and normalization are shared (see ``build_data``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgeslim.errors import InputError, unknown_name

Reader = Callable[..., tuple[torch.Tensor, torch.Tensor, list[str]]]
_READERS: dict[str, Reader] = {}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff"}


def register_source(name: str) -> Callable[[Reader], Reader]:
    def deco(fn: Reader) -> Reader:
        if name in _READERS:
            raise ValueError(f"data source '{name}' is already registered")
        _READERS[name] = fn
        return fn

    return deco


def data_sources() -> list[str]:
    return sorted(_READERS)


def read_source(name: str, **kw) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if name not in _READERS:
        raise unknown_name("data source", name, _READERS)
    return _READERS[name](**kw)


def resize_u8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 [N,C,H,W] with bilinear + antialias, rounding back to uint8."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                        antialias=images.shape[-1] > size)
    return out.round().clamp(0, 255).to(torch.uint8)


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if images.shape[1] == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise InputError(f"cannot convert {images.shape[1]} channels to {channels}; use channels: 1 or 3")


@register_source("digits")
def read_digits(image_size: int = 32, channels: int = 3, **_) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """scikit-learn's 1,797 handwritten 8x8 digits (bundled, no download), upscaled."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    imgs = to_channels(resize_u8(imgs, image_size), channels)
    return imgs, torch.from_numpy(d.target.astype(np.int64)), [str(i) for i in range(10)]


@register_source("synthetic")
def read_synthetic(image_size: int = 32, channels: int = 3, num_classes: int = 4,
                   samples_per_class: int = 64, seed: int = 0, **_) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from edgeslim.data.synthetic import draw_shapes

    return draw_shapes(image_size, channels, num_classes, samples_per_class, seed)


@register_source("imagefolder")
def read_imagefolder(root: str | None = None, image_size: int = 32, channels: int = 3, **_):
    """A folder with one sub-folder of images per class (class names = folder names)."""
    from PIL import Image, UnidentifiedImageError

    if not root:
        raise InputError("data.source imagefolder needs data.root: a folder with one sub-folder per class")
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"data.root '{base}' is not a folder; give a folder with one sub-folder per class")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {c: sorted(f for f in (base / c).rglob("*") if f.suffix.lower() in IMAGE_EXTS) for c in classes}
    classes = [c for c in classes if files[c]]
    if len(classes) < 2:
        raise InputError(
            f"image folder '{base}' has {len(classes)} class folder(s) with images; need at least 2 "
            f"sub-folders holding images ({', '.join(sorted(IMAGE_EXTS))})"
        )
    mode = "L" if channels == 1 else "RGB"
    imgs, labels = [], []
    for ci, c in enumerate(classes):
        for f in files[c]:
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert(mode).resize((image_size, image_size), Image.BILINEAR))
            except (UnidentifiedImageError, OSError) as exc:
                raise InputError(f"image '{f}' cannot be read ({exc}); remove or replace it") from exc
            imgs.append(arr.reshape(image_size, image_size, -1).transpose(2, 0, 1))
            labels.append(ci)
    return torch.from_numpy(np.stack(imgs)), torch.tensor(labels, dtype=torch.int64), classes


@register_source("cifar10")
def read_cifar10(root: str | None = None, image_size: int = 32, channels: int = 3, **_):
    """CIFAR-10 from a local copy (``cifar-10-batches-py`` under root); never downloaded."""
    import torchvision

    root = root or "data"
    try:
        parts = [torchvision.datasets.CIFAR10(root, train=t, download=False) for t in (True, False)]
    except RuntimeError as exc:
        raise InputError(
            f"CIFAR-10 not found under data.root '{root}'; place the extracted cifar-10-batches-py "
            "folder (from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz) there"
        ) from exc
    x = np.concatenate([p.data for p in parts])
    y = np.concatenate([np.asarray(p.targets) for p in parts])
    imgs = to_channels(resize_u8(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), image_size), channels)
    return imgs, torch.from_numpy(y.astype(np.int64)), list(parts[0].classes)
