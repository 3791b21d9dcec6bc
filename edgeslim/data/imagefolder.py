"""The ``imagefolder`` source: one sub-folder of images per class (class names = folder names).

Every file is checked before it is opened: only regular files are read (a FIFO named
``x.png`` would block the read forever, a device could be endless), decompression bombs are
refused, and every unreadable file is reported in one message, or skipped and recorded when
``data.skip_bad_images`` is on.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeslim.data.fingerprint import register_fingerprint, stat_listing
from edgeslim.data.sources import IMAGE_EXTS, register_source
from edgeslim.errors import InputError

SHOWN_BAD = 10  # bad files named in the error; the rest are counted
_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def image_root(root: str | None) -> Path:
    if not root:
        raise InputError("data.source imagefolder needs data.root: a folder with one sub-folder per class")
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"data.root '{base}' is not a folder; give a folder with one sub-folder per class")
    return base


def class_files(base: Path) -> dict[str, list[Path]]:
    """Image files by class folder (hidden folders skipped), each list sorted."""
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {c: sorted(f for f in (base / c).rglob("*") if f.suffix.lower() in IMAGE_EXTS) for c in classes}


@register_fingerprint("imagefolder")
def imagefolder_fingerprint(spec: Any) -> dict[str, Any]:
    """Sorted file list with sizes, mtimes and modes (stat only)."""
    fp: dict[str, Any] = {"source": "imagefolder", "root": str(Path(spec.root).resolve()) if spec.root else None}
    try:
        files = class_files(image_root(spec.root))
    except (InputError, OSError) as exc:
        return fp | {"error": str(exc)[:200]}
    return fp | {"classes": sorted(files)} | stat_listing(Path(spec.root), [f for fs in files.values() for f in fs])


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "special file")


def load_image(path: Path, mode: str, size: int) -> tuple[np.ndarray | None, str | None]:
    """(HxWxC uint8 array, None) or (None, why it cannot be used); special files are never opened."""
    from PIL import Image, UnidentifiedImageError

    try:
        st = os.stat(path)  # follows a symlink: its target is what would be read
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return None, f"not a regular file ({_kind(st.st_mode)})"
    if st.st_size == 0:
        return None, "empty file"
    try:
        # O_NONBLOCK and a second check on the open file: a file swapped for a FIFO after the
        # stat above is still never read from.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, f"not a regular file ({_kind(os.fstat(fd).st_mode)})"
        try:
            with warnings.catch_warnings():
                # Pillow warns between 1x and 2x its pixel limit and raises above; both are refused.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(fh) as im:
                    arr = np.asarray(im.convert(mode).resize((size, size), Image.BILINEAR))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return None, f"decompression bomb refused: {str(exc).splitlines()[0][:160]}"
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
            return None, f"cannot be read ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})"
    return arr, None


def bad_images_error(base: Path, bad: list[dict[str, str]]) -> InputError:
    """One line naming every unreadable file (the first SHOWN_BAD, then a count)."""
    shown = "; ".join(f"{_rel(base, b['path'])} ({b['reason']})" for b in bad[:SHOWN_BAD])
    more = f"; and {len(bad) - SHOWN_BAD} more" if len(bad) > SHOWN_BAD else ""
    n = f"{len(bad)} image{'s' if len(bad) != 1 else ''}"
    return InputError(f"{n} in data.root '{base}' cannot be used: {shown}{more}; remove or replace "
                      "them, or set data.skip_bad_images: true to skip them (they are listed in run.json)")


def _rel(base: Path, path: str) -> str:
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return path


@register_source("imagefolder")
def read_imagefolder(root: str | None = None, image_size: int = 32, channels: int = 3, skip_bad: bool = False,
                     skipped: list[dict[str, str]] | None = None, **_: Any):
    """A folder with one sub-folder of images per class (class names = folder names).

    Unusable files (not regular, unreadable, bombs) fail the read in one message listing them
    all; with ``skip_bad`` they are left out and appended to ``skipped`` as {path, reason}.
    """
    base = image_root(root)
    files = class_files(base)
    mode = "L" if channels == 1 else "RGB"
    per_class: dict[str, list[np.ndarray]] = {}
    bad: list[dict[str, str]] = []
    for c, paths in files.items():
        for f in paths:
            arr, why = load_image(f, mode, image_size)
            if why is not None:
                bad.append({"path": str(f), "reason": why})
            else:
                per_class.setdefault(c, []).append(arr.reshape(image_size, image_size, -1).transpose(2, 0, 1))
    if bad and not skip_bad:
        raise bad_images_error(base, bad)
    if skipped is not None:
        skipped.extend(bad)
    classes = [c for c in files if per_class.get(c)]
    if len(classes) < 2:
        raise InputError(
            f"image folder '{base}' has {len(classes)} class folder(s) with images; need at least 2 "
            f"sub-folders holding images ({', '.join(sorted(IMAGE_EXTS))})"
        )
    imgs = [a for c in classes for a in per_class[c]]
    labels = [i for i, c in enumerate(classes) for _ in per_class[c]]
    return torch.from_numpy(np.stack(imgs)), torch.tensor(labels, dtype=torch.int64), classes
