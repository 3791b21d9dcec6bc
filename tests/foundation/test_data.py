"""Data sources, deterministic splits, class subsets and the image-folder errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from edgeslim.data import build_data
from edgeslim.errors import InputError
from edgeslim.recipe import DataSpec


def test_digits_is_real_and_deterministic():
    spec = DataSpec(source="digits", image_size=16, classes=["5", "6", "7"])
    a, b = build_data(spec, 3), build_data(DataSpec(**spec.model_dump()), 3)
    assert a.class_names == ["5", "6", "7"] and a.input_shape == (3, 16, 16)
    assert a.train.images.dtype == torch.uint8 and set(a.train.labels.tolist()) == {0, 1, 2}
    assert torch.equal(a.test.labels, b.test.labels) and torch.equal(a.test.images, b.test.images)
    total = len(a.train) + len(a.val) + len(a.test)
    assert 500 < total < 560  # ~180 images per digit in scikit-learn's set
    other = build_data(DataSpec(source="digits", image_size=16, classes=["5", "6", "7"]), 4)
    assert not torch.equal(other.test.images, a.test.images)


def test_split_is_stratified_and_capped():
    d = build_data(DataSpec(source="digits", image_size=8, train_per_class=10, test_fraction=0.3), 0)
    assert torch.bincount(d.train.labels).tolist() == [10] * 10
    frac = torch.bincount(d.test.labels).float() / 179
    assert frac.min() > 0.25 and frac.max() < 0.35


def test_normalization_from_train_split(tiny_data):
    x, _ = tiny_data.dataset("train").tensors()
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1


def test_unknown_class_and_source():
    with pytest.raises(InputError, match="'11'.*valid: 0, 1"):
        build_data(DataSpec(source="digits", classes=["11"]), 0)
    with pytest.raises(InputError, match="did you mean 'digits'"):
        build_data(DataSpec(source="digit"), 0)


def _write_folder(root, classes, n=6, size=20):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_imagefolder(tmp_path):
    _write_folder(tmp_path / "imgs", ["cat", "dog"], n=10)
    d = build_data(DataSpec(source="imagefolder", root=str(tmp_path / "imgs"), image_size=16,
                            val_fraction=0.2, test_fraction=0.2), 0)
    assert d.class_names == ["cat", "dog"] and d.input_shape == (3, 16, 16)
    assert len(d.train) + len(d.val) + len(d.test) == 20


@pytest.mark.parametrize("classes", [[], ["only"]])
def test_imagefolder_empty_or_one_class(tmp_path, classes):
    (tmp_path / "imgs").mkdir()
    _write_folder(tmp_path / "imgs", classes)
    with pytest.raises(InputError, match=f"has {len(classes)} class folder"):
        build_data(DataSpec(source="imagefolder", root=str(tmp_path / "imgs")), 0)


def test_imagefolder_missing_root_and_bad_image(tmp_path):
    with pytest.raises(InputError, match="is not a folder"):
        build_data(DataSpec(source="imagefolder", root=str(tmp_path / "nope")), 0)
    _write_folder(tmp_path / "imgs", ["a", "b"])
    (tmp_path / "imgs" / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="broken.png"):
        build_data(DataSpec(source="imagefolder", root=str(tmp_path / "imgs")), 0)


def test_cifar10_needs_local_copy(tmp_path):
    with pytest.raises(InputError, match="cifar-10-batches-py"):
        build_data(DataSpec(source="cifar10", root=str(tmp_path)), 0)


def test_synthetic_is_learnable_shape_task(tiny_data):
    assert tiny_data.num_classes == 4 and tiny_data.input_shape == (3, 16, 16)
    # Classes differ in their mean foreground mask: a sanity check that labels carry signal.
    x = tiny_data.train.images.float().mean(1)
    means = torch.stack([x[tiny_data.train.labels == c].mean(0) for c in range(4)])
    assert (means[0] - means[1]).abs().mean() > 2
