"""The bundle's image module (shipped as edgeslim_images.py): PNG codec (all row filters),
preprocessing bit for bit. Its timing core is edgeslim.runtime.portable: tests/runtime."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from edgeslim.deploy.bundle import images as R


def _png_with_filter(img: np.ndarray, ftype: int) -> bytes:
    """Encode ``img`` (H,W,C uint8) using one PNG row filter for every row (reference encoder)."""
    h, w, c = img.shape
    rows, prev = [], np.zeros(w * c, np.int32)
    for y in range(h):
        cur = img[y].reshape(-1).astype(np.int32)
        left = np.concatenate([np.zeros(c, np.int32), cur[:-c]])
        upleft = np.concatenate([np.zeros(c, np.int32), prev[:-c]])
        if ftype == 0:
            pred = np.zeros_like(cur)
        elif ftype == 1:
            pred = left
        elif ftype == 2:
            pred = prev
        elif ftype == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        rows.append(bytes([ftype]) + ((cur - pred) & 0xFF).astype(np.uint8).tobytes())
        prev = cur

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ctype = {1: 0, 3: 2, 4: 6}[c]
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("ftype", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_decoder_every_filter(tmp_path, ftype, channels):
    img = np.random.default_rng(ftype * 10 + channels).integers(
        0, 256, (9, 7, channels), dtype=np.uint8
    )
    p = tmp_path / "x.png"
    p.write_bytes(_png_with_filter(img, ftype))
    got = R.read_png(p)
    want = img[..., 0] if channels == 1 else img[..., :3]  # alpha is dropped
    assert got.dtype == np.uint8 and np.array_equal(got, want)


def test_png_writer_roundtrip_and_refusals(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    R.write_png(tmp_path / "a.png", img)
    assert np.array_equal(R.read_png(tmp_path / "a.png"), img)
    R.write_png(tmp_path / "g.png", img[..., 0])
    assert np.array_equal(R.read_png(tmp_path / "g.png"), img[..., 0])
    (tmp_path / "bad.png").write_bytes(b"GIF89a")
    with pytest.raises(R.ImageError, match="not a PNG"):
        R.read_png(tmp_path / "bad.png")
    with pytest.raises(R.ImageError, match="does not exist"):
        R.read_image(tmp_path / "missing.png")


def test_preprocessing_matches_the_pipeline_bit_for_bit(tiny_data, tmp_path):
    x, _ = tiny_data.dataset("test").tensors()
    pre = {
        "channels": 3,
        "size": list(tiny_data.input_shape[1:]),
        "mean": tiny_data.mean,
        "std": tiny_data.std,
    }
    for i, img in enumerate(tiny_data.test.images.numpy()):
        R.write_png(tmp_path / f"{i}.png", img.transpose(1, 2, 0))
        np.save(tmp_path / f"{i}.npy", img)
        assert np.array_equal(R.preprocess(R.read_image(tmp_path / f"{i}.png"), pre), x[i].numpy())
        assert np.array_equal(R.preprocess(R.read_image(tmp_path / f"{i}.npy"), pre), x[i].numpy())


def test_channel_conversion_and_resize():
    pre = {"channels": 3, "size": [4, 4], "mean": [0, 0, 0], "std": [1, 1, 1]}
    gray = np.full((8, 8), 255, np.uint8)
    out = R.preprocess(gray, pre)
    assert out.shape == (3, 4, 4) and np.all(out == 1.0)
    with pytest.raises(R.ImageError, match="2 channels"):
        R.preprocess(np.zeros((4, 4, 2), np.uint8), pre)
