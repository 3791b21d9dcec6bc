"""Choose a calibration set and store it in the run with a content hash.

The set is saved as ``calib.npy`` (preprocessed float32, NCHW) next to ``calib.json`` holding its
SHA-256, so later stages and the TensorRT build calibrate on exactly the same inputs.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeslim.errors import InputError
from edgeslim.fsutil import atomic_write_bytes, atomic_write_text, sha256_file

if TYPE_CHECKING:
    from edgeslim.data.bundle import DataBundle

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class CalibrationSet:
    """A stored calibration set: the .npy file, its SHA-256 and how it was chosen."""

    path: Path
    sha256: str
    count: int
    source: str

    def load(self) -> np.ndarray:
        arr = np.load(self.path, allow_pickle=False)
        if sha256_file(self.path) != self.sha256:
            raise InputError(
                f"calibration file '{self.path}' changed since it was stored (hash mismatch); "
                "rerun the quantize stage to rebuild it"
            )
        return arr

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.path.name,
            "sha256": self.sha256,
            "count": self.count,
            "source": self.source,
        }


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices spread evenly over classes (round-robin over shuffled per-class lists)."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picked: list[int] = []
    depth = 0
    while len(picked) < min(n, len(labels)):
        for idx in per_class:
            if depth < len(idx) and len(picked) < n:
                picked.append(int(idx[depth]))
        depth += 1
    return np.array(sorted(picked), dtype=np.int64)


def from_split(data: DataBundle, n: int, seed: int, split: str = "train") -> np.ndarray:
    """Class-stratified, seeded sample of ``split``, preprocessed exactly as at evaluation."""
    x, y = data.dataset(split).tensors()
    idx = stratified_indices(y.numpy(), n, seed)
    return x.numpy()[idx].astype(np.float32)


def from_folder(folder: str | Path, data: DataBundle, n: int, seed: int) -> np.ndarray:
    """Images (resized, normalized like the data) or .npy arrays from ``folder``.

    A float .npy is taken as already preprocessed (C,H,W or N,C,H,W); a uint8 .npy is an image.
    """
    root = Path(folder)
    files = (
        sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS + (".npy",))
        if root.is_dir()
        else []
    )
    if not files:
        raise InputError(
            f"calibration folder '{folder}' has no images ({', '.join(IMAGE_EXTS)}) or .npy files; "
            "point calibration.folder at a directory of sample inputs"
        )
    rng = np.random.default_rng(seed)
    files = [files[i] for i in sorted(rng.permutation(len(files))[:n])]
    shape = data.input_shape
    mean = np.array(data.mean, np.float32).reshape(-1, 1, 1)
    std = np.array(data.std, np.float32).reshape(-1, 1, 1)
    out: list[np.ndarray] = []
    for f in files:
        arr = _read_one(f, shape)
        if arr.dtype == np.uint8:
            arr = (arr.astype(np.float32) / 255.0 - mean) / std
        out.extend(arr[None] if arr.ndim == 3 else arr)
    batch = np.stack(out)[:n].astype(np.float32)
    if batch.shape[1:] != tuple(shape):
        raise InputError(
            f"calibration inputs from '{folder}' have shape {batch.shape[1:]}, the model takes "
            f"{tuple(shape)}; store .npy files as C,H,W float32 or use images"
        )
    return batch


def _read_one(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    from PIL import Image

    c, h, w = shape
    img = Image.open(path).convert("L" if c == 1 else "RGB").resize((w, h))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def store(batch: np.ndarray, folder: Path, source: str) -> CalibrationSet:
    """Write ``calib.npy`` + ``calib.json`` atomically into ``folder``; return the set."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(batch, dtype=np.float32), allow_pickle=False)
    path = atomic_write_bytes(folder / "calib.npy", buf.getvalue())
    cal = CalibrationSet(path, sha256_file(path), int(batch.shape[0]), source)
    atomic_write_text(folder / "calib.json", json.dumps(cal.to_json(), indent=2))
    return cal


def load_stored(folder: Path) -> CalibrationSet:
    """A calibration set stored by :func:`store` (checks the hash when loaded)."""
    meta = folder / "calib.json"
    if not meta.is_file():
        raise InputError(
            f"no calibration set in '{folder}' (calib.json missing); run a quantize stage first"
        )
    m = json.loads(meta.read_text())
    return CalibrationSet(folder / m["file"], m["sha256"], int(m["count"]), m["source"])
