"""A dataset held as uint8 images in memory, split into train/val/test, with its preprocessing.

Images are stored as uint8 at the model's input size, so the exact pixels the pipeline
evaluates can be written to PNG and read back by the edge runner bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


class ImageTensorDataset(Dataset):
    """uint8 images [N,C,H,W] + labels; returns normalized float tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: list[float], std: list[float],
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.images, self.labels, self.transform = images, labels, transform
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.images[i]
        if self.transform is not None:
            img = self.transform(img)
        return (img.float() / 255.0 - self.mean) / self.std, self.labels[i]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All items normalized at once (no augmentation): fast evaluation of small sets."""
        x = (self.images.float() / 255.0 - self.mean) / self.std
        return x, self.labels


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class DataBundle:
    """Train/val/test splits plus everything an artifact must carry about its inputs."""

    train: Split
    val: Split
    test: Split
    class_names: list[str]
    mean: list[float]
    std: list[float]
    spec_hash: str = ""
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    batch_transform: Callable[..., Any] | None = None  # mixup/cutmix on a batch
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    def split(self, name: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def dataset(self, name: str, augment: bool = False) -> ImageTensorDataset:
        s = self.split(name)
        return ImageTensorDataset(s.images, s.labels, self.mean, self.std,
                                  self.augment if augment else None)

    def loader(self, name: str, batch_size: int = 64, shuffle: bool = False, augment: bool = False,
               seed: int = 0, drop_last: bool = False) -> DataLoader:
        g = torch.Generator().manual_seed(seed)
        return DataLoader(self.dataset(name, augment), batch_size=batch_size, shuffle=shuffle,
                          generator=g, drop_last=drop_last, num_workers=0)

    def meta(self) -> dict[str, Any]:
        return {"class_names": self.class_names, "mean": self.mean, "std": self.std,
                "input_shape": list(self.input_shape), "layout": "NCHW", "data_hash": self.spec_hash,
                "sizes": {k: len(self.split(k)) for k in ("train", "val", "test")}}
