"""Quantization-aware training: fake-quantized Conv/Linear layers that export to QDQ ONNX.

Weights are fake-quantized per output channel, inputs per tensor, both symmetric INT8
(zero point 0, which TensorRT requires). The wrapping is a recorded ``fake_quant`` edit, so a
QAT model reloads from spec + state like any other.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeslim.models.edits import record_edit, register_edit


class FakeQuant(nn.Module):
    """Wrap a Conv2d/Linear: INT8 fake quantization of its input and weight."""

    def __init__(self, layer: nn.Module, momentum: float = 0.1):
        super().__init__()
        self.layer = layer
        self.momentum = momentum
        self.register_buffer("act_amax", torch.zeros(()))

    def _quant_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                amax = x.detach().abs().max()
                if float(self.act_amax) == 0.0:
                    self.act_amax.copy_(amax)
                else:
                    self.act_amax.mul_(1 - self.momentum).add_(self.momentum * amax)
        scale = float(self.act_amax.clamp(min=1e-8)) / 127.0
        return torch.fake_quantize_per_tensor_affine(x, scale, 0, -128, 127)

    def _quant_weight(self) -> torch.Tensor:
        w = self.layer.weight
        amax = w.detach().abs().flatten(1).amax(1).clamp(min=1e-8)
        zp = torch.zeros(w.shape[0], dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, amax / 127.0, zp, 0, -128, 127)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, w, m = self._quant_input(x), self._quant_weight(), self.layer
        if isinstance(m, nn.Linear):
            return F.linear(x, w, m.bias)
        return F.conv2d(x, w, m.bias, m.stride, m.padding, m.dilation, m.groups)


def quantizable_layers(model: nn.Module, skip: list[str] | None = None) -> list[str]:
    skip = skip or []
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
        and n
        and n not in skip
        and not isinstance(m, nn.modules.linear.NonDynamicallyQuantizableLinear)
    ]


@register_edit("fake_quant")
def _apply_fake_quant(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    for name in edit["layers"]:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, FakeQuant(getattr(parent, attr)))
    return model


def prepare_qat(model: nn.Module, skip: list[str] | None = None) -> nn.Module:
    """Wrap every Conv2d/Linear (except ``skip``) with fake quantization, as a recorded edit."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    layers = quantizable_layers(model, skip)
    model = record_edit(model, {"op": "fake_quant", "layers": layers})
    # record_edit wraps the live modules, so weights stay in place; check via the re-keyed copy.
    missing = model.load_state_dict(_rekey(state, layers), strict=False).missing_keys
    if any(not k.endswith("act_amax") for k in missing):
        raise RuntimeError(f"QAT wrapping lost weights: {missing[:3]}")
    return model


def _rekey(state: dict[str, torch.Tensor], layers: list[str]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        prefix = next((n for n in layers if k.startswith(n + ".")), None)
        out[f"{prefix}.layer.{k[len(prefix) + 1 :]}" if prefix else k] = v
    return out


@torch.no_grad()
def calibrate(model: nn.Module, batch: torch.Tensor, chunk: int = 32) -> None:
    """Initialise activation ranges from a calibration batch before training."""
    model.train()
    for m in model.modules():
        if isinstance(m, FakeQuant):
            m.act_amax.zero_()
            m.momentum = 1.0 / max(1, len(batch) // chunk)
    for i in range(0, len(batch), chunk):
        model(batch[i : i + chunk])
    for m in model.modules():
        if isinstance(m, FakeQuant):
            m.momentum = 0.1
    model.eval()


def freeze_bn(model: nn.Module) -> None:
    """Keep BatchNorm statistics fixed during QAT (they are folded at export)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
