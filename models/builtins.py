"""Small built-in architectures for tests and the demo: real layers, tiny sizes.

Each covers a structure users bring to the pruner: plain convs, residual blocks,
depthwise-separable blocks and a small transformer.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.models.registry import register_model


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyCNN(nn.Module):
    """A VGG-style stack: conv-bn-relu blocks, global pool, dropout, linear head."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32, depth: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        layers, c = [], in_chans
        for i in range(depth):
            w = width * (2 ** min(i, 2))
            layers += [_conv_bn(c, w), _conv_bn(w, w, stride=2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class TinyResNet(nn.Module):
    """A ResNet with BasicBlocks; ``widths`` sets the stages."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128),
                 blocks: int = 1, dropout: float = 0.0):
        super().__init__()
        self.stem = _conv_bn(in_chans, widths[0])
        stages, c = [], widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                stages.append(BasicBlock(c, w, stride=2 if (i > 0 and b == 0) else 1))
                c = w
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.layers(self.stem(x))), 1)))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            _conv_bn(cin, hid, 1),
            _conv_bn(hid, hid, 3, stride, groups=hid),
            nn.Conv2d(hid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_res else out


class TinyMobileNet(nn.Module):
    """MobileNetV2-style inverted residuals with depthwise convolutions."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 16, dropout: float = 0.0):
        super().__init__()
        w = width
        self.stem = _conv_bn(in_chans, w, stride=1)
        self.blocks = nn.Sequential(
            InvertedResidual(w, w, 1),
            InvertedResidual(w, 2 * w, 2),
            InvertedResidual(2 * w, 2 * w, 1),
            InvertedResidual(2 * w, 4 * w, 2),
        )
        self.head_conv = _conv_bn(4 * w, 8 * w, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_conv(self.blocks(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


class TinyViT(nn.Module):
    """A small Vision Transformer: patch embedding, a few encoder layers, class token."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, image_size: int = 32, patch: int = 8,
                 dim: int = 64, depth: int = 2, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.patch_embed = nn.Conv2d(in_chans, dim, patch, patch)
        n = (image_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.fc(self.norm(self.encoder(x))[:, 0])


@register_model()
def tinycnn(num_classes: int = 10, in_chans: int = 3, **kw) -> nn.Module:
    return TinyCNN(num_classes, in_chans, **kw)


@register_model()
def tinyresnet(num_classes: int = 10, in_chans: int = 3, **kw) -> nn.Module:
    return TinyResNet(num_classes, in_chans, **kw)


@register_model()
def tinyresnet_wide(num_classes: int = 10, in_chans: int = 3, **kw) -> nn.Module:
    kw.setdefault("widths", (64, 128, 256))
    kw.setdefault("blocks", 2)
    return TinyResNet(num_classes, in_chans, **kw)


@register_model()
def tinymobilenet(num_classes: int = 10, in_chans: int = 3, **kw) -> nn.Module:
    return TinyMobileNet(num_classes, in_chans, **kw)


@register_model()
def tinyvit(num_classes: int = 10, in_chans: int = 3, **kw) -> nn.Module:
    return TinyViT(num_classes, in_chans, **kw)


@register_model()
def test_mlp(num_classes: int = 10, in_chans: int = 3, image_size: int = 16, hidden: int = 32) -> nn.Module:
    """The smallest model: flatten + 2 linear layers, for fast CLI tests."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_chans * image_size * image_size, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
    )
