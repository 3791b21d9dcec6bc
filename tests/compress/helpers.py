"""Shared helpers for the compression tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def with_spec(model: nn.Module, source: str, **kwargs) -> nn.Module:
    from edgeslim.models.edits import set_spec
    from edgeslim.models.surgery import num_classes_of

    return set_spec(model, {"source": source, "kwargs": kwargs, "in_chans": 3,
                            "base_num_classes": num_classes_of(model), "edits": []})


def onnx_parity(model: nn.Module, path: Path, x: torch.Tensor, rtol: float = 1e-3) -> float:
    """Max |torch - onnxruntime| relative to the output scale; uses deploy/parity.py when present."""
    import onnxruntime as ort

    with torch.no_grad():
        ref = model.eval()(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    rel = float(np.abs(out - ref).max() / (np.abs(ref).max() + 1e-12))
    assert rel <= rtol, f"ONNX parity failed: relative error {rel:.2e} > {rtol}"
    return rel
