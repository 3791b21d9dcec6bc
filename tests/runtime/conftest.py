"""Shared artifacts of the runtime tests: one trained tiny CNN exported to FP32 and QDQ INT8 ONNX.

Trained (not random) so its logits have real margins: a parity check between two runtimes must
not hinge on argmax ties that a different CPU kernel could break.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

SIZE = 16


@dataclass
class Exported:
    model: torch.nn.Module
    fp32: Path
    int8: Path
    x: np.ndarray  # every image of the data set, preprocessed (enough samples for agreement)
    y: np.ndarray


def _train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 150) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for i in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=torch.Generator().manual_seed(i))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    from edgeslim.compress.quantize import PtqSettings, quantize_static_qdq
    from edgeslim.data import build_data
    from edgeslim.models.registry import create_model
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.recipe import DataSpec

    torch.manual_seed(0)
    data = build_data(DataSpec(source="synthetic", image_size=SIZE, channels=3, synthetic_classes=4,
                               synthetic_per_class=40, val_fraction=0.2, test_fraction=0.25), seed=0)
    parts = [data.dataset(s).tensors() for s in ("train", "val", "test")]
    x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    model = create_model("tinycnn", num_classes=4, width=8, depth=2)
    acc = _train(model, x, y)
    assert acc > 0.8, f"the tiny CNN should learn the synthetic shapes (train accuracy {acc:.2f})"
    d = tmp_path_factory.mktemp("runtime")
    fp32 = export_onnx(model, (3, SIZE, SIZE), d / "fp32.onnx", 18, True, {}).path
    int8 = quantize_static_qdq(fp32, d / "int8.onnx", x[:64].numpy(), PtqSettings())
    return Exported(model, fp32, int8, x.numpy(), y.numpy())
