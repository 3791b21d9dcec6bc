"""Procedurally drawn shapes: a real, learnable image task that needs no files."""

from __future__ import annotations

import numpy as np
import torch

GENERATOR = "shapes/1"  # bump when draw_shapes draws differently: cached stages then recompute
SHAPES = ["circle", "square", "triangle", "cross", "ring", "hbar", "vbar", "diamond"]


def _mask(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy**2 + dx**2 <= r**2
    if shape == "square":
        return (abs(dy) <= r * 0.8) & (abs(dx) <= r * 0.8)
    if shape == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (abs(dx) <= (dy + r) * 0.6)
    if shape == "cross":
        return ((abs(dy) <= r * 0.25) & (abs(dx) <= r)) | ((abs(dx) <= r * 0.25) & (abs(dy) <= r))
    if shape == "ring":
        d = dy**2 + dx**2
        return (d <= r**2) & (d >= (0.55 * r) ** 2)
    if shape == "hbar":
        return (abs(dy) <= r * 0.3) & (abs(dx) <= r)
    if shape == "vbar":
        return (abs(dx) <= r * 0.3) & (abs(dy) <= r)
    return abs(dy) + abs(dx) <= r  # diamond


def draw_shapes(size: int, channels: int, num_classes: int, per_class: int, seed: int):
    if not 2 <= num_classes <= len(SHAPES):
        from edgeslim.errors import InputError

        raise InputError(f"synthetic num_classes={num_classes} is not valid; use 2..{len(SHAPES)}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    imgs = np.empty((num_classes * per_class, channels, size, size), np.uint8)
    labels = np.repeat(np.arange(num_classes), per_class)
    for i, lab in enumerate(labels):
        r = rng.uniform(0.2, 0.35) * size
        cy, cx = rng.uniform(r, size - r, 2)
        m = _mask(SHAPES[lab], yy, xx, cy, cx, r)
        bg = rng.uniform(0, 90, channels)[:, None, None]
        fg = rng.uniform(150, 255, channels)[:, None, None]
        img = np.where(m[None], fg, bg) + rng.normal(0, 12, (channels, size, size))
        imgs[i] = np.clip(img, 0, 255).astype(np.uint8)
    return torch.from_numpy(imgs), torch.from_numpy(labels.astype(np.int64)), SHAPES[:num_classes]
