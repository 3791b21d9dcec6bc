"""Turn a ``data:`` spec into a DataBundle: read, select classes, split, normalize."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


@dataclass(frozen=True)
class ModelNorm:
    """What the model says about the normalisation its weights expect (resolved by the caller
    from ``model:``; data/ does not import models/).

    Attributes:
        mean, std: the weights' own statistics (torchvision weights' transforms, timm's
            pretrained config), or None when the model brings none.
        source: where they come from, for the run record (``timm:resnet18 pretrained config``).
        trained: the model arrives with trained weights (a checkpoint, zoo weights, a frozen
            graph): statistics computed on this data's train split would likely not match.
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    source: str = ""
    trained: bool = False


def build_data(spec: DataSpec, seed: int, model: ModelNorm | None = None) -> DataBundle:
    """Read, split and normalise ``spec``'s images.

    Normalisation: ``data.mean/std`` when the recipe gives them, else the model's own
    (``model.mean/std``), else statistics of the train split; in the last case, a model with
    trained weights gets a warning in ``bundle.extra["warnings"]`` (the pipeline shows it once
    and records it in run.json). ``bundle.extra["normalization"]`` says which one was used.
    """
    # The fingerprint (file list, sizes, mtimes) keys the in-process cache too: a folder that
    # changed since the last call is read again.
    model = model or ModelNorm()
    fp = data_fingerprint(spec)
    key = sha256_json({"spec": spec.model_dump(mode="json"), "seed": seed, "data": fp["sha256"],
                       "model_norm": asdict(model)})
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
    mean, std, norm = _norm_stats(spec, train.images, model)
    bundle = DataBundle(
        train=train, val=Split(images[va], labels[va]), test=Split(images[te], labels[te]),
        class_names=names, mean=mean, std=std, spec_hash=key[:16],
        augment=build_augment(spec.augment, spec.image_size),
        batch_transform=build_batch_transform(spec.augment, len(names)),
        extra={"fingerprint": fp, "skipped": skipped, "normalization": norm,
               "warnings": [norm["warning"]] if norm.get("warning") else []},
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


def _norm_stats(spec: DataSpec, train_images: torch.Tensor,
               model: ModelNorm) -> tuple[list[float], list[float], dict[str, object]]:
    """mean, std and a record of where they came from (recipe, the model's weights, train split)."""
    channels = int(train_images.shape[1])
    if spec.mean is not None and spec.std is not None:
        return list(spec.mean), list(spec.std), {"from": "recipe data.mean/std"}
    if model.mean is not None and model.std is not None and len(model.mean) == len(model.std) == channels:
        return list(model.mean), list(model.std), {"from": model.source or "the model's weights"}
    x = train_images.float() / 255.0
    mean = [round(float(v), 4) for v in x.mean(dim=(0, 2, 3))]
    std = [round(float(v), 4) for v in x.std(dim=(0, 2, 3)).clamp_min(1e-3)]
    norm: dict[str, object] = {"from": "train split statistics"}
    if model.trained:
        norm["warning"] = (
            f"normalising with statistics of the train split (mean {mean}, std {std}) because data.mean/std are not "
            "set and the model brings none; a checkpoint trained with other values (e.g. ImageNet's mean "
            "[0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]) will score far below its real accuracy: set "
            "data.mean and data.std to the values it was trained with")
    return mean, std, norm


def recorded_norm(record: dict[str, Any]) -> ModelNorm | None:
    """The normalisation a run used, from its run.json (``normalization``), so a later command
    (``edgeslim export RUN``, ``deploy``) preprocesses exactly as the run did; None for a run
    recorded before run.json kept it."""
    norm = record.get("normalization")
    if not isinstance(norm, dict) or not isinstance(norm.get("mean"), list) or not isinstance(norm.get("std"), list):
        return None
    return ModelNorm(tuple(norm["mean"]), tuple(norm["std"]), f"run.json normalization ({norm.get('from', '?')})")


def recorded_data(record: dict[str, Any]) -> dict[str, Any]:
    """The run's ``data:`` section with a relative ``data.root`` made absolute as the run resolved
    it (``data_root`` in run.json; the imagefolder fingerprint for older runs), so ``export``,
    ``deploy`` and ``bench`` reopen a run from any directory."""
    data = dict(record["recipe"]["data"])
    root = data.get("root")
    if root and not Path(root).is_absolute():
        fp = record.get("data_fingerprint") or {}
        absolute = record.get("data_root") or (fp.get("root") if fp.get("source") == "imagefolder" else None)
        if absolute:
            data["root"] = absolute
    return data
