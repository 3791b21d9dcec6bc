"""A user-written network as it would sit in the user's own ``mynet.py``, and helpers to place it.

Two branches over the same input: a 3x3 conv branch and a depthwise-separable branch with
squeeze-and-excitation, concatenated, then a residual block, global pooling and a linear head.
Tests copy ``SOURCE`` into ``tmp_path / "mynet.py"`` and name it ``mynet.py:TwoBranchNet``,
exactly as a user would; the end-to-end must-show reuses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SOURCE = '''
import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(x + self.bn2(self.conv2(out)))


class TwoBranchNet(nn.Module):
    """conv3x3 branch || depthwise-separable + SE branch -> concat -> residual block -> head."""

    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.conv_branch = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        )
        self.dw_branch = nn.Sequential(
            nn.Conv2d(3, 3, 3, stride=2, padding=1, groups=3, bias=False), nn.BatchNorm2d(3), nn.ReLU(inplace=True),
            nn.Conv2d(3, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            SqueezeExcite(width),
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
        )
        self.res = ResidualBlock(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = torch.cat([self.conv_branch(x), self.dw_branch(x)], dim=1)
        x = self.res(self.fuse(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def make_twobranch(num_classes: int = 10, width: int = 16) -> TwoBranchNet:
    """A factory, the other form model.source accepts."""
    return TwoBranchNet(num_classes=num_classes, width=width)


class NoClassesNet(nn.Module):
    """A class whose signature has no num_classes: edgeslim must not pass one."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(width, 7)

    def forward(self, x):
        return self.fc(self.body(x))
'''


def write_mynet(folder: Path, name: str = "mynet.py") -> Path:
    """Write the user's file into ``folder`` and return its path."""
    path = Path(folder) / name
    path.write_text(SOURCE)
    return path


def save_frozen_copies(model: Any, x: Any, folder: Path) -> dict[str, Path]:
    """``model`` as a user would freeze it: TorchScript (net.ts), ExportedProgram (net.pt2, dynamic
    batch) and ONNX (net.onnx, TorchScript exporter, dynamic batch) in ``folder``."""
    import warnings

    import torch

    out = {"ts": folder / "net.ts", "pt2": folder / "net.pt2", "onnx": folder / "net.onnx"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit / TorchScript-exporter deprecation notices
        torch.jit.save(torch.jit.trace(model, x), str(out["ts"]))
        torch.onnx.export(model, (x,), str(out["onnx"]), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}})
    dims = ({0: torch.export.Dim("batch", min=1, max=512)},)
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=dims), str(out["pt2"]))
    return out
