"""A folder of labelled photos on disk, and a user's own training loop, for the own-model tests.

Photos are scikit-learn's bundled handwritten digits (no download) rendered at 32x32 RGB with a
random tint and offset, written as PNG and JPEG files into ``root/<class>/``. The user's
training is a plain PyTorch loop over such a folder, with the user's own normalisation
(``x/255 - 0.5) / 0.5``): exactly what a user brings to edgeslim as ``model.checkpoint``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

USER_MEAN = [0.5, 0.5, 0.5]  # the normalisation the user trained with (recipes must say so)
USER_STD = [0.5, 0.5, 0.5]


def write_digit_photos(root: Path, part: int, size: int = 32, classes: int = 10) -> dict[str, int]:
    """Write half the digits (``part`` 0 or 1: every other image) as photos; count per class.

    Even-numbered files are PNG, odd-numbered JPEG (quality 90), so both decoders are used.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(100 + part)
    counts: dict[str, int] = {}
    for i in range(part, len(d.target), 2):
        label = int(d.target[i])
        if label >= classes:
            continue
        img = _photo(d.images[i], size, rng)
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        n = counts.get(str(label), 0)
        name = folder / (f"img{n:04d}.png" if n % 2 == 0 else f"img{n:04d}.jpg")
        Image.fromarray(img).save(name, **({"quality": 90} if name.suffix == ".jpg" else {}))
        counts[str(label)] = n + 1
    return counts


def _photo(digit: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 digit (0..16) upscaled into a size x size RGB image: ink in a random colour on a
    light random background, shifted by up to 2 pixels."""
    from PIL import Image

    inner = size - 4
    g = Image.fromarray((digit / 16.0 * 255).astype(np.uint8)).resize((inner, inner), Image.BILINEAR)
    ink = np.asarray(g, dtype=np.float32)[..., None] / 255.0
    bg = rng.uniform(170, 255, size=3).astype(np.float32)
    fg = rng.uniform(0, 90, size=3).astype(np.float32)
    canvas = np.ones((size, size, 3), np.float32) * bg
    dy, dx = rng.integers(0, 5, size=2)
    canvas[dy:dy + inner, dx:dx + inner] = bg * (1 - ink) + fg * ink
    return np.clip(canvas + rng.normal(0, 4, canvas.shape), 0, 255).astype(np.uint8)


def load_folder(root: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The user's own loader: every image as float, normalised with USER_MEAN/STD, class = folder."""
    from PIL import Image

    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    xs, ys = [], []
    for c, name in enumerate(names):
        for f in sorted((root / name).iterdir()):
            with Image.open(f) as im:
                xs.append(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
            ys.append(c)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2)
    mean, std = torch.tensor(USER_MEAN).view(1, 3, 1, 1), torch.tensor(USER_STD).view(1, 3, 1, 1)
    return (x - mean) / std, torch.tensor(ys), names


def train_users_checkpoint(model: torch.nn.Module, root: Path, out: Path, epochs: int = 12,
                           seed: int = 0) -> float:
    """Train ``model`` on the photos under ``root`` with a plain loop; save its state dict to ``out``.

    Returns the training accuracy of the last epoch (for a sanity check of the fixture).
    """
    x, y, _ = load_folder(root)
    opt = torch.optim.AdamW(model.parameters(), lr=0.004, weight_decay=1e-4)
    steps = epochs * ((len(y) + 31) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.006, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for _ in range(epochs):
        model.train()
        correct = 0
        for idx in torch.randperm(len(y), generator=g).split(32):
            logits = model(x[idx])
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            correct += int((logits.argmax(1) == y[idx]).sum())
    torch.save(model.state_dict(), out)
    return correct / len(y)
