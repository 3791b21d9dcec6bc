"""Image folders: special files never opened, decompression bombs refused, every bad file
listed in one message, and data.skip_bad_images recorded in run.json."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import yaml
from PIL import Image

from edgeslim.errors import InputError


def _folder(root, classes=("a", "b"), n=8, size=12):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (Pillow checks the size on open)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _recipe(tmp_path, root, **data):
    recipe = {"run": {"name": "img", "output_dir": str(tmp_path / "runs"), "threads": 1, "latency_iters": 5},
              "model": {"source": "tinycnn", "kwargs": {"width": 4, "depth": 2}},
              "data": {"source": "imagefolder", "root": str(root), "image_size": 16,
                       "val_fraction": 0.25, "test_fraction": 0.25, **data},
              "stages": [{"stage": "finetune", "train": {"epochs": 1, "batch_size": 8, "tensorboard": False}}]}
    path = tmp_path / "img.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _run(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "edgeslim", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_fifo_named_png_is_never_opened(tmp_path):
    root = _folder(tmp_path / "imgs")
    os.mkfifo(root / "a" / "x.png")  # opening it for reading would block until a writer comes
    recipe = _recipe(tmp_path, root)
    # A subprocess with a cap, so a hang fails the test instead of stalling the suite.
    out = _run("run", recipe, "-q", timeout=240)
    assert out.returncode == 2, out.stderr
    assert "x.png" in out.stderr and "not a regular file" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()
    recipe = _recipe(tmp_path, root, skip_bad_images=True)
    out = _run("run", recipe, "-q", timeout=240)
    assert out.returncode == 0, out.stderr
    rec = json.loads((tmp_path / "runs" / "img" / "run.json").read_text())
    assert rec["data_skipped"] == [{"path": str(root / "a" / "x.png"), "reason": "not a regular file (FIFO)"}]


@pytest.mark.parametrize("side", [20000, 10000])
def test_decompression_bomb_is_a_one_line_error(tmp_path, cli, side):
    from edgeslim.data import build_data
    from edgeslim.recipe import DataSpec

    root = _folder(tmp_path / "imgs")
    _png_header_only(root / "b" / "huge.png", side, side)  # 10000^2 warns in Pillow, 20000^2 raises
    spec = DataSpec(source="imagefolder", root=str(root), image_size=16)
    with pytest.raises(InputError, match="huge.png") as err:
        build_data(spec, 0)
    assert "\n" not in str(err.value) and "pixels" in str(err.value)
    code, _, err_txt = cli("run", _recipe(tmp_path, root), "-q")
    assert code == 2 and "huge.png" in err_txt and len(err_txt.strip().splitlines()) == 1


def test_every_bad_image_is_listed_in_one_message(tmp_path):
    from edgeslim.data import build_data
    from edgeslim.recipe import DataSpec

    root = _folder(tmp_path / "imgs")
    for i in range(14):
        (root / ("a" if i % 2 else "b") / f"bad{i:02d}.png").write_bytes(b"not a png")
    (root / "a" / "empty.jpg").write_bytes(b"")
    with pytest.raises(InputError) as err:
        build_data(DataSpec(source="imagefolder", root=str(root), image_size=16), 0)
    msg = str(err.value)
    assert "\n" not in msg and "15 images" in msg and "skip_bad_images" in msg
    assert "bad00.png" in msg and "empty.jpg" in msg and "and 5 more" in msg  # 10 shown


def test_skip_bad_images_skips_and_records_them(tmp_path, cli):
    root = _folder(tmp_path / "imgs")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG garbage")
    _png_header_only(root / "b" / "huge.png", 20000, 20000)
    code, _, err = cli("run", _recipe(tmp_path, root, skip_bad_images=True), "-q")
    assert code == 0, err
    rec = json.loads((tmp_path / "runs" / "img" / "run.json").read_text())
    skipped = {os.path.basename(s["path"]): s["reason"] for s in rec["data_skipped"]}
    assert set(skipped) == {"broken.png", "huge.png"} and "pixels" in skipped["huge.png"]
    assert rec["recipe"]["data"]["skip_bad_images"] is True
    assert rec["stages"][0]["status"] == "completed" and rec["stages"][0]["metrics"]["epochs_run"] == 1
