"""Data sources, deterministic splits, normalization and augmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeslim.data.build import ModelNorm
    from edgeslim.data.bundle import DataBundle
    from edgeslim.recipe import DataSpec


def build_data(spec: DataSpec, seed: int, model: ModelNorm | None = None) -> DataBundle:
    """See :func:`edgeslim.data.build.build_data`."""
    from edgeslim.data.build import build_data as _build

    return _build(spec, seed, model)


__all__ = ["build_data"]
