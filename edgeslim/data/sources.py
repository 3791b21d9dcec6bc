"""Data sources: digits (bundled with scikit-learn), imagefolder, cifar10 (local copy), synthetic.

Each reader returns uint8 images [N,C,H,W] at the requested size and int64 labels, plus class
names; splitting and normalization are shared (see ``build_data``). Readers that can drop
unusable files take ``skip_bad`` and append what they dropped to ``skipped``. Each source also
registers a fingerprint of what it reads (see ``edgeslim.data.fingerprint``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgeslim.data.fingerprint import package_version, register_fingerprint
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


@register_fingerprint("digits")
def digits_fingerprint(spec: Any) -> dict[str, Any]:
    """The images ship inside scikit-learn: its version identifies them."""
    return {"source": "digits", "sklearn": package_version("scikit-learn")}


@register_source("synthetic")
def read_synthetic(image_size: int = 32, channels: int = 3, num_classes: int = 4,
                   samples_per_class: int = 64, seed: int = 0, **_) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from edgeslim.data.synthetic import draw_shapes

    return draw_shapes(image_size, channels, num_classes, samples_per_class, seed)


@register_fingerprint("synthetic")
def synthetic_fingerprint(spec: Any) -> dict[str, Any]:
    """Drawn from the recipe's settings (already in the key) by a versioned generator."""
    from edgeslim.data.synthetic import GENERATOR

    return {"source": "synthetic", "generator": GENERATOR}


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


def _cifar_dir(root: str | None) -> Path:
    return Path(root or "data") / "cifar-10-batches-py"


@register_fingerprint("cifar10")
def cifar10_fingerprint(spec: Any) -> dict[str, Any]:
    """The batch files' names, sizes and mtimes (stat only)."""
    from edgeslim.data.fingerprint import stat_listing

    folder = _cifar_dir(spec.root)
    fp = {"source": "cifar10", "root": str(folder.resolve())}
    try:
        return fp | stat_listing(folder, [p for p in folder.iterdir() if not p.name.startswith(".")])
    except OSError as exc:
        return fp | {"error": exc.strerror}


import edgeslim.data.imagefolder  # noqa: E402, F401 - registers the imagefolder source
