"""Data sources, deterministic splits, normalization and augmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeslim.data.bundle import DataBundle
    from edgeslim.recipe import DataSpec


def build_data(spec: DataSpec, seed: int) -> DataBundle:
    from edgeslim.data.build import build_data as _build

    return _build(spec, seed)


__all__ = ["build_data"]
