"""Adaptive-gain activations (saved and reloaded as an edit) and recipe augmentations."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def _spec_model(source: str = "tinyresnet", **kw) -> nn.Module:
    from edgeslim.models.factory import model_from_spec
    from edgeslim.recipe import ModelSpec

    return model_from_spec(ModelSpec(source=source, kwargs=kw), 3, 4)


def test_adaptive_gain_replaces_activations_and_reloads(tmp_path):
    from edgeslim.models.serialize import load_model, save_model
    from edgeslim.train.adaptive_gain import AdaptiveGain, add_adaptive_gain

    model = _spec_model(widths=(4, 8)).eval()
    x = torch.randn(2, 3, 16, 16)
    ref = model(x)
    model = add_adaptive_gain(model, (3, 16, 16))
    gains = [m for m in model.modules() if isinstance(m, AdaptiveGain)]
    assert len(gains) >= 3 and not any(
        isinstance(m, nn.ReLU) and not isinstance(p, AdaptiveGain)
        for p in model.modules()
        for m in p.children()
    )
    assert torch.allclose(model(x), ref, atol=1e-6), "gain 1.0 must not change the function"
    assert model.stem[2].gain.shape == (4,)
    with torch.no_grad():
        for g in gains:
            g.gain.mul_(1.5)
    save_model(model, tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt").eval()
    assert torch.allclose(again(x), model(x), atol=1e-6)
    assert sum(isinstance(m, AdaptiveGain) for m in again.modules()) == len(gains)


def test_adaptive_gain_trains_and_reports(tiny_data):
    from edgeslim.train.adaptive_gain import add_adaptive_gain, gain_stats
    from edgeslim.train.config import TrainConfig
    from edgeslim.train.engine import fit

    model = add_adaptive_gain(_spec_model("test_mlp", image_size=16, hidden=8), (3, 16, 16))
    fit(
        model,
        tiny_data,
        TrainConfig(
            epochs=1,
            batch_size=16,
            max_steps_per_epoch=3,
            tensorboard=False,
            optimizer={"name": "adam", "lr": 0.05},
        ),
    )
    stats = gain_stats(model)
    assert stats and (stats["gain_min"] != 1.0 or stats["gain_max"] != 1.0)


def test_adaptive_gain_on_model_without_activations_is_clear():
    from edgeslim.errors import InputError
    from edgeslim.train.adaptive_gain import add_adaptive_gain

    model = _spec_model("test_mlp", image_size=16, hidden=8)
    model[2] = nn.Identity()
    with pytest.raises(InputError, match="no activation modules"):
        add_adaptive_gain(model, (3, 16, 16))


def test_every_augmentation_keeps_shape_and_dtype():
    from edgeslim.data.augment import AugmentSpec, build_augment, build_batch_transform

    spec = AugmentSpec(
        hflip=True,
        vflip=True,
        crop_padding=2,
        resized_crop_scale=0.5,
        rotation=15,
        translate=0.1,
        shear=10,
        scale=0.2,
        brightness=0.3,
        contrast=0.3,
        saturation=0.3,
        hue=0.05,
        randaugment=True,
        trivialaugment=True,
        mixup_alpha=0.2,
        cutmix_alpha=1.0,
    )
    tf = build_augment(spec, 16)
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    torch.manual_seed(0)
    outs = [tf(img) for _ in range(4)]
    assert all(o.shape == img.shape and o.dtype == torch.uint8 for o in outs)
    assert any(not torch.equal(o, img) for o in outs)
    bt = build_batch_transform(spec, 4)
    x, y = bt(torch.randn(8, 3, 16, 16), torch.arange(8) % 4)
    assert y.shape == (8, 4) and torch.allclose(y.sum(1), torch.ones(8))
    assert (
        build_augment(AugmentSpec(), 16) is None and build_batch_transform(AugmentSpec(), 4) is None
    )


def test_recipe_augment_reaches_the_bundle(tiny_data_spec):
    from edgeslim.data import build_data
    from edgeslim.recipe import DataSpec

    spec = DataSpec(**{**tiny_data_spec, "augment": {"trivialaugment": True, "mixup_alpha": 0.2}})
    data = build_data(spec, seed=0)
    assert data.augment is not None and data.batch_transform is not None
