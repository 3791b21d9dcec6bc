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
    from edgeslim.onnxio.export import export_onnx

    export_onnx(
        model,
        (3, size, size),
        path,
        dynamic_batch=dynamic_batch,
        exporter="torchscript",
        simplify=False,
    )
    return path


def device_python(dest: Path, packages: tuple[str, ...] = ("numpy", "onnxruntime")) -> Path:
    """A real interpreter that can import only ``packages`` (plus the standard library), as on a
    device where only those are installed: a venv without pip whose site-packages links this
    environment's copies of them. Nothing is mocked: ``import openvino`` really fails there."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    site = next(dest.glob("lib/python*/site-packages"))
    here = Path(__import__("numpy").__file__).parent.parent  # this environment's site-packages
    for name in packages:
        for p in here.iterdir():  # the package, its bundled libraries and its metadata
            if p.name == name or p.name.startswith((f"{name}.libs", f"{name}-")):
                (site / p.name).symlink_to(p)
    return dest / "bin" / "python"
