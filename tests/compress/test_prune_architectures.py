"""Pruning the architectures users struggle with; each pruned model exports and passes parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeslim.compress import prune as P
from edgeslim.models.registry import create_model
from edgeslim.models.serialize import load_model, save_model
from edgeslim.onnxio.export import export_onnx

from .helpers import onnx_parity, with_spec

CASES = [
    ("torchvision:resnet18", {}, 32, {"macs": 0.4}),  # residual
    ("torchvision:mobilenet_v3_large", {}, 32, {"macs": 0.5}),  # depthwise + SE
    ("torchvision:efficientnet_b0", {}, 32, {"macs": 0.5}),  # depthwise + SE + SiLU
    # attention: torchvision's VisionTransformer, the class behind vit_b_16, at 2 layers x 64 wide
    # (vit_b_16's 86M parameters took 25 s here to build, prune, save and export: the same modules
    # and the same code path, 1000x the weights)
    ("torchvision.models.vision_transformer:VisionTransformer",
     {"image_size": 32, "patch_size": 16, "num_layers": 2, "num_heads": 4, "hidden_dim": 64, "mlp_dim": 128},
     32, {"ratio": 0.5}),
]


@pytest.mark.slow
@pytest.mark.parametrize("source,kw,size,target", CASES, ids=[c[0].split(":")[1] for c in CASES])
def test_prune_export_parity(tmp_path, source, kw, size, target):
    torch.manual_seed(0)
    model = with_spec(create_model(source, 10, **kw), source, **kw).eval()
    ex = torch.zeros(1, 3, size, size)
    before = P.snapshot(model)
    base = P.measure(model, ex, "macs")
    if "macs" in target:
        ratio = P.search_ratio(model, ex, "l2", int(base * target["macs"]), "macs", iters=5)
    else:
        ratio = target["ratio"]
    P.prune_once(model, ex, "l2", ratio)
    P.verify_forward(model, ex)
    model = P.record_edit_after(model, before)
    frac = P.measure(model, ex, "macs") / base
    assert frac <= target.get("macs", 0.95)
    save_model(model, tmp_path / "m.pt")
    model = load_model(tmp_path / "m.pt")
    path = export_onnx(model, (3, size, size), tmp_path / "m.onnx").path
    x = np.random.default_rng(0).standard_normal((4, 3, size, size)).astype(np.float32)
    onnx_parity(model, path, x)
