"""Turn a ``data:`` spec into a DataBundle: read, select classes, split, normalize."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from edgeslim.data.augment import build_augment, build_batch_transform
from edgeslim.data.bundle import DataBundle, Split
from edgeslim.data.fingerprint import data_fingerprint
from edgeslim.data.sources import read_source
from edgeslim.errors import InputError
from edgeslim.fsutil import sha256_json

if TYPE_CHECKING:
    from edgeslim.recipe import DataSpec

_CACHE: dict[str, DataBundle] = {}


def build_data(spec: DataSpec, seed: int) -> DataBundle:
    # The fingerprint (file list, sizes, mtimes) keys the in-process cache too: a folder that
    # changed since the last call is read again.
    fp = data_fingerprint(spec)
    key = sha256_json({"spec": spec.model_dump(mode="json"), "seed": seed, "data": fp["sha256"]})
    if key in _CACHE:
        return _CACHE[key]
    skipped: list[dict[str, str]] = []
    images, labels, names = read_source(
        spec.source, root=spec.root, image_size=spec.image_size, channels=spec.channels,
        num_classes=spec.synthetic_classes, samples_per_class=spec.synthetic_per_class, seed=seed,
        skip_bad=spec.skip_bad_images, skipped=skipped,
    )
    images, labels, names = _select_classes(images, labels, names, spec.classes)
    tr, va, te = stratified_split(labels, spec.val_fraction, spec.test_fraction, seed, spec.train_per_class)
    train = Split(images[tr], labels[tr])
    mean, std = _norm_stats(spec, train.images)
    bundle = DataBundle(
        train=train, val=Split(images[va], labels[va]), test=Split(images[te], labels[te]),
        class_names=names, mean=mean, std=std, spec_hash=key[:16],
        augment=build_augment(spec.augment, spec.image_size),
        batch_transform=build_batch_transform(spec.augment, len(names)),
        extra={"fingerprint": fp, "skipped": skipped},
    )
    _CACHE[key] = bundle
    return bundle


def _select_classes(images, labels, names, classes):
    if not classes:
        return images, labels, names
    idx = []
    for c in classes:
        c = str(c)
        if c not in names:
            raise InputError(f"data.classes has '{c}', which is not a class of this source; valid: {', '.join(names)}")
        idx.append(names.index(c))
    keep = torch.isin(labels, torch.tensor(idx))
    remap = torch.full((len(names),), -1, dtype=torch.int64)
    remap[torch.tensor(idx)] = torch.arange(len(idx))
    return images[keep], remap[labels[keep]], [names[i] for i in idx]


def stratified_split(labels: torch.Tensor, val: float, test: float, seed: int,
                     train_per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class seeded split; the same seed always gives the same indices."""
    g = torch.Generator().manual_seed(seed)
    tr, va, te = [], [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_te, n_va = round(len(idx) * test), round(len(idx) * val)
        te.append(idx[:n_te])
        va.append(idx[n_te:n_te + n_va])
        rest = idx[n_te + n_va:]
        tr.append(rest[:train_per_class] if train_per_class else rest)
    out = [torch.sort(torch.cat(p)).values for p in (tr, va, te)]
    if min(len(p) for p in out) == 0:
        raise InputError(
            f"the split leaves an empty set (train/val/test sizes {[len(p) for p in out]}); "
            "use more images or adjust data.val_fraction / data.test_fraction"
        )
    return out[0], out[1], out[2]


def _norm_stats(spec: DataSpec, train_images: torch.Tensor) -> tuple[list[float], list[float]]:
    if spec.mean is not None and spec.std is not None:
        return list(spec.mean), list(spec.std)
    x = train_images.float() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]
