"""Pruning attention models: timm ViT-Tiny, DeiT-Tiny and MobileViT-XXS prune, reload, export and
pass FP32 parity; an attention layout edgeslim does not know is refused naming the module and the
option that fixes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeslim.compress import prune as P
from edgeslim.errors import InputError

pytest.importorskip("timm")

# Small inputs keep each case fast: ViT/DeiT at 32 px with 8 px patches (16 tokens + class token),
# MobileViT at 64 px (its stride-32 trunk needs at least that).
CASES = [
    ("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8}, 32),
    ("deit_tiny_patch16_224", {"img_size": 32, "patch_size": 8}, 32),
    ("mobilevit_xxs", {}, 64),
]


def _attention_widths(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.num_heads, m.head_dim) for m in model.modules() if P.is_qkv_attention(m)]


def _fp32_parity(model: nn.Module, onnx_path, size: int) -> None:
    from edgeslim.deploy.export.parity import ParityConfig, fp32_parity, gate
    from edgeslim.runtime import open_backend

    x = np.random.default_rng(0).standard_normal((4, 3, size, size)).astype(np.float32)
    # rtol 1e-3 of the output scale: float32 attention (softmax, GELU, LayerNorm) reordered by the
    # exporter differs by ~1e-6 relative; a wrong head layout differs by O(1).
    cfg = ParityConfig(rtol=1e-3, atol=1e-4, min_top1_agreement=0.0, batch_size=4)
    ref = open_backend(model.eval(), "torch", input_shape=tuple(x.shape[1:]))
    gate(fp32_parity(ref, open_backend(onnx_path, "onnxruntime"), x, cfg))


@pytest.mark.slow
@pytest.mark.parametrize("arch,kwargs,size", CASES, ids=[c[0] for c in CASES])
def test_timm_attention_model_prunes_reloads_exports_with_parity(tmp_path, arch, kwargs, size):
    from edgeslim.models.factory import model_from_spec
    from edgeslim.models.serialize import load_model, save_model
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.recipe import ModelSpec

    model = model_from_spec(ModelSpec(source=f"timm:{arch}", kwargs=kwargs), 3, 4).eval()
    ex = torch.zeros(1, 3, size, size)
    widths = _attention_widths(model)
    assert widths, "the model has timm attention layers"
    before = P.snapshot(model)
    params0 = P.measure(model, ex, "params")
    P.prune_once(model, ex, "l2", 0.3)
    P.verify_forward(model, ex)
    model = P.record_edit_after(model, before)
    after = _attention_widths(model)
    # Heads are kept, each head is narrower, and attn_dim/scale follow head_dim.
    assert [h for h, _ in after] == [h for h, _ in widths]
    assert all(d1 < d0 for (_, d0), (_, d1) in zip(widths, after, strict=True))
    assert P.measure(model, ex, "params") < 0.8 * params0
    for m in model.modules():
        if P.is_qkv_attention(m):
            assert m.attn_dim == m.num_heads * m.head_dim and m.scale == pytest.approx(m.head_dim**-0.5)
    save_model(model, tmp_path / "m.pt")
    reloaded = load_model(tmp_path / "m.pt")
    with torch.no_grad():
        x = torch.randn(2, 3, size, size)
        torch.testing.assert_close(reloaded(x), model.eval()(x))
    path = export_onnx(reloaded, (3, size, size), tmp_path / "m.onnx").path
    _fp32_parity(reloaded, path, size)


class SplitHeadAttention(nn.Module):
    """Attention with separate q/k/v projections reshaped by head count: a layout the pruner
    does not update, so pruning it would break the reshape at run time."""

    def __init__(self, dim: int = 32, num_heads: int = 4):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        out = torch.softmax(heads(self.q(x)) @ heads(self.k(x)).transpose(-1, -2), -1) @ heads(self.v(x))
        return self.proj(out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class TokenNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 32, 4, 4)
        self.attn = SplitHeadAttention()
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.fc = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = t + self.attn(t)
        t = t + self.mlp(t)
        return self.fc(t.mean(1))


def test_unknown_attention_layout_is_refused_naming_module_and_option():
    model = TokenNet().eval()
    ex = torch.zeros(1, 3, 16, 16)
    with pytest.raises(InputError) as ei:
        P.prune_once(model, ex, "l2", 0.5)
    msg = str(ei.value)
    assert "'attn' (SplitHeadAttention)" in msg and "prune.ignored_layers" in msg and "\n" not in msg
    # The named fix works: ignoring the attention module prunes the rest and the model still runs.
    P.prune_once(model, ex, "l2", 0.5, ignored=["fc", "attn"])
    P.verify_forward(model, ex)
    assert model.mlp[0].out_features < 64
