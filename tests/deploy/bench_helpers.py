"""Tiny ONNX models for the bench/check/remote tests (plain conv nets with a known work ratio)."""

from __future__ import annotations

from pathlib import Path


def conv_net(body_layers: int, width: int = 8):
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(body_layers):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4)]
    return nn.Sequential(*layers).eval()


def export(model, path: Path, size: int = 16, dynamic_batch: bool = True) -> Path:
    from edgeslim.deploy.export import export_onnx

    export_onnx(
        model,
        (3, size, size),
        path,
        dynamic_batch=dynamic_batch,
        exporter="torchscript",
        simplify=False,
    )
    return path
