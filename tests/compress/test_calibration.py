"""Calibration sets: stratified, seeded, hashed, from folders, fed to onnxruntime / TensorRT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeslim.calibration import readers, select
from edgeslim.errors import InputError


def test_stratified_selection_is_balanced_and_seeded():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    idx = select.stratified_indices(labels, 12, seed=3)
    assert np.bincount(labels[idx]).tolist() == [4, 4, 4]
    assert (idx == select.stratified_indices(labels, 12, seed=3)).all()
    assert not (idx == select.stratified_indices(labels, 12, seed=4)).all()


def test_store_hash_and_tamper_detection(tiny_data, tmp_path):
    batch = select.from_split(tiny_data, 8, seed=0)
    assert batch.shape == (8, *tiny_data.input_shape) and batch.dtype == np.float32
    cal = select.store(batch, tmp_path, "train")
    again = select.load_stored(tmp_path)
    assert again.sha256 == cal.sha256 and np.array_equal(again.load(), batch)
    np.save(tmp_path / "calib.npy", batch * 2)
    with pytest.raises(InputError, match="hash mismatch"):
        again.load()


def test_folder_of_images_and_npy(tiny_data, tmp_path):
    from PIL import Image

    img = tiny_data.train.images[0].permute(1, 2, 0).numpy()
    Image.fromarray(img).resize((32, 32)).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", np.zeros(tiny_data.input_shape, np.float32))
    batch = select.from_folder(tmp_path, tiny_data, 10, seed=0)
    assert batch.shape == (2, *tiny_data.input_shape)
    with pytest.raises(InputError, match="has no images"):
        select.from_folder(tmp_path / "missing", tiny_data, 4, seed=0)


def test_ort_reader_yields_every_sample_then_none():
    batch = np.random.default_rng(0).standard_normal((5, 3, 4, 4)).astype(np.float32)
    r = readers.ort_reader(batch, "input", batch_size=2)
    got = []
    while (item := r.get_next()) is not None:
        got.append(item["input"])
    assert np.array_equal(np.concatenate(got), batch)


@pytest.mark.tensorrt
def test_tensorrt_calibrator_serves_device_batches(tmp_path):
    batch = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)
    cal = readers.tensorrt_calibrator(batch, tmp_path / "calib.cache", batch_size=8)
    assert cal.get_batch_size() == 8
    ptrs = [cal.get_batch(["input"]), cal.get_batch(["input"]), cal.get_batch(["input"])]
    assert ptrs[0] and ptrs[1] and ptrs[2] is None
    cal.write_calibration_cache(b"cache")
    assert cal.read_calibration_cache() == b"cache"
    assert torch.cuda.is_available()
