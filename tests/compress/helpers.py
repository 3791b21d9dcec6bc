"""Shared helpers for the compression tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn


def with_spec(model: nn.Module, source: str, **kwargs) -> nn.Module:
    from edgeslim.models.edits import set_spec
    from edgeslim.models.surgery import num_classes_of

    return set_spec(
        model,
        {
            "source": source,
            "kwargs": kwargs,
            "in_chans": 3,
            "base_num_classes": num_classes_of(model),
            "edits": [],
        },
    )


def onnx_parity(model: nn.Module, path: Path, x: np.ndarray, rtol: float = 1e-3) -> None:
    """The deploy engineer's FP32 parity gate: torch vs onnxruntime, relative to output scale."""
    from edgeslim.deploy.export.parity import ParityConfig, fp32_parity, gate
    from edgeslim.runtime import open_backend

    cfg = ParityConfig(rtol=rtol, atol=1e-4, min_top1_agreement=0.0, batch_size=len(x))
    ref = open_backend(model.eval(), "torch", input_shape=tuple(x.shape[1:]))
    gate(fp32_parity(ref, open_backend(path, "onnxruntime"), x, cfg))
