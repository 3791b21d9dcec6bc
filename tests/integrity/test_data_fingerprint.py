"""A stage's cache key includes a fingerprint of the data actually read: changed images or a
new class recompute the stage; the fingerprint is recorded in run.json."""

from __future__ import annotations

import json
import os

import numpy as np
import yaml
from PIL import Image


def _folder(root, classes, n=10, size=12, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _recipe(tmp_path, root):
    recipe = {"run": {"name": "fp", "output_dir": str(tmp_path / "runs"), "threads": 1, "latency_iters": 5},
              "model": {"source": "tinycnn", "kwargs": {"width": 4, "depth": 2}},
              "data": {"source": "imagefolder", "root": str(root), "image_size": 16,
                       "val_fraction": 0.2, "test_fraction": 0.2},
              "stages": [{"stage": "finetune", "train": {"epochs": 1, "batch_size": 8, "tensorboard": False}}]}
    path = tmp_path / "fp.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_changed_image_folder_recomputes_the_stage(tmp_path, cli):
    root = _folder(tmp_path / "imgs", ["a", "b", "c", "d"])
    recipe = _recipe(tmp_path, root)
    run = tmp_path / "runs" / "fp"
    assert cli("run", recipe, "-q")[0] == 0
    meta = run / "00-finetune" / "meta.json"
    first = json.loads((run / "run.json").read_text())
    mtime = meta.stat().st_mtime_ns
    assert first["data_fingerprint"]["source"] == "imagefolder" and first["data_fingerprint"]["files"] == 40
    assert cli("run", recipe, "-q")[0] == 0
    assert meta.stat().st_mtime_ns == mtime, "unchanged data must still be reused"
    # Add a class folder and delete some images: the rerun must see the new data.
    _folder(root, ["e"], seed=1)
    for i in range(6):
        os.unlink(root / "a" / f"{i}.png")
    code, _, err = cli("run", recipe, "-q")
    assert code == 0, err
    second = json.loads((run / "run.json").read_text())
    assert meta.stat().st_mtime_ns != mtime, "the stage was reused although the data changed"
    assert second["stages"][0]["class_names"] == ["a", "b", "c", "d", "e"]
    assert second["data_fingerprint"]["files"] == 44
    assert second["data_fingerprint"]["sha256"] != first["data_fingerprint"]["sha256"]


def test_rewritten_image_changes_the_fingerprint(tmp_path):
    from edgeslim.data.fingerprint import data_fingerprint
    from edgeslim.recipe import DataSpec

    root = _folder(tmp_path / "imgs", ["a", "b"])
    spec = DataSpec(source="imagefolder", root=str(root))
    fp = data_fingerprint(spec)
    assert data_fingerprint(spec) == fp
    st = (root / "a" / "3.png").stat()
    os.utime(root / "a" / "3.png", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert data_fingerprint(spec)["sha256"] != fp["sha256"]


def test_in_process_data_cache_follows_the_folder(tmp_path):
    from edgeslim.data import build_data
    from edgeslim.recipe import DataSpec

    root = _folder(tmp_path / "imgs", ["a", "b"])
    spec = DataSpec(source="imagefolder", root=str(root), image_size=16)
    assert build_data(spec, 0).class_names == ["a", "b"]
    _folder(root, ["c"])
    assert build_data(spec, 0).class_names == ["a", "b", "c"]


def test_builtin_fingerprints_name_dataset_and_version(tmp_path):
    import sklearn

    from edgeslim.data.fingerprint import data_fingerprint
    from edgeslim.recipe import DataSpec

    digits = data_fingerprint(DataSpec(source="digits"))
    assert digits["source"] == "digits" and digits["sklearn"] == sklearn.__version__
    syn = data_fingerprint(DataSpec(source="synthetic"))
    assert syn["source"] == "synthetic" and syn["generator"]
    # cifar10: the batch files' sizes and mtimes (stat only, nothing is read).
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (batches / name).write_bytes(b"x" * 10)
    spec = DataSpec(source="cifar10", root=str(tmp_path))
    fp = data_fingerprint(spec)
    assert fp["source"] == "cifar10" and fp["files"] == 3
    (batches / "data_batch_1").write_bytes(b"y" * 11)
    assert data_fingerprint(spec)["sha256"] != fp["sha256"]


def test_pretrain_data_override_is_fingerprinted(tmp_path, cli):
    a = _folder(tmp_path / "src", ["p", "q"])
    recipe = {"run": {"name": "pt", "output_dir": str(tmp_path / "runs"), "threads": 1, "latency_iters": 5},
              "model": {"source": "tinycnn", "kwargs": {"width": 4, "depth": 2}},
              "data": {"source": "synthetic", "image_size": 16, "synthetic_per_class": 20},
              "stages": [{"stage": "pretrain", "data": {"source": "imagefolder", "root": str(a), "image_size": 16,
                                                        "val_fraction": 0.2, "test_fraction": 0.2},
                          "train": {"epochs": 1, "batch_size": 8, "tensorboard": False}}]}
    path = tmp_path / "pt.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    assert cli("run", path, "-q")[0] == 0
    meta = tmp_path / "runs" / "pt" / "00-pretrain" / "meta.json"
    mtime = meta.stat().st_mtime_ns
    _folder(a, ["r"])
    assert cli("run", path, "-q")[0] == 0
    assert meta.stat().st_mtime_ns != mtime
    assert json.loads(meta.read_text())["class_names"] == ["p", "q", "r"]
