"""Images on the device, exactly as edgeslim's pipeline sees them: a PNG codec (standard library
zlib, every row filter), .npy, Pillow when installed, and the preprocessing, bit for bit.

Shipped in every bundle as ``edgeslim_images.py`` (hashed in the manifest like every file) and
loaded by ``runner.py`` by its path after verification, for ``classify`` and ``eval``; edgeslim
writes a bundle's test images with :func:`write_png`. Standard library and numpy only.

Preprocessing: a uint8 image at the input size -> float32 / 255 -> (x - mean) / std per
channel -> NCHW.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

IMAGE_EXTS = (".png", ".npy", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm")


class ImageError(ValueError):
    """An image or image folder that cannot be used (one line, naming the file and the fix)."""


# ---------------------------------------------------------------- PNG (stdlib zlib only)


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a uint8 image (H,W gray or H,W,3 RGB) as an 8-bit non-interlaced PNG."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = img.shape[:2]
    ctype = 0 if img.ndim == 2 else 2
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)) + chunk(
        b"IDAT", zlib.compress(raw, 9)
    )
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Decode an 8-bit non-interlaced gray/RGB(A)/palette PNG to uint8 (H,W) or (H,W,C)."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ImageError(f"'{path}' is not a PNG file")
    pos, idat, hdr, plte = 8, [], None, None
    while pos < len(data):
        (n,), tag = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if tag == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif tag == b"PLTE":
            plte = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif tag == b"IDAT":
            idat.append(body)
        elif tag == b"IEND":
            break
    if hdr is None:
        raise ImageError(f"'{path}': PNG without IHDR")
    w, h, depth, ctype, _, _, interlace = hdr
    if w * h > 1 << 26:  # 67 Mpx: a decompression bomb, not a camera frame
        raise ImageError(f"'{path}' is {w}x{h} pixels; refusing images over 67 megapixels")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or interlace or channels is None:
        raise ImageError(
            f"'{path}': only 8-bit non-interlaced PNG is supported without Pillow "
            f"(bit depth {depth}, interlace {interlace}); pip install pillow, or save it as 8-bit"
        )
    px = _unfilter(zlib.decompress(b"".join(idat)), h, w * channels, channels).reshape(
        h, w, channels
    )
    if ctype == 3:
        px = plte[px[..., 0]]
    elif ctype in (4, 6):
        px = px[..., :-1]  # alpha dropped: the models take gray or RGB
    return px[..., 0] if px.shape[2] == 1 else px


def _unfilter(raw: bytes, h: int, stride: int, bpp: int) -> np.ndarray:
    buf = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f, line = buf[y, 0], buf[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:  # Sub: running sum per byte position modulo bpp
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 0xFF
        elif f == 2:
            cur = (line + prev) & 0xFF
        elif f in (3, 4):
            cur = _unfilter_seq(line, prev, bpp, f)
        else:
            raise ImageError(f"corrupt PNG: unknown row filter {f}")
        out[y] = cur
        prev = cur.astype(np.int32)
    return out


def _unfilter_seq(line: np.ndarray, prev: np.ndarray, bpp: int, f: int) -> np.ndarray:
    """Average (3) and Paeth (4) depend on the byte just decoded: a plain loop."""
    cur = [0] * len(line)
    ln, pv = line.tolist(), prev.tolist()
    for i in range(len(ln)):
        a = cur[i - bpp] if i >= bpp else 0
        b = pv[i]
        if f == 3:
            cur[i] = (ln[i] + ((a + b) >> 1)) & 0xFF
            continue
        c = pv[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[i] = (ln[i] + pred) & 0xFF
    return np.asarray(cur, np.int32)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """uint8 (H,W) or (H,W,C) from .png (built-in), .npy, or what Pillow reads when installed."""
    p = Path(path)
    if not p.is_file():  # FIFOs and devices too: never opened
        raise ImageError(f"image '{p}' does not exist or is not a regular file")
    try:
        return _decode(p)
    except ImageError:
        raise
    except Exception as exc:  # Pillow, zlib, struct, numpy: a corrupt or unsupported file
        raise ImageError(f"cannot read image '{p}' ({type(exc).__name__}: {_line(exc)})") from None


def _line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _decode(p: Path) -> np.ndarray:
    if p.suffix.lower() == ".png":
        try:
            return read_png(p)
        except ImageError:
            if not _has_pil():
                raise
    if p.suffix.lower() == ".npy":
        arr = np.load(p, allow_pickle=False)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
            arr = arr.transpose(1, 2, 0)  # C,H,W -> H,W,C
        return arr.astype(np.uint8) if arr.dtype != np.uint8 else arr
    if not _has_pil():
        raise ImageError(
            f"cannot read '{p.name}': without Pillow only .png (8-bit) and .npy work; "
            "convert it to PNG or pip install pillow"
        )
    from PIL import Image

    with Image.open(p) as im:
        return np.asarray(im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode))


def _has_pil() -> bool:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- preprocessing


def preprocess(img: np.ndarray, pre: dict) -> np.ndarray:
    """uint8 image -> float32 (C,H,W), exactly as edgeslim's pipeline: x/255, then (x-mean)/std."""
    c = int(pre["channels"])
    h, w = pre["size"]
    a = img if img.ndim == 3 else img[:, :, None]
    if a.shape[2] != c:
        if c == 3 and a.shape[2] == 1:
            a = np.repeat(a, 3, axis=2)
        elif c == 1:  # ITU-R 601 luma, as Pillow's convert("L")
            a = np.round(a[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114])[..., None].astype(
                np.uint8
            )
        else:
            raise ImageError(f"image has {a.shape[2]} channels; the model takes {c}")
    if a.shape[:2] != (h, w):
        a = _resize(a, h, w)
    x = a.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
    mean = np.asarray(pre["mean"], np.float32).reshape(-1, 1, 1)
    std = np.asarray(pre["std"], np.float32).reshape(-1, 1, 1)
    return (x - mean) / std


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear with Pillow, else nearest neighbour (the pipeline's images need neither)."""
    if _has_pil():
        from PIL import Image

        mode = "L" if a.shape[2] == 1 else "RGB"
        im = Image.fromarray(a[..., 0] if mode == "L" else a, mode).resize((w, h), Image.BILINEAR)
        r = np.asarray(im)
        return r[..., None] if r.ndim == 2 else r
    ys = (np.arange(h) * a.shape[0] / h).astype(int)
    xs = (np.arange(w) * a.shape[1] / w).astype(int)
    return a[ys][:, xs]


def labeled_images(folder: Path, labels: list[str]) -> list[tuple[Path, int]]:
    """(file, class) for DIR/<class>/<file>, in file-name order so batches match the pipeline."""
    if not folder.is_dir():
        raise ImageError(
            f"--images '{folder}' is not a folder; give DIR with one subfolder per class"
        )
    items = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name not in labels:
            raise ImageError(
                f"folder '{sub.name}' is not a class of this model; valid: {', '.join(labels)}"
            )
        items += [
            (f, labels.index(sub.name)) for f in sub.iterdir() if f.suffix.lower() in IMAGE_EXTS
        ]
    if not items:
        raise ImageError(f"no images under '{folder}/<class>/' ({', '.join(IMAGE_EXTS)})")
    return sorted(items, key=lambda t: (t[0].name, t[1]))


def load_preprocessed(paths: list, pre: dict) -> list[np.ndarray]:
    """Each image file read and preprocessed (float32 C,H,W)."""
    return [preprocess(read_image(p), pre) for p in paths]
